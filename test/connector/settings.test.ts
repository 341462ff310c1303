import { describe, expect, it } from "vitest";
import { resolveConnectorSettings } from "../../connector/settings.js";

describe("connector settings", () => {
  it("fills every default, embeds the mux's own schema, and freezes", () => {
    const s = resolveConnectorSettings({ connectionsPerEngine: 2 });
    expect(s).toMatchObject({ connectionsPerEngine: 2, reconnectInitialMs: 500, reconnectMaxMs: 30_000, backendConnectionsPerOrigin: 256, backendBodyIdleMs: 300_000 });
    expect(s.mux.initialStreamWindow).toBe(256 * 1024);
    expect(Object.isFrozen(s)).toBe(true);
    expect(Object.isFrozen(s.mux)).toBe(true);
  });

  it.each([
    [{ connectionsPerEngine: 0 }, /connector: connectionsPerEngine must be between 1 and 64, got 0/],
    [{ backendKeepAliveMs: 1.5 }, /connector: backendKeepAliveMs must be an integer/],
    [{ tunnels: 4 }, /connector: tunnels is not a known setting/],
    [{ mux: { maxFrameSize: 1.5 } }, /connector: mux\.maxFrameSize must be an integer/],
    [{ mux: { windowSize: 1 } }, /connector: mux\.windowSize is not a known setting/],
  ])("refuses %j naming the field", (input, message) => {
    expect(() => resolveConnectorSettings(input as never)).toThrow(message);
    expect(() => resolveConnectorSettings(input as never)).toThrow(expect.objectContaining({ code: "POSTERN_CONFIG" }));
  });
});
