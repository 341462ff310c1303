import { describe, expect, it } from "vitest";
import { checkSync } from "recheck";
import { CSS_URL } from "../../engine/workers/css.js";
import { MAX_FOREIGN_DEPTH, MAX_HOLD, REFRESH_URL, SRCSET_CANDIDATE, type HtmlState } from "../../engine/workers/html.js";
import { LinkMap } from "../../engine/workers/links.js";
import { rewriteChunk, type BodyKind, type RewriteState } from "../../engine/workers/rewrite.js";
import { rewriteBytes } from "../fixtures/translate.js";

const links = new LinkMap([
  { internalUrl: "http://benefits/", externalUrl: "https://benefits.contoso.com/" },
  { internalUrl: "http://expenses.corp.local:8080/app/", externalUrl: "https://expenses.contoso.com/" },
  { internalUrl: "https://secure.corp/", externalUrl: "https://secure.contoso.com/" },
]);

function rewrite(html: string, cuts: number[] = [], kind: BodyKind = "html"): string {
  return rewriteBytes(kind, Buffer.from(html, "utf8"), cuts, links).toString("utf8");
}

describe("link map", () => {
  it.each([
    ["http://benefits/", "https://benefits.contoso.com/"],
    ["http://BENEFITS/plans?x=1#top", "https://benefits.contoso.com/plans?x=1#top"],
    ["http://benefits:80/a", "https://benefits.contoso.com/a"],
    ["http://benefits", "https://benefits.contoso.com/"],
    ["//benefits/a.png", "//benefits.contoso.com/a.png"],
    ["http://expenses.corp.local:8080/app/report", "https://expenses.contoso.com/report"],
    ["http://expenses.corp.local:8080/app", "https://expenses.contoso.com/"],
    ["https://secure.corp:443/x", "https://secure.contoso.com/x"],
  ])("%s -> %s", (from, to) => {
    expect(links.translate(from)).toBe(to);
  });

  it.each([
    "http://unpublished/", "http://expenses.corp.local:8080/other/", "http://expenses.corp.local/app/", "https://benefits/",
    "http://benefits.evil.com/", "/relative/path", "mailto:someone@benefits", "javascript:alert(1)", "http://user@benefits/",
  ])("leaves %s alone", (url) => {
    expect(links.translate(url)).toBeUndefined();
  });
});

