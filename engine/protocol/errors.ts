/**
 * The one catalogue of Postern's error codes. Every error a module throws or emits is a
 * PosternError with a code from here; callers branch on `err.code` (and `err.retryable`),
 * never on message text. docs/errors.md documents the same table and a test keeps the two in
 * step.
 */

interface ErrorSpec {
  /** Whether retrying the same operation (on another stream or connection) can succeed. */
  readonly retryable: boolean;
  /** One line: when this happens. */
  readonly when: string;
}

export const ERRORS = {
  // --- wire protocol, connection level (the connection is closed) ---
  /** A frame broke the protocol: bad header, unknown type, wrong stream id, bad payload. */
  POSTERN_PROTOCOL: { retryable: true, when: "the peer sent a frame that breaks the protocol; the connection is closed" },
  /** A frame was larger than the negotiated limit for its type. */
  POSTERN_FRAME_SIZE: { retryable: true, when: "the peer sent a frame longer than maxFrameSize or maxHeaderBlock; the connection is closed" },
  /** DATA beyond the granted window, or a WINDOW_UPDATE that overflows 2^31-1. */
  POSTERN_FLOW_CONTROL: { retryable: true, when: "the peer sent data beyond its window or overflowed a window; the connection is closed" },
  /** The peer flooded us (rapid reset, pings, settings): the HTTP/2 ENHANCE_YOUR_CALM case. */
  POSTERN_FLOOD: { retryable: true, when: "the peer exceeded a rate limit (open+reset, ping or settings flood); the connection is closed" },
  /** HELLO missing, late, of an unsupported version, or refused by the verifier. */
  POSTERN_HANDSHAKE: { retryable: false, when: "the HELLO exchange failed: wrong magic or version, timeout, or the peer's identity was refused" },
  /** No frame (not even a PING ACK) arrived for two ping intervals. */
  POSTERN_PING_TIMEOUT: { retryable: true, when: "the peer stopped answering pings; the connection is presumed dead and closed" },
  /** The transport (WebSocket) closed or failed under the session. */
  POSTERN_TRANSPORT_CLOSED: { retryable: true, when: "the underlying connection closed or failed" },
  /** The peer stopped reading and our outbound buffer passed its hard limit. */
  POSTERN_TRANSPORT_OVERFLOW: { retryable: true, when: "the peer does not read: outbound bytes buffered in the transport passed maxTransportBuffer" },
  /** The session was closed locally; operations after close fail with this. */
  POSTERN_SESSION_CLOSED: { retryable: true, when: "an operation was attempted on a session that is closed" },

  // --- wire protocol, stream level (only the stream fails) ---
  /** The peer refused a new stream (over its concurrency limit, or after GOAWAY). */
  POSTERN_STREAM_REFUSED: { retryable: true, when: "the peer refused the stream before processing it (concurrency limit or draining); safe to retry elsewhere" },
  /** The session is draining (GOAWAY sent or received); new streams go elsewhere. */
  POSTERN_GOAWAY: { retryable: true, when: "the session is draining after GOAWAY; open the stream on another connection" },
  /** The peer reset the stream with a code; `wireCode` tells which. */
  POSTERN_STREAM_RESET: { retryable: false, when: "the peer reset the stream" },
  /** A stream's own misuse: write after end, respond twice, invalid head. */
  POSTERN_STREAM_STATE: { retryable: false, when: "a stream was used in a state that does not allow the call (write after end, second response head)" },

  // --- configuration ---
  /** A configuration field failed validation; the message names the field. */
  POSTERN_CONFIG: { retryable: false, when: "a configuration value is missing, of the wrong type, or out of range; the message names the field" },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export class PosternError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  /** For errors that came from (or go onto) the wire: the RESET/GOAWAY code. */
  readonly wireCode: number | undefined;

  constructor(code: ErrorCode, message: string, options?: { wireCode?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "PosternError";
    this.code = code;
    this.retryable = ERRORS[code].retryable;
    this.wireCode = options?.wireCode;
  }
}

export function isPosternError(err: unknown, code?: ErrorCode): err is PosternError {
  return err instanceof PosternError && (code === undefined || err.code === code);
}
