import { describe, expect, it } from "vitest";
import { DeadlineWheel } from "../../engine/limits/deadlines.js";

describe("deadline wheel", () => {
  it("fires each deadline once, within one tick after it is due, and never a cleared one", async () => {
    let now = 1_000;
    const wheel = new DeadlineWheel(100, () => now);
    const fired: string[] = [];
    const a = wheel.set(() => fired.push("a"), 250);
    wheel.set(() => fired.push("b"), 50);
    const c = wheel.set(() => fired.push("c"), 250);
    wheel.clear(c);
    wheel.clear(c); // twice is harmless
    now += 120;
    await new Promise((r) => setTimeout(r, 150));
    expect(fired).toEqual(["b"]);
    now += 200;
    await new Promise((r) => setTimeout(r, 150));
    expect(fired).toEqual(["b", "a"]);
    wheel.clear(a); // after firing: no effect
    now += 1000;
    await new Promise((r) => setTimeout(r, 150));
    expect(fired).toEqual(["b", "a"]);
  });
});
