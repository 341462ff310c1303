/**
 * The engine's worker pools (piscina), one per kind of task: body translation and token /
 * cookie crypto. Tasks are stateless (whatever state a task needs comes with it), so any
 * worker takes any task and a worker holds nothing of a request. A task that runs past its
 * deadline is aborted, which makes piscina terminate that worker and start another: only the
 * request that task belonged to fails. The queue is bounded twice: callers ask `saturated`
 * (past `maxQueue` waiting tasks) before they start new work and answer 503, and tasks of work
 * already under way may queue up to twice that, past which they fail too.
 */
import { availableParallelism } from "node:os";
import { z } from "zod";
import { integer, resolveSettings, type Resolved } from "../config/settings.js";
import { fileURLToPath } from "node:url";
import { Piscina } from "piscina";
import { PosternError, type ErrorCode } from "../errors/catalogue.js";
import type { LinkMapping } from "./links.js";
import type { BodyKind, RewriteState } from "./rewrite.js";
import type { BatchResult, BatchTask } from "./translate-task.js";
import type { TenantLinks } from "./translation.js";

export interface PoolLimits {
  /** Worker threads. */
  readonly threads: number;
  /** Tasks waiting for a worker; past it `saturated` (new work refused), past twice it tasks fail. */
  readonly maxQueue: number;
  /** One task running longer than this: its worker is replaced and the task fails, ms. */
  readonly taskTimeoutMs: number;
}

/** Omit over each member of a union (a plain Omit would merge the members). */
export type TaskInput<T> = T extends unknown ? Omit<T, "slot"> : never;

/**
 * Every task carries a slot of the pool's clock, a shared array the workers get once at start:
 * the worker writes there when it picks the task up (see `markStarted`). Nothing per task
 * crosses between threads for it, and one watchdog timer serves every task.
 */
export interface Timed {
  readonly slot: number;
}

/** The built file of a task module. Tests run the sources through vitest, whose workers still need JavaScript. */
export function taskFile(name: string): string {
  const here = fileURLToPath(import.meta.url);
  return here.endsWith(".ts") ? here.replace(/[\\/]engine[\\/]workers[\\/]pool\.ts$/, `/dist/engine/workers/${name}.js`) : here.replace(/pool\.js$/, `${name}.js`);
}

export class WorkerPool<Task extends Timed, Result> {
  readonly #piscina: Piscina;
  readonly #clock: Float64Array;
  readonly #free: number[];
  readonly #running = new Map<number, AbortController>();
  #watchdog: NodeJS.Timeout | undefined;
  /** Told each task's time from submission to result, seconds (metrics). */
  onTask: ((seconds: number) => void) | undefined;

