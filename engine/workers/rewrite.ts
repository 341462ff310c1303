/**
 * One step of body translation, the same on the pool and in tests: a chunk of bytes in, the
 * bytes that are final out, and the state to hand to whichever worker takes the next chunk.
 */
import { rewriteCss, type CssState } from "./css.js";
import { rewriteHtml, type HtmlState } from "./html.js";
import type { LinkMap } from "./links.js";

export type BodyKind = "html" | "css";
export type RewriteState = HtmlState | CssState;

export function rewriteChunk(kind: BodyKind, state: RewriteState | undefined, input: Uint8Array, final: boolean, links: LinkMap): { out: Buffer; state: RewriteState } {
  if (kind === "html") return rewriteHtml(state as HtmlState | undefined, input, final, links);
  // latin1: one character per byte, so bytes outside rewritten spans come back unchanged.
  const text = Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString("latin1");
  const step = rewriteCss(state as CssState | undefined, text, final, links);
  return { out: Buffer.from(step.out, "latin1"), state: step.state };
}

/** Whether a rewriter still holds input back (the end of the body must then go to a worker). */
export function holdsInput(state: RewriteState | undefined): boolean {
  if (state === undefined) return false;
  return (state.kind === "css" ? state.pending : state.held).length > 0;
}
