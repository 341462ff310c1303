/**
 * How many lines of one kind a process logs per second: a client that sends garbage in a loop
 * must not fill the disk or drown the lines that matter. Past the budget lines are dropped and
 * counted; the next line that gets through says how many were dropped.
 */
export class LogBudget {
  #second = 0;
  #used = 0;
  #dropped = 0;

  constructor(private readonly perSecond: number = 10) {}

  /** Whether a line may go out now; when it may, how many were dropped since the last one. */
  take(now = Date.now()): { ok: true; dropped: number } | { ok: false } {
    const second = Math.floor(now / 1000);
    if (second !== this.#second) {
      this.#second = second;
      this.#used = 0;
    }
    if (this.#used >= this.perSecond) {
      this.#dropped++;
      return { ok: false };
    }
    this.#used++;
    const dropped = this.#dropped;
    this.#dropped = 0;
    return { ok: true, dropped };
  }
}
