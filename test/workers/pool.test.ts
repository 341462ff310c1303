/**
 * Body translation on the real piscina pool (built worker files, real threads): encodings,
 * budgets, the decoded-size cap against zip bombs, hung and crashed workers, the bounded queue.
 */
import { brotliCompressSync, brotliDecompressSync, deflateSync, gunzipSync, gzipSync, inflateSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isPosternError } from "../../engine/errors/catalogue.js";
import { TranslatePool } from "../../engine/workers/pool.js";
import { translationPlan } from "../../engine/workers/translation.js";
import { misbehavingTaskFile, translateBody } from "../fixtures/translate.js";

const PAGE = '<html><head><link href="http://benefits/site.css" rel=stylesheet></head><body><a href="http://expenses.corp.local:8080/app/x">x</a><p>Grüße</p></body></html>';
const TRANSLATED = '<html><head><link href="https://benefits.contoso.com/site.css" rel=stylesheet></head><body><a href="https://expenses.contoso.com/x">x</a><p>Grüße</p></body></html>';

/** Cuts `b` into pieces of `size` bytes. */
function pieces(b: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < b.length; at += size) out.push(b.subarray(at, at + size));
  return out;
}

describe("which bodies are translated", () => {
  it.each([
    ["text/html; charset=utf-8", undefined, { kind: "html", encoding: "identity" }],
    ["application/xhtml+xml", "gzip", { kind: "html", encoding: "gzip" }],
    ["TEXT/CSS", "x-gzip", { kind: "css", encoding: "gzip" }],
    ["text/css", "br", { kind: "css", encoding: "br" }],
    ["text/html", "deflate", { kind: "html", encoding: "deflate" }],
    ["text/html; charset=ISO-8859-1", "identity", { kind: "html", encoding: "identity" }],
  ])("%s (%s) is translated", (type, encoding, plan) => {
    expect(translationPlan(type, encoding)).toEqual(plan);
  });

  it.each([
    ["application/javascript", undefined],
    ["application/json", undefined],
    ["text/plain", undefined],
    [undefined, undefined],
    ["text/html; charset=utf-16", undefined],
    ['text/html; charset="UTF-16LE"', undefined],
    ["text/html", "compress"],
    ["text/html", "gzip, br"],
  ])("%s (%s) passes through", (type, encoding) => {
    expect(translationPlan(type, encoding)).toBeUndefined();
  });
});

describe("translation on the pool", () => {
  let pool: TranslatePool;
  beforeAll(() => {
    pool = new TranslatePool({ threads: 2 });
  });
  afterAll(() => pool.close());

  it("translates a page sent in small pieces", async () => {
    const { out, error } = await translateBody(pool, { kind: "html", encoding: "identity" }, pieces(Buffer.from(PAGE), 5));
    expect(error).toBeUndefined();
    expect(out.toString()).toBe(TRANSLATED);
  });

  it.each([
    ["gzip", gzipSync, gunzipSync],
    ["deflate", deflateSync, inflateSync],
    ["br", brotliCompressSync, brotliDecompressSync],
  ] as const)("decodes and re-encodes %s", async (encoding, encode, decode) => {
    const body = Buffer.from(PAGE.repeat(200));
    const { out, error } = await translateBody(pool, { kind: "html", encoding }, pieces(encode(body), 100));
    expect(error).toBeUndefined();
    expect(decode(out).toString()).toBe(TRANSLATED.repeat(200));
  });

  it("fails a corrupt gzip body cleanly", async () => {
    const { error } = await translateBody(pool, { kind: "html", encoding: "gzip" }, [Buffer.from("this is not gzip at all")]);
    expect(isPosternError(error, "POSTERN_TRANSLATE")).toBe(true);
  });

  it("stops a zip bomb at the decoded-size cap, and the pool keeps working", async () => {
    const small = new TranslatePool({ threads: 1, maxDecodedBytes: 4 * 1024 * 1024 });
    try {
      // 1 GiB of zeros compresses to about 1 MiB; the cap is 4 MiB.
      const bomb = gzipSync(Buffer.alloc(256 * 1024 * 1024), { level: 9 });
      expect(bomb.length).toBeLessThan(1024 * 1024);
      const { out, error } = await translateBody(small, { kind: "html", encoding: "gzip" }, pieces(bomb, 16 * 1024));
      expect(isPosternError(error, "POSTERN_TRANSLATE")).toBe(true);
      expect(error!.message).toMatch(/decoded body passed 4194304 bytes/);
      // What went out before the stop is bounded by the cap.
      expect(out.length).toBeLessThan(4 * 1024 * 1024);
      const after = await translateBody(small, { kind: "html", encoding: "identity" }, [Buffer.from(PAGE)]);
      expect(after.out.toString()).toBe(TRANSLATED);
    } finally {
      await small.close();
    }
  });

  it("passes a UTF-16 body (byte order mark) through untouched", async () => {
    const body = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('<a href="http://benefits/">', "utf16le")]);
    const { out } = await translateBody(pool, { kind: "html", encoding: "identity" }, pieces(body, 7));
    expect(out.equals(body)).toBe(true);
  });

  // Worst cases for the rewriter, 1 MB each: everything it does must stay linear.
  const MB = 1024 * 1024;
  const worst: [string, string][] = [
    ["unclosed relevant attributes", '<a href="http://benefits/'.repeat(MB / 25)],
    ["a srcset of a million commas", `<img srcset="${",".repeat(MB)}">`],
    ["a style block of url( openings", `<style>${"url(".repeat(MB / 4)}`],
    ["tags opened and never closed", "<".repeat(MB)],
    ["a meta refresh with a huge content", `<meta http-equiv=refresh content="${"url=".repeat(MB / 4)}">`],
    ["links on every line", '<a href="http://benefits/x">y</a>\n'.repeat(MB / 32)],
  ];
  it.each(worst)("%s: finishes within the worker-time budget or fails cleanly", async (_name, input) => {
    const started = performance.now();
    const { out, error } = await translateBody(pool, { kind: "html", encoding: "identity" }, pieces(Buffer.from(input, "latin1"), 64 * 1024));
    const elapsed = performance.now() - started;
    if (error) expect(isPosternError(error, "POSTERN_TRANSLATE")).toBe(true);
    else expect(out.length).toBeGreaterThanOrEqual(input.length);
    expect(elapsed).toBeLessThan(pool.limits.budgetMs + pool.limits.chunkTimeoutMs);
  });

  it("fails a response that uses up its worker-time budget", async () => {
    const tight = new TranslatePool({ threads: 1, budgetMs: 0.001 });
    try {
      const { error } = await translateBody(tight, { kind: "html", encoding: "identity" }, [Buffer.from(PAGE.repeat(1000))]);
      expect(isPosternError(error, "POSTERN_TRANSLATE")).toBe(true);
      expect(error!.message).toMatch(/worker time/);
    } finally {
      await tight.close();
    }
  });
});