const ATTRIBUTE_CASES: [string, string, string][] = [
  ["a href", '<a href="http://benefits/plans">x</a>', '<a href="https://benefits.contoso.com/plans">x</a>'],
  ["area href", "<area href='http://benefits/a'>", "<area href='https://benefits.contoso.com/a'>"],
  ["base href", "<base href=http://benefits/>", "<base href=https://benefits.contoso.com/>"],
  ["link href", '<link rel="stylesheet" href="http://benefits/site.css">', '<link rel="stylesheet" href="https://benefits.contoso.com/site.css">'],
  ["img src", '<IMG SRC="http://benefits/a.png">', '<IMG SRC="https://benefits.contoso.com/a.png">'],
  ["img srcset", '<img srcset="http://benefits/a.png 1x, http://unpublished/b.png 2x,//benefits/c.png 3x">', '<img srcset="https://benefits.contoso.com/a.png 1x, http://unpublished/b.png 2x,//benefits.contoso.com/c.png 3x">'],
  ["script src", '<script src="http://benefits/app.js"></script>', '<script src="https://benefits.contoso.com/app.js"></script>'],
  ["iframe src", '<iframe src="http://benefits/f"></iframe>', '<iframe src="https://benefits.contoso.com/f"></iframe>'],
  ["frame src", '<frame src="http://benefits/f">', '<frame src="https://benefits.contoso.com/f">'],
  ["form action", '<form action="http://expenses.corp.local:8080/app/submit" method=post>', '<form action="https://expenses.contoso.com/submit" method=post>'],
  ["button formaction", '<button formaction="http://benefits/go">go</button>', '<button formaction="https://benefits.contoso.com/go">go</button>'],
  ["input src", '<input type=image src="http://benefits/b.png">', '<input type=image src="https://benefits.contoso.com/b.png">'],
  ["source src and srcset", '<source src="http://benefits/v.mp4" srcset="http://benefits/s.webp 2x">', '<source src="https://benefits.contoso.com/v.mp4" srcset="https://benefits.contoso.com/s.webp 2x">'],
  ["video src and poster", '<video src="http://benefits/v.mp4" poster="http://benefits/p.png"></video>', '<video src="https://benefits.contoso.com/v.mp4" poster="https://benefits.contoso.com/p.png"></video>'],
  ["audio src", '<audio src="http://benefits/a.mp3"></audio>', '<audio src="https://benefits.contoso.com/a.mp3"></audio>'],
  ["track src", '<track src="http://benefits/t.vtt">', '<track src="https://benefits.contoso.com/t.vtt">'],
  ["embed src", '<embed src="http://benefits/e.swf">', '<embed src="https://benefits.contoso.com/e.swf">'],
  ["object data", '<object data="http://benefits/o.pdf"></object>', '<object data="https://benefits.contoso.com/o.pdf"></object>'],
  ["meta refresh", '<meta content="5; url=http://benefits/next" http-equiv="Refresh">', '<meta content="5; url=https://benefits.contoso.com/next" http-equiv="Refresh">'],
  ["meta not refresh", '<meta name="x" content="http://benefits/">', '<meta name="x" content="http://benefits/">'],
  ["style attribute", '<div style="background:url(http://benefits/bg.png)">', '<div style="background:url(https://benefits.contoso.com/bg.png)">'],
  ["style block", '<style>@import "http://benefits/a.css"; p { background: url( \'http://benefits/p.png\' ) }</style>', '<style>@import "https://benefits.contoso.com/a.css"; p { background: url( \'https://benefits.contoso.com/p.png\' ) }</style>'],
  ["protocol-relative", '<a href="//benefits/x">', '<a href="//benefits.contoso.com/x">'],
  ["unpublished host left alone", '<a href="http://elsewhere/x">', '<a href="http://elsewhere/x">'],
  ["script body untouched", '<script>var u = "http://benefits/x";</script>', '<script>var u = "http://benefits/x";</script>'],
  ["text untouched", "<p>see http://benefits/ now</p>", "<p>see http://benefits/ now</p>"],
  ["a@src is not a URL attribute", '<a src="http://benefits/x">', '<a src="http://benefits/x">'],
  ["inline SVG: title is not raw text, /> closes, CDATA is text", '<svg><title/><a href="http://benefits/1">x</a><![CDATA[<a href="http://benefits/2">]]><style/></svg><a href="http://benefits/3">',
    '<svg><title/><a href="https://benefits.contoso.com/1">x</a><![CDATA[<a href="http://benefits/2">]]><style/></svg><a href="https://benefits.contoso.com/3">'],
  ["inline SVG: a stylesheet, in a CDATA section", '<svg><style><![CDATA[ .a { fill: url(http://benefits/p.svg#g) } ]]></style></svg>',
    '<svg><style><![CDATA[ .a { fill: url(https://benefits.contoso.com/p.svg#g) } ]]></style></svg>'],
  ["HTML again inside foreignObject and MathML's mi", '<svg><foreignObject><title>T <a href="http://benefits/1"></title></foreignObject></svg><math><mi><textarea><a href="http://benefits/2"></textarea></mi></math>',
    '<svg><foreignObject><title>T <a href="http://benefits/1"></title></foreignObject></svg><math><mi><textarea><a href="http://benefits/2"></textarea></mi></math>'],
  ["an SVG left open in a container ends with it", '<div><svg><g></div><script>var s = \'<a href="http://benefits/1">\';</script><a href="http://benefits/2">',
    '<div><svg><g></div><script>var s = \'<a href="http://benefits/1">\';</script><a href="https://benefits.contoso.com/2">'],
  ["a script hidden in a comment, writing script tags", '<script><!--\ndocument.write(\'<script src="x.js"></script><img src="http://benefits/1">\');\n//--></script><img src="http://benefits/2">',
    '<script><!--\ndocument.write(\'<script src="x.js"></script><img src="http://benefits/1">\');\n//--></script><img src="https://benefits.contoso.com/2">'],
  ["empty comments", '<!--><a href="http://benefits/x"><!---><a href="http://benefits/y">', '<!--><a href="https://benefits.contoso.com/x"><!---><a href="https://benefits.contoso.com/y">'],
  ["spaces around the URL kept", '<a href=" \thttp://benefits/x\n ">', '<a href=" \thttps://benefits.contoso.com/x\n ">'],
  ["a // in other values of the tag", '<img alt="a // b" class=x//y src="http://benefits/i.png" title=\'//benefits/\'>', '<img alt="a // b" class=x//y src="https://benefits.contoso.com/i.png" title=\'//benefits/\'>'],
  ["a // inside a relative path", '<a href="/x//benefits/y">', '<a href="/x//benefits/y">'],
  ["upper-case scheme and host", '<a href="HTTPS://SECURE.CORP/x">', '<a href="https://secure.contoso.com/x">'],
  ["UTF-8 around a link", '<p>Grüße</p><a href="http://benefits/ü">ö</a>', '<p>Grüße</p><a href="https://benefits.contoso.com/ü">ö</a>'],
];

