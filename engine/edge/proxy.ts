/**
 * One user request through the engine: checks framing and limits, routes, throttles, picks a
 * connector, and streams the request and the response through a tunnel stream with
 * backpressure at every hop (uWS pause/resume and onWritable at the edge, mux windows in the
 * tunnel). The backend timeout (85 s / 180 s) runs here; the connector enforces it too.
 */
import { randomUUID } from "node:crypto";
import type { Session } from "../mux/session.js";
import type { Stream } from "../mux/stream.js";
import { WireError } from "../protocol/constants.js";
import { codeOfWire, type ErrorCode, type PosternError } from "../errors/catalogue.js";
import type { HttpRequest, HttpResponse } from "../uws/index.js";
import type { EdgeLimits } from "../limits/config.js";
import { DeadlineWheel, type Timers } from "../limits/deadlines.js";
import type { Throttle } from "../limits/throttle.js";
import type { ConnectorRegistry } from "../tunnel/registry.js";
import { noIdentity, type AuthGate, type IdentityHeaders, type Verdict } from "../auth/gate.js";
import { TranslatePool, type TranslateLimitsInput } from "../workers/pool.js";
import { BodyTranslation, translationPlan } from "../workers/translation.js";
import { backendTarget, requestHeaders, responseHeaders } from "./headers.js";
import { outside } from "./outside.js";
import { errorPage, pageHeaders } from "./pages.js";
import { STATUS_CODES } from "node:http";
import { normalisePath } from "../http/paths.js";
import type { EdgeApp, Route, RouteTable } from "./routes.js";

export type { Timers };

/** The process's deadlines for requests (one wheel for all of them). */
export const realTimers: Timers = new DeadlineWheel();

/** What every request handler shares; `routes` is swapped whole on each config change. */
export interface EdgeState {
  routes: RouteTable;
  readonly registry: ConnectorRegistry;
  readonly throttle: Throttle;
  readonly limits: EdgeLimits;
  readonly timers: Timers;
  inflight: number;
  /** Requests waiting for a free stream, oldest first (bounded by limits.maxQueued). */
  readonly queue: QueuedRequest[];
  readonly translateLimits?: TranslateLimitsInput;
  /** Pre-authentication of oidc apps; unset: such apps are refused (fail closed). */
  gate?: AuthGate;
  /** Started on the first body that needs translating: most engines never need it. */
  translatePool?: TranslatePool;
}

function translatePool(state: EdgeState): TranslatePool {
  return (state.translatePool ??= new TranslatePool(state.translateLimits));
}

interface QueuedRequest {
  /** Tries again; returns false to stay queued. */
  retry(): boolean;
  cancel(): void;
}

/** A parsed, checked request: everything read from uWS's `req` before it goes away. */
export interface EdgeRequest {
  readonly requestId: string;
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly host: string;
  readonly headers: [string, string][];
  readonly clientAddress: string;
  readonly scheme: "http" | "https";
  readonly contentLength: number | undefined;
  readonly chunked: boolean;
}

const ROBOTS = "User-agent: *\nDisallow: /\n";
const HEADER_VALUE_OK = /^[\t\x20-\x7e\x80-\xff]*$/;

/** Reads and checks a request; returns the request or the error to answer with. */
export function readRequest(state: EdgeState, res: HttpResponse, req: HttpRequest, scheme: "http" | "https"): EdgeRequest | ErrorCode {
  const url = req.getUrl();
  const query = req.getQuery() ?? "";
  if (url.length + query.length + 1 > state.limits.maxUrlBytes) return "POSTERN_URI_TOO_LONG";
  const headers: [string, string][] = [];
  let bytes = 0;
  let contentLength: number | undefined;
  let lengths = 0;
  let te: string | undefined;
  let tes = 0;
  let host = "";
  let bad = false;
  req.forEach((name, value) => {
    headers.push([name, value]);
    bytes += name.length + value.length + 4;
    if (!HEADER_VALUE_OK.test(value)) bad = true;
    if (name === "content-length") {
      lengths++;
      if (!/^\d{1,15}$/.test(value)) bad = true;
      else contentLength = Number(value);
    } else if (name === "transfer-encoding") {
      tes++;
      te = value;
    } else if (name === "host") {
      host = value;
    }
  });
  if (headers.length > state.limits.maxHeaderCount || bytes > state.limits.maxHeaderBytes) return "POSTERN_HEADERS_TOO_LARGE";
  // Framing is checked here, not trusted to the parser: uWS takes the first of two
  // Content-Length headers and passes on Transfer-Encoding values other than "chunked".
  if (bad || lengths > 1 || tes > 1 || (tes === 1 && lengths > 0)) return "POSTERN_BAD_REQUEST";
  if (te !== undefined && te.trim().toLowerCase() !== "chunked") return "POSTERN_BAD_REQUEST";
  if (host === "" || /[\s/\\@]/.test(host)) return "POSTERN_BAD_REQUEST";
  const path = normalisePath(url);
  if (!path.ok) return "POSTERN_BAD_REQUEST";
  return {
    requestId: randomUUID(),
    method: req.getMethod().toUpperCase(),
    path: path.path,
    query,
    host,
    headers,
    clientAddress: peerAddress(res),
    scheme,
    contentLength,
    chunked: te !== undefined,
  };
}

