import { describe, expect, it } from "vitest";
import { Backoff } from "../../../control/client/backoff.js";

describe("reconnect backoff", () => {
  it("grows exponentially with full jitter up to its cap, and starts over after a reset", () => {
    const low = new Backoff({ initialMs: 500, maxMs: 30_000, random: () => 0 });
    const high = new Backoff({ initialMs: 500, maxMs: 30_000, random: () => 0.999 });
    const lows = Array.from({ length: 10 }, () => low.next());
    const highs = Array.from({ length: 10 }, () => high.next());
    expect(lows.slice(0, 4)).toEqual([250, 500, 1000, 2000]);
    expect(highs.slice(0, 3).map((ms, i) => ms / [500, 1000, 2000][i]!)).toEqual([expect.closeTo(1, 2), expect.closeTo(1, 2), expect.closeTo(1, 2)]);
    expect(Math.max(...highs)).toBeLessThanOrEqual(30_000);
    expect(highs.at(-1)).toBeGreaterThan(29_000);
    low.reset();
    expect(low.next()).toBe(250);
    const spread = new Set(Array.from({ length: 50 }, () => new Backoff({ initialMs: 1000 }).next()));
    expect(spread.size).toBeGreaterThan(40); // jitter: a fleet does not come back in lockstep
  });
});
