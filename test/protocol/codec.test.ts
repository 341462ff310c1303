import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FrameType, WireError } from "../../engine/protocol/constants.js";
import { PosternError } from "../../engine/errors/catalogue.js";
import { FrameDecoder, FrameWriter, encodeFrame } from "../../engine/protocol/frame.js";
import {
  decodeHello, decodeRequestHead, decodeResponseHead, encodeHello, encodeRequestHead, encodeResponseHead,
} from "../../engine/protocol/heads.js";

const limits = { maxFrameSize: 64 * 1024, maxHeaderBlock: 16 * 1024 };
type Frame = [number, number, number, string];

function decodeAll(chunks: Buffer[]): Frame[] {
  const out: Frame[] = [];
  const d = new FrameDecoder(limits, (t, f, id, p) => out.push([t, f, id, p.toString("hex")]));
  for (const c of chunks) d.push(c);
  expect(d.bufferedBytes).toBe(0);
  return out;
}

describe("frame codec", () => {
  it("encodes the header as drawn in the spec", () => {
    const b = encodeFrame(FrameType.DATA, 0, 0x01020304, Buffer.from("abc"));
    expect([...b]).toEqual([0, 0, 3, 4, 0, 1, 2, 3, 4, 0x61, 0x62, 0x63]);
  });

  it("round-trips a batch and survives a split at every byte boundary", () => {
    const w = new FrameWriter();
    w.frame(FrameType.OPEN, 0, 1, encodeRequestHead({ method: "GET", target: "/x?y=1", headers: ["host", "a", "x-b", "c"] }));
    w.frame(FrameType.DATA, 0, 1, Buffer.alloc(300, 7));
    w.frame(FrameType.END, 0, 1);
    w.frameU32(FrameType.RESET, 3, WireError.CANCEL);
    w.frameU32(FrameType.WINDOW_UPDATE, 0, 65536);
    w.frame(FrameType.PING, 1, 0, Buffer.alloc(8, 9));
    const batch = w.take();
    const whole = decodeAll([batch]);
    expect(whole.map(([t, f, id, p]) => [t, f, id, p.length])).toEqual([
      [FrameType.OPEN, 0, 1, whole[0]![3].length], [FrameType.DATA, 0, 1, 600], [FrameType.END, 0, 1, 0],
      [FrameType.RESET, 0, 3, 8], [FrameType.WINDOW_UPDATE, 0, 0, 8], [FrameType.PING, 1, 0, 16],
    ]);
    expect(decodeRequestHead(Buffer.from(whole[0]![3], "hex"))).toEqual({ method: "GET", target: "/x?y=1", headers: ["host", "a", "x-b", "c"] });
    expect(Buffer.from(whole[3]![3], "hex").readUInt32BE(0)).toBe(WireError.CANCEL);
    for (let i = 0; i <= batch.length; i++) {
      expect(decodeAll([batch.subarray(0, i), batch.subarray(i)])).toEqual(whole);
    }
    // One byte at a time.
    expect(decodeAll([...batch].map((b) => Buffer.from([b])))).toEqual(whole);
  });

  it("a header-only frame followed by its payload as the next input decodes to the same frame", () => {
    const payload = Buffer.alloc(20_000, 3);
    const w = new FrameWriter();
    w.frame(FrameType.END, 0, 3);
    w.frameHeader(FrameType.DATA, 0, 5, payload.length);
    const head = w.take();
    expect(head.length).toBe(18);
    const expected: Frame[] = [[FrameType.END, 0, 3, ""], [FrameType.DATA, 0, 5, payload.toString("hex")]];
    // Payload exactly as the next message (zero-copy path), with a following frame, and split.
    expect(decodeAll([head, payload])).toEqual(expected);
    const next = encodeFrame(FrameType.END, 0, 5);
    expect(decodeAll([head, Buffer.concat([payload, next])])).toEqual([...expected, [FrameType.END, 0, 5, ""]]);
    expect(decodeAll([head, payload.subarray(0, 7), payload.subarray(7)])).toEqual(expected);
  });

  it("rejects an oversized length from the header alone, before the payload arrives", () => {
    const header = encodeFrame(FrameType.DATA, 0, 1, Buffer.alloc(0));
    header[0] = 0x01;
    header[2] = 0x01; // length 0x010001: one byte over the 64 KiB limit
    const d = new FrameDecoder(limits, () => {});
    expect(() => d.push(header)).toThrow(expect.objectContaining({ code: "POSTERN_FRAME_SIZE" }));
    expect(d.bufferedBytes).toBe(0);
  });

  it.each([
    ["unknown type", Buffer.from([0, 0, 0, 0x0a, 0, 0, 0, 0, 1]), "POSTERN_PROTOCOL"],
    ["DATA on stream 0", encodeFrame(FrameType.DATA, 0, 0, Buffer.alloc(1)), "POSTERN_PROTOCOL"],
    ["PING on a stream", encodeFrame(FrameType.PING, 0, 5, Buffer.alloc(8)), "POSTERN_PROTOCOL"],
    ["short PING", encodeFrame(FrameType.PING, 0, 0, Buffer.alloc(7)), "POSTERN_FRAME_SIZE"],
    ["END with payload", encodeFrame(FrameType.END, 0, 1, Buffer.alloc(1)), "POSTERN_FRAME_SIZE"],
    ["RESET of 3 bytes", encodeFrame(FrameType.RESET, 0, 1, Buffer.alloc(3)), "POSTERN_FRAME_SIZE"],
    ["huge head", encodeFrame(FrameType.OPEN, 0, 1, Buffer.alloc(16 * 1024 + 1)), "POSTERN_FRAME_SIZE"],
    ["empty OPEN", encodeFrame(FrameType.OPEN, 0, 1), "POSTERN_FRAME_SIZE"],
    ["long GOAWAY debug", encodeFrame(FrameType.GOAWAY, 0, 0, Buffer.alloc(8 + 257)), "POSTERN_FRAME_SIZE"],
  ])("rejects %s", (_name, bytes, code) => {
    const d = new FrameDecoder(limits, () => {});
    expect(() => d.push(bytes)).toThrow(expect.objectContaining({ code }));
    // After a protocol error the decoder refuses further input.
    expect(() => d.push(Buffer.alloc(0))).toThrow(PosternError);
  });

  it("heads and HELLO round-trip and reject bad shapes", () => {
    expect(decodeResponseHead(encodeResponseHead({ status: 204, headers: [] }))).toEqual({ status: 204, headers: [] });
    const settings = { maxConcurrentStreams: 1, initialStreamWindow: 2, connectionWindow: 3, maxFrameSize: 4, maxHeaderBlock: 5 };
    const hello = decodeHello(encodeHello({ capabilities: ["a"], settings, ext: { challenge: "x" } }));
    expect(hello).toEqual({ version: 1, capabilities: ["a"], settings, ext: { challenge: "x" } });
    const bad = encodeHello({ capabilities: [], settings, ext: {} });
    bad.writeUInt16BE(2, 4);
    expect(() => decodeHello(bad)).toThrow(/version 2/);
    expect(() => decodeRequestHead(encodeRequestHead({ method: "GET", target: "/", headers: ["x", "a\r\nb"] }))).toThrow(/invalid value/);
    expect(() => decodeRequestHead(encodeRequestHead({ method: "G T", target: "/", headers: [] }))).toThrow(/method/);
    expect(() => decodeResponseHead(encodeResponseHead({ status: 42, headers: [] }))).toThrow(/status/);
    expect(() => decodeResponseHead(Buffer.from([0xc1]))).toThrow(expect.objectContaining({ code: "POSTERN_PROTOCOL" }));
  });

  it("carries the stream-open record typed, and refuses one with a field of the wrong type", () => {
    const ext = { app: "Wiki", tenant: "default", requestId: "r-1", timeoutMs: 85_000, body: true, length: 12, upgrade: false };
    const head = { method: "POST", target: "/wiki/", headers: ["host", "wiki"], ext };
    expect(decodeRequestHead(encodeRequestHead(head))).toEqual(head);
    const { length: _length, upgrade: _upgrade, ...minimal } = ext;
    expect(decodeRequestHead(encodeRequestHead({ ...head, ext: minimal })).ext).toEqual(minimal);
    const bad = (patch: Record<string, unknown>) => () => decodeRequestHead(encodeRequestHead({ ...head, ext: { ...ext, ...patch } as never }));
    expect(bad({ app: 7 })).toThrow(/ext\.app must be a string/);
    expect(bad({ app: "x".repeat(300) })).toThrow(/ext\.app must be a string of at most 256/);
    expect(bad({ timeoutMs: -1 })).toThrow(/ext\.timeoutMs must be an integer >= 0/);
    expect(bad({ length: 1.5 })).toThrow(/ext\.length/);
    expect(bad({ body: "yes" })).toThrow(/ext\.body must be a boolean/);
    expect(bad({ upgrade: 1 })).toThrow(expect.objectContaining({ code: "POSTERN_PROTOCOL" }));
    expect(() => decodeRequestHead(encodeRequestHead({ ...head, ext: [] as never }))).toThrow(/ext must be a map/);
  });
});