describe("HTML rewriting", () => {
  it.each(ATTRIBUTE_CASES)("%s", (_name, input, expected) => {
    expect(rewrite(input)).toBe(expected);
  });

  it.each(ATTRIBUTE_CASES)("%s, split at every byte boundary", (_name, input, expected) => {
    const length = Buffer.byteLength(input);
    for (let cut = 1; cut < length; cut++) expect(rewrite(input, [cut]), `cut at ${cut}`).toBe(expected);
    // and one byte at a time
    expect(rewrite(input, Array.from({ length: length - 1 }, (_, i) => i + 1))).toBe(expected);
  });

  it("passes a page with nothing to translate through byte for byte", () => {
    const page = '<!doctype html><html><head><title>x</title></head><body><!-- c --><p class=a>ok &amp; <b>done</b></p></body></html>\n';
    expect(rewrite(page, [7, 30, 31, 60])).toBe(page);
  });
});

describe("CSS rewriting", () => {
  it.each([
    ["url()", "a{background:url(http://benefits/a.png)}", "a{background:url(https://benefits.contoso.com/a.png)}"],
    ['url("")', 'a{background:url("http://benefits/a.png")}', 'a{background:url("https://benefits.contoso.com/a.png")}'],
    ["url('') with spaces", "a{b:url(  'http://benefits/a.png'  )}", "a{b:url(  'https://benefits.contoso.com/a.png'  )}"],
    ["@import string", '@import "http://benefits/base.css";', '@import "https://benefits.contoso.com/base.css";'],
    ["@import url()", "@import url(http://benefits/base.css);", "@import url(https://benefits.contoso.com/base.css);"],
    ["unpublished", "a{b:url(http://other/a.png)}", "a{b:url(http://other/a.png)}"],
    ["several on a line", "a{b:url(http://benefits/1) c:url(//benefits/2)}", "a{b:url(https://benefits.contoso.com/1) c:url(//benefits.contoso.com/2)}"],
  ])("%s, whole and split at every byte boundary", (_name, input, expected) => {
    expect(rewrite(input, [], "css")).toBe(expected);
    for (let cut = 1; cut < input.length; cut++) expect(rewrite(input, [cut], "css"), `cut at ${cut}`).toBe(expected);
    expect(rewrite(input, Array.from({ length: input.length - 1 }, (_, i) => i + 1), "css")).toBe(expected);
  });

  it("streams: text before the last safe cut goes out at once, the rest waits", () => {
    const first = rewriteChunk("css", undefined, Buffer.from("a{b:url(http://benefits/x)}\nc{d:url(http://bene"), false, links);
    expect(first.out.toString()).toBe("a{b:url(https://benefits.contoso.com/x)}\n");
    const second = rewriteChunk("css", first.state, Buffer.from("fits/y)}"), true, links);
    expect(second.out.toString()).toBe("c{d:url(https://benefits.contoso.com/y)}");
  });

  it("holds at most MAX_HOLD characters waiting for a cut, then lets the text go as it is", () => {
    const long = "x".repeat(MAX_HOLD + 10);
    const step = rewriteChunk("css", undefined, Buffer.from(long), false, links);
    expect(step.out.length).toBe(long.length);
  });
});

