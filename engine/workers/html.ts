/**
 * Streaming HTML link translation. The page goes through htmlparser2's tokenizer (a well-kept
 * streaming tokenizer) chunk by chunk; only the values of URL-bearing attributes, `style`
 * attributes, `<style>` blocks and meta refresh change, every other byte passes through as it
 * came. Bytes are handled as latin1 text (one character per byte), so offsets are byte offsets
 * and any charset whose markup is ASCII-compatible (UTF-8, the ISO-8859 and Windows code
 * pages, Shift_JIS, EUC) passes through untouched.
 *
 * The rewriter's whole state between chunks is a plain object (`HtmlState`): any worker of the
 * pool can take the next chunk of any response, and a worker that dies loses only the chunk it
 * held. That includes the tokenizer's state, read from and written back to its fields; the
 * fields are those of htmlparser2 10.1 (pinned in package.json), and the byte-boundary tests
 * run every split through a snapshot and a restore.
 *
 * Output holds back only what could still change: a tag or attribute name being read, a
 * relevant attribute value, a meta tag whose refresh may need rewriting, and the part of a
 * `<style>` block after its last safe cut. Every hold is bounded by MAX_HOLD; past it the text
 * goes out as it is and the element it belonged to is left untranslated.
 */
import { Tokenizer } from "htmlparser2";
import { applyEdits, cssEdits, lastCssCut, type Edit } from "./css.js";
import type { LinkMap } from "./links.js";

const URL_ATTRIBUTES: Record<string, readonly string[]> = {
  a: ["href"], area: ["href"], base: ["href"], link: ["href"], img: ["src", "srcset"], script: ["src"], iframe: ["src"], frame: ["src"],
  form: ["action"], button: ["formaction"], input: ["src"], source: ["src", "srcset"], video: ["src", "poster"], audio: ["src"],
  track: ["src"], embed: ["src"], object: ["data"],
};

/** Longest text held back for any one reason, characters. */
export const MAX_HOLD = 64 * 1024;

