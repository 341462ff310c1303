/**
 * One user request through the engine: routes, throttles, pre-authenticates, picks a
 * connector, and streams the request and the response through a tunnel stream with
 * backpressure at every hop (the client's request paused while the stream is full, the stream
 * paused while the client's socket is; mux windows in the tunnel). The backend timeout
 * (85 s / 180 s) runs here; the connector enforces it too. Every request ends in one
 * access-log line.
 */
import { randomUUID } from "node:crypto";
import type { ServerResponse } from "node:http";
import { constants as h2, type Http2ServerResponse } from "node:http2";
import type { Logger } from "pino";
import { noIdentity, type AuthGate, type IdentityHeaders, type Verdict } from "../auth/gate.js";
import { codeOfWire, httpStatusOf, isPosternError, type ErrorCode, type PosternError } from "../errors/catalogue.js";
import type { EdgeLimits } from "../limits/config.js";
import { DeadlineWheel, type Timers } from "../limits/deadlines.js";
import type { Throttle } from "../limits/throttle.js";
import type { Stream } from "../mux/stream.js";
import { WireError } from "../protocol/constants.js";
import type { LiveConnection, ConnectorRegistry } from "../tunnel/registry.js";
import { TranslatePool, type TranslateLimitsInput } from "../workers/pool.js";
import { BodyTranslation, InlineTranslation, translationPlan, type Translation } from "../workers/translation.js";
import type { EdgeMetrics } from "./metrics.js";
import { backendTarget, requestHeaders, responseHeaders } from "./headers.js";
import { errorPage, pageHeaders } from "./pages.js";
import { readRequest, type EdgeIncoming, type EdgeRequest } from "./request.js";
import { closeAfterThis } from "./turns.js";
import type { EdgeApp, Route, RouteTable } from "./routes.js";

export type { Timers };
export type EdgeResponse = ServerResponse | Http2ServerResponse;

/** The process's deadlines for requests (one wheel for all of them). */
export const realTimers: Timers = new DeadlineWheel();

/** What every request handler shares; `routes` is swapped whole on each config change. */
export interface EdgeState {
  routes: RouteTable;
  readonly registry: ConnectorRegistry;
  readonly throttle: Throttle;
  readonly limits: EdgeLimits;
  readonly timers: Timers;
  /** Where each request's access-log line goes. */
  readonly log: Logger;
  inflight: number;
  /** Requests waiting for a free stream, oldest first (bounded by limits.maxQueued). */
  readonly queue: QueuedRequest[];
  readonly translateLimits?: TranslateLimitsInput;
  /** Pre-authentication of oidc apps; unset: such apps are refused (fail closed). */
  gate?: AuthGate;
  /** Started on the first body that needs translating: most engines never need it. */
  translatePool?: TranslatePool;
  /** Prometheus metrics (unset: none kept). */
  readonly metrics?: EdgeMetrics;
  /** Whole bodies up to this size are translated inline (translate.inlineMaxBytes). */
  readonly translateInlineMaxBytes: number;
}

function translatePool(state: EdgeState): TranslatePool {
  if (state.translatePool === undefined) {
    state.translatePool = new TranslatePool(state.translateLimits);
    state.translatePool.onTask = state.metrics?.poolObserver("translate");
  }
  return state.translatePool;
}

interface QueuedRequest {
  /** Tries again; returns false to stay queued. */
  retry(): boolean;
  cancel(): void;
}

const ROBOTS = "User-agent: *\nDisallow: /\n";

/** One access-log line per request: what a support engineer needs to find it again. */
export function logAccess(state: EdgeState, request: EdgeRequest | undefined, requestId: string, status: number, bytes: number, extra: { app?: string; connector?: string; error?: ErrorCode; translated?: boolean } = {}): void {
  const ms = request ? performance.now() - request.startedAt : 0;
  state.log.info({
    requestId, app: extra.app, method: request?.method, path: request?.rawPath, status, bytes,
    durationMs: Math.round(ms * 10) / 10, connector: extra.connector, client: request?.clientAddress, ...(extra.error ? { error: extra.error } : {}),
  }, "request");
  if (state.metrics) {
    state.metrics.request(extra.app, status, bytes, ms / 1000, extra.translated === true);
    if (extra.error === "POSTERN_TRANSLATE") state.metrics.translationFailed();
  }
}

