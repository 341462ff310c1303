/**
 * The piscina task that translates the chunks of HTML and CSS bodies. Stateless between calls:
 * each chunk's rewriter state comes with the task and goes back with the result.
 *
 * A task is a batch: the chunks of every response that reached the pool in one event-loop
 * turn. Their bytes travel packed in one transferred buffer each way, so what crosses between
 * threads per chunk is a few numbers and its (small) state, never a buffer of its own: moving
 * an ArrayBuffer costs about as much as copying a few KiB, and a page is one or two chunks.
 */
import { move, transferableSymbol, valueSymbol } from "piscina";
import { LinkMap, type LinkMapping } from "./links.js";
import { rewriteChunk, type BodyKind, type RewriteState } from "./rewrite.js";
import { BoundedMap } from "../limits/bounded.js";
import { markStarted } from "./started.js";

export { markStarted };

/** One chunk of one response, its bytes in the batch's input. */
export interface ChunkTask {
  readonly kind: BodyKind;
  readonly state: RewriteState | undefined;
  /** Bytes of the batch's input that are this chunk's, after those of the chunks before it. */
  readonly length: number;
  readonly final: boolean;
  /** The tenant's links, by key into the batch's `links`. */
  readonly linksKey: string;
}

export interface BatchTask {
  /** Every chunk's bytes, one after another (moved, not copied). */
  readonly input: Uint8Array;
  readonly chunks: readonly ChunkTask[];
  /** The link mappings of each key the chunks use; a worker builds each map once and keeps the last few. */
  readonly links: Readonly<Record<string, readonly LinkMapping[]>>;
  /** The pool's clock slot for this task (markStarted). */
  readonly slot: number;
}

/** Per chunk: its output (`length` bytes of the batch's output, in order) or why it failed. */
export type ChunkOutcome =
  | { readonly ok: true; readonly length: number; readonly state: RewriteState; readonly ms: number }
  | { readonly ok: false; readonly error: string };

export interface BatchResult {
  /** Every successful chunk's output, one after another (moved back). */
  readonly output: Uint8Array;
  readonly chunks: readonly ChunkOutcome[];
}

/** Link maps by key: built once per tenant and config snapshot, the last few kept. */
const linkMaps = new BoundedMap<string, LinkMap>(64);

export default function translateBatch(task: BatchTask): unknown {
  markStarted(task);
  const outputs: Buffer[] = [];
  let total = 0;
  let at = 0;
  // One bad chunk fails only its response: the others of the batch go on.
  const chunks = task.chunks.map((chunk): ChunkOutcome => {
    const input = task.input.subarray(at, (at += chunk.length));
    try {
      const started = performance.now();
      const links = linkMaps.getOrMake(chunk.linksKey, () => new LinkMap(task.links[chunk.linksKey] ?? []));
      const { out, state } = rewriteChunk(chunk.kind, chunk.state, input, chunk.final, links);
      outputs.push(out);
      total += out.length;
      return { ok: true, length: out.length, state, ms: performance.now() - started };
    } catch (err) {
      return { ok: false, error: (err as Error).message };
    }
  });
  // A buffer of its own (never a slab of Node's shared pool), so it can be moved.
  const output = new Uint8Array(new ArrayBuffer(total));
  let to = 0;
  for (const out of outputs) {
    output.set(out, to);
    to += out.length;
  }
  return move({ [transferableSymbol]: [output.buffer], [valueSymbol]: { output, chunks } satisfies BatchResult } as never);
}
