/**
 * The piscina task that translates one chunk of an HTML or CSS body. Stateless between calls:
 * the rewriter's state comes with the task and goes back with the result. Input arrives as a
 * transferred ArrayBuffer; the output is written into a buffer of its own and transferred back.
 */
import { move, transferableSymbol, valueSymbol } from "piscina";
import { LinkMap, type LinkMapping } from "./links.js";
import { rewriteChunk, type BodyKind, type RewriteState } from "./rewrite.js";
import { BoundedMap } from "../limits/bounded.js";
import { markStarted } from "./started.js";

export { markStarted };

/** One chunk of one response (sent to a worker inside a BatchTask). */
export interface ChunkTask {
  readonly kind: BodyKind;
  readonly state: RewriteState | undefined;
  readonly chunk: Uint8Array;
  readonly final: boolean;
  /** Identifies `links`: a worker builds each link map once and keeps the last few. */
  readonly linksKey: string;
  readonly links: readonly LinkMapping[];
  /** The pool's clock slot for this task (markStarted). */
  readonly slot: number;
}

export interface ChunkResult {
  readonly out: Uint8Array;
  readonly state: RewriteState;
  /** Time this chunk took on the worker, ms (the response's CPU budget counts it). */
  readonly ms: number;
}

/** Link maps by key: built once per tenant and config snapshot, the last few kept. */
const linkMaps = new BoundedMap<string, LinkMap>(64);

/** Several chunks (of different responses) in one message: one round trip between threads for all. */
export interface BatchTask {
  readonly chunks: readonly Omit<ChunkTask, "slot">[];
  readonly slot: number;
}

/** Per chunk of a batch: its result, or why it failed (one bad chunk fails only its response). */
export type BatchResult = ({ readonly ok: true } & ChunkResult | { readonly ok: false; readonly error: string })[];

function translateOne(task: Omit<ChunkTask, "slot">): ChunkResult {
  const started = performance.now();
  const { out, state } = rewriteChunk(task.kind, task.state, task.chunk, task.final, linkMaps.getOrMake(task.linksKey, () => new LinkMap(task.links)));
  // Untouched pages come back as a view of the input, which is ours to move back. Anything
  // else is moved only if it owns its whole buffer: never a slab of Node's shared Buffer pool.
  const movable = out.buffer === task.chunk.buffer || (out.byteOffset === 0 && out.byteLength === out.buffer.byteLength);
  const bytes = movable ? out : new Uint8Array(out);
  return { out: bytes, state, ms: performance.now() - started };
}

export default function translateBatch(task: BatchTask): unknown {
  markStarted(task);
  const results: BatchResult = task.chunks.map((chunk) => {
    try {
      return { ok: true as const, ...translateOne(chunk) };
    } catch (err) {
      return { ok: false as const, error: (err as Error).message };
    }
  });
  const buffers = [...new Set(results.flatMap((r) => (r.ok ? [r.out.buffer as ArrayBuffer] : [])))];
  return move({ [transferableSymbol]: buffers, [valueSymbol]: results } as never);
}
