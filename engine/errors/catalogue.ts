/**
 * The one catalogue of Postern's error codes. Every error a module throws, emits or answers
 * with is a PosternError (or a page) with a code from here; callers branch on `err.code` (and
 * `err.retryable`), never on message text. Each entry says whether retrying helps, the HTTP
 * status it answers with, the page a user sees (edge errors), and the RESET code that carries
 * it through a tunnel (stream errors the connector reports). docs/errors.md documents the same
 * table and a test keeps the two in step.
 */
import { WireError } from "../protocol/constants.js";

interface ErrorSpec {
  /** Whether retrying the same operation (on another stream or connection) can succeed. */
  readonly retryable: boolean;
  /** One line: when this happens. */
  readonly when: string;
  /** The HTTP status a client gets for this error (API and edge errors). */
  readonly status?: number;
  /** The page a user's browser shows (edge errors): a title and the cause in plain words. */
  readonly page?: { readonly title: string; readonly cause: string };
  /** The tunnel RESET code that carries this error from connector to engine. */
  readonly wire?: number;
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

  // --- edge: what a user's request is answered with ---
  /** No app is published at the request's host and path. */
  POSTERN_NO_ROUTE: { retryable: false, status: 404, when: "no application is published at the request's host and path", page: { title: "Not found", cause: "No application is published at this address." } },
  /** CONNECT (or another method the edge never forwards). */
  POSTERN_METHOD_NOT_ALLOWED: { retryable: false, status: 405, when: "the method is one the edge never forwards (CONNECT)", page: { title: "Method not allowed", cause: "This service does not forward this method." } },
  /** An Expect other than 100-continue. */
  POSTERN_EXPECTATION_FAILED: { retryable: false, status: 417, when: "the request carries an Expect other than 100-continue", page: { title: "Expectation failed", cause: "The request asks for an expectation this service cannot meet." } },
  /** The request line or target is longer than maxUrlBytes. */
  POSTERN_URI_TOO_LONG: { retryable: false, status: 414, when: "the request target is longer than the edge accepts", page: { title: "URI too long", cause: "The request line is longer than this service accepts." } },
  /** Too many request headers, or too many bytes of them. */
  POSTERN_HEADERS_TOO_LARGE: { retryable: false, status: 431, when: "the request has more headers, or more header bytes, than the edge accepts", page: { title: "Request headers too large", cause: "The request has too many headers or they are too large." } },
  /** The request body stopped arriving for longer than bodyIdleMs. */
  POSTERN_BODY_TIMEOUT: { retryable: false, status: 408, when: "the request body stopped arriving for longer than the body idle timeout", page: { title: "Request timeout", cause: "The request body stopped arriving." } },
  /** The request or its headers never arrived whole within the header deadline. */
  POSTERN_HEADERS_TIMEOUT: { retryable: false, status: 408, when: "the request head did not arrive within the header deadline", page: { title: "Request timeout", cause: "The request did not arrive in time." } },
  /** The app is in maintenance mode. */
  POSTERN_MAINTENANCE: { retryable: true, status: 503, when: "the application is in maintenance mode", page: { title: "Down for maintenance", cause: "This application is in maintenance mode. Try again later." } },
  /** Over the app's or the tenant's request rate. */
  POSTERN_THROTTLED: { retryable: true, status: 429, when: "the application or tenant is over its request rate; Retry-After says when to come back", page: { title: "Too many requests", cause: "This application is receiving more requests than it is allowed. Try again shortly." } },
  /** A bounded queue or in-flight limit is full. */
  POSTERN_OVERLOADED: { retryable: true, status: 503, when: "a bounded queue or in-flight limit of the engine is full", page: { title: "Service busy", cause: "Too many requests are in progress. Try again shortly." } },
  /** The app's connector group has no connected connector. */
  POSTERN_NO_CONNECTOR: { retryable: true, status: 503, when: "no connector of the application's connector group is connected", page: { title: "No connector available", cause: "No connector in this application's connector group is connected, so the application cannot be reached." } },
  /** The connector could not connect to the backend. */
  POSTERN_BACKEND_UNREACHABLE: { retryable: true, status: 502, wire: WireError.BACKEND_UNREACHABLE, when: "the connector could not connect to the application's internal URL", page: { title: "Application unreachable", cause: "The connector could not reach the application's internal URL." } },
  /** No response head within the backend timeout (85 s / 180 s). */
  POSTERN_BACKEND_TIMEOUT: { retryable: true, status: 504, wire: WireError.BACKEND_TIMEOUT, when: "the application sent no response head within the backend timeout (85 s, or 180 s for long)", page: { title: "Application timed out", cause: "The application did not answer within the backend timeout." } },
  /** The backend's response cannot be forwarded (bad status, header or framing). */
  POSTERN_BACKEND_INVALID: { retryable: false, status: 502, wire: WireError.BACKEND_INVALID_RESPONSE, when: "the application's response is not valid HTTP (status, header or framing)", page: { title: "Invalid response", cause: "The application sent a response that is not valid HTTP." } },
  /** The connector refused the target: not an internal URL of its group's apps. */
  POSTERN_TARGET_FORBIDDEN: { retryable: false, status: 502, wire: WireError.TARGET_FORBIDDEN, when: "the connector refused the target: it is not under an internal URL published through its group", page: { title: "Not published through this connector", cause: "The connector refused to reach this internal address: it is not published through its connector group." } },
  /** The tunnel stream failed before the backend answered. */
  POSTERN_CONNECTOR_LOST: { retryable: true, status: 502, when: "the connector serving the request went away (or reset the stream) before the application answered", page: { title: "Connector disconnected", cause: "The connector serving this request went away before the application answered." } },
  /** The app needs sign-in and this engine has no pre-authentication yet. */
  POSTERN_PREAUTH_UNAVAILABLE: { retryable: true, status: 503, when: "the application requires sign-in and this engine has no sign-in configuration yet", page: { title: "Sign-in unavailable", cause: "This application requires sign-in, which is not available on this engine yet." } },
  /** A response body could not be translated: too large once decoded, over its worker-time budget, or its worker died. */
  POSTERN_TRANSLATE: { retryable: false, status: 502, when: "link translation of a response body failed (decoded-size cap, worker-time budget, a hung or crashed worker, a corrupt encoding); only that response fails", page: { title: "Translation failed", cause: "The application answered, but the links in its page could not be translated to their external addresses." } },
  /** A worker pool's queue is full: the task is refused at once. */
  POSTERN_POOL_FULL: { retryable: true, status: 503, when: "a worker pool's queue is full; the task is refused at once", page: { title: "Service busy", cause: "Too many sign-ins are being checked. Try again shortly." } },

