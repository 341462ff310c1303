/**
 * Differential fuzzing of the HTML rewriter against parse5: random tag soup (upper and lower
 * case, quoted and unquoted and broken attributes, comments of every odd form, raw-text
 * elements with near-miss end tags, stray "<", "/>" on raw-text names) and well-nested inline
 * SVG and MathML (CDATA, integration points with HTML in them), with link values of every
 * kind in URL attributes and elsewhere, rewritten whole and in random chunks. parse5 then
 * reads input and output: the trees must be the same except the URL attributes of the
 * elements that have them (each exactly its translation: nothing missed, nothing extra) and
 * the CSS of <style> elements, SVG's too (its url()s translated). FUZZ_SEEDS=12000 runs more.
 */
import { parse, type DefaultTreeAdapterMap } from "parse5";
import { describe, expect, it } from "vitest";
import { LinkMap } from "../../engine/workers/links.js";
import { rewriteBytes } from "../fixtures/translate.js";

const links = new LinkMap([
  { internalUrl: "http://wiki/", externalUrl: "https://wiki.contoso.com/" },
  { internalUrl: "http://docs.corp.local:8080/ref/", externalUrl: "https://docs.contoso.com/" },
]);

/** Written here from the issue's list, not taken from the implementation. */
const URL_ATTRIBUTES: Record<string, readonly string[]> = {
  a: ["href"], area: ["href"], base: ["href"], link: ["href"], img: ["src"], script: ["src"], iframe: ["src"], frame: ["src"],
  form: ["action"], button: ["formaction"], input: ["src"], source: ["src"], video: ["src", "poster"], audio: ["src"],
  track: ["src"], embed: ["src"], object: ["data"],
};

/** A deterministic generator (the failing seed is in the test name). */
function rng(seed: number): () => number {
  // Scrambled, and the first outputs dropped: xorshift starts near 0 from a small seed.
  let x = Math.imul(seed, 2654435761) >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
  for (let i = 0; i < 8; i++) next();
  return next;
}

