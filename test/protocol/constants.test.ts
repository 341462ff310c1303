import { describe, expect, it } from "vitest";
import * as C from "../../engine/protocol/constants.js";

// Every wire constant, pinned: a change here is a protocol version change (docs/protocol.md).
describe("wire constants", () => {
  it("keep their values", () => {
    expect(C.HELLO_MAGIC).toBe(0x5053544e);
    expect(Buffer.from("PSTN").readUInt32BE(0)).toBe(C.HELLO_MAGIC);
    expect(C.PROTOCOL_VERSION).toBe(1);
    expect(C.FRAME_HEADER_SIZE).toBe(9);
    expect(C.MAX_LENGTH_FIELD).toBe(0xffffff);
    expect(C.MAX_STREAM_ID).toBe(0x7fffffff);
    expect(C.MAX_WINDOW).toBe(0x7fffffff);
    expect(C.FrameType).toEqual({
      HELLO: 0x0, SETTINGS: 0x1, OPEN: 0x2, RESPONSE: 0x3, DATA: 0x4, END: 0x5,
      RESET: 0x6, WINDOW_UPDATE: 0x7, PING: 0x8, GOAWAY: 0x9,
    });
    expect(C.FRAME_TYPE_COUNT).toBe(10);
    expect(C.Flag).toEqual({ ACK: 0x1 });
    expect(C.WireError).toEqual({
      NO_ERROR: 0x0, PROTOCOL_ERROR: 0x1, INTERNAL_ERROR: 0x2, FLOW_CONTROL_ERROR: 0x3,
      STREAM_CLOSED: 0x5, FRAME_SIZE_ERROR: 0x6, REFUSED_STREAM: 0x7, CANCEL: 0x8,
      ENHANCE_YOUR_CALM: 0xb, HANDSHAKE_FAILED: 0x20, BACKEND_UNREACHABLE: 0x100,
      BACKEND_TIMEOUT: 0x101, TARGET_FORBIDDEN: 0x102, BACKEND_INVALID_RESPONSE: 0x103,
    });
    expect(C.RESET_PAYLOAD_SIZE).toBe(4);
    expect(C.WINDOW_UPDATE_PAYLOAD_SIZE).toBe(4);
    expect(C.PING_PAYLOAD_SIZE).toBe(8);
    expect(C.GOAWAY_FIXED_SIZE).toBe(8);
    expect(C.GOAWAY_MAX_DEBUG).toBe(256);
    expect(C.HELLO_PREFIX_SIZE).toBe(6);
    expect(C.MAX_CONTROL_BODY).toBe(16 * 1024);
  });
});