describe("bounded holds in HTML", () => {
  it("a <style> block streams: translated up to its last safe cut before it closes", () => {
    const step = rewriteChunk("html", undefined, Buffer.from("<style>a{b:url(http://benefits/1)}\nc{d:url(http://bene"), false, links);
    expect(step.out.toString()).toBe("<style>a{b:url(https://benefits.contoso.com/1)}\n");
    const end = rewriteChunk("html", step.state, Buffer.from("fits/2)}</style>"), true, links);
    expect(end.out.toString()).toBe("c{d:url(https://benefits.contoso.com/2)}</style>");
  });

  it("an attribute value longer than MAX_HOLD goes out untranslated, and what follows is still translated", () => {
    const big = `<a href="http://benefits/${"y".repeat(MAX_HOLD)}">x</a><a href="http://benefits/after">`;
    const cuts = [20, 40_000, MAX_HOLD + 5];
    const out = rewrite(big, cuts);
    expect(out.length).toBe(big.length + "https://benefits.contoso.com/".length - "http://benefits/".length);
    expect(out.startsWith('<a href="http://benefits/yyy')).toBe(true);
    expect(out.endsWith('<a href="https://benefits.contoso.com/after">')).toBe(true);
  });

  it("bounds what it keeps of deeply nested SVG: the open-element record stops at its cap", () => {
    const deep = `<svg>${`<g${"x".repeat(200)}>`.repeat(10_000)}`;
    const step = rewriteChunk("html", undefined, Buffer.from(deep), false, links);
    const foreign = (step.state as HtmlState).foreign;
    expect(foreign.length).toBe(MAX_FOREIGN_DEPTH);
    expect(Math.max(...foreign.map((e) => e.name.length))).toBeLessThanOrEqual(64);
    // Still SVG: a CDATA section there is text, and a link after the SVG closes is translated.
    const end = rewriteChunk("html", step.state, Buffer.from('<![CDATA[<a href="http://benefits/1">]]></svg><a href="http://benefits/2">'), true, links);
    expect(end.out.toString()).toBe('<![CDATA[<a href="http://benefits/1">]]></svg><a href="https://benefits.contoso.com/2">');
  });

  it("holds back no more than MAX_HOLD of a script, whatever its comment-hidden parts", () => {
    const script = Buffer.from(`<script><!--${"-".repeat(200_000)}x</script><a href="http://benefits/1">`);
    let state: RewriteState | undefined;
    const out: Buffer[] = [];
    for (let at = 0; at < script.length; at += 1024) {
      const step = rewriteChunk("html", state, script.subarray(at, at + 1024), at + 1024 >= script.length, links);
      state = step.state;
      expect((state as HtmlState).held.length).toBeLessThanOrEqual(MAX_HOLD + 1024);
      out.push(step.out);
    }
    expect(Buffer.concat(out).toString()).toBe(`<script><!--${"-".repeat(200_000)}x</script><a href="https://benefits.contoso.com/1">`);
  });

  it("a comment is never held back, however long (only the bytes that may start its end)", () => {
    const step = rewriteChunk("html", undefined, Buffer.from(`<!-- ${"c".repeat(200_000)}`), false, links);
    expect(step.out.length).toBe(200_002);
    const end = rewriteChunk("html", step.state, Buffer.from(`-->`), true, links);
    expect(end.out.toString()).toBe("ccc-->");
  });

  it("a script body is not held back either, only a possible end tag at its end", () => {
    const step = rewriteChunk("html", undefined, Buffer.from(`<script>${"x".repeat(100_000)}</scr`), false, links);
    expect(step.out.length).toBe(100_008);
    expect(step.state).toMatchObject({ context: { in: "raw", name: "script" } });
  });

  it("holds only a tag in progress", () => {
    const step = rewriteChunk("html", undefined, Buffer.from('<p>hello</p><a class="x" hr'), false, links);
    expect(step.out.toString()).toBe("<p>hello</p>");
  });

  it("a tag longer than MAX_HOLD goes out untranslated, and the scan resumes after it, quotes respected", () => {
    const big = `<a title="${"t".repeat(MAX_HOLD)} > still the title" href="http://benefits/x">in</a><a href="http://benefits/y">`;
    const out = rewrite(big, [MAX_HOLD + 20]);
    expect(out).toBe(big.replace("http://benefits/y", "https://benefits.contoso.com/y"));
  });
});

describe("regular expressions", () => {
  // recheck proves (or finds a counterexample to) super-linear backtracking.
  it.each([
    ["CSS url()/@import", CSS_URL],
    ["srcset candidate", SRCSET_CANDIDATE],
    ["meta refresh URL", REFRESH_URL],
  ])("%s is linear-time (recheck)", (_name, pattern) => {
    const result = checkSync(pattern.source, pattern.flags);
    expect(result.status, JSON.stringify(result)).toBe("safe");
  });
});