  constructor(
    readonly poolLimits: PoolLimits,
    filename: string,
    /** The code task failures are reported with. */
    private readonly errorCode: ErrorCode,
    private readonly what: string,
  ) {
    // One slot per task that can be outstanding at once: the queue's hard bound plus the threads.
    const slots = 2 * poolLimits.maxQueue + poolLimits.threads + 1;
    this.#clock = new Float64Array(new SharedArrayBuffer(8 * slots));
    this.#free = Array.from({ length: slots }, (_, i) => slots - 1 - i);
    this.#piscina = new Piscina({
      filename,
      workerData: { clock: this.#clock.buffer },
      minThreads: 1,
      maxThreads: poolLimits.threads,
      // Workers hold nothing: a dead one is simply replaced.
      idleTimeout: 30_000,
      // No timing histograms: they cost the event loop on every task.
      recordTiming: false,
    });
    // A worker that dies between tasks is replaced by piscina; the event is informational.
    this.#piscina.on("error", () => undefined);
  }

  /** Tasks waiting for a worker. */
  get queueSize(): number {
    return this.#piscina.queueSize;
  }

  /** True when the queue is full: new work would only fail later. */
  get saturated(): boolean {
    return this.#piscina.queueSize >= this.poolLimits.maxQueue;
  }

  /** Runs one task; buffers in `transfer` are moved to the worker (the caller gives them up). */
  async run(task: TaskInput<Task>, transfer: ArrayBuffer[] = []): Promise<Result> {
    if (this.#piscina.queueSize >= 2 * this.poolLimits.maxQueue) {
      throw new PosternError("POSTERN_POOL_FULL", `the ${this.what} queue is full (${2 * this.poolLimits.maxQueue} tasks wait)`);
    }
    const slot = this.#free.pop();
    if (slot === undefined) throw new PosternError("POSTERN_POOL_FULL", `the ${this.what} queue is full`);
    this.#clock[slot] = 0;
    const submitted = performance.now();
    const abort = new AbortController();
    this.#running.set(slot, abort);
    this.#watch();
    try {
      return (await this.#piscina.run({ ...task, slot }, { signal: abort.signal, transferList: transfer })) as Result;
    } catch (err) {
      if (abort.signal.aborted) throw new PosternError(this.errorCode, `a ${this.what} task took longer than ${this.poolLimits.taskTimeoutMs} ms: its worker was replaced`);
      throw new PosternError(this.errorCode, `${this.what} failed: ${(err as Error).message}`, { cause: err });
    } finally {
      this.#running.delete(slot);
      this.#free.push(slot);
      this.onTask?.((performance.now() - submitted) / 1000);
    }
  }

  /**
   * The deadline runs from when a worker picks a task up (waiting in the queue behind a hung
   * task is not that task's fault); one timer checks every running task while there are any.
   */
  #watch(): void {
    if (this.#watchdog) return;
    const limit = this.poolLimits.taskTimeoutMs;
    this.#watchdog = setInterval(() => {
      const now = Date.now();
      for (const [slot, abort] of this.#running) {
        const started = this.#clock[slot]!;
        if (started > 0 && now - started >= limit) abort.abort();
      }
      if (this.#running.size === 0) {
        clearInterval(this.#watchdog);
        this.#watchdog = undefined;
      }
    }, Math.max(10, Math.min(100, limit / 5)));
    this.#watchdog.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.#watchdog);
    await this.#piscina.destroy();
  }
}

const DEFAULT_THREADS = Math.max(1, Math.min(4, availableParallelism() - 1));

/** The body translation pool's settings. */
export const translateLimitsSchema = z.object({
  /** Worker threads (default: the cores but one, at most 4). */
  threads: integer(1, 256, DEFAULT_THREADS),
  /** Chunks waiting for a worker; past it new translations are refused (503), past twice it chunks fail. */
  maxQueue: integer(1, 1_000_000, 1024),
  /** One chunk running longer than this: its worker is replaced and the response fails, ms. */
  chunkTimeoutMs: integer(1, 600_000, 5_000), // 5 s
  /** Worker time one response may use in all, ms; past it the response fails. */
  budgetMs: z.number({ error: "must be a number" }).positive({ error: "must be above 0" }).max(600_000, { error: "must be at most 600000" }).default(5_000), // 5 s
  /**
   * Bodies that come whole (identity encoding, a known length) up to this size are rewritten on
   * the event loop, not on the pool: cheaper for small pages. 0: always the pool.
   */
  inlineMaxBytes: integer(0, 16 * 1024 * 1024, 64 * 1024), // 64 KiB
  /** Decoded (gunzipped, ...) bytes one response may produce; past it the response fails. */
  maxDecodedBytes: integer(1024, 4 * 1024 * 1024 * 1024, 32 * 1024 * 1024), // 32 MiB
}).strict();

export type TranslateLimits = Resolved<z.output<typeof translateLimitsSchema>>;
export type TranslateLimitsInput = z.input<typeof translateLimitsSchema>;

/** The token and cookie crypto pool's settings. */
export const authPoolSchema = z.object({
  /** Worker threads. */
  threads: integer(1, 256, 1),
  /** Tasks waiting for a worker; past it sign-ins are refused (503), past twice they fail. */
  maxQueue: integer(1, 1_000_000, 4096),
  /** One task running longer than this: its worker is replaced and the task fails, ms. */
  taskTimeoutMs: integer(1, 600_000, 2_000), // 2 s
}).strict();