/**
 * Where Postern's own whole responses go: a ServerResponse (HTTP/1.1 and HTTP/2), or the raw
 * socket of an upgrade that was not switched.
 */
export interface PageWriter {
  /** Writes status, headers and body; `close` ends the connection after it (unread body, refusal). Returns body bytes. */
  page(status: number, headers: readonly (readonly [string, string])[], body: string, close: boolean): number;
  /** The client is gone, or an answer was already written. */
  gone(): boolean;
}

export function pageWriter(res: EdgeResponse): PageWriter {
  return {
    page(status, headers, body, close) {
      if (res.headersSent || res.writableEnded) return 0;
      const out = headerRecord(headers);
      const bytes = Buffer.byteLength(body);
      out["content-length"] = String(bytes);
      if (close && isHttp1(res)) {
        out.connection = "close";
        closeAfterThis(res.socket);
      }
      res.writeHead(status, out);
      res.end(body);
      return bytes;
    },
    gone: () => res.headersSent || res.writableEnded || res.destroyed,
  };
}

/** A header list as the record writeHead takes; repeated names become arrays, in order. */
export function headerRecord(headers: readonly (readonly [string, string])[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of headers) {
    const cur = out[k];
    out[k] = cur === undefined ? v : Array.isArray(cur) ? [...cur, v] : [cur, v];
  }
  return out;
}

/**
 * Answers with the page of a catalogue error (one place for every edge refusal). A refusal is
 * the last thing that happens on an HTTP/1.1 connection: nothing pipelined after it is read.
 */
export function sendError(state: EdgeState, to: PageWriter, request: EdgeRequest | undefined, code: ErrorCode, requestId: string, extra: [string, string][] = [], app?: string): void {
  const page = errorPage(code, requestId);
  const bytes = to.page(page.status, [...pageHeaders(), ...extra, ["x-request-id", requestId]], page.body, true);
  logAccess(state, request, requestId, page.status, bytes, { error: code, ...(app ? { app } : {}) });
}

/** Both response kinds write the same way; their declared overloads just do not unify. */
function writeBody(res: EdgeResponse, chunk: Buffer): boolean {
  return (res as { write(chunk: Buffer): boolean }).write(chunk);
}

function isHttp1(res: EdgeResponse): res is ServerResponse {
  return !("stream" in res);
}

/** Cuts a response that already started: the client must see it incomplete, never whole. */
export function abortResponse(res: EdgeResponse): void {
  if (isHttp1(res)) res.destroy();
  else if (!res.stream.destroyed) res.stream.close(h2.NGHTTP2_INTERNAL_ERROR);
}

export type Admission = { route: Route; live: LiveConnection | undefined } | { error: ErrorCode; retryAfterS?: number; app?: string };

/**
 * Where the request goes, or the refusal; shared by requests and upgrades. Calls `then` at once,
 * or (when a shared rate-limit lease is on its way) once it arrives, unless the client left.
 */
export function admit(state: EdgeState, request: EdgeRequest, gone: () => boolean, then: (admission: Admission) => void): void {
  const route = state.routes.match(request.host, request.path);
  if (!route) return then({ error: "POSTERN_NO_ROUTE" });
  // Decided on the canonical path, forwarded as sent: the two must agree on the app (a path
  // parameter, an escape or a doubled slash before the prefix is refused, never re-routed).
  if (!request.rawPath.startsWith(route.prefix) && `${request.rawPath}/` !== route.prefix) return then({ error: "POSTERN_BAD_REQUEST" });
  const app = route.app;
  if (app.maintenanceMode) return then({ error: "POSTERN_MAINTENANCE", app: app.name });
  const wait = state.throttle.admit(app.tenantId, `${app.tenantId}/${app.name}`);
  if (typeof wait === "number") return then(afterThrottle(state, route, wait));
  wait.then((w) => !gone() && then(afterThrottle(state, route, w)));
}

