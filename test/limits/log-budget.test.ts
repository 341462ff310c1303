import { describe, expect, it } from "vitest";
import { LogBudget } from "../../engine/limits/log-budget.js";

describe("log budget", () => {
  it("lets N lines a second through, then counts the dropped ones and reports them with the next line", () => {
    const budget = new LogBudget(3);
    const at = 1_000_000;
    expect([1, 2, 3].map(() => budget.take(at).ok)).toEqual([true, true, true]);
    expect(budget.take(at + 10).ok).toBe(false);
    expect(budget.take(at + 20).ok).toBe(false);
    expect(budget.take(at + 1000)).toEqual({ ok: true, dropped: 2 });
    expect(budget.take(at + 1001)).toEqual({ ok: true, dropped: 0 });
  });
});