  // --- pre-authentication ---
  /** The identity provider could not be reached or answered something unusable. */
  POSTERN_AUTH_UNAVAILABLE: { retryable: true, status: 503, when: "the identity provider's discovery document, keys or token endpoint could not be used; sign-in is unavailable until it answers", page: { title: "Sign-in unavailable", cause: "The identity provider cannot be reached right now. Try again shortly." } },
  /** The user is signed in but assignment or policy refuses them. */
  POSTERN_ACCESS_DENIED: { retryable: false, status: 403, when: "the user is signed in but not assigned to the application, or its policy refuses them", page: { title: "Access denied", cause: "Access to this application was refused." } },
  /** A sign-in callback could not be completed (state, code or token refused). */
  POSTERN_SIGNIN_FAILED: { retryable: false, status: 400, when: "a sign-in callback could not be completed: unknown or used state, refused code, or an invalid ID token", page: { title: "Sign-in failed", cause: "The sign-in could not be completed." } },

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
  POSTERN_BAD_REQUEST: { retryable: false, status: 400, when: "the request is malformed: ambiguous HTTP framing, not JSON, too large, or a parameter of the wrong form", page: { title: "Bad request", cause: "The request was malformed and was not forwarded." } },
  /** The body is well-formed but breaks a rule; `problems` names each field. */
  POSTERN_VALIDATION: { retryable: false, status: 422, when: "a setting breaks a rule (URL form, uniqueness, certificate); `problems` lists each field and reason" },
  /** A uniqueness clash or a record still in use. */
  POSTERN_CONFLICT: { retryable: false, status: 409, when: "the change clashes with existing state: a duplicate name or a record still in use" },
  /** An unexpected failure; details go to the log under the request id, not to the caller. */
  POSTERN_INTERNAL: { retryable: true, status: 500, when: "an unexpected failure inside the service; the request id finds the details in its log" },
  /** A certificate signing request was refused. */
  POSTERN_CSR_REJECTED: { retryable: false, status: 400, when: "a certificate signing request is malformed, tampered with, or uses a key type other than P-256" },
  /** Control is over its rate or load limits. */
  POSTERN_RATE_LIMITED: { retryable: true, status: 429, when: "control refused the call for now: too many requests" },
  /** Control is unavailable (starting, stopping, or its store is down). */
  POSTERN_UNAVAILABLE: { retryable: true, status: 503, when: "control cannot serve the call right now: starting, stopping, or its store is unavailable" },