/** A candidate of a srcset ("a.png 1x, b.png 2x"): linear, one run per group. */
export const SRCSET_CANDIDATE = /(^|,)(\s*)([^\s,]+)/g;
/** The URL in a meta refresh ("5; url='...'"): linear, anchored on "url". */
export const REFRESH_URL = /(url\s*=\s*['"]?)([^'"\s;]+)/i;

type Callbacks = ConstructorParameters<typeof Tokenizer>[1];

/** The tokenizer with the fields that make up its state (private in its typings). */
interface TokenizerFields {
  write(chunk: string): void;
  end(): void;
  state: number;
  buffer: string;
  sectionStart: number;
  index: number;
  entityStart: number;
  baseState: number;
  isSpecial: boolean;
  running: boolean;
  offset: number;
  sequenceIndex: number;
  currentSequence: Uint8Array | undefined;
}

/** The tokenizer's resumable fields; `sequence` names its current end sequence (e.g. "</script"). */
interface TokenizerSnapshot {
  state: number;
  sectionStart: number;
  index: number;
  entityStart: number;
  baseState: number;
  isSpecial: boolean;
  sequenceIndex: number;
  sequence: string | null;
}

export interface HtmlState {
  readonly kind: "html";
  /** Input not yet emitted, starting at absolute offset `base`. */
  pending: string;
  base: number;
  edits: Edit[];
  tag: string;
  attr: string;
  attrStart: number;
  valueStart: number;
  valueEnd: number;
  /** Held from here while a relevant attribute (or a meta tag) is open. */
  holdFrom: number;
  meta: { content: { start: number; end: number } | null; refresh: boolean } | null;
  /** Start of the untranslated rest of an open `<style>` block. */
  styleStart: number;
  tokenizer: TokenizerSnapshot;
}

const IGNORE = () => undefined;
const NO_CALLBACKS: Callbacks = {
  onattribdata: IGNORE, onattribentity: IGNORE, onattribend: IGNORE, onattribname: IGNORE, oncdata: IGNORE, onclosetag: IGNORE,
  oncomment: IGNORE, ondeclaration: IGNORE, onend: IGNORE, onopentagend: IGNORE, onopentagname: IGNORE, onprocessinginstruction: IGNORE,
  onselfclosingtag: IGNORE, ontext: IGNORE, ontextentity: IGNORE,
};

function probe(input: string): TokenizerFields {
  const t = new Tokenizer({ decodeEntities: false }, NO_CALLBACKS) as unknown as TokenizerFields;
  t.write(input);
  return t;
}

/**
 * States in which a tag or attribute name is being read (reported later with offsets into text
 * already seen): "<ab", "<a bc", and the look-ahead states of "<s", "<t" and "<sc" (script,
 * style, title, textarea). The numbers are learnt from the tokenizer itself, not copied.
 */
const NAME_STATES = new Set(["<ab", "<a bc", "<s", "<t", "<sc"].map((input) => probe(input).state));
/** Its end sequences by content; restored by identity, which is how the tokenizer compares them. */
const SEQUENCES = new Map<string, Uint8Array>();
for (const primer of ["<script>x", "<style>x", "<title>x", "<textarea>x", "<xmp>x", "<!--x", "<![CDATA[x"]) {
  const seq = probe(primer).currentSequence;
  if (seq) SEQUENCES.set(String.fromCharCode(...seq), seq);
}

function freshState(): HtmlState {
  return {
    kind: "html", pending: "", base: 0, edits: [], tag: "", attr: "", attrStart: -1, valueStart: -1, valueEnd: -1, holdFrom: -1, meta: null, styleStart: -1,
    tokenizer: { state: probe("").state, sectionStart: 0, index: 0, entityStart: 0, baseState: probe("").state, isSpecial: false, sequenceIndex: 0, sequence: null },
  };
}

/** Rewrites one chunk of a page (latin1 text); returns the final output and the state to carry. */
export function rewriteHtml(state: HtmlState | undefined, text: string, final: boolean, links: LinkMap): { out: string; state: HtmlState } {
  const rewriter = new HtmlRewriter(links, state ?? freshState());
  return { out: rewriter.write(text, final), state: rewriter.snapshot() };
}

class HtmlRewriter {
  readonly #tokenizer: TokenizerFields;
  readonly #s: HtmlState;

  constructor(private readonly links: LinkMap, state: HtmlState) {
    this.#s = state;
    this.#tokenizer = new Tokenizer({ decodeEntities: false }, {
      ...NO_CALLBACKS,
      onopentagname: (start, end) => this.#openTag(start, end),
      onattribname: (start, end) => this.#attributeName(start, end),
      onattribdata: (start, end) => {
        if (this.#s.valueStart < 0) this.#s.valueStart = start;
        this.#s.valueEnd = end;
      },
      onattribend: () => this.#attributeDone(),
      onopentagend: (end) => this.#tagDone(end),
      onselfclosingtag: (end) => this.#tagDone(end),
      onclosetag: (start) => this.#closeTag(start),
    }) as unknown as TokenizerFields;
    const t = this.#tokenizer;
    const k = state.tokenizer;
    const sequence = k.sequence === null ? undefined : SEQUENCES.get(k.sequence);
    if (k.sequence !== null && !sequence) throw new Error(`html rewriter: unknown tokenizer sequence ${JSON.stringify(k.sequence)}`);
    Object.assign(t, {
      state: k.state, sectionStart: k.sectionStart, index: k.index, entityStart: k.entityStart, baseState: k.baseState,
      isSpecial: k.isSpecial, sequenceIndex: k.sequenceIndex, currentSequence: sequence, buffer: "", offset: k.index, running: true,
    });
  }

  write(text: string, final: boolean): string {
    this.#s.pending += text;
    if (text.length > 0) this.#tokenizer.write(text);
    if (final) this.#tokenizer.end();
    return this.#emit(final);
  }

  snapshot(): HtmlState {
    const t = this.#tokenizer;
    const sequence = t.currentSequence ? String.fromCharCode(...t.currentSequence) : null;
    this.#s.tokenizer = {
      state: t.state, sectionStart: t.sectionStart, index: t.index, entityStart: t.entityStart, baseState: t.baseState,
      isSpecial: t.isSpecial, sequenceIndex: t.sequenceIndex, sequence,
    };
    return this.#s;
  }

  /** The input between two absolute offsets, or undefined when part of it already went out. */
  #slice(start: number, end: number): string | undefined {
    if (start < this.#s.base) return undefined;
    return this.#s.pending.slice(start - this.#s.base, end - this.#s.base);
  }

  #relevant(): boolean {
    const s = this.#s;
    return s.attr === "style" || (URL_ATTRIBUTES[s.tag]?.includes(s.attr) ?? false);
  }

  #openTag(start: number, end: number): void {
    const s = this.#s;
    s.tag = this.#slice(start, end)?.toLowerCase() ?? "";
    s.meta = s.tag === "meta" ? { content: null, refresh: false } : null;
    if (s.meta) s.holdFrom = start - 1;
  }

  #attributeName(start: number, end: number): void {
    const s = this.#s;
    s.attr = this.#slice(start, end)?.toLowerCase() ?? "";
    s.attrStart = start;
    s.valueStart = s.valueEnd = -1;
    if (s.holdFrom < 0 && this.#relevant()) s.holdFrom = start;
  }

  #attributeDone(): void {
    const s = this.#s;
    const { valueStart: start, valueEnd: end } = s;
    const value = start >= 0 ? this.#slice(start, end) : undefined;
    if (value !== undefined) {
      if (s.meta) {
        if (s.attr === "http-equiv" && value.trim().toLowerCase() === "refresh") s.meta.refresh = true;
        if (s.attr === "content") s.meta.content = { start, end };
      } else if (s.attr === "style") {
        s.edits.push(...cssEdits(value, this.links, start));
      } else if (s.attr === "srcset") {
        s.edits.push(...srcsetEdits(value, this.links, start));
      } else if (this.#relevant()) {
        const lead = value.length - value.trimStart().length;
        const url = value.trim();
        const translated = this.links.translate(url);
        if (translated !== undefined) s.edits.push({ start: start + lead, end: start + lead + url.length, text: translated });
      }
    }
    if (!s.meta && s.holdFrom === s.attrStart) s.holdFrom = -1;
  }

  #tagDone(end: number): void {
    const s = this.#s;
    if (s.meta?.refresh && s.meta.content) {
      const { start, end: valueEnd } = s.meta.content;
      const value = this.#slice(start, valueEnd);
      const m = value === undefined ? null : REFRESH_URL.exec(value);
      const translated = m ? this.links.translate(m[2]!) : undefined;
      if (m && translated !== undefined) {
        const at = start + m.index + m[1]!.length;
        s.edits.push({ start: at, end: at + m[2]!.length, text: translated });
      }
    }
    s.meta = null;
    s.holdFrom = -1;
    if (s.tag === "style") s.styleStart = end + 1;
    s.tag = "";
  }

  #closeTag(start: number): void {
    const s = this.#s;
    if (s.styleStart < 0) return;
    // "</style": the name starts two characters after the block ends.
    const css = this.#slice(s.styleStart, start - 2);
    if (css !== undefined) s.edits.push(...cssEdits(css, this.links, s.styleStart));
    s.styleStart = -1;
  }

  #emit(final: boolean): string {
    const s = this.#s;
    const end = s.base + s.pending.length;
    let safe = end;
    if (!final) {
      const t = this.#tokenizer;
      // A tag or attribute name split across chunks is reported once whole, with offsets into
      // text already seen: keep it.
      if (NAME_STATES.has(t.state) && t.sectionStart >= 0) safe = Math.min(safe, t.sectionStart);
      if (s.holdFrom >= 0) safe = Math.min(safe, s.holdFrom);
      if (s.styleStart >= 0) {
        // Translate the block up to its last safe cut now, so a long block streams.
        const from = s.styleStart - s.base;
        const cut = s.base + lastCssCut(s.pending.slice(0, safe - s.base), from);
        if (cut > s.styleStart) {
          s.edits.push(...cssEdits(s.pending.slice(from, cut - s.base), this.links, s.styleStart));
          s.styleStart = cut;
        }
        safe = Math.min(safe, s.styleStart);
      }
      if (end - safe > MAX_HOLD) {
        // Too long to hold: out as it is; whatever was held is left untranslated.
        safe = end;
        s.holdFrom = -1;
        s.meta = null;
        if (s.styleStart >= 0) s.styleStart = end;
      }
    }
    safe = Math.max(safe, s.base);
    s.edits.sort((a, b) => a.start - b.start);
    let n = 0;
    while (n < s.edits.length && s.edits[n]!.end <= safe) n++;
    const ready = s.edits.splice(0, n);
    const out = applyEdits(s.pending.slice(0, safe - s.base), s.base, ready);
    s.pending = s.pending.slice(safe - s.base);
    s.base = safe;
    return out;
  }
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
