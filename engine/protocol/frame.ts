import {
  FRAME_HEADER_SIZE,
  FRAME_TYPE_COUNT,
  FrameType,
  GOAWAY_FIXED_SIZE,
  GOAWAY_MAX_DEBUG,
  HELLO_PREFIX_SIZE,
  MAX_CONTROL_BODY,
  MAX_LENGTH_FIELD,
  MAX_STREAM_ID,
  PING_PAYLOAD_SIZE,
  RESET_PAYLOAD_SIZE,
  WINDOW_UPDATE_PAYLOAD_SIZE,
} from "./constants.js";
import { PosternError } from "../errors/catalogue.js";

/** Receive-side limits the decoder enforces before it keeps a single payload byte. */
export interface DecoderLimits {
  /** Largest DATA payload accepted, in bytes. */
  readonly maxFrameSize: number;
  /** Largest OPEN / RESPONSE payload (msgpack head) accepted, in bytes. */
  readonly maxHeaderBlock: number;
}

/** Called once per complete frame. `payload` is a view into the decoder's input. */
export type FrameSink = (type: FrameType, flags: number, streamId: number, payload: Buffer) => void;

/** Where a frame type may appear: only on stream 0, only on a stream (id >= 1), or either. */
const StreamRule = { Zero: 0, NonZero: 1, Any: 2 } as const;
type StreamRule = (typeof StreamRule)[keyof typeof StreamRule];

interface FrameRule {
  readonly stream: StreamRule;
  readonly minLength: number;
  /** Upper bound; `null` means "the negotiated limit for this type" (see maxLengthFor). */
  readonly maxLength: number | null;
}

/** Static rules per type, indexed by type value, checked on the header alone. */
const RULES: readonly FrameRule[] = [
  /* HELLO */ { stream: StreamRule.Zero, minLength: HELLO_PREFIX_SIZE, maxLength: HELLO_PREFIX_SIZE + MAX_CONTROL_BODY },
  /* SETTINGS */ { stream: StreamRule.Zero, minLength: 0, maxLength: MAX_CONTROL_BODY },
  /* OPEN */ { stream: StreamRule.NonZero, minLength: 1, maxLength: null },
  /* RESPONSE */ { stream: StreamRule.NonZero, minLength: 1, maxLength: null },
  /* DATA */ { stream: StreamRule.NonZero, minLength: 0, maxLength: null },
  /* END */ { stream: StreamRule.NonZero, minLength: 0, maxLength: 0 },
  /* RESET */ { stream: StreamRule.NonZero, minLength: RESET_PAYLOAD_SIZE, maxLength: RESET_PAYLOAD_SIZE },
  /* WINDOW_UPDATE */ { stream: StreamRule.Any, minLength: WINDOW_UPDATE_PAYLOAD_SIZE, maxLength: WINDOW_UPDATE_PAYLOAD_SIZE },
  /* PING */ { stream: StreamRule.Zero, minLength: PING_PAYLOAD_SIZE, maxLength: PING_PAYLOAD_SIZE },
  /* GOAWAY */ { stream: StreamRule.Zero, minLength: GOAWAY_FIXED_SIZE, maxLength: GOAWAY_FIXED_SIZE + GOAWAY_MAX_DEBUG },
];

/**
 * Incremental frame decoder. Input may hold several frames, or end inside one (the tail is
 * kept until the next push). Each header is validated (type, stream id, length against the
 * limit for its type) before any of its payload is kept, so a hostile length never causes an
 * allocation. Violations throw PosternError (POSTERN_PROTOCOL / POSTERN_FRAME_SIZE); after a
 * throw the decoder is unusable and the connection must close.
 */
export class FrameDecoder {
  private tail: Buffer | null = null;
  private failed = false;

  constructor(
    private readonly limits: DecoderLimits,
    private readonly sink: FrameSink,
  ) {}

  /** Bytes held from an incomplete frame (bounded by one frame's size). */
  get bufferedBytes(): number {
    return this.tail === null ? 0 : this.tail.length;
  }

  push(chunk: Buffer): void {
    if (this.failed) throw new PosternError("POSTERN_PROTOCOL", "decoder used after a protocol error");
    let buf = chunk;
    let off = 0;
    const tail = this.tail;
    if (tail !== null) {
      this.tail = null;
      if (tail.length === FRAME_HEADER_SIZE && chunk.length >= readLength(tail, 0)) {
        // A header (already validated) ended the last input and its payload starts this one:
        // the usual shape of a large DATA frame sent as header + payload. Deliver the payload
        // as a view, with no copy.
        off = readLength(tail, 0);
        this.sink(tail[3]! as FrameType, tail[4]!, tail.readUInt32BE(5) & MAX_STREAM_ID, chunk.subarray(0, off));
        if (this.failed) return;
      } else {
        buf = Buffer.concat([tail, chunk]);
      }
    }
    const end = buf.length;
    try {
      while (end - off >= FRAME_HEADER_SIZE) {
        const length = readLength(buf, off);
        const type = buf[off + 3]!;
        const flags = buf[off + 4]!;
        // The reserved bit is ignored on receipt (RFC 9113 §4.1 does the same).
        const streamId = buf.readUInt32BE(off + 5) & MAX_STREAM_ID;
        this.check(type, streamId, length);
        if (end - off - FRAME_HEADER_SIZE < length) break;
        const start = off + FRAME_HEADER_SIZE;
        off = start + length;
        this.sink(type as FrameType, flags, streamId, buf.subarray(start, off));
        if (this.failed) return;
      }
    } catch (err) {
      this.failed = true;
      throw err;
    }
    if (off < end) this.tail = buf.subarray(off);
  }