/** The TCP peer's address (never a header): IPv4 dotted, IPv4-mapped IPv6 as IPv4, else IPv6. */
export function peerAddress(res: HttpResponse): string {
  // The binary form and a little arithmetic cost far less than decoding uWS's text form per request.
  const b = new Uint8Array(res.getRemoteAddress());
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length !== 16) return "unknown";
  if (b[10] === 0xff && b[11] === 0xff && b[0] === 0 && b[1] === 0 && b[2] === 0 && b[3] === 0 && b[4] === 0 && b[5] === 0 && b[6] === 0 && b[7] === 0 && b[8] === 0 && b[9] === 0) {
    return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  return groups.join(":");
}

/** Answers with an error page (one place for every edge refusal). Call corked or outside handlers. */
export function sendError(res: HttpResponse, kind: ErrorCode, requestId: string, extra: [string, string][] = [], close = false): void {
  const page = errorPage(kind, requestId);
  res.cork(() => {
    res.writeStatus(`${page.status} ${STATUS_CODES[page.status] ?? "Error"}`).writeHeader("x-request-id", requestId);
    for (const [k, v] of pageHeaders()) res.writeHeader(k, v);
    for (const [k, v] of extra) res.writeHeader(k, v);
    res.end(page.body, close);
  });
}

/** Where the request goes, or the refusal; shared by HTTP and WebSocket upgrades. */
export function admit(state: EdgeState, request: EdgeRequest): { route: Route; session: Session | undefined } | { error: ErrorCode; retryAfterS?: number } {
  const route = state.routes.match(request.host, request.path);
  if (!route) return { error: "POSTERN_NO_ROUTE" };
  const app = route.app;
  if (app.maintenanceMode) return { error: "POSTERN_MAINTENANCE" };
  const wait = state.throttle.admit(app.tenantId, `${app.tenantId}/${app.name}`);
  if (wait > 0) return { error: "POSTERN_THROTTLED", retryAfterS: Math.max(1, Math.ceil(wait / 1000)) };
  if (state.inflight >= state.limits.maxInflight) return { error: "POSTERN_OVERLOADED" };
  const session = pickSession(state.registry, app);
  // No session: either the group has no connector (503), or all its streams are busy (the caller may queue).
  if (!session && !groupConnected(state.registry, app)) return { error: "POSTERN_NO_CONNECTOR" };
  return { route, session };
}

function groupConnected(registry: ConnectorRegistry, app: EdgeApp): boolean {
  const group = app.connectorGroup.toLowerCase();
  return registry.connections().some((live) => {
    const entry = registry.entry(live.identity.id);
    return entry !== undefined && entry.tenantId === app.tenantId && entry.group.toLowerCase() === group && !live.session.closed && !live.session.draining;
  });
}

/** A proxied request finished: give its stream slot to the oldest waiting request. */
function release(state: EdgeState): void {
  state.inflight--;
  while (state.queue.length > 0) {
    if (state.queue[0]!.retry()) state.queue.shift();
    else break;
  }
}

/** Least outstanding streams among healthy connections of the app's connector group. */
export function pickSession(registry: ConnectorRegistry, app: EdgeApp, exclude?: Session): Session | undefined {
  let best: Session | undefined;
  const group = app.connectorGroup.toLowerCase();
  for (const live of registry.connections()) {
    const entry = registry.entry(live.identity.id);
    if (!entry || entry.tenantId !== app.tenantId || entry.group.toLowerCase() !== group) continue;
    const s = live.session;
    if (s === exclude || s.closed || s.draining || s.availableStreams <= 0) continue;
    if (!best || s.activeStreams < best.activeStreams) best = s;
  }
  return best;
}

