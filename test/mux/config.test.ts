import { describe, expect, it } from "vitest";
import { DEFAULT_MUX_CONFIG, resolveMuxConfig } from "../../engine/mux/config.js";

describe("mux config", () => {
  it("fills defaults and freezes", () => {
    const c = resolveMuxConfig({ maxConcurrentStreams: 10 });
    expect(c.maxConcurrentStreams).toBe(10);
    expect(c.initialStreamWindow).toBe(DEFAULT_MUX_CONFIG.initialStreamWindow);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it.each([
    [{ maxConcurrentStreams: -1 }, /maxConcurrentStreams must be between/],
    [{ initialStreamWindow: 2 ** 31 }, /initialStreamWindow must be between/],
    [{ maxStreamWindow: 2 ** 31 }, /maxStreamWindow must be between/],
    [{ maxFrameSize: 1.5 }, /maxFrameSize must be an integer/],
    [{ pingIntervalMs: "15s" }, /pingIntervalMs must be a number/],
    [{ windowSize: 5 }, /windowSize is not a known setting/],
    [{ capabilities: [1] }, /capabilities\.0 must be a string/],
    [{ capabilities: "x" }, /capabilities must be an array of strings/],
    [{ transportHighWater: 10, maxTransportBuffer: 5 }, /transportHighWater must not exceed/],
  ])("rejects %j naming the field", (input, message) => {
    expect(() => resolveMuxConfig(input as never)).toThrow(message);
    expect(() => resolveMuxConfig(input as never)).toThrow(expect.objectContaining({ code: "POSTERN_CONFIG" }));
  });
});
