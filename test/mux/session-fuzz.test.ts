import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FrameType } from "../../engine/protocol/constants.js";
import { PosternError } from "../../engine/errors/catalogue.js";
import { encodeRequestHead } from "../../engine/protocol/heads.js";
import type { Stream } from "../../engine/mux/stream.js";
import { serverWithRawClient } from "./helpers.js";

// A peer sending random (well-framed) frames after the handshake: the session either keeps
// going or closes with a PosternError; nothing escapes as an exception, and it never holds
// more than its limits.
const frame = fc.record({
  type: fc.integer({ min: 1, max: 9 }),
  flags: fc.constantFrom(0, 1),
  id: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 12 })),
  payload: fc.oneof(
    fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
    fc.constant(encodeRequestHead({ method: "GET", target: "/", headers: [] })),
    fc.integer({ min: 0, max: 0xffffffff }).map((n) => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(n);
      return b;
    }),
  ),
});

describe("session under random frames (fast-check, time-boxed)", () => {
  it("closes with a PosternError or carries on; never throws", async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown): void => void uncaught.push(e);
    process.on("uncaughtException", onUncaught);
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(frame, { minLength: 1, maxLength: 30 }), async (frames) => {
          const { server, raw } = await serverWithRawClient({ pingIntervalMs: 0 });
          server.on("stream", (s: Stream) => s.on("data", () => {}));
          let closeErr: unknown = "open";
          server.on("close", (e) => (closeErr = e));
          raw.send((w) => {
            for (const f of frames) {
              // Keep the header itself valid so the frame reaches the session's rules.
              const zeroOnly = f.type === FrameType.SETTINGS || f.type === FrameType.PING || f.type === FrameType.GOAWAY;
              w.frame(f.type as FrameType, f.flags, zeroOnly ? 0 : f.id || 1, f.payload);
            }
          });
          await new Promise((r) => setTimeout(r, 2));
          if (closeErr !== "open" && closeErr !== undefined) expect(closeErr).toBeInstanceOf(PosternError);
          expect(server.bufferedBytes).toBeLessThanOrEqual(server.config.maxSessionBuffer + server.config.connectionWindow);
          server.close();
        }),
        { numRuns: 300, interruptAfterTimeLimit: 20_000 },
      );
    } finally {
      process.off("uncaughtException", onUncaught);
    }
    expect(uncaught).toEqual([]);
  });
});
