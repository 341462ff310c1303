/**
 * CSS link translation: `url(...)` (quoted or not) and `@import "..."`. Produces edits, not a
 * new string, so every byte outside a rewritten URL stays as it was.
 */
import type { LinkMap } from "./links.js";

/** Replace [start, end) of the input (absolute offsets) with `text`. */
export interface Edit {
  readonly start: number;
  readonly end: number;
  readonly text: string;
}

/**
 * One pass finds every URL a stylesheet can load. Linear time: each alternative is a fixed
 * prefix and then one run of characters that cannot end it, with no nested quantifiers (a
 * ReDoS checker in the tests holds every pattern of this folder to that).
 */
export const CSS_URL = /url\(\s*(?:"([^"\n]*)"|'([^'\n]*)'|([^"'()\s]+))|@import\s*(?:"([^"\n]*)"|'([^'\n]*)')/gi;

export function cssEdits(css: string, links: LinkMap, offset = 0): Edit[] {
  const edits: Edit[] = [];
  // Every URL that can be translated has a "//": most stylesheets link relatively, and one
  // native search spares them the pattern.
  if (!css.includes("//")) return edits;
  CSS_URL.lastIndex = 0;
  for (let m = CSS_URL.exec(css); m !== null; m = CSS_URL.exec(css)) {
    const url = m[1] ?? m[2] ?? m[3] ?? m[4] ?? m[5] ?? "";
    const translated = links.translate(url);
    if (translated === undefined) continue;
    // The match ends with the URL, or with the URL and its closing quote.
    const end = m.index + m[0].length - (m[3] === undefined ? 1 : 0);
    edits.push({ start: offset + end - url.length, end: offset + end, text: translated });
  }
  return edits;
}

/** Applies sorted, non-overlapping edits to `text` whose first character is at `base`. */
export function applyEdits(text: string, base: number, edits: readonly Edit[]): string {
  if (edits.length === 0) return text;
  let out = "";
  let at = 0;
  for (const e of edits) {
    out += text.slice(at, e.start - base) + e.text;
    at = e.end - base;
  }
  return out + text.slice(at);
}

/** Where CSS text can be cut without splitting a `url(...)` or `@import`: after `}`, `;` or a newline. */
export function lastCssCut(text: string, from = 0): number {
  const cut = Math.max(text.lastIndexOf("}"), text.lastIndexOf(";"), text.lastIndexOf("\n")) + 1;
  return cut > from ? cut : from;
}

/** What a stylesheet rewriter carries between chunks: the text after the last safe cut. */
export interface CssState {
  readonly kind: "css";
  readonly pending: string;
}

/** Largest CSS held back waiting for a safe cut, characters; past it the text goes out as is. */
export const MAX_CSS_HOLD = 64 * 1024;

/** Rewrites one chunk of a stylesheet (latin1 text); returns the final output and the carry. */
export function rewriteCss(state: CssState | undefined, text: string, final: boolean, links: LinkMap): { out: string; state: CssState } {
  const pending = (state?.pending ?? "") + text;
  let upTo = final ? pending.length : lastCssCut(pending);
  if (upTo === 0 && pending.length > MAX_CSS_HOLD) upTo = pending.length;
  const ready = pending.slice(0, upTo);
  return { out: applyEdits(ready, 0, cssEdits(ready, links)), state: { kind: "css", pending: pending.slice(upTo) } };
}