  // --- command line ---
  /** A command line option is missing or wrong; the message names it. */
  POSTERN_USAGE: { retryable: false, when: "a command line option is missing, unknown or of the wrong form; the message names it and the command exits 2" },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** The HTTP status a client gets for `code`, if it answers clients. */
export function httpStatusOf(code: ErrorCode): number | undefined {
  return (ERRORS[code] as ErrorSpec).status;
}

/** The user-facing page of an edge error (title and cause), if it has one. */
export function pageOf(code: ErrorCode): { readonly title: string; readonly cause: string } | undefined {
  return (ERRORS[code] as ErrorSpec).page;
}

/** The tunnel RESET code that carries `code` from connector to engine (CANCEL if it has none). */
export function wireCodeOf(code: ErrorCode): number {
  return (ERRORS[code] as ErrorSpec).wire ?? WireError.CANCEL;
}

const BY_WIRE = new Map<number, ErrorCode>();
for (const [code, spec] of Object.entries(ERRORS) as [ErrorCode, ErrorSpec][]) if (spec.wire !== undefined) BY_WIRE.set(spec.wire, code);

/** The error a stream reset with `wireCode` stands for; any other reset means the connector was lost. */
export function codeOfWire(wireCode: number | undefined): ErrorCode {
  return (wireCode !== undefined && BY_WIRE.get(wireCode)) || "POSTERN_CONNECTOR_LOST";
}

/** The code for an HTTP error status from a peer that sent no code of ours. */
export function codeOfStatus(status: number): ErrorCode {
  return BY_STATUS[status] ?? (status >= 500 ? "POSTERN_INTERNAL" : "POSTERN_BAD_REQUEST");
}

const BY_STATUS: Readonly<Record<number, ErrorCode>> = {
  400: "POSTERN_BAD_REQUEST", 401: "POSTERN_AUTH_REQUIRED", 403: "POSTERN_FORBIDDEN", 404: "POSTERN_NOT_FOUND",
  409: "POSTERN_CONFLICT", 422: "POSTERN_VALIDATION", 429: "POSTERN_RATE_LIMITED", 503: "POSTERN_UNAVAILABLE",
};

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(ERRORS, value);
}

export class PosternError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  /** For errors that came from (or go onto) the wire: the RESET/GOAWAY code. */
  readonly wireCode: number | undefined;
  /** For refusals received over HTTP (control's answers): the status that carried them. */
  readonly status: number | undefined;

  constructor(code: ErrorCode, message: string, options?: { wireCode?: number; status?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "PosternError";
    this.code = code;
    this.retryable = ERRORS[code].retryable;
    this.wireCode = options?.wireCode;
    this.status = options?.status;
  }
}

export function isPosternError(err: unknown, code?: ErrorCode): err is PosternError {
  return err instanceof PosternError && (code === undefined || err.code === code);
}