function afterThrottle(state: EdgeState, route: Route, wait: number): Admission {
  const app = route.app.name;
  if (wait > 0) return { error: "POSTERN_THROTTLED", retryAfterS: Math.max(1, Math.ceil(wait / 1000)), app };
  if (state.inflight >= state.limits.maxInflight) return { error: "POSTERN_OVERLOADED", app };
  const live = pickConnection(state.registry, route.app);
  // None: either the group has no connector (503), or all its streams are busy (the caller may queue).
  if (!live && !groupConnected(state.registry, route.app)) return { error: "POSTERN_NO_CONNECTOR", app };
  return { route, live };
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
export function pickConnection(registry: ConnectorRegistry, app: EdgeApp, exclude?: LiveConnection): LiveConnection | undefined {
  let best: LiveConnection | undefined;
  const group = app.connectorGroup.toLowerCase();
  for (const live of registry.connections()) {
    const entry = registry.entry(live.identity.id);
    if (!entry || entry.tenantId !== app.tenantId || entry.group.toLowerCase() !== group) continue;
    const s = live.session;
    if (live === exclude || s.closed || s.draining || s.availableStreams <= 0) continue;
    if (!best || s.activeStreams < best.session.activeStreams) best = live;
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

/** The handler for every request on a public listener (HTTP/1.1 and HTTP/2). */
export function handleRequest(state: EdgeState, req: EdgeIncoming, res: EdgeResponse, scheme: "http" | "https", expectContinue = false): void {
  const request = readRequest(state.limits, state.limits.trustedProxies, req, scheme);
  const to = pageWriter(res);
  if (request === "asterisk") {
    // OPTIONS * asks about the server, not an app: answered here, never forwarded.
    to.page(200, [], "", false);
    return;
  }
  if (typeof request === "string") {
    sendError(state, to, undefined, request, randomUUID(), []);
    return;
  }
  if (request.method === "CONNECT") {
    sendError(state, to, request, "POSTERN_METHOD_NOT_ALLOWED", request.requestId, []);
    return;
  }
  if (request.path === "/robots.txt" && request.method === "GET") {
    const bytes = to.page(200, [["content-type", "text/plain"], ["x-request-id", request.requestId]], ROBOTS, request.hasBody);
    logAccess(state, request, request.requestId, 200, bytes);
    return;
  }
  admit(state, request, to.gone, (admitted) => {
    if ("error" in admitted) {
      sendError(state, to, request, admitted.error, request.requestId, admitted.retryAfterS ? [["retry-after", String(admitted.retryAfterS)]] : [], admitted.app);
      return;
    }
    const { route } = admitted;
    const go = (identity: IdentityHeaders, live: LiveConnection | undefined) => {
      if (expectContinue && !res.headersSent) res.writeContinue();
      forward(state, req, res, request, route, live, identity);
    };
    if (route.app.preAuthentication !== "oidc") return go(noIdentity(route.app), admitted.live);
    authorize(state, to, request, route, (identity, waited) => go(identity, waited ? pickConnection(state.registry, route.app) : admitted.live));
  });
}

/**
 * Runs the pre-authentication gate, then `proceed` with the identity headers for the backend,
 * or answers (sign-in, 401, denied page). The gate answers at once from its caches; when it
 * has to wait (worker pool, IdP), the request body waits unread in the socket (bounded by
 * TCP's window and the stream's high-water mark).
 */
export function authorize(state: EdgeState, to: PageWriter, request: EdgeRequest, route: Route, proceed: (identity: IdentityHeaders, waited: boolean) => void): void {
  if (!state.gate) return sendError(state, to, request, "POSTERN_PREAUTH_UNAVAILABLE", request.requestId, [], route.app.name);
  const settle = (verdict: Verdict, waited: boolean) => {
    if (verdict.kind === "pass") return proceed(verdict.headers, waited);
    const bytes = to.page(verdict.status, [...verdict.headers, ["x-request-id", request.requestId]], verdict.body, request.hasBody || verdict.status >= 400);
    logAccess(state, request, request.requestId, verdict.status, bytes, { app: route.app.name });
  };
  let verdict: Verdict | Promise<Verdict>;
  try {
    verdict = state.gate.check(request, route);
  } catch {
    return sendError(state, to, request, "POSTERN_PREAUTH_UNAVAILABLE", request.requestId, [], route.app.name);
  }
  if (!(verdict instanceof Promise)) return settle(verdict, false);
  verdict.then(
    (v) => !to.gone() && settle(v, true),
    () => !to.gone() && sendError(state, to, request, "POSTERN_PREAUTH_UNAVAILABLE", request.requestId, [], route.app.name),
  );
}

/** Sends an admitted request on: a tunnel stream now, or a bounded wait for one. */
function forward(state: EdgeState, req: EdgeIncoming, res: EdgeResponse, request: EdgeRequest, route: Route, first: LiveConnection | undefined, identity: IdentityHeaders): void {
  const start = (live: LiveConnection | undefined): boolean => {
    const opened = live ? openStream(state, request, route, live, identity) : undefined;
    if (!opened) return false;
    new ProxiedRequest(state, req, res, request, route, opened, identity);
    return true;
  };
  if (start(first)) return;
  if (request.hasBody || state.queue.length >= state.limits.maxQueued) {
    const code = first === undefined && !groupConnected(state.registry, route.app) ? "POSTERN_NO_CONNECTOR" : "POSTERN_OVERLOADED";
    sendError(state, pageWriter(res), request, code, request.requestId, [], route.app.name);
    return;
  }
  // Every stream of the group is busy: wait (bounded) for one to free up.
  let done = false;
  const entry: QueuedRequest = {
    retry: () => {
      if (done) return true;
      const live = pickConnection(state.registry, route.app);
      if (!live) return false;
      done = true;
      state.timers.clear(timer);
      if (!start(live)) sendError(state, pageWriter(res), request, "POSTERN_NO_CONNECTOR", request.requestId, [], route.app.name);
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
    sendError(state, pageWriter(res), request, "POSTERN_OVERLOADED", request.requestId, [], route.app.name);
  }, state.limits.maxQueueWaitMs);
  res.once("close", () => entry.cancel());
  state.queue.push(entry);
}

/**
 * Opens the tunnel stream, moving to another connection of the group when one refuses (at
 * its stream limit, or draining after GOAWAY): those refusals are safe to retry.
 */
export function openStream(state: EdgeState, request: EdgeRequest, route: Route, first: LiveConnection, identity: IdentityHeaders, upgrade?: { readonly headers: readonly string[] }): { stream: Stream; live: LiveConnection } | undefined {
  const tenantId = route.app.tenantId;
  const head = {
    method: upgrade ? "GET" : request.method,
    target: backendTarget(route, request.rawPath, request.rawQuery),
    headers: requestHeaders(upgrade?.headers ?? request.rawHeaders, {
      route, tenantRoutes: state.routes.tenantRoutes(tenantId), tenantSsoNames: state.routes.tenantSsoNames(tenantId),
      clientAddress: request.clientAddress, peerAddress: request.peerAddress, scheme: request.scheme, host: request.host,
      requestId: request.requestId, identity, upgrade: upgrade !== undefined,
    }),
    // `body` and `length` tell the connector how to frame the request body it writes afresh.
    ext: {
      app: route.app.name, tenant: tenantId, requestId: request.requestId, timeoutMs: backendTimeoutMs(state, route.app),
      body: request.hasBody && !upgrade, ...(request.contentLength !== undefined && request.hasBody && !upgrade ? { length: request.contentLength } : {}),
      ...(upgrade ? { upgrade: true } : {}),
    },
  };
  let live: LiveConnection | undefined = first;
  for (let attempt = 0; live && attempt < 3; attempt++) {
    try {
      return { stream: live.session.open(head, { end: !head.ext.body && !upgrade }), live };
    } catch (err) {
      if (!(err as PosternError).retryable) return undefined;
      live = pickConnection(state.registry, route.app, live);
    }
  }
  return undefined;
}

/** The life of one proxied request. */
class ProxiedRequest {
  #stream: Stream;
  #live: LiveConnection;
  /** Streams refused before any processing (GOAWAY, stream limit) that were opened again elsewhere. */
  #reopened = 0;
  #finished = false;
  #responded = false;
  #timer: unknown;
  #bodyTimer: unknown;
  /** The backend's Content-Length, when it sent one: a body that ends short of it is cut. */
  #total: number | undefined;
  #written = 0;
  #status = 0;
  /** Rewrites internal links in HTML/CSS bodies for apps that translate them. */
  #translation: Translation | undefined;
  /** A translated response's head waits for its first bytes, so a failure before them is still a 502 page. */
  #deferredHead: { status: number; headers: [string, string][] } | null = null;
  #released = false;

  constructor(
    private readonly state: EdgeState,
    private readonly req: EdgeIncoming,
    private readonly res: EdgeResponse,
    private readonly request: EdgeRequest,
    private readonly route: Route,
    opened: { stream: Stream; live: LiveConnection },
    private readonly identity: IdentityHeaders,
  ) {
    this.#stream = opened.stream;
    this.#live = opened.live;
    state.inflight++;
    res.once("close", () => {
      if (this.#finished) return;
      // The client went away before the response was complete.
      this.#finished = true;
      this.#translation?.destroy();
      this.#cleanup(499);
      if (!this.#stream.closed) this.#stream.reset(WireError.CANCEL);
    });
    this.#timer = state.timers.set(() => this.#fail("POSTERN_BACKEND_TIMEOUT", WireError.BACKEND_TIMEOUT), backendTimeoutMs(state, route.app));
    this.#listen(this.#stream);
    res.on("drain", () => {
      if (this.#translation) this.#translation.resume();
      else this.#stream.resume();
    });
    if (request.hasBody) this.#readBody();
  }

  #listen(s: Stream): void {
    s.on("response", (head: { status: number; headers: string[] }) => this.#respond(head.status, head.headers));
    s.on("data", (chunk: Buffer) => this.#write(chunk));
    s.on("end", () => this.#end());
    s.on("close", (err?: PosternError) => {
      if (!err || s !== this.#stream) return;
      if (isPosternError(err, "POSTERN_STREAM_REFUSED") && this.#reopen()) return;
      this.#fail(codeOfWire(err.wireCode));
    });
  }

  /**
   * A stream the connector refused unprocessed (it sent GOAWAY, or was at its stream limit)
   * is opened again on another connection of the group: safe, since nothing of it reached a
   * backend. Only for requests without a body (a body already sent cannot be replayed).
   */
  #reopen(): boolean {
    if (this.#finished || this.#responded || this.request.hasBody || this.#reopened >= 2) return false;
    const live = pickConnection(this.state.registry, this.route.app, this.#live);
    const opened = live ? openStream(this.state, this.request, this.route, live, this.identity) : undefined;
    if (!opened) return false;
    this.#reopened++;
    this.#stream = opened.stream;
    this.#live = opened.live;
    this.#listen(opened.stream);
    return true;
  }

  #readBody(): void {
    const s = this.#stream;
    const req = this.req;
    const idle = () => {
      this.state.timers.clear(this.#bodyTimer);
      this.#bodyTimer = this.state.timers.set(() => this.#fail("POSTERN_BODY_TIMEOUT", WireError.CANCEL), this.state.limits.bodyIdleMs);
    };
    idle();
    s.on("drain", () => req.resume());
    req.on("data", (chunk: Buffer) => {
      if (s.closed) return;
      idle();
      if (!s.write(chunk)) req.pause();
    });
    req.once("end", () => {
      this.state.timers.clear(this.#bodyTimer);
      if (!s.closed) s.end();
    });
  }

  #respond(status: number, headers: string[]): void {
    if (this.#finished || this.#responded) return;
    // The connector checks this too; a status outside HTTP's range never reaches a user.
    if (!Number.isInteger(status) || status < 200 || status > 599) return this.#fail("POSTERN_BACKEND_INVALID", WireError.CANCEL);
    this.state.timers.clear(this.#timer);
    const out = responseHeaders(headers, this.route, this.state.routes.tenantRoutes(this.route.app.tenantId));
    const length = headerValue(headers, "content-length");
    this.#total = length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined;
    const noBody = this.request.method === "HEAD" || status === 204 || status === 304;
    this.#status = status;
    // Partial content (206) cannot be translated: the ranges refer to the original bytes.
    if (this.route.app.translateBody && !noBody && status !== 206) {
      const plan = translationPlan(headerValue(headers, "content-type"), headerValue(headers, "content-encoding"));
      if (plan) {
        const inlineMax = this.state.translateInlineMaxBytes;
        const inline = plan.encoding === "identity" && this.#total !== undefined && this.#total <= inlineMax;
        const pool = inline ? undefined : translatePool(this.state);
        if (pool?.saturated) return this.#fail("POSTERN_OVERLOADED", WireError.CANCEL);
        this.#responded = true;
        this.#total = undefined; // the length changes
        this.#deferredHead = {
          status,
          headers: out.filter(([k]) => k !== "content-length").map(([k, v]) => [k, k === "etag" && !v.startsWith("W/") ? `W/${v}` : v]),
        };
        const sink = {
          data: (chunk: Buffer) => this.#writeTranslated(chunk),
          drain: () => this.#stream.resume(),
          end: (last: Buffer | undefined) => this.#endTranslated(last),
          error: () => this.#fail("POSTERN_TRANSLATE", WireError.CANCEL),
        };
        const links = this.state.routes.tenantLinks(this.route.app.tenantId);
        this.#translation = pool ? new BodyTranslation(pool, plan, links, sink) : new InlineTranslation(plan.kind, links, inlineMax, sink);
        return;
      }
    }
    this.#responded = true;
    this.#writeHead(status, out);
    if (noBody || this.#total === 0) this.#complete();
  }

  #writeHead(status: number, headers: readonly [string, string][]): void {
    const res = this.res;
    const out = headerRecord(headers);
    out["x-request-id"] = this.request.requestId;
    // The backend's Date goes through as it is; Node adds one only when there is none.
    res.sendDate = out.date === undefined;
    res.writeHead(status, out);
  }

  #writeTranslated(chunk: Buffer): void {
    if (this.#finished) return;
    this.#flushDeferredHead(undefined);
    this.#written += chunk.length;
    if (!writeBody(this.res, chunk)) this.#translation!.pause();
  }

  /** Writes the deferred head of a translated response, once; `length` when the whole body is known. */
  #flushDeferredHead(length: number | undefined): void {
    const head = this.#deferredHead;
    if (!head) return;
    this.#deferredHead = null;
    this.#writeHead(head.status, length === undefined ? head.headers : [...head.headers, ["content-length", String(length)]]);
  }

  /** `last`: output not written yet; all of the body when nothing was (then it goes out with its length). */
  #endTranslated(last: Buffer | undefined): void {
    if (this.#finished) return;
    const whole = this.#deferredHead !== null;
    this.#flushDeferredHead(whole ? (last?.length ?? 0) : undefined);
    if (last) {
      this.#written += last.length;
      writeBody(this.res, last);
    }
    this.#complete();
  }

  #write(chunk: Buffer): void {
    if (this.#finished || !this.#responded) return;
    if (this.#translation) {
      if (!this.#translation.write(chunk)) this.#stream.pause();
      return;
    }
    this.#written += chunk.length;
    if (this.#total !== undefined && this.#written > this.#total) return this.#fail("POSTERN_BACKEND_INVALID", WireError.BACKEND_INVALID_RESPONSE);
    if (!writeBody(this.res, chunk)) this.#stream.pause();
  }

  #end(): void {
    if (this.#finished || !this.#responded) return;
    if (this.#translation) return this.#translation.end();
    // The backend sent fewer bytes than it announced: the client must not take it as whole.
    if (this.#total !== undefined && this.#written !== this.#total) {
      this.#finished = true;
      this.#cleanup(this.#status);
      abortResponse(this.res);
      return;
    }
    this.#complete();
  }

  #complete(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.res.end();
    this.#cleanup(this.#status);
  }

  #fail(code: ErrorCode, resetCode?: number): void {
    const finished = this.#finished;
    this.#finished = true;
    // Reset after marking: the stream's own 'close' must not answer in this failure's place.
    if (resetCode !== undefined && !this.#stream.closed) this.#stream.reset(resetCode);
    if (finished) return;
    this.#translation?.destroy();
    this.state.timers.clear(this.#timer);
    this.state.timers.clear(this.#bodyTimer);
    if (this.res.headersSent) {
      this.#cleanup(this.#status, code);
      abortResponse(this.res); // the response already started: cut it so the client sees it incomplete
      return;
    }
    this.#release();
    sendError(this.state, pageWriter(this.res), this.request, code, this.request.requestId, [], this.route.app.name);
  }

  #cleanup(status: number, error?: ErrorCode): void {
    this.state.timers.clear(this.#timer);
    this.state.timers.clear(this.#bodyTimer);
    if (this.#released) return;
    this.#release();
    logAccess(this.state, this.request, this.request.requestId, status || (error ? httpStatusOf(error) ?? 500 : 0), this.#written, {
      app: this.route.app.name, connector: this.#live.identity.id, ...(error ? { error } : {}), translated: this.#translation !== undefined && error === undefined,
    });
  }

  /** Frees the in-flight slot once the tunnel stream is gone too, so a queued request finds it free. */
  #release(): void {
    if (this.#released) return;
    this.#released = true;
    if (this.#stream.closed) release(this.state);
    else this.#stream.once("close", () => release(this.state));
  }
}
