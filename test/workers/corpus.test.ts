/**
 * A real-world corpus: the HTML and CSS of Debian's debian-reference-en package (installed by
 * .ci/run), with internal hosts substituted in. After rewriting, in chunks as the pool sees
 * them, (1) mapping every external URL back gives the input byte for byte, so nothing else
 * changed, and (2) parse5 parses the output to the same DOM as the input except the URL
 * attributes that point into a published app.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse, type DefaultTreeAdapterMap } from "parse5";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LinkMap, type LinkMapping } from "../../engine/workers/links.js";
import { TranslatePool } from "../../engine/workers/pool.js";
import { rewriteBytes, translateBody } from "../fixtures/translate.js";

const CORPUS = "/usr/share/debian-reference";

const MAPPINGS: LinkMapping[] = [
  { internalUrl: "http://wiki/", externalUrl: "https://wiki.contoso.com/" },
  { internalUrl: "http://packages.corp.local/", externalUrl: "https://packages.contoso.com/" },
  { internalUrl: "http://docs.corp.local:8080/reference/", externalUrl: "https://docs.contoso.com/" },
];
const links = new LinkMap(MAPPINGS);

/** Public hosts of the documents -> the internal ones they play here. */
function substitute(text: string): string {
  return text
    .replaceAll("https://en.wikipedia.org/", "http://wiki/")
    .replaceAll("https://packages.debian.org/", "http://packages.corp.local/")
    .replaceAll("https://packages.qa.debian.org/", "http://packages.corp.local/qa/")
    .replaceAll('href="images/', 'href="http://docs.corp.local:8080/reference/images/')
    .replaceAll('src="images/', 'src="//docs.corp.local:8080/reference/images/');
}

/** The output with every external URL mapped back: must be the input, byte for byte. */
function unmap(text: string): string {
  return text
    .replaceAll("https://wiki.contoso.com/", "http://wiki/")
    .replaceAll("https://packages.contoso.com/", "http://packages.corp.local/")
    .replaceAll("https://docs.contoso.com/", "http://docs.corp.local:8080/reference/")
    .replaceAll("//docs.contoso.com/", "//docs.corp.local:8080/reference/");
}

const URL_ATTRIBUTES = new Set(["a href", "link href", "img src", "script src", "area href", "base href", "iframe src", "form action"]);

type Node = DefaultTreeAdapterMap["node"];

/** Walks both trees in step; returns how many attributes differ (each one a translated URL). */
function compareTrees(a: Node, b: Node, path: string): number {
  expect(b.nodeName, path).toBe(a.nodeName);
  let translated = 0;
  if ("value" in a && "value" in b) expect(b.value, `${path} text`).toBe(a.value);
  if ("attrs" in a && "attrs" in b) {
    expect(b.attrs.map((x) => x.name), `${path} attributes`).toEqual(a.attrs.map((x) => x.name));
    for (let i = 0; i < a.attrs.length; i++) {
      const before = a.attrs[i]!.value;
      const after = b.attrs[i]!.value;
      if (before === after) continue;
      // Only a URL attribute may change, and only to its translation.
      expect(URL_ATTRIBUTES.has(`${a.nodeName} ${a.attrs[i]!.name}`), `${path}@${a.attrs[i]!.name}`).toBe(true);
      expect(after, `${path}@${a.attrs[i]!.name}`).toBe(links.translate(before));
      translated++;
    }
  }
  const ac = "childNodes" in a ? a.childNodes : [];
  const bc = "childNodes" in b ? b.childNodes : [];
  expect(bc.length, `${path} children`).toBe(ac.length);
  for (let i = 0; i < ac.length; i++) translated += compareTrees(ac[i]!, bc[i]!, `${path}/${ac[i]!.nodeName}[${i}]`);
  const content = (n: Node) => ("content" in n ? (n.content as Node) : undefined);
  if (content(a)) translated += compareTrees(content(a)!, content(b)!, `${path}#content`);
  return translated;
}

/** Deterministic cut points: pseudo-random sizes between 1 byte and 24 KiB. */
function cutsFor(length: number, seed: number): number[] {
  const cuts: number[] = [];
  let x = seed;
  for (let at = 0; ; ) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    at += 1 + (x % 24_576);
    if (at >= length) return cuts;
    cuts.push(at);
  }
}

describe("real-world corpus (debian-reference-en)", () => {
  if (!existsSync(CORPUS)) {
    it("needs the Debian package debian-reference-en (apt-get install debian-reference-en; .ci/run installs it)", () => {
      expect.fail(`${CORPUS} is missing`);
    });
    return;
  }
  const html = readdirSync(CORPUS).filter((f) => f.endsWith(".en.html"));

  it("has pages to work on", () => {
    expect(html.length).toBeGreaterThanOrEqual(10);
  });

  it.each(html)("%s: same DOM but the translated URLs, no other byte changed", (file) => {
    const input = substitute(readFileSync(join(CORPUS, file), "utf8"));
    const bytes = Buffer.from(input, "utf8");
    const output = rewriteBytes("html", bytes, cutsFor(bytes.length, bytes.length), links).toString("utf8");
    expect(unmap(output)).toBe(input);
    const translated = compareTrees(parse(input), parse(output), "#document");
    // Every link the substitution planted was translated, and nothing else changed.
    const planted = input.match(/(href|src)="(http:)?\/\/(wiki|packages\.corp\.local|docs\.corp\.local:8080\/reference)\//g) ?? [];
    expect(translated).toBe(planted.length);
  });

  it("the stylesheet, with internal URLs substituted in, changes only in its URLs", () => {
    const css = readFileSync(join(CORPUS, "debian-reference.css"), "utf8");
    // Every rule gets a background image and an import on an internal host, to have URLs to translate.
    const input = `@import "http://docs.corp.local:8080/reference/base.css";\n${css.replaceAll("{", "{ background-image: url(http://docs.corp.local:8080/reference/images/bg.png);")}`;
    const bytes = Buffer.from(input);
    for (const cuts of [[], cutsFor(bytes.length, 7), Array.from({ length: 200 }, (_, i) => i * 13 + 1)]) {
      const output = rewriteBytes("css", bytes, cuts, links).toString();
      expect(output).toBe(input.replaceAll("http://docs.corp.local:8080/reference/", "https://docs.contoso.com/"));
    }
  });

  describe("through the worker pool", () => {
    let pool: TranslatePool;
    beforeAll(() => {
      pool = new TranslatePool({ threads: 2 });
    });
    afterAll(() => pool.close());

    it("translates the largest page in 16 KiB chunks the same as in-process", async () => {
      const largest = html.map((f) => join(CORPUS, f)).sort((a, b) => readFileSync(b).length - readFileSync(a).length)[0]!;
      const bytes = Buffer.from(substitute(readFileSync(largest, "utf8")));
      const chunks: Buffer[] = [];
      for (let at = 0; at < bytes.length; at += 16_384) chunks.push(bytes.subarray(at, at + 16_384));
      const { out, error } = await translateBody(pool, { kind: "html", encoding: "identity" }, chunks, MAPPINGS);
      expect(error).toBeUndefined();
      expect(out.equals(rewriteBytes("html", bytes, [], links))).toBe(true);
    });
  });
});