export function backendTimeoutMs(state: EdgeState, app: EdgeApp): number {
  return app.backendTimeout === "long" ? state.limits.longBackendTimeoutMs : state.limits.defaultBackendTimeoutMs;
}

function headerValue(headers: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < headers.length; i += 2) if (headers[i]!.toLowerCase() === name) return headers[i + 1];
  return undefined;
}

/** The uWS handler for every HTTP request on a public listener. */
export function handleHttp(state: EdgeState, res: HttpResponse, req: HttpRequest, scheme: "http" | "https"): void {
  const request = readRequest(state, res, req, scheme);
  if (typeof request === "string") {
    sendError(res, request, randomUUID(), [], true);
    return;
  }
  if (request.path === "/robots.txt" && request.method === "GET") {
    res.cork(() => res.writeStatus("200 OK").writeHeader("content-type", "text/plain").writeHeader("x-request-id", request.requestId).end(ROBOTS));
    return;
  }
  const admitted = admit(state, request);
  // An unread body makes the connection unusable for the next request: close it.
  const unread = (request.contentLength ?? 0) > 0 || request.chunked;
  if ("error" in admitted) {
    sendError(res, admitted.error, request.requestId, admitted.retryAfterS ? [["retry-after", String(admitted.retryAfterS)]] : [], unread);
    return;
  }
  const { route } = admitted;
  if (route.app.preAuthentication !== "oidc") {
    forward(state, res, request, route, admitted.session, noIdentity(route.app));
    return;
  }
  authorize(state, res, request, route, unread, (identity, body) => forward(state, res, request, route, body ? pickSession(state.registry, route.app) : admitted.session, identity, body));
}

/**
 * Runs the pre-authentication gate, then `proceed` with the identity headers for the backend,
 * or answers (sign-in, 401, denied page). The gate answers at once from its caches; when it
 * has to wait (worker pool, IdP), the request body that arrives meanwhile is held (bounded).
 */
export function authorize(state: EdgeState, res: HttpResponse, request: EdgeRequest, route: Route, unread: boolean, proceed: (identity: IdentityHeaders, body?: EarlyBody) => void): void {
  if (!state.gate) {
    sendError(res, "POSTERN_PREAUTH_UNAVAILABLE", request.requestId, [], unread);
    return;
  }
  const settle = (verdict: Verdict, body?: EarlyBody) => {
    if (verdict.kind === "pass") return proceed(verdict.headers, body);
    res.cork(() => {
      res.writeStatus(`${verdict.status} ${STATUS_CODES[verdict.status] ?? "Status"}`);
      for (const [k, v] of verdict.headers) res.writeHeader(k, v);
      res.writeHeader("x-request-id", request.requestId);
      res.end(verdict.body, unread);
    });
  };
  let verdict: Verdict | Promise<Verdict>;
  try {
    verdict = state.gate.check(request, route);
  } catch {
    return sendError(res, "POSTERN_PREAUTH_UNAVAILABLE", request.requestId, [], unread);
  }
  if (!(verdict instanceof Promise)) return settle(verdict);
  let aborted = false;
  const body = unread ? new EarlyBody(res) : undefined;
  res.onAborted(() => {
    aborted = true;
  });
  verdict.then(
    (v) => outside(() => !aborted && settle(v, body)),
    () => outside(() => !aborted && sendError(res, "POSTERN_PREAUTH_UNAVAILABLE", request.requestId, [], unread)),
  );
}

/** A request body that started arriving before the request could be forwarded. */
export class EarlyBody {
  /** Held past this, reading from the client pauses until the body is taken. */
  static readonly HOLD_BYTES = 64 * 1024;
  #chunks: { chunk: Buffer; last: boolean }[] = [];
  #held = 0;
  #sink: ((chunk: Buffer, last: boolean) => void) | undefined;

