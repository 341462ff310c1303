/**
 * Link translation throughput per worker: the rewriter on one thread (what each pool worker
 * does per chunk), plain and gzip-encoded, beside parsing and serialising the same document
 * with parse5 (a full HTML parse, the baseline); and the pool end to end with one worker
 * (messaging and transfers included).
 */
import { gunzipSync, gzipSync, constants } from "node:zlib";
import { serialize, parse } from "parse5";
import { Bench } from "tinybench";
import { LinkMap } from "../../engine/workers/links.js";
import { TranslatePool } from "../../engine/workers/pool.js";
import { rewriteChunk, type BodyKind, type RewriteState } from "../../engine/workers/rewrite.js";
import { BodyTranslation } from "../../engine/workers/translation.js";
import { printTable, type Row } from "../report.js";
import { BENCH_LINKS, denseLinksPage, sampleCss, typicalPage } from "../../loadtest/pages.js";

const CHUNK = 64 * 1024;

function chunks(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < b.length; at += CHUNK) out.push(b.subarray(at, at + CHUNK));
  return out;
}

/** The rewriter over a whole document in 64 KiB chunks, state passed along as between workers. */
function rewriteAll(kind: BodyKind, parts: Buffer[], links: LinkMap): number {
  let state: RewriteState | undefined;
  let bytes = 0;
  parts.forEach((p, i) => {
    const step = rewriteChunk(kind, state, p, i === parts.length - 1, links);
    state = step.state;
    bytes += step.out.length;
  });
  return bytes;
}

/** What a gzip response costs: decode, rewrite, encode with a flush per chunk, on one thread. */
function rewriteGzip(kind: BodyKind, gz: Buffer, links: LinkMap): number {
  const plain = chunks(gunzipSync(gz));
  let state: RewriteState | undefined;
  let bytes = 0;
  plain.forEach((p, i) => {
    const step = rewriteChunk(kind, state, p, i === plain.length - 1, links);
    state = step.state;
    bytes += gzipSync(step.out, { flush: constants.Z_SYNC_FLUSH }).length;
  });
  return bytes;
}

function throughPool(pool: TranslatePool, parts: Buffer[], kind: BodyKind): Promise<number> {
  return new Promise((resolve, reject) => {
    let bytes = 0;
    let i = 0;
    const t: BodyTranslation = new BodyTranslation(pool, { kind, encoding: "identity" }, { key: "bench", mappings: BENCH_LINKS }, {
      data: (c) => (bytes += c.length),
      drain: () => pump(),
      end: (last) => resolve(bytes + (last?.length ?? 0)),
      error: reject,
    });
    const pump = () => {
      while (i < parts.length) if (!t.write(parts[i++]!)) return;
      t.end();
    };
    pump();
  });
}

export async function runTranslateBench(): Promise<string> {
  const links = new LinkMap(BENCH_LINKS);
  const html = Buffer.from(typicalPage(1024 * 1024));
  const dense = Buffer.from(denseLinksPage(1024 * 1024));
  const denseParts = chunks(dense);
  const css = Buffer.from(sampleCss(1024 * 1024));
  const htmlParts = chunks(html);
  const cssParts = chunks(css);
  const htmlGz = gzipSync(html);
  const cssGz = gzipSync(css);
  const htmlText = html.toString();
  const pool = new TranslatePool({ threads: 1 });
  let sink = 0;
  const bench = new Bench({ time: 1500 });
  bench
    .add("html", () => void (sink += rewriteAll("html", htmlParts, links)))
    .add("html dense", () => void (sink += rewriteAll("html", denseParts, links)))
    .add("html gzip", () => void (sink += rewriteGzip("html", htmlGz, links)))
    .add("css", () => void (sink += rewriteAll("css", cssParts, links)))
    .add("css gzip", () => void (sink += rewriteGzip("css", cssGz, links)))
    .add("parse5", () => void (sink += serialize(parse(htmlText)).length))
    .add("pool html", async () => void (sink += await throughPool(pool, htmlParts, "html")));
  await bench.run();
  await pool.close();
  const mbps = (name: string, bytes: number): number => {
    const r = bench.getTask(name)?.result;
    if (r === undefined || !("throughput" in r)) throw new Error(`benchmark ${name} did not complete`);
    return (r.throughput.p50 * bytes) / 1e6;
  };
  const rows: Row[] = [
    { name: "parse5 parse + serialize (baseline)", value: mbps("parse5", html.length), unit: "MB/s" },
    { name: "HTML rewrite, 1 worker", value: mbps("html", html.length), unit: "MB/s", baseline: "parse5 parse + serialize (baseline)" },
    { name: "HTML rewrite, link-dense page, 1 worker", value: mbps("html dense", dense.length), unit: "MB/s", baseline: "parse5 parse + serialize (baseline)" },
    { name: "HTML rewrite, gzip in and out, 1 worker", value: mbps("html gzip", html.length), unit: "MB/s (decoded)", baseline: "parse5 parse + serialize (baseline)" },
    { name: "CSS rewrite, 1 worker", value: mbps("css", css.length), unit: "MB/s", baseline: "parse5 parse + serialize (baseline)" },
    { name: "CSS rewrite, gzip in and out, 1 worker", value: mbps("css gzip", css.length), unit: "MB/s (decoded)", baseline: "parse5 parse + serialize (baseline)" },
    { name: "HTML through the pool (1 thread, 64 KiB chunks)", value: mbps("pool html", html.length), unit: "MB/s", baseline: "HTML rewrite, 1 worker" },
  ];
  if (sink < 0) throw new Error("unreachable");
  return printTable(`Link translation (1 MiB documents, 64 KiB chunks; typical intranet page unless said; tinybench, median of samples)`, rows);
}