describe("a worker that hangs or crashes", () => {
  let pool: TranslatePool;
  beforeAll(() => {
    pool = new TranslatePool({ threads: 2, chunkTimeoutMs: 500 }, misbehavingTaskFile());
  });
  afterAll(() => pool.close());

  it("a hung chunk fails only its response, even when it shared a batch; the worker is replaced", async () => {
    const plan = { kind: "html", encoding: "identity" } as const;
    const [hung, fine] = await Promise.all([
      translateBody(pool, plan, [Buffer.from("<p>HANG-NOW</p>")]),
      translateBody(pool, plan, pieces(Buffer.from(PAGE), 10)),
    ]);
    expect(isPosternError(hung.error, "POSTERN_TRANSLATE")).toBe(true);
    expect(hung.error!.message).toMatch(/longer than 500 ms/);
    expect(fine.error).toBeUndefined();
    expect(fine.out.toString()).toBe(TRANSLATED);
    // Both threads serve again afterwards.
    const again = await Promise.all([1, 2, 3, 4].map(() => translateBody(pool, plan, [Buffer.from(PAGE)])));
    for (const r of again) expect(r.out.toString()).toBe(TRANSLATED);
  });

  it("a crashed worker fails only its response", async () => {
    const plan = { kind: "css", encoding: "identity" } as const;
    const [crashed, fine] = await Promise.all([
      translateBody(pool, plan, [Buffer.from("a{} /* CRASH-NOW */")]),
      translateBody(pool, plan, [Buffer.from("a{b:url(http://benefits/x)}")]),
    ]);
    expect(isPosternError(crashed.error, "POSTERN_TRANSLATE")).toBe(true);
    expect(fine.out.toString()).toBe("a{b:url(https://benefits.contoso.com/x)}");
  });

  it("bounds its queue: saturated once maxQueue chunks wait", async () => {
    const tiny = new TranslatePool({ threads: 1, maxQueue: 2, chunkTimeoutMs: 400 }, misbehavingTaskFile());
    try {
      const plan = { kind: "html", encoding: "identity" } as const;
      expect(tiny.saturated).toBe(false);
      // One running, two waiting (each started in its own event-loop turn, so each is its own
      // batch): saturated, so the edge starts no new translation.
      const turn = () => new Promise((r) => setImmediate(r));
      const running: ReturnType<typeof translateBody>[] = [];
      for (let i = 0; i < 3; i++) {
        running.push(translateBody(tiny, plan, [Buffer.from("HANG-NOW")]));
        await turn();
      }
      await new Promise((r) => setTimeout(r, 50));
      expect(tiny.saturated).toBe(true);
      // Chunks of responses already under way may queue up to twice the bound; past it they fail at once.
      const more: ReturnType<typeof translateBody>[] = [];
      for (let i = 0; i < 2; i++) {
        more.push(translateBody(tiny, plan, [Buffer.from("HANG-NOW")]));
        await turn();
      }
      const started = performance.now();
      const refused = await translateBody(tiny, plan, [Buffer.from(PAGE)]);
      expect(performance.now() - started).toBeLessThan(300);
      expect(isPosternError(refused.error, "POSTERN_POOL_FULL")).toBe(true);
      expect(refused.error!.message).toMatch(/queue is full \(4 tasks wait\)/);
      for (const r of await Promise.all([...running, ...more])) expect(r.error).toBeDefined();
      expect(tiny.saturated).toBe(false);
    } finally {
      await tiny.close();
    }
  });
});
