/**
 * Streaming HTML link translation over bytes. Only the values of URL-bearing attributes,
 * `style` attributes, `<style>` blocks and meta refresh change; every other byte passes through
 * as a slice of the input. Markup is ASCII, so any ASCII-compatible charset (UTF-8, the
 * ISO-8859 and Windows code pages, Shift_JIS, EUC) is scanned as it is, without decoding.
 *
 * Why a purpose-built scanner and not a general tokenizer: translation needs tags, attributes,
 * comments and raw-text elements, nothing else (no entities, no tree), and it must run at
 * hundreds of MB/s per worker. htmlparser2's tokenizer measured 65-88 MB/s here before any
 * rewriting; this scanner jumps between markup with String indexOf and touches text bytes
 * only there. It follows the HTML tokenizer's rules for what it recognises (quoted and
 * unquoted values, `<!-->`, `--!>`, appropriate end tags of raw-text elements, a script's
 * escape states) and the few tree-builder rules that change how bytes are read (inline SVG
 * and MathML: see HtmlState.foreign). The corpus test holds it to parse5's DOM on real pages,
 * the fuzz test on random tag soup.
 *
 * Streaming: the state between chunks is a small plain object (any pool worker takes the next
 * chunk of any response). A construct cut by the chunk end (a tag, the opening of a comment,
 * a possible raw-text end tag, the CSS after the last safe cut of a `<style>` block) is held
 * and scanned again with the next chunk; a hold longer than MAX_HOLD goes out untranslated.
 */
import { cssEdits, lastCssCut, type Edit } from "./css.js";
import type { LinkMap } from "./links.js";

const URL_ATTRIBUTES = new Map<string, readonly string[]>(Object.entries({
  a: ["href"], area: ["href"], base: ["href"], link: ["href"], img: ["src", "srcset"], script: ["src"], iframe: ["src"], frame: ["src"],
  form: ["action"], button: ["formaction"], input: ["src"], source: ["src", "srcset"], video: ["src", "poster"], audio: ["src"],
  track: ["src"], embed: ["src"], object: ["data"], meta: ["http-equiv", "content"],
}));

/** Elements whose content is text up to their end tag (HTML's raw text and RCDATA elements). */
const RAW_TEXT = new Set(["script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes"]);

/** Most elements recorded open inside inline SVG or MathML (HtmlState.foreign). */
export const MAX_FOREIGN_DEPTH = 256;

/** Longest construct held back waiting for its end, bytes. */
export const MAX_HOLD = 64 * 1024;