  constructor(private readonly res: HttpResponse) {
    res.onData((ab, last) => {
      // uWS reuses `ab` after this callback: copy.
      const chunk = Buffer.from(ab.slice(0));
      if (this.#sink) return this.#sink(chunk, last);
      this.#chunks.push({ chunk, last });
      this.#held += chunk.length;
      if (this.#held > EarlyBody.HOLD_BYTES) res.pause();
    });
  }

  /** Hands what arrived so far, and everything after, to `sink`. */
  attach(sink: (chunk: Buffer, last: boolean) => void): void {
    this.#sink = sink;
    const held = this.#chunks;
    this.#chunks = [];
    for (const { chunk, last } of held) sink(chunk, last);
    if (this.#held > EarlyBody.HOLD_BYTES) this.res.resume();
    this.#held = 0;
  }
}

/** Sends an admitted request on: a tunnel stream now, or a bounded wait for one. */
function forward(state: EdgeState, res: HttpResponse, request: EdgeRequest, route: Route, first: Session | undefined, identity: IdentityHeaders, body?: EarlyBody): void {
  const start = (session: Session | undefined): boolean => {
    const stream = session ? openStream(state, request, route, session, identity) : undefined;
    if (!stream) return false;
    new ProxiedRequest(state, res, request, route, stream, body);
    return true;
  };
  if (start(first)) return;
  const hasBody = (request.contentLength ?? 0) > 0 || request.chunked;
  if (hasBody || state.queue.length >= state.limits.maxQueued) {
    sendError(res, first === undefined && !groupConnected(state.registry, route.app) ? "POSTERN_NO_CONNECTOR" : "POSTERN_OVERLOADED", request.requestId, [], hasBody);
    return;
  }
  // Every stream of the group is busy: wait (bounded) for one to free up.
  let done = false;
  const entry: QueuedRequest = {
    retry: () => {
      if (done) return true;
      const session = pickSession(state.registry, route.app);
      if (!session) return false;
      done = true;
      state.timers.clear(timer);
      if (!start(session)) sendError(res, "POSTERN_NO_CONNECTOR", request.requestId);
      return true;
    },
    cancel: () => {
      done = true;
      state.timers.clear(timer);
      const at = state.queue.indexOf(entry);
      if (at >= 0) state.queue.splice(at, 1);
    },
  };
  const timer = state.timers.set(() => {
    if (done) return;
    entry.cancel();
    sendError(res, "POSTERN_OVERLOADED", request.requestId);
  }, state.limits.maxQueueWaitMs);
  res.onAborted(() => entry.cancel());
  state.queue.push(entry);
}

/**
 * Opens the tunnel stream, moving to another connection of the group when one refuses (at
 * its stream limit, or draining after GOAWAY): those refusals are safe to retry.
 */
export function openStream(state: EdgeState, request: EdgeRequest, route: Route, first: Session, identity: IdentityHeaders, upgrade = false): Stream | undefined {
  const hasBody = (request.contentLength ?? 0) > 0 || request.chunked;
  const head = {
    method: request.method,
    target: backendTarget(route, request.path, request.query),
    headers: requestHeaders(request.headers, { route, clientAddress: request.clientAddress, scheme: request.scheme, host: request.host, requestId: request.requestId, identity }),
    // `body` and `length` tell the connector how to frame the request body it writes afresh.
    ext: {
      app: route.app.name, tenant: route.app.tenantId, requestId: request.requestId, timeoutMs: backendTimeoutMs(state, route.app),
      body: hasBody, ...(request.contentLength !== undefined && hasBody ? { length: request.contentLength } : {}), ...(upgrade ? { upgrade } : {}),
    },
  };
  let session: Session | undefined = first;
  for (let attempt = 0; session && attempt < 3; attempt++) {
    try {
      return session.open(head, { end: !hasBody && !upgrade });
    } catch (err) {
      if (!(err as PosternError).retryable) return undefined;
      session = pickSession(state.registry, route.app, session);
    }
  }
  return undefined;
}

/** The life of one proxied request; all uWS writes go through `outside` or happen in uWS callbacks. */
class ProxiedRequest {
  readonly #stream: Stream;
  #aborted = false;
  #responded = false;
  #finished = false;
  #timer: unknown;
  #bodyTimer: unknown;
  /** Response body bookkeeping for tryEnd with a known length. */
  #total: number | undefined;
  #pending: { chunk: Buffer; offset: number } | null = null;
  #backlog: Buffer[] = [];
  /** Rewrites internal links in HTML/CSS bodies for apps that translate them. */
  #translation: BodyTranslation | undefined;
  /** A translated response's head waits for its first bytes, so a failure before them is still a 502 page. */
  #deferredHead: { status: number; headers: [string, string][] } | null = null;
  #headSent = false;
  /** The stream ended while data still waited on backpressure. */
  #ended = false;
  #head = false;

  constructor(private readonly state: EdgeState, private readonly res: HttpResponse, private readonly request: EdgeRequest, private readonly route: Route, stream: Stream, private readonly early?: EarlyBody) {
    const hasBody = (request.contentLength ?? 0) > 0 || request.chunked;
    this.#head = request.method === "HEAD";
    this.#stream = stream;
    state.inflight++;
    res.onAborted(() => {
      this.#aborted = true;
      this.#translation?.destroy();
      this.#cleanup();
      if (!this.#stream.closed) this.#stream.reset(WireError.CANCEL);
    });
    this.#timer = state.timers.set(() => this.#fail("POSTERN_BACKEND_TIMEOUT", WireError.BACKEND_TIMEOUT), backendTimeoutMs(state, route.app));
    const s = this.#stream;
    s.on("response", (head: { status: number; headers: string[] }) => outside(() => this.#respond(head.status, head.headers)));
    s.on("data", (chunk: Buffer) => outside(() => this.#write(chunk)));
    s.on("end", () => outside(() => this.#end()));
    s.on("close", (err?: PosternError) => {
      if (err) outside(() => this.#fail(codeOfWire(err?.wireCode)));
    });
    if (hasBody) this.#readBody();
  }

  #readBody(): void {
    const s = this.#stream;
    const idle = () => {
      this.state.timers.clear(this.#bodyTimer);
      this.#bodyTimer = this.state.timers.set(() => this.#fail("POSTERN_BODY_TIMEOUT", WireError.CANCEL), this.state.limits.bodyIdleMs);
    };
    idle();
    s.on("drain", () => {
      if (!this.#aborted) this.res.resume();
    });
    const onChunk = (chunk: Buffer, isLast: boolean) => {
      if (s.closed) return;
      const more = chunk.length > 0 ? s.write(chunk) : true;
      if (isLast) {
        this.state.timers.clear(this.#bodyTimer);
        s.end();
      } else {
        idle();
        if (!more) this.res.pause();
      }
    };
    if (this.early) this.early.attach(onChunk);
    // uWS reuses `ab` after this callback: copy before handing it on.
    else this.res.onData((ab, isLast) => onChunk(Buffer.from(ab.slice(0)), isLast));
  }

  #respond(status: number, headers: string[]): void {
    if (this.#aborted || this.#responded || this.#finished) return;
    // The connector checks this too; a status outside HTTP's range never reaches a user.
    if (!Number.isInteger(status) || status < 200 || status > 599) return this.#fail("POSTERN_BACKEND_INVALID", WireError.CANCEL);
    this.state.timers.clear(this.#timer);
    const out = responseHeaders(headers, this.route, this.state.routes.tenantRoutes(this.route.app.tenantId));
    const length = headers.findIndex((h, i) => i % 2 === 0 && h.toLowerCase() === "content-length");
    this.#total = length >= 0 && /^\d+$/.test(headers[length + 1]!) ? Number(headers[length + 1]) : undefined;
    const noBody = this.#head || status === 204 || status === 304 || (status >= 100 && status < 200);
    // Partial content (206) cannot be translated: the ranges refer to the original bytes.
    if (this.route.app.translateBody && !noBody && status !== 206) {
      const plan = translationPlan(headerValue(headers, "content-type"), headerValue(headers, "content-encoding"));
      if (plan) {
        const pool = translatePool(this.state);
        if (pool.saturated) return this.#fail("POSTERN_OVERLOADED", WireError.CANCEL);
        this.#responded = true;
        this.#total = undefined; // the length changes: chunked
        this.#deferredHead = { status, headers: out.map(([k, v]) => [k, k === "etag" && !v.startsWith("W/") ? `W/${v}` : v]) };
        this.#translation = new BodyTranslation(pool, plan, this.state.routes.tenantLinks(this.route.app.tenantId), {
          data: (chunk) => this.#writeTranslated(chunk),
          drain: () => this.#stream.resume(),
          end: (last) => this.#endTranslated(last),
          error: () => this.#fail("POSTERN_TRANSLATE", WireError.CANCEL),
        });
        return;
      }
    }
    this.#responded = true;
    this.res.cork(() => {
      this.#writeHead(status, out);
      if (noBody) {
        this.#finished = true;
        // endWithoutBody(undefined) makes this uWS build write a garbage Content-Length: only pass a real one.
        if (this.#head && this.#total !== undefined) this.res.endWithoutBody(this.#total);
        else this.res.endWithoutBody();
        this.#cleanup();
      } else if (this.#total === 0) {
        this.#finished = true;
        this.res.end();
        this.#cleanup();
      }
    });
  }

  #writeHead(status: number, headers: readonly [string, string][]): void {
    this.#headSent = true;
    this.res.writeStatus(`${status} ${STATUS_CODES[status] ?? "Status"}`);
    for (const [k, v] of headers) this.res.writeHeader(k, v);
    this.res.writeHeader("x-request-id", this.request.requestId);
  }

  /** Writes the deferred head of a translated response, once. Call corked. */
  #flushDeferredHead(): void {
    const head = this.#deferredHead;
    if (!head) return;
    this.#deferredHead = null;
    this.#writeHead(head.status, head.headers);
  }

  #writeTranslated(chunk: Buffer): void {
    if (this.#aborted || this.#finished) return;
    const res = this.res;
    let ok = true;
    res.cork(() => {
      this.#flushDeferredHead();
      ok = res.write(chunk);
    });
    if (!ok) {
      this.#translation!.pause();
      res.onWritable(() => {
        this.#translation?.resume();
        return true;
      });
    }
  }

  /** `last`: output not written yet; all of the body when nothing was (then uWS sends its Content-Length). */
  #endTranslated(last: Buffer | undefined): void {
    if (this.#aborted || this.#finished) return;
    this.#finished = true;
    this.#cleanup();
    this.res.cork(() => {
      this.#flushDeferredHead();
      this.res.end(last);
    });
  }

  #write(chunk: Buffer): void {
    if (this.#aborted || this.#finished || !this.#responded) return;
    if (this.#translation) {
      if (!this.#translation.write(chunk)) this.#stream.pause();
      return;
    }
    const res = this.res;
    if (this.#total === undefined) {
      let ok = true;
      res.cork(() => (ok = res.write(chunk)));
      if (!ok) {
        this.#stream.pause();
        res.onWritable(() => {
          this.#stream.resume();
          return true;
        });
      }
      return;
    }
    // Known length: tryEnd may take only part of a chunk. Chunks that arrive before the rest
    // is written wait behind it (at most the stream window, since the stream is paused).
    if (this.#pending) {
      this.#backlog.push(chunk);
      return;
    }
    this.#tryEnd(chunk);
  }

  /** Writes with tryEnd; on backpressure keeps the unwritten part and continues in onWritable. */
  #tryEnd(chunk: Buffer): void {
    const res = this.res;
    const offset = res.getWriteOffset();
    let result: [boolean, boolean] = [true, false];
    res.cork(() => (result = res.tryEnd(chunk, this.#total!)));
    if (result[1]) return this.#completed();
    if (result[0]) return;
    this.#pending = { chunk, offset };
    this.#stream.pause();
    res.onWritable((at) => {
      let pending = this.#pending;
      while (pending) {
        const [ok, done] = res.tryEnd(pending.chunk.subarray(at - pending.offset), this.#total!);
        if (done) {
          this.#completed();
          return true;
        }
        if (!ok) return false;
        const next = this.#backlog.shift();
        pending = this.#pending = next ? { chunk: next, offset: (at = res.getWriteOffset()) } : null;
      }
      if (this.#ended) {
        // The backend ended short of its Content-Length: cut the response, do not let it pass as whole.
        this.#completed();
        res.close();
        return true;
      }
      this.#stream.resume();
      return true;
    });
  }

  #completed(): void {
    this.#finished = true;
    this.#pending = null;
    this.#backlog = [];
    this.#cleanup();
  }

  #end(): void {
    if (this.#aborted || this.#finished || !this.#responded) return;
    if (this.#translation) return this.#translation.end();
    // With a known length, the last tryEnd completes the response; data still waiting on
    // backpressure will finish it from onWritable.
    if (this.#total !== undefined && this.#pending) {
      this.#ended = true;
      return;
    }
    this.#finished = true;
    this.#cleanup();
    if (this.#total !== undefined) {
      // The backend sent fewer bytes than it announced: the client must not take it as whole.
      this.res.close();
      return;
    }
    this.res.cork(() => this.res.end());
  }

  #fail(kind: ErrorCode, resetCode?: number): void {
    if (resetCode !== undefined && !this.#stream.closed) this.#stream.reset(resetCode);
    if (this.#aborted || this.#finished) return;
    this.#finished = true;
    this.#translation?.destroy();
    this.#cleanup();
    if (this.#headSent) {
      this.res.close(); // the response already started: cut it so the client sees it incomplete
      return;
    }
    sendError(this.res, kind, this.request.requestId, [], true);
  }

  #cleanup(): void {
    this.state.timers.clear(this.#timer);
    this.state.timers.clear(this.#bodyTimer);
    if (this.#done) return;
    this.#done = true;
    release(this.state);
  }

  #done = false;
}
