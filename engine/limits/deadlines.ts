/**
 * Per-request deadlines (backend timeout, body idle) on a coarse wheel: one 100 ms tick for
 * all of them instead of a Node Timeout object per request, set and cleared in O(1). A
 * deadline fires at most one tick late, well inside the ±1 s the 85 s / 180 s timeouts allow.
 */
import { systemClock, type Clock } from "../config/clock.js";

export interface Timers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

interface Deadline {
  fn: () => void;
  bucket: number;
}

export class DeadlineWheel implements Timers {
  readonly #buckets = new Map<number, Set<Deadline>>();
  #timer: NodeJS.Timeout | undefined;
  #count = 0;

  constructor(private readonly tickMs = 100, private readonly now: Clock = systemClock) {}

  set(fn: () => void, ms: number): Deadline {
    const deadline: Deadline = { fn, bucket: Math.ceil((this.now() + ms) / this.tickMs) };
    let set = this.#buckets.get(deadline.bucket);
    if (!set) this.#buckets.set(deadline.bucket, (set = new Set()));
    set.add(deadline);
    if (this.#count++ === 0) this.#start();
    return deadline;
  }

  clear(handle: unknown): void {
    const deadline = handle as Deadline | undefined;
    if (!deadline) return;
    const set = this.#buckets.get(deadline.bucket);
    if (set?.delete(deadline)) {
      if (set.size === 0) this.#buckets.delete(deadline.bucket);
      if (--this.#count === 0) this.#stop();
    }
  }

  #start(): void {
    this.#timer = setInterval(() => this.#tick(), this.tickMs);
    this.#timer.unref();
  }

  #stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #tick(): void {
    const current = Math.floor(this.now() / this.tickMs);
    for (const [bucket, set] of this.#buckets) {
      if (bucket > current) continue;
      this.#buckets.delete(bucket);
      for (const deadline of set) {
        this.#count--;
        deadline.fn();
      }
    }
    if (this.#count === 0) this.#stop();
  }
}
