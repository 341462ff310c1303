/**
 * The engine's worker pool (piscina) for body translation. Each task is one chunk of one
 * response and carries that response's rewriter state, so any worker takes any chunk and a
 * worker holds no response. A chunk that runs past its deadline is aborted, which makes
 * piscina terminate that worker and start another: only the response that chunk belonged to
 * fails. The queue is bounded twice: a new translation is not started once `maxQueue` chunks
 * wait (`saturated`, the edge answers 503), and the next chunk of a response already under
 * way may still queue up to twice that, past which it fails too.
 */
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { Piscina } from "piscina";
import { PosternError } from "../protocol/errors.js";
import type { ChunkResult, ChunkTask } from "./translate-task.js";

export interface TranslateLimits {
  /** Worker threads. */
  readonly threads: number;
  /** Chunks waiting for a worker; past it new translations are refused (503), past twice it chunks fail. */
  readonly maxQueue: number;
  /** One chunk running longer than this: its worker is replaced and the response fails, ms. */
  readonly chunkTimeoutMs: number;
  /** Worker time one response may use in all, ms; past it the response fails. */
  readonly budgetMs: number;
  /** Decoded (gunzipped, ...) bytes one response may produce; past it the response fails. */
  readonly maxDecodedBytes: number;
  /** Largest input handed to one task; smaller chunks that queue up meanwhile are joined. */
  readonly maxTaskBytes: number;
}

export const DEFAULT_TRANSLATE_LIMITS: TranslateLimits = Object.freeze({
  threads: Math.max(1, Math.min(4, availableParallelism() - 1)),
  maxQueue: 1024,
  chunkTimeoutMs: 5_000,
  budgetMs: 5_000,
  maxDecodedBytes: 32 * 1024 * 1024,
  maxTaskBytes: 256 * 1024,
});

/** The built task file. Tests run the sources through vitest, whose workers still need JavaScript. */
function taskFile(): string {
  const here = fileURLToPath(import.meta.url);
  return here.endsWith(".ts") ? here.replace(/[\\/]engine[\\/]workers[\\/]pool\.ts$/, "/dist/engine/workers/translate-task.js") : here.replace(/pool\.js$/, "translate-task.js");
}

export class TranslatePool {
  readonly limits: TranslateLimits;
  readonly #piscina: Piscina;

  /** `filename` replaces the task module (tests wrap it to make a worker hang or crash). */
  constructor(limits: Partial<TranslateLimits> = {}, filename = taskFile()) {
    this.limits = Object.freeze({ ...DEFAULT_TRANSLATE_LIMITS, ...limits });
    this.#piscina = new Piscina({
      filename,
      minThreads: 1,
      maxThreads: this.limits.threads,
      // Workers are stateless: a dead one is simply replaced.
      idleTimeout: 30_000,
      // No timing histograms: they cost the event loop on every task.
      recordTiming: false,
    });
    // A worker that dies between tasks is replaced by piscina; the event is informational.
    this.#piscina.on("error", () => undefined);
  }

  /** True when the queue is full: a new translation would only fail later. */
  get saturated(): boolean {
    return this.#piscina.queueSize >= this.limits.maxQueue;
  }

  /** Runs one chunk; `chunk` is transferred to the worker (the caller gives it up). */
  async run(task: Omit<ChunkTask, "started">): Promise<ChunkResult> {
    if (this.#piscina.queueSize >= 2 * this.limits.maxQueue) {
      throw new PosternError("POSTERN_TRANSLATE", `the translation queue is full (${2 * this.limits.maxQueue} chunks wait)`);
    }
    const started = new Float64Array(new SharedArrayBuffer(8));
    const abort = new AbortController();
    const limit = this.limits.chunkTimeoutMs;
    // The deadline runs from when a worker picks the chunk up: waiting in the queue behind a
    // hung chunk is not this chunk's fault.
    const watch = (): void => {
      const since = started[0]! > 0 ? Date.now() - started[0]! : 0;
      if (since >= limit) abort.abort();
      else timer = setTimeout(watch, limit - since);
    };
    let timer = setTimeout(watch, limit);
    try {
      return (await this.#piscina.run({ ...task, started }, { signal: abort.signal, transferList: [task.chunk.buffer as ArrayBuffer] })) as ChunkResult;
    } catch (err) {
      if (abort.signal.aborted) throw new PosternError("POSTERN_TRANSLATE", `a body chunk took longer than ${limit} ms: its worker was replaced`);
      throw new PosternError("POSTERN_TRANSLATE", `body translation failed: ${(err as Error).message}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    await this.#piscina.destroy();
  }
}