describe("decoder under random input (fast-check)", () => {
  // Random bytes, random splits: the decoder either yields frames that respect the limits or
  // throws a PosternError; it never throws anything else, never keeps more than one frame's
  // worth of bytes, and always returns.
  it("never fails except with a protocol error", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 20 }), (chunks) => {
        const small = { maxFrameSize: 100, maxHeaderBlock: 50 };
        const d = new FrameDecoder(small, (type, _f, _id, payload) => {
          expect(type).toBeLessThan(10);
          expect(payload.length).toBeLessThanOrEqual(16 * 1024 + 6);
        });
        try {
          for (const c of chunks) {
            d.push(Buffer.from(c));
            expect(d.bufferedBytes).toBeLessThanOrEqual(9 + 16 * 1024 + 6);
          }
        } catch (err) {
          expect(err).toBeInstanceOf(PosternError);
          expect(["POSTERN_PROTOCOL", "POSTERN_FRAME_SIZE"]).toContain((err as PosternError).code);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("valid frames, truncated anywhere, leave the rest pending and never throw", () => {
    const frame = fc.record({
      type: fc.constantFrom(FrameType.DATA, FrameType.END, FrameType.RESET, FrameType.WINDOW_UPDATE),
      id: fc.integer({ min: 1, max: 0x7fffffff }),
      len: fc.integer({ min: 0, max: 100 }),
    });
    fc.assert(
      fc.property(fc.array(frame, { minLength: 1, maxLength: 10 }), fc.nat(), (frames, cut) => {
        const w = new FrameWriter();
        for (const f of frames) {
          const n = f.type === FrameType.DATA ? f.len : f.type === FrameType.END ? 0 : 4;
          w.frame(f.type, 0, f.id, Buffer.alloc(n, 1));
        }
        const bytes = w.take();
        const at = cut % (bytes.length + 1);
        const seen: number[] = [];
        const d = new FrameDecoder(limits, (_t, _f, id) => seen.push(id));
        d.push(bytes.subarray(0, at));
        d.push(bytes.subarray(at));
        expect(seen).toEqual(frames.map((f) => f.id));
        expect(d.bufferedBytes).toBe(0);
      }),
      { numRuns: 500 },
    );
  });

  it("heads decode random msgpack-ish bytes without anything but protocol errors", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        for (const decode of [decodeRequestHead, decodeResponseHead]) {
          try {
            decode(Buffer.from(bytes));
          } catch (err) {
            expect((err as PosternError).code).toBe("POSTERN_PROTOCOL");
          }
        }
      }),
      { numRuns: 2000 },
    );
  });
});