/** A candidate of a srcset ("a.png 1x, b.png 2x"): linear, one run per group. */
export const SRCSET_CANDIDATE = /(^|,)(\s*)([^\s,]+)/g;
/** The URL in a meta refresh ("5; url='...'"): linear, anchored on "url". */
export const REFRESH_URL = /(url\s*=\s*['"]?)([^'"\s;]+)/i;

/**
 * Where the scanner is between chunks: in text; in a comment or a bogus comment (`<!...>`,
 * `<?...>`); in a CDATA section (inline SVG or MathML); in the content of a raw-text element;
 * or in the rest of a tag too long to hold (`quote` tells whether the cut fell inside a quoted
 * value).
 */
type Context =
  | { readonly in: "text" }
  | { readonly in: "comment" }
  | { readonly in: "cdata" }
  | { readonly in: "bogus" }
  | { readonly in: "raw"; readonly name: string; readonly escape?: ScriptEscape }
  | { readonly in: "tag"; readonly name: string; readonly quote: number };

/**
 * An element open inside inline SVG or MathML, with its namespace: "html" for an HTML element
 * there (within an integration point such as <foreignObject>, where markup is HTML again).
 */
export interface ForeignElement {
  readonly name: string;
  readonly ns: "svg" | "math" | "html";
}

export interface HtmlState {
  readonly kind: "html";
  /** Bytes held from the previous chunk (latin1: one character per byte), scanned again in front of the next one. */
  readonly held: string;
  readonly context: Context;
  /**
   * The elements open since the outermost <svg> or <math>, outermost first; empty in plain HTML.
   * There the tokenizer works otherwise: no raw-text elements, CDATA sections, self-closing
   * tags, and some HTML tags break out.
   */
  readonly foreign: readonly ForeignElement[];
}

const TEXT: Context = { in: "text" };

/**
 * Where a script's text is: plain (0); after "<!--", where a "</script>" still ends it (1);
 * or after "<!--" and then "<script", where "</script>" only steps back to 1 (2). The HTML
 * tokenizer's script data escape states: old pages hide scripts in comments and write
 * script tags from strings.
 */
type ScriptEscape = 0 | 1 | 2;

const GT = 0x3e, SLASH = 0x2f, BANG = 0x21, QUESTION = 0x3f, EQ = 0x3d, DQ = 0x22, SQ = 0x27, DASH = 0x2d;

/** Character classes, one table lookup per character (latin1 strings hold codes 0-255 only). */
const SPACE = 1, ENDS_NAME = 2, ENDS_ATTRIBUTE_NAME = 4, ENDS_UNQUOTED = 8;
const CLASS = new Uint8Array(256);
for (const c of [0x20, 0x0a, 0x09, 0x0c, 0x0d]) CLASS[c] = SPACE | ENDS_NAME | ENDS_ATTRIBUTE_NAME | ENDS_UNQUOTED;
CLASS[0x2f] = ENDS_NAME | ENDS_ATTRIBUTE_NAME; // "/"
CLASS[0x3e] = ENDS_NAME | ENDS_ATTRIBUTE_NAME | ENDS_UNQUOTED; // ">"
CLASS[0x3d] = ENDS_ATTRIBUTE_NAME; // "="

function isSpace(c: number): boolean {
  return (CLASS[c]! & SPACE) !== 0;
}

function isAlpha(c: number): boolean {
  return (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a;
}

/** Rewrites one chunk of a page; returns the bytes that are final and the state to carry. */
export function rewriteHtml(state: HtmlState | undefined, chunk: Uint8Array, final: boolean, links: LinkMap): { out: Buffer; state: HtmlState } {
  const input = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  const held = state?.held ?? "";
  // Scanned as a latin1 string (one character per byte): V8 inlines charCodeAt and indexOf on
  // strings, where each Buffer call would cross into C++.
  const text = input.toString("latin1");
  const scan = new Scanner(held.length > 0 ? held + text : text, final, links, state?.context ?? TEXT, state?.foreign ?? []);
  scan.run();
  return { out: scan.output(input, held.length), state: { kind: "html", held: scan.heldText(), context: scan.context, foreign: scan.foreign } };
}

/**
 * Where a tag ended (>= 0: just after its ">"), or that the buffer ran out inside it: -1
 * outside quotes, -1 - quote inside a quoted value.
 */
type TagEnd = number;
const OUT_OF_INPUT = -1;

class Scanner {
  context: Context;
  /** Output is final up to here; the rest is held. */
  safe = 0;
  readonly #edits: Edit[] = [];
  /** Values of the attributes that matter in the tag being read; most tags have none. */
  #values: { attr: string; start: number; end: number }[] | null = null;

  /** See HtmlState.foreign; a copy, as states are shared. */
  readonly foreign: ForeignElement[];
  /** Whether the tag #attributes last read ended with "/>". */
  #selfClosing = false;

  constructor(private readonly b: string, private readonly final: boolean, private readonly links: LinkMap, context: Context, foreign: readonly ForeignElement[]) {
    this.context = context;
    this.foreign = [...foreign];
  }

  run(): void {
    let i = 0;
    for (;;) {
      const next = this.#step(i);
      if (next < 0) return;
      i = next;
    }
  }

  /**
   * The final bytes: a view of the input when nothing changed and nothing was held before it,
   * else one new buffer, written once from the text with the edits spliced in (a few large
   * copies beat a native call per edit).
   */
  output(input: Buffer, heldBefore: number): Buffer {
    const edits = this.#edits;
    if (edits.length === 0 && heldBefore === 0) return input.subarray(0, this.safe);
    const b = this.b;
    let out = "";
    let from = 0;
    for (const e of edits) {
      out += b.slice(from, e.start) + e.text;
      from = e.end;
    }
    out += b.slice(from, this.safe);
    return Buffer.from(out, "latin1");
  }

  /** What the next chunk must see again in front of its own bytes. */
  heldText(): string {
    return this.safe < this.b.length ? this.b.slice(this.safe) : "";
  }

  /** Everything up to the end is final. */
  #finishAll(): number {
    this.safe = this.b.length;
    return -1;
  }

  /**
   * The buffer ran out inside a construct that starts at `from`: hold it for the next chunk,
   * unless this is the last chunk or the hold would pass MAX_HOLD (then `overflow` says what
   * context the scan goes on in, and the construct goes out untranslated).
   */
  #holdFrom(from: number, overflow: Context): number {
    if (this.final) return this.#finishAll();
    if (this.b.length - from > MAX_HOLD) {
      this.context = overflow;
      return this.#finishAll();
    }
    this.safe = from;
    return -1;
  }

  /** Scans from `i` in the current context; returns where to go on, or -1 when done. */
  #step(i: number): number {
    const b = this.b;
    const ctx = this.context;
    switch (ctx.in) {
      case "text": {
        const lt = b.indexOf("<", i);
        if (lt < 0) return this.#finishAll();
        this.safe = lt;
        return this.#markup(lt);
      }
      case "comment": {
        // A comment ends at "-->" or "--!>".
        for (let at = i; ; ) {
          const dash = b.indexOf("--", at);
          if (dash < 0 || dash + 2 >= b.length) return this.#holdTail(Math.max(i, b.length - 3));
          if (b.charCodeAt(dash + 2) === GT) return this.#enter(TEXT, dash + 3);
          if (b.charCodeAt(dash + 2) === BANG) {
            if (dash + 3 >= b.length) return this.#holdTail(dash);
            if (b.charCodeAt(dash + 3) === GT) return this.#enter(TEXT, dash + 4);
          }
          at = dash + 1;
        }
      }
      case "cdata": {
        const end = b.indexOf("]]>", i);
        return end < 0 ? this.#holdTail(Math.max(i, b.length - 2)) : this.#enter(TEXT, end + 3);
      }
      case "bogus": {
        const gt = b.indexOf(">", i);
        return gt < 0 ? this.#finishAll() : this.#enter(TEXT, gt + 1);
      }
      case "raw":
        return ctx.name === "script" ? this.#scriptText(i, ctx.escape ?? 0) : this.#rawText(i, ctx.name);
      case "tag": {
        const end = this.#skipTagRest(i, ctx.quote);
        if (end < 0) {
          this.context = { in: "tag", name: ctx.name, quote: -1 - end };
          return this.#finishAll();
        }
        return this.#enter(RAW_TEXT.has(ctx.name) ? { in: "raw", name: ctx.name } : TEXT, end);
      }
    }
  }

  #enter(context: Context, at: number): number {
    this.context = context;
    this.safe = at;
    return at;
  }

  /** Final up to `at`; the few bytes after it may start an end sequence and are held. */
  #holdTail(at: number): number {
    if (this.final) return this.#finishAll();
    this.safe = at;
    return -1;
  }

  /** At a "<" in text. */
  #markup(lt: number): number {
    const b = this.b;
    if (lt + 1 >= b.length) return this.#holdFrom(lt, TEXT);
    const c = b.charCodeAt(lt + 1);
    if (c === BANG) return this.#bang(lt);
    if (c === QUESTION) return this.#enter({ in: "bogus" }, lt + 2);
    if (c === SLASH) {
      if (lt + 2 >= b.length) return this.#holdFrom(lt, TEXT);
      const d = b.charCodeAt(lt + 2);
      if (d === GT) return this.#enter(TEXT, lt + 3); // "</>" is dropped
      if (!isAlpha(d)) return this.#enter({ in: "bogus" }, lt + 2);
      return this.#tag(lt, lt + 2, false);
    }
    if (isAlpha(c)) return this.#tag(lt, lt + 1, true);
    return this.#enter(TEXT, lt + 1); // a "<" that starts nothing is text
  }

  /** At "<!": a comment, a CDATA section (in SVG or MathML) or a bogus comment. Kept apart from the tags' path, which is hotter. */
  #bang(lt: number): number {
    const b = this.b;
    if (this.foreign.length > 0 && this.foreign[this.foreign.length - 1]!.ns !== "html") {
      // In an SVG or MathML element, "<![CDATA[" opens text that runs to "]]>".
      if (lt + 9 > b.length) return this.#holdFrom(lt, TEXT);
      if (b.startsWith("<![CDATA[", lt)) return this.#enter({ in: "cdata" }, lt + 9);
    }
    if (lt + 3 >= b.length) return this.#holdFrom(lt, TEXT);
    if (b.charCodeAt(lt + 2) === DASH && b.charCodeAt(lt + 3) === DASH) {
      // "<!-->" and "<!--->" are whole (empty) comments: the bytes that tell must be here.
      if (lt + 5 >= b.length && !this.final) return this.#holdFrom(lt, TEXT);
      if (lt + 4 < b.length && b.charCodeAt(lt + 4) === GT) return this.#enter(TEXT, lt + 5);
      if (lt + 5 < b.length && b.charCodeAt(lt + 4) === DASH && b.charCodeAt(lt + 5) === GT) return this.#enter(TEXT, lt + 6);
      return this.#enter({ in: "comment" }, lt + 4);
    }
    return this.#enter({ in: "bogus" }, lt + 2);
  }

  /** A start or end tag whose name begins at `nameStart`. */
  #tag(lt: number, nameStart: number, start: boolean): number {
    const b = this.b;
    const n = b.length;
    let i = nameStart;
    while (i < n && (CLASS[b.charCodeAt(i)]! & ENDS_NAME) === 0) i++;
    // The name becomes a string only when it can matter: a raw-text element, or a tag with a
    // value that holds a link (below); most tags are neither.
    const raw = start ? findName(RAW_TEXT_NAMES, b, nameStart, i) : undefined;
    if (i >= n) return this.#holdFrom(lt, { in: "tag", name: raw ?? "", quote: 0 });
    this.#values = null;
    const end = this.#attributes(i, start && isMeta(b, nameStart, i));
    if (end < 0) return this.#holdFrom(lt, { in: "tag", name: raw ?? "", quote: -1 - end });
    if (this.#values !== null) this.#tagEdits(start ? b.slice(nameStart, i).toLowerCase() : "", this.#values);
    // Outside SVG and MathML, only an <svg> or <math> start tag concerns them.
    const foreign = this.foreign.length > 0 || (start && isForeignRoot(b, nameStart, i));
    const rawHere = foreign ? this.#foreignTag(b.slice(nameStart, i).toLowerCase(), start, raw) : raw;
    return this.#enter(rawHere !== undefined ? { in: "raw", name: rawHere } : TEXT, end);
  }

  /**
   * Whether markup at the current point is read as HTML: outside SVG and MathML, in an HTML
   * element within them, or (`start` tags other than mglyph and malignmark) right inside an
   * integration point.
   */
  #htmlHere(start: boolean, name: string): boolean {
    const top = this.foreign[this.foreign.length - 1];
    if (top === undefined || top.ns === "html" || (top.ns === "svg" && SVG_HTML_POINTS.has(top.name))) return true;
    return start && top.ns === "math" && MATHML_TEXT_POINTS.has(top.name) && name !== "mglyph" && name !== "malignmark";
  }

  /**
   * A tag that starts, is inside or ends inline SVG or MathML (the HTML tree builder's rules
   * for foreign content, as far as they decide how the following bytes are read); returns the
   * raw-text element it opens, if any.
   */
  #foreignTag(name: string, start: boolean, raw: string | undefined): string | undefined {
    const foreign = this.foreign;
    const html = this.#htmlHere(start, name);
    if (!start) {
      if (!html && (name === "p" || name === "br")) {
        this.#breakOut();
        return undefined;
      }
      for (let at = foreign.length - 1; at >= 0; at--) {
        if (foreign[at]!.name !== name) continue;
        foreign.length = at;
        return undefined;
      }
      // No such element open in here. The parser then ignores the tag, or it closes an element
      // around the SVG and the SVG with it (an <svg> left open in a <div>): assumed for the end
      // tags of HTML containers, which well-formed SVG never has.
      if (!html && CONTAINERS.has(name)) foreign.length = 0;
      return undefined;
    }
    if (name === "svg" || name === "math") {
      if (!this.#selfClosing) this.#open(name, name);
      return undefined;
    }
    if (html || BREAKOUT.has(name)) {
      if (!html) this.#breakOut();
      if (foreign.length > 0 && !VOID_ELEMENTS.has(name)) this.#open(name, "html");
      return raw;
    }
    // A foreign element: no raw text in it, and "/>" closes it. Except that an SVG <style> is
    // read as CSS to its end tag, as in HTML: it holds a stylesheet (often in a CDATA section)
    // whose url()s need translating, and never markup in practice.
    if (this.#selfClosing) return undefined;
    this.#open(name, foreign[foreign.length - 1]!.ns);
    return name === "style" ? "style" : undefined;
  }

  /**
   * Records an open element, within bounds (the stack travels with every chunk's state): past
   * MAX_FOREIGN_DEPTH an element is not recorded, so its end tag closes an outer one of its
   * name, if any, and reading goes back to HTML early, never later. Names are cut to 64
   * characters, more than any element has.
   */
  #open(name: string, ns: ForeignElement["ns"]): void {
    if (this.foreign.length < MAX_FOREIGN_DEPTH) this.foreign.push({ name: name.slice(0, 64), ns });
  }

  /** An HTML tag inside SVG or MathML closes foreign elements up to an HTML element or integration point. */
  #breakOut(): void {
    while (!this.#htmlHere(false, "")) this.foreign.pop();
  }

  /**
   * Reads attributes from `i` to the tag's ">", recording those that can hold a link to
   * translate: a link attribute of some element (which element, the caller checks) whose value
   * has a "//" (every URL that can be translated has one: "scheme://host" or "//host"), and
   * http-equiv in a meta tag. Other attributes, most of them, never become strings.
   */
  #attributes(i: number, meta: boolean): TagEnd {
    const b = this.b;
    const n = b.length;
    for (;;) {
      const between = i;
      while (i < n && (isSpace(b.charCodeAt(i)) || b.charCodeAt(i) === SLASH)) i++;
      if (i >= n) return OUT_OF_INPUT;
      if (b.charCodeAt(i) === GT) {
        this.#selfClosing = i > between && b.charCodeAt(i - 1) === SLASH;
        return i + 1;
      }
      const nameStart = i;
      i++; // the first character may be "=" (then it is part of the name)
      while (i < n && (CLASS[b.charCodeAt(i)]! & ENDS_ATTRIBUTE_NAME) === 0) i++;
      const nameEnd = i;
      while (i < n && isSpace(b.charCodeAt(i))) i++;
      if (i >= n) return OUT_OF_INPUT;
      if (b.charCodeAt(i) !== EQ) {
        continue; // no value
      }
      i++;
      while (i < n && isSpace(b.charCodeAt(i))) i++;
      if (i >= n) return OUT_OF_INPUT;
      let valueStart: number;
      let valueEnd: number;
      const q = b.charCodeAt(i);
      if (q === DQ || q === SQ) {
        valueStart = i + 1;
        valueEnd = b.indexOf(q === DQ ? '"' : "'", valueStart);
        if (valueEnd < 0) return -1 - q;
        i = valueEnd + 1;
      } else {
        if (q === GT) {
          this.#selfClosing = false;
          return i + 1; // "a=>" : empty value
        }
        valueStart = i;
        while (i < n && (CLASS[b.charCodeAt(i)]! & ENDS_UNQUOTED) === 0) i++;
        if (i >= n) return OUT_OF_INPUT;
        valueEnd = i;
      }
      const attr = findName(LINK_ATTRIBUTES, b, nameStart, nameEnd);
      if (attr !== undefined && (mayHoldLink(b, attr, valueStart, valueEnd) || (meta && attr === "http-equiv"))) {
        (this.#values ??= []).push({ attr, start: valueStart, end: valueEnd });
      }
    }
  }

  /** The rest of a tag that was too long to hold: skips to its ">", outside quotes. */
  #skipTagRest(i: number, quote: number): TagEnd {
    const b = this.b;
    for (;;) {
      if (quote !== 0) {
        const close = b.indexOf(quote === DQ ? '"' : "'", i);
        if (close < 0) return -1 - quote;
        i = close + 1;
        quote = 0;
      }
      while (i < b.length && b.charCodeAt(i) !== GT && b.charCodeAt(i) !== DQ && b.charCodeAt(i) !== SQ) i++;
      if (i >= b.length) return OUT_OF_INPUT;
      if (b.charCodeAt(i) === GT) return i + 1;
      quote = b.charCodeAt(i);
      i++;
    }
  }

  #tagEdits(name: string, values: readonly { attr: string; start: number; end: number }[]): void {
    const wanted = URL_ATTRIBUTES.get(name) ?? NONE;
    let refresh = false;
    let content: { start: number; end: number } | undefined;
    for (const v of values) {
      if (v.attr !== "style" && !wanted.includes(v.attr)) continue;
      if (name === "meta" && v.attr === "http-equiv") {
        if (this.b.slice(v.start, v.end).trim().toLowerCase() === "refresh") refresh = true;
      } else if (name === "meta" && v.attr === "content") {
        content = v;
      } else if (v.attr === "style") {
        this.#edits.push(...cssEdits(this.b.slice(v.start, v.end), this.links, v.start));
      } else if (v.attr === "srcset") {
        this.#edits.push(...srcsetEdits(this.b.slice(v.start, v.end), this.links, v.start));
      } else {
        this.#urlEdit(v.start, v.end);
      }
    }
    if (refresh && content) {
      const value = this.b.slice(content.start, content.end);
      const m = REFRESH_URL.exec(value);
      const translated = m ? this.links.translate(m[2]!) : undefined;
      if (m && translated !== undefined) {
        const at = content.start + m.index + m[1]!.length;
        this.#edits.push({ start: at, end: at + m[2]!.length, text: translated });
      }
    }
  }

  /** The URL of an attribute value b[start, end), without the spaces a URL parser strips around it. */
  #urlEdit(start: number, end: number): void {
    const b = this.b;
    while (start < end && b.charCodeAt(start) <= 0x20) start++;
    while (end > start && b.charCodeAt(end - 1) <= 0x20) end--;
    const translated = this.links.translateAt(b, start, end);
    if (translated !== undefined) this.#edits.push({ start, end, text: translated });
  }

  /** Content of a raw-text element: up to its end tag ("</name" then space, "/" or ">"). */
  #rawText(i: number, name: string): number {
    const b = this.b;
    const closing = `</${name}`;
    for (let at = i; ; ) {
      const lt = b.indexOf("<", at);
      if (lt < 0) return this.#rawRunsOn(i, name, b.length);
      if (lt + closing.length >= b.length) return this.#rawRunsOn(i, name, lt);
      if (b.charCodeAt(lt + 1) === SLASH && b.slice(lt, lt + closing.length).toLowerCase() === closing) {
        const after = b.charCodeAt(lt + closing.length);
        if (isSpace(after) || after === SLASH || after === GT) {
          if (name === "style") this.#styleEdits(i, lt);
          this.context = TEXT;
          this.safe = lt;
          return lt; // the end tag itself is scanned as a tag
        }
      }
      at = lt + 1;
    }
  }

  /** A script's text (see ScriptEscape): up to the "</script" that ends it. */
  #scriptText(i: number, escape: ScriptEscape): number {
    const b = this.b;
    // Runs out of input: the bytes from `from` may start a sequence that changes the state.
    const hold = (from: number): number => {
      if (this.final) return this.#finishAll();
      this.context = { in: "raw", name: "script", escape };
      return this.#holdTail(from);
    };
    for (let at = i; ; ) {
      const lt = b.indexOf("<", at);
      if (escape !== 0) {
        const dashes = b.indexOf("-->", at);
        if (dashes >= 0 && (lt < 0 || dashes < lt)) {
          escape = 0;
          at = dashes + 3;
          continue;
        }
      }
      if (lt < 0) return hold(escape === 0 ? b.length : Math.max(at, b.length - 2));
      // "</script" and one more byte is the longest sequence that matters.
      if (lt + 9 > b.length && !this.final) return hold(escape === 0 ? lt : Math.max(at, Math.min(lt, b.length - 2)));
      if (escape === 0 && b.startsWith("<!--", lt)) {
        let j = lt + 4;
        while (j < b.length && b.charCodeAt(j) === DASH) j++;
        // Whether a ">" closes it at once is for the next bytes to tell, if the dashes are few.
        if (j >= b.length && !this.final && b.length - lt <= MAX_HOLD) return hold(lt);
        // "<!-->" (or with more dashes) closes at once.
        if (j < b.length && b.charCodeAt(j) === GT) at = j + 1;
        else {
          escape = 1;
          at = j;
        }
        continue;
      }
      if (b.charCodeAt(lt + 1) === SLASH && this.#namedTagAt(lt + 2, "script")) {
        if (escape !== 2) {
          this.context = TEXT;
          this.safe = lt;
          return lt; // the end tag itself is scanned as a tag
        }
        escape = 1;
        at = lt + 8;
        continue;
      }
      if (escape === 1 && this.#namedTagAt(lt + 1, "script")) {
        escape = 2;
        at = lt + 7;
        continue;
      }
      at = lt + 1;
    }
  }

  /** Whether `name` (lower case) is spelled at `at`, in any case, and ended by a space, "/" or ">". */
  #namedTagAt(at: number, name: string): boolean {
    const b = this.b;
    if (at + name.length >= b.length || !spells(b, at, name)) return false;
    const after = b.charCodeAt(at + name.length);
    return isSpace(after) || after === SLASH || after === GT;
  }

  /** The raw text runs past the buffer; `tail` is where a possible end tag begins. */
  #rawRunsOn(i: number, name: string, tail: number): number {
    if (this.final) {
      if (name === "style") this.#styleEdits(i, this.b.length);
      return this.#finishAll();
    }
    if (name !== "style") return this.#holdTail(tail);
    // CSS is translated up to its last safe cut now; the rest waits for more.
    const text = this.b.slice(i, tail);
    const cut = i + lastCssCut(text);
    if (this.b.length - cut > MAX_HOLD) {
      this.#styleEdits(i, tail);
      return this.#holdTail(tail);
    }
    this.#styleEdits(i, cut);
    return this.#holdTail(cut);
  }

  #styleEdits(from: number, to: number): void {
    if (to > from) this.#edits.push(...cssEdits(this.b.slice(from, to), this.links, from));
  }
}