  /** Stop decoding: later pushes throw, the kept tail is released. */
  fail(): void {
    this.failed = true;
    this.tail = null;
  }

  private check(type: number, streamId: number, length: number): void {
    if (type >= FRAME_TYPE_COUNT) {
      throw new PosternError("POSTERN_PROTOCOL", `unknown frame type 0x${type.toString(16)}`);
    }
    const rule = RULES[type]!;
    if (rule.stream === StreamRule.Zero && streamId !== 0) {
      throw new PosternError("POSTERN_PROTOCOL", `frame type 0x${type.toString(16)} on stream ${streamId}, must be stream 0`);
    }
    if (rule.stream === StreamRule.NonZero && streamId === 0) {
      throw new PosternError("POSTERN_PROTOCOL", `frame type 0x${type.toString(16)} on stream 0`);
    }
    const max = rule.maxLength ?? (type === FrameType.DATA ? this.limits.maxFrameSize : this.limits.maxHeaderBlock);
    if (length > max || length < rule.minLength) {
      throw new PosternError(
        "POSTERN_FRAME_SIZE",
        `frame type 0x${type.toString(16)} length ${length} outside ${rule.minLength}..${max}`,
      );
    }
  }
}

function readLength(buf: Buffer, off: number): number {
  return (buf[off]! << 16) | (buf[off + 1]! << 8) | buf[off + 2]!;
}

/**
 * Builds one transport message out of many frames. Frames are written straight into a
 * growable buffer; take() hands that buffer over (the transport may keep it) and the next
 * frame starts a fresh one.
 */
export class FrameWriter {
  private buf: Buffer = EMPTY;
  private len = 0;

  /** Bytes written since the last take(). */
  get size(): number {
    return this.len;
  }

  /** A frame with an optional payload (copied in). */
  frame(type: FrameType, flags: number, streamId: number, payload?: Uint8Array): void {
    const length = payload === undefined ? 0 : payload.length;
    const at = this.header(type, flags, streamId, length, length);
    if (length > 0) this.buf.set(payload!, at);
  }

  /** Only the header of a frame whose `length` payload bytes the caller sends right after. */
  frameHeader(type: FrameType, flags: number, streamId: number, length: number): void {
    this.header(type, flags, streamId, length, 0);
  }

  /** A frame whose payload is one 32-bit unsigned value (RESET, WINDOW_UPDATE). */
  frameU32(type: FrameType, streamId: number, value: number): void {
    const at = this.header(type, 0, streamId, 4, 4);
    this.buf.writeUInt32BE(value >>> 0, at);
  }

  /** Returns the bytes written so far and starts a new buffer. */
  take(): Buffer {
    const out = this.buf.subarray(0, this.len);
    this.buf = EMPTY;
    this.len = 0;
    return out;
  }

  /** Writes a header and reserves `reserve` payload bytes after it; returns the payload offset. */
  private header(type: number, flags: number, streamId: number, length: number, reserve: number): number {
    if (length > MAX_LENGTH_FIELD) throw new RangeError(`frame payload ${length} exceeds the 24-bit length field`);
    const need = this.len + FRAME_HEADER_SIZE + reserve;
    if (need > this.buf.length) this.grow(need);
    const b = this.buf;
    let o = this.len;
    b[o++] = length >>> 16;
    b[o++] = (length >>> 8) & 0xff;
    b[o++] = length & 0xff;
    b[o++] = type;
    b[o++] = flags;
    b.writeUInt32BE(streamId & MAX_STREAM_ID, o);
    o += 4;
    this.len = need;
    return o;
  }

  private grow(need: number): void {
    const next = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2, MIN_BATCH));
    if (this.len > 0) this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
}

const EMPTY = Buffer.alloc(0);
/** First allocation of a batch: small enough to come from Node's buffer pool. */
const MIN_BATCH = 1024;

/** Encodes a single frame into its own buffer (tests, tools). */
export function encodeFrame(type: FrameType, flags: number, streamId: number, payload?: Uint8Array): Buffer {
  const w = new FrameWriter();
  w.frame(type, flags, streamId, payload);
  return w.take();
}
