/**
 * Reconnect delays with exponential growth and full jitter (AWS architecture blog's "full
 * jitter"), so a fleet of connectors that lost an engine at the same instant does not come
 * back at the same instant.
 */
export interface BackoffOptions {
  readonly initialMs?: number; // 500
  readonly maxMs?: number; // 30_000
  readonly random?: () => number;
}

export class Backoff {
  #attempt = 0;
  readonly #initial: number;
  readonly #max: number;
  readonly #random: () => number;

  constructor(options: BackoffOptions = {}) {
    this.#initial = options.initialMs ?? 500;
    this.#max = options.maxMs ?? 30_000;
    this.#random = options.random ?? Math.random;
  }

  /** The next delay: uniform in [cap/2, cap] where cap doubles per attempt up to maxMs. */
  next(): number {
    const cap = Math.min(this.#max, this.#initial * 2 ** Math.min(this.#attempt, 30));
    this.#attempt++;
    return Math.round(cap / 2 + (this.#random() * cap) / 2);
  }

  reset(): void {
    this.#attempt = 0;
  }
}