const NONE: readonly string[] = [];

/** Whether b[start, ...) spells `name` (lower-case ASCII) in any case. */
function spells(b: string, start: number, name: string): boolean {
  for (let k = 0; k < name.length; k++) {
    // For a lower-case letter, c | 0x20 equals it only for that letter and its upper case; for
    // "-", only for "-" and CR, and CR ends a name before it could be compared.
    if ((b.charCodeAt(start + k) | 0x20) !== name.charCodeAt(k)) return false;
  }
  return true;
}

/** Names (lower-case letters and "-") by length, for findName. */
type NameTable = readonly (readonly string[] | undefined)[];

function nameTable(names: Iterable<string>): NameTable {
  const byLength: string[][] = [];
  for (const name of names) (byLength[name.length] ??= []).push(name);
  return byLength;
}

/** The name of `table` that b[start, end) spells in any case, or undefined: found in place, as most names looked up are none of them. */
function findName(table: NameTable, b: string, start: number, end: number): string | undefined {
  const names = table[end - start];
  if (names === undefined) return undefined;
  for (const name of names) if (spells(b, start, name)) return name;
  return undefined;
}

const RAW_TEXT_NAMES = nameTable(RAW_TEXT);
/** Where SVG holds HTML again (HTML integration points; MathML's annotation-xml is left aside). */
const SVG_HTML_POINTS = new Set(["foreignobject", "desc", "title"]);
/** MathML text integration points: start tags in them are HTML. */
const MATHML_TEXT_POINTS = new Set(["mi", "mo", "mn", "ms", "mtext"]);
/** HTML start tags that end SVG or MathML content (font aside). */
const BREAKOUT = new Set(["b", "big", "blockquote", "body", "br", "center", "code", "dd", "div", "dl", "dt", "em", "embed", "h1", "h2", "h3", "h4", "h5", "h6",
  "head", "hr", "i", "img", "li", "listing", "menu", "meta", "nobr", "ol", "p", "pre", "ruby", "s", "small", "span", "strong", "strike", "sub", "sup", "table",
  "tt", "u", "ul", "var"]);