function documentFor(seed: number): string {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const casing = (s: string) => (r() < 0.3 ? s.toUpperCase() : r() < 0.2 ? s[0]!.toUpperCase() + s.slice(1) : s);
  const url = () => pick([
    "http://wiki/page", "HTTP://WIKI/Page?q=1#top", "http://wiki:80/x", "http://wiki", "//wiki/img.png", "http://docs.corp.local:8080/ref/a.html",
    "http://docs.corp.local:8080/other/", "http://docs.corp.local/ref/", "https://wiki/", "http://elsewhere/", "/relative//path", "page.html",
    "mailto:x@wiki", "javascript:go('http://wiki/')", "http://wiki/a?x=1&amp;y=2", " \thttp://wiki/spaced \n", "",
    "http://wiki/", "//docs.corp.local:8080/ref/", "http://WIKI:80/a b",
  ]);
  const quoted = (v: string) => pick([`"${v.replaceAll('"', "")}"`, `'${v.replaceAll("'", "")}'`, v.replace(/[\s"'<>=`]/g, "") || "x"]);
  // Half the time the attribute the element takes a link in, so translations are common.
  const attribute = (element: string) => {
    const own = URL_ATTRIBUTES[element.toLowerCase()];
    const name = casing(own && r() < 0.5 ? pick(own) : pick(["href", "src", "action", "formaction", "data", "poster", "class", "alt", "title", "id", "value", "x-href", "hreff"]));
    return pick([`${name}=${quoted(url())}`, `${name}=${quoted(url())}`, `${name} = ${quoted(url())}`, name, `${name}=`, `"${name}"`, `${name}=${quoted("a>b")}`]);
  };
  const tagName = () => casing(pick([...Object.keys(URL_ATTRIBUTES), "div", "p", "span", "td", "custom-el", "br"]));
  const tagWith = (name: string) => `<${name}${Array.from({ length: 1 + Math.floor(r() * 3) }, () => " " + attribute(name)).join("")}>`;
  const tag = () => {
    const name = tagName();
    const start = `<${name}${Array.from({ length: Math.floor(r() * 4) }, () => pick([" ", "\n", "/", "  "]) + attribute(name)).join("")}${pick([">", " >", "/>", " / >"])}`;
    // script and iframe hold raw text up to their end tag: mostly close them, or they swallow the rest.
    return /^(script|iframe)$/i.test(name) && r() < 0.9 ? `${start}</${name}>` : start;
  };
  const raw = () => {
    const name = pick(["script", "style", "textarea", "title", "xmp", "noembed", "noframes"]);
    const body = pick([`<a href="http://wiki/">`, `</${name}x>`, `</${name.slice(0, -1)}>`, "http://wiki/", "<!-- </" + name + " -->", "a < b"]);
    return `<${casing(name)}>${body}${pick([`</${name}>`, `</${name.toUpperCase()} >`, `</${name}/>`])}`;
  };
  /**
   * Inline SVG or MathML, well nested, with what changes how markup is read there: raw-text
   * names that are not raw, "/>", CDATA sections, and HTML again inside integration points.
   */
  const foreignBlock = (): string => {
    const htmlInside = () => pick([tagWith("img"), tagWith("source"), `${tagWith("a")}x</a>`, raw(), `<p>${tagWith("embed")}</p>`]);
    const svgChild = (): string => pick([
      `<g>${tagWith("a")}</a></g>`, `<a href=${quoted(url())}>link</a>`, "<title/>", `<title>${pick(["text", htmlInside()])}</title>`,
      `<desc>${htmlInside()}</desc>`, `<style>.c { fill: url(${url().replace(/\s/g, "")}) }</style>`, `<style><![CDATA[.d { fill: url(${url().replace(/\s/g, "")}) }]]></style>`, `<script><![CDATA[ var s = '<a href="${url()}">'; ]]></script>`,
      `<![CDATA[<a href="${url()}">]]>`, `<foreignObject>${htmlInside()}${htmlInside()}</foreignObject>`, `<image href=${quoted(url())}/>`, `<style/>${tagWith("a")}</a>`,
    ]);
    if (r() < 0.3) return `<math><mi>${htmlInside()}</mi><mtext>${pick(["x", htmlInside()])}</mtext><mo>+</mo></math>`;
    return `<${casing("svg")}>${Array.from({ length: 1 + Math.floor(r() * 4) }, svgChild).join("")}</svg>`;
  };
  const parts = [
    tag, tag, tag, raw,
    () => `</${tagName()}>`,
    () => pick(["text ", "a < b ", "<<", "< a", "&lt;a href=x&gt;", "http://wiki/ in text ", "x</ y", "</>"]),
    () => `<!--${pick(["", "-", " c ", "<a href=http://wiki/>", "--!", "- -"])}${pick(["-->", "--!>", "--->"])}`,
    () => pick(["<!-->", "<!--->", "<!doctype html>", "<?xml x?>", "<!x <a href=http://wiki/>>", "<![CDATA[<a href=http://wiki/>]]>", "<![CDATA[x]]"]),
    // Raw-text names "closed" at once: in HTML, "/>" does not end them.
    () => `<${casing(pick(["title", "style", "script", "textarea"]))}${pick(["/>", " />"])}`,
    () => `</${casing(pick(["title", "p", "br", "desc"]))}>`,
    () => foreignBlock(),
  ];
  let out = "";
  const n = 5 + Math.floor(r() * 40);
  for (let i = 0; i < n; i++) out += pick(parts)();
  return out;
}

type Node = DefaultTreeAdapterMap["node"];

/** What a URL attribute must become: the URL (without the spaces around it) translated, the spaces kept. */
function expected(value: string): string {
  const lead = /^[\t\n\f\r ]*/.exec(value)![0];
  const trail = /[\t\n\f\r ]*$/.exec(value.slice(lead.length))![0];
  const core = value.slice(lead.length, value.length - trail.length);
  return lead + (links.translate(core) ?? core) + trail;
}

/**
 * Returns how many attributes the rewrite changed. An SVG or MathML element's URL attribute
 * may be translated or not (the rewriter goes by names: an SVG <a href> is a link too);
 * everything else must be exact, HTML inside <foreignObject> included.
 */
/** What the CSS of a <style> element (HTML or SVG) must become: each url(...) translated (the generator writes no other CSS links). */
function expectedCss(css: string): string {
  return css.replace(/url\(([^)'"\s]*)\)/g, (_all, u: string) => `url(${links.translate(u) ?? u})`);
}

function compare(a: Node, b: Node, path: string, parent?: Node): number {
  let changed = 0;
  const foreign = "namespaceURI" in a && a.namespaceURI !== undefined && a.namespaceURI !== "http://www.w3.org/1999/xhtml";
  expect(b.nodeName, path).toBe(a.nodeName);
  if ("value" in a && "value" in b) {
    expect(b.value, `${path} text`).toBe(parent?.nodeName === "style" ? expectedCss(a.value) : a.value);
  }
  if ("attrs" in a && "attrs" in b) {
    expect(b.attrs.map((x) => x.name), `${path} attributes`).toEqual(a.attrs.map((x) => x.name));
    const wanted = URL_ATTRIBUTES[a.nodeName] ?? [];
    a.attrs.forEach((attr, i) => {
      const should = wanted.includes(attr.name) ? expected(attr.value) : attr.value;
      const got = b.attrs[i]!.value;
      const where = `${path}@${attr.name} (was ${JSON.stringify(attr.value)})`;
      if (foreign && got === attr.value) return;
      expect(got, where).toBe(should);
      if (should !== attr.value) changed++;
    });
  }
  const ac = "childNodes" in a ? a.childNodes : [];
  const bc = "childNodes" in b ? b.childNodes : [];
  expect(bc.length, `${path} children`).toBe(ac.length);
  for (let i = 0; i < ac.length; i++) changed += compare(ac[i]!, bc[i]!, `${path}/${ac[i]!.nodeName}[${i}]`, a);
  if ("content" in a && "content" in b) changed += compare(a.content as Node, b.content as Node, `${path}#content`);
  return changed;
}

describe("HTML rewriter against parse5 on random tag soup", () => {
  const seeds = Array.from({ length: Number(process.env.FUZZ_SEEDS ?? 400) }, (_, i) => i + 1);
  it.each(seeds)("seed %i: same tree but every URL attribute translated, whole and in random chunks", (seed) => {
    const input = documentFor(seed);
    const bytes = Buffer.from(input, "latin1");
    const r = rng(seed * 7919);
    const cuts = [...new Set(Array.from({ length: Math.floor(r() * 6) }, () => 1 + Math.floor(r() * (bytes.length - 1))))].sort((x, y) => x - y).filter((c) => c > 0 && c < bytes.length);
    const whole = rewriteBytes("html", bytes, [], links).toString("latin1");
    expect(rewriteBytes("html", bytes, cuts, links).toString("latin1"), `cut at ${cuts.join(", ")}`).toBe(whole);
    compare(parse(input) as Node, parse(whole) as Node, "#document");
  });

  it("the documents exercise it: many translations, and documents where nothing may change", () => {
    let translated = 0;
    let untouched = 0;
    for (const seed of seeds) {
      const input = documentFor(seed);
      const changed = compare(parse(input) as Node, parse(rewriteBytes("html", Buffer.from(input, "latin1"), [], links).toString("latin1")) as Node, "#document");
      if (changed > 0) translated += changed;
      else untouched++;
    }
    expect(translated).toBeGreaterThan(seeds.length / 2);
    expect(untouched).toBeGreaterThan(seeds.length / 40);
  });
});
