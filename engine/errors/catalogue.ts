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
  /** The HTTP status an API answers with for this error (API errors only). */
  readonly status?: number;
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

  // --- edge ---
  /** A response body could not be translated: too large once decoded, over its worker-time budget, or its worker died. */
  POSTERN_TRANSLATE: { retryable: false, when: "link translation of a response body failed (decoded-size cap, worker-time budget, a hung or crashed worker, a corrupt encoding); only that response fails" },

  /** The identity provider could not be reached or answered something unusable. */
  POSTERN_AUTH_UNAVAILABLE: { retryable: true, when: "the identity provider's discovery document, keys or token endpoint could not be used; sign-in is unavailable until it answers" },

  // --- configuration ---
  /** A configuration field failed validation; the message names the field. */
  POSTERN_CONFIG: { retryable: false, when: "a configuration value is missing, of the wrong type, or out of range; the message names the field" },

  // --- control plane API (each answers with its HTTP status) ---
  /** No bearer token (or identity proof) on a request that needs one. */
  POSTERN_AUTH_REQUIRED: { retryable: false, status: 401, when: "the request carries no bearer token or identity proof" },
  /** The token failed verification: signature, issuer, audience, expiry or algorithm. */
  POSTERN_TOKEN_INVALID: { retryable: false, status: 401, when: "the bearer token is invalid: bad signature, other issuer or audience, expired, or a refused algorithm" },
  /** A connector or engine certificate proof was refused (unknown CA, expired, revoked, disabled). */
  POSTERN_IDENTITY_REFUSED: { retryable: false, status: 401, when: "a connector or engine identity proof was refused: unknown CA, expired or revoked certificate, disabled or deleted connector" },
  /** The caller's roles do not allow this operation. */
  POSTERN_FORBIDDEN: { retryable: false, status: 403, when: "the caller is authenticated but no role it holds allows this operation" },
  /** The named record does not exist. */
  POSTERN_NOT_FOUND: { retryable: false, status: 404, when: "the app, group, connector or route named in the request does not exist" },
  /** The request body is not JSON, too large, or not the expected media type. */
  POSTERN_BAD_REQUEST: { retryable: false, status: 400, when: "the request is malformed: not JSON, too large, or a parameter of the wrong form" },
  /** The body is well-formed but breaks a rule; `problems` names each field. */
  POSTERN_VALIDATION: { retryable: false, status: 422, when: "a setting breaks a rule (URL form, uniqueness, certificate); `problems` lists each field and reason" },
  /** A uniqueness clash or a record still in use. */
  POSTERN_CONFLICT: { retryable: false, status: 409, when: "the change clashes with existing state: a duplicate name or a record still in use" },
  /** An unexpected failure; details go to the log under the request id, not to the caller. */
  POSTERN_INTERNAL: { retryable: true, status: 500, when: "an unexpected failure inside the service; the request id finds the details in its log" },
  /** A certificate signing request was refused. */
  POSTERN_CSR_REJECTED: { retryable: false, status: 400, when: "a certificate signing request is malformed, tampered with, or uses a key type other than P-256" },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** The HTTP status an API answers with for `code`, if it is an API error. */
export function httpStatusOf(code: ErrorCode): number | undefined {
  return (ERRORS[code] as ErrorSpec).status;
}

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