export type AuthPoolInput = z.input<typeof authPoolSchema>;

/** Most chunks sent to a worker in one message. */
const MAX_BATCH = 32;

/** One chunk of a response body to translate. */
export interface ChunkInput {
  readonly kind: BodyKind;
  readonly state: RewriteState | undefined;
  /** The chunk's bytes, in pieces (the writes that made it); they are copied, not kept. */
  readonly input: readonly Uint8Array[];
  readonly final: boolean;
  readonly links: TenantLinks;
}

export interface ChunkOutput {
  readonly out: Buffer;
  readonly state: RewriteState;
  /** Worker time the chunk took, ms (a response's budget counts it). */
  readonly ms: number;
}

interface Waiting {
  readonly chunk: ChunkInput;
  readonly resolve: (result: ChunkOutput) => void;
  readonly reject: (err: Error) => void;
}

function byteLength(pieces: readonly Uint8Array[]): number {
  let n = 0;
  for (const p of pieces) n += p.length;
  return n;
}

/**
 * Body translation (engine/workers/translate-task.ts). Chunks of every response that arrive in
 * the same event-loop turn go to a worker as one batch, their bytes packed into one buffer:
 * the cost of a round trip between threads is paid once per turn, not per chunk. A batch that
 * fails as a whole (its worker hung or died) is split and each chunk tried alone, so only the
 * chunk at fault fails its response.
 */
export class TranslatePool extends WorkerPool<BatchTask, BatchResult> {
  readonly limits: TranslateLimits;
  #waiting: Waiting[] = [];

  /** `filename` replaces the task module (tests wrap it to make a worker hang or crash). */
  constructor(limits: TranslateLimitsInput = {}, filename = taskFile("translate-task")) {
    const all = resolveSettings(translateLimitsSchema, limits, "translate");
    super({ threads: all.threads, maxQueue: all.maxQueue, taskTimeoutMs: all.chunkTimeoutMs }, filename, "POSTERN_TRANSLATE", "body translation");
    this.limits = all;
  }

  /** Translates one chunk. */
  translate(chunk: ChunkInput): Promise<ChunkOutput> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ chunk, resolve, reject });
      if (this.#waiting.length === 1) setImmediate(() => this.#flush());
      else if (this.#waiting.length >= MAX_BATCH) this.#flush();
    });
  }

  #flush(): void {
    const batch = this.#waiting;
    this.#waiting = [];
    if (batch.length > 0) this.#send(batch, true);
  }

  #send(batch: Waiting[], retryAlone: boolean): void {
    // The inputs are copied into the batch's buffer, which is moved to the worker; the
    // originals stay here until the batch is done, so a failed batch can be retried chunk by chunk.
    const sizes = batch.map((w) => byteLength(w.chunk.input));
    const input = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
    let at = 0;
    for (const w of batch) for (const piece of w.chunk.input) {
      input.set(piece, at);
      at += piece.length;
    }
    const links: Record<string, readonly LinkMapping[]> = {};
    const chunks = batch.map(({ chunk }, i) => {
      links[chunk.links.key] = chunk.links.mappings;
      return { kind: chunk.kind, state: chunk.state, length: sizes[i]!, final: chunk.final, linksKey: chunk.links.key };
    });
    this.run({ input, chunks, links }, [input.buffer]).then(
      ({ output, chunks: outcomes }) => {
        let from = output.byteOffset;
        batch.forEach((w, i) => {
          const r = outcomes[i]!;
          if (!r.ok) return w.reject(new PosternError("POSTERN_TRANSLATE", `body translation failed: ${r.error}`));
          w.resolve({ out: Buffer.from(output.buffer, from, r.length), state: r.state, ms: r.ms });
          from += r.length;
        });
      },
      (err: Error) => {
        if (!retryAlone || batch.length === 1) return batch.forEach((w) => w.reject(err));
        for (const w of batch) this.#send([w], false);
      },
    );
  }
}
