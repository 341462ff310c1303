/**
 * Wire constants of the Postern tunnel protocol (docs/protocol.md). A test pins every value:
 * changing one is a protocol version change.
 */

/** First bytes of every HELLO payload: "PSTN". */
export const HELLO_MAGIC = 0x5053544e;
/** The protocol version this build speaks. */
export const PROTOCOL_VERSION = 1;

/**
 * Fixed frame header, 9 bytes, network byte order (big-endian):
 *
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-----------------------------------------------+---------------+
 * |                 Length (24)                   |   Type (8)    |
 * +---------------+-+---------------------------------------------+
 * |   Flags (8)   |R|             Stream Identifier (31)          |
 * +---------------+-+---------------------------------------------+
 * |                    Payload (Length octets) ...
 * +---------------------------------------------------------------+
 */
export const FRAME_HEADER_SIZE = 9;
/** Largest value the 24-bit length field can carry; negotiated limits are lower. */
export const MAX_LENGTH_FIELD = 0xffffff;
/** Largest stream id and largest window (31 bits). */
export const MAX_STREAM_ID = 0x7fffffff;
export const MAX_WINDOW = 0x7fffffff;

export const FrameType = {
  /** Stream 0. Magic, version, msgpack map of capabilities, settings and extensions. */
  HELLO: 0x0,
  /** Stream 0. msgpack map of settings that may change mid-connection; ACK flag answers it. */
  SETTINGS: 0x1,
  /** Opens a stream; payload is the msgpack request head. */
  OPEN: 0x2,
  /** Answers an OPEN; payload is the msgpack response head. */
  RESPONSE: 0x3,
  /** Raw body bytes; counts against the stream and connection windows. */
  DATA: 0x4,
  /** Half-close: the sender will send nothing more on this stream. Empty payload. */
  END: 0x5,
  /** Aborts a stream; payload is a 32-bit error code. */
  RESET: 0x6,
  /** Grants flow-control credit; payload is a 31-bit increment. Stream 0 = connection. */
  WINDOW_UPDATE: 0x7,
  /** Stream 0. 8 opaque bytes; ACK flag echoes them. */
  PING: 0x8,
  /** Stream 0. Last processed peer stream id (32), error code (32), optional UTF-8 debug text. */
  GOAWAY: 0x9,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];
/** Number of defined types; a type >= this is a protocol error. */
export const FRAME_TYPE_COUNT = 10;

export const Flag = {
  /** On SETTINGS and PING: this frame answers the peer's. */
  ACK: 0x1,
} as const;

/**
 * Error codes carried by RESET and GOAWAY. 0x0-0xff follow HTTP/2 (RFC 9113 §7) where the
 * meaning is the same; 0x100-0x1ff are Postern's application codes (the proxy's own reasons to
 * fail a request), which the engine maps to the page the user sees.
 */
export const WireError = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  ENHANCE_YOUR_CALM: 0xb,
  /** The HELLO exchange failed (version, identity). Postern-specific. */
  HANDSHAKE_FAILED: 0x20,
  /** The connector could not connect to the backend (maps to 502). */
  BACKEND_UNREACHABLE: 0x100,
  /** The backend sent no response head in time (maps to 504). */
  BACKEND_TIMEOUT: 0x101,
  /** The connector refused the target: not an internal URL it may reach (maps to 502). */
  TARGET_FORBIDDEN: 0x102,
  /** The backend answered with something that cannot be forwarded (maps to 502). */
  BACKEND_INVALID_RESPONSE: 0x103,
} as const;
export type WireError = (typeof WireError)[keyof typeof WireError];

/** Fixed payload sizes of control frames; any other length is a FRAME_SIZE error. */
export const RESET_PAYLOAD_SIZE = 4;
export const WINDOW_UPDATE_PAYLOAD_SIZE = 4;
export const PING_PAYLOAD_SIZE = 8;
/** GOAWAY: 8 fixed bytes plus at most this much debug text. */
export const GOAWAY_FIXED_SIZE = 8;
export const GOAWAY_MAX_DEBUG = 256;
/** HELLO: 4 magic + 2 version bytes precede the msgpack body. */
export const HELLO_PREFIX_SIZE = 6;
/** HELLO and SETTINGS bodies are small maps; anything larger is refused before decoding. */
export const MAX_CONTROL_BODY = 16 * 1024;