/** HTML containers whose end tag, met in SVG or MathML, is taken to close an element around it. */
const CONTAINERS = new Set(["address", "article", "aside", "blockquote", "body", "button", "center", "dd", "details", "dialog", "dir", "div", "dl", "dt",
  "fieldset", "figcaption", "figure", "footer", "form", "header", "hgroup", "html", "li", "listing", "main", "menu", "nav", "ol", "pre", "section",
  "summary", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul"]);
const VOID_ELEMENTS = new Set(["area", "base", "br", "col", "embed", "hr", "img", "input", "keygen", "link", "meta", "param", "source", "track", "wbr", "frame"]);
/** Every attribute that can carry a link on some element. */
const LINK_ATTRIBUTES = nameTable(new Set([...[...URL_ATTRIBUTES.values()].flat(), "style"]));

/** Attributes whose links can be anywhere in the value (a srcset's later candidates, CSS, a refresh's "url="). */
const SPREAD = new Set(["srcset", "style", "content"]);

/**
 * Whether a value b[start, end) of `attr` can hold a URL to translate: it has a "//" where one
 * can be. A URL attribute's must come within its first bytes (after spaces, "http:" or
 * "https:"; internal URLs have no other scheme), so a long relative URL is not read through.
 */
function mayHoldLink(b: string, attr: string, start: number, end: number): boolean {
  return hasSlashes(b, start, SPREAD.has(attr) ? end : Math.min(end, urlPrefixEnd(b, start, end)));
}

/** Where the "//" of a URL value must have ended by: past its leading spaces and a scheme. */
function urlPrefixEnd(b: string, start: number, end: number): number {
  while (start < end && b.charCodeAt(start) <= 0x20) start++;
  return start + 16;
}

function hasSlashes(b: string, start: number, end: number): boolean {
  for (let k = start + 1; k < end; k++) {
    if (b.charCodeAt(k) === SLASH && b.charCodeAt(k - 1) === SLASH) return true;
  }
  return false;
}

function isForeignRoot(b: string, start: number, end: number): boolean {
  const length = end - start;
  return (length === 3 && spells(b, start, "svg")) || (length === 4 && spells(b, start, "math"));
}

function isMeta(b: string, start: number, end: number): boolean {
  return end - start === 4 && spells(b, start, "meta");
}

/** Every candidate URL of a srcset ("a.png 1x, b.png 2x"). */
function srcsetEdits(value: string, links: LinkMap, offset: number): Edit[] {
  const edits: Edit[] = [];
  SRCSET_CANDIDATE.lastIndex = 0;
  for (let m = SRCSET_CANDIDATE.exec(value); m !== null; m = SRCSET_CANDIDATE.exec(value)) {
    const translated = links.translate(m[3]!);
    if (translated === undefined) continue;
    const start = offset + m.index + m[1]!.length + m[2]!.length;
    edits.push({ start, end: start + m[3]!.length, text: translated });
  }
  return edits;
}
