/**
 * The engine's public listeners, on Node's own HTTP stack: llhttp (strict, no lenient flags)
 * for HTTP/1.1 and nghttp2 for HTTP/2, with ALPN (h2 and http/1.1 on one TLS port) and an SNI
 * certificate per custom domain. Ambiguous framing never reaches JavaScript: the parser
 * refuses it, the client gets 400 (431, 408) and the connection closes. Requests pipelined on
 * one HTTP/1.1 connection are handled one at a time, so nothing after a response that closes
 * the connection is ever processed. The routing table is rebuilt from each config snapshot
 * and swapped in with one assignment.
 */
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { constants as h2, createSecureServer, type Http2SecureServer, type Http2ServerRequest, type Http2ServerResponse, type Http2Session, type ServerHttp2Stream } from "node:http2";
import { readFileSync } from "node:fs";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { createSecureContext, type SecureContext } from "node:tls";
import type { Logger } from "pino";
import type { Dispatcher } from "undici";
import type { EngineConfig, SignInReport } from "../../control/contract/feed.js";
import { AuthGate, type AuthConfig } from "../auth/gate.js";
import type { Clock } from "../config/clock.js";
import { resolveSettings } from "../config/settings.js";
import { resolveLimits, type EdgeLimits, type EdgeLimitsInput } from "../limits/config.js";
import { LogBudget } from "../limits/log-budget.js";
import { Throttle } from "../limits/throttle.js";
import type { SharedState } from "../fleet/shared.js";
import type { Registry } from "prom-client";
import { EdgeMetrics } from "./metrics.js";
import type { ConnectorRegistry } from "../tunnel/registry.js";
import type { AuthResult, AuthTask } from "../workers/auth-task.js";
import { authPoolSchema, taskFile, translateLimitsSchema, WorkerPool, type AuthPoolInput, type TranslateLimitsInput } from "../workers/pool.js";
import { authPage } from "./pages.js";
import { abortResponse, handleRequest, pageWriter, realTimers, sendError, type EdgeResponse, type EdgeState, type Timers } from "./proxy.js";
import { closeAfterThis, inTurn } from "./turns.js";
import { randomUUID } from "node:crypto";
import { RouteTable } from "./routes.js";
import { handleH2WebSocket, handleUpgrade } from "./upgrade.js";
import { isHttp2 } from "./request.js";
import { processLogger } from "../config/logger.js";

export interface EdgeOptions {
  readonly host: string;
  /** Plain HTTP port; unset: no HTTP listener; 0 picks a free port. */
  readonly httpPort?: number;
  /** HTTPS listener (h2 and http/1.1) with a default certificate (PEM files). */
  readonly https?: { readonly port: number; readonly keyFile: string; readonly certFile: string };
  readonly registry: ConnectorRegistry;
  readonly limits?: EdgeLimitsInput;
  /** Worker pool for body link translation (threads, queue, per-response budgets). */
  readonly translate?: TranslateLimitsInput;
  /** Pre-authentication: how to reach identity providers, where sign-ins are recorded, the crypto pool's limits. */
  readonly auth?: { readonly dispatcher?: Dispatcher; readonly signIns?: (record: SignInReport) => void; readonly pool?: AuthPoolInput };
  readonly timers?: Timers;
  readonly now?: Clock;
  /** Access log and listener refusals; default: pino on stderr. */
  readonly logger?: Logger;
  /** Rate limits, revocations and sign-in state shared with the other engines (Redis). */
  readonly shared?: SharedState;
  /** Where the edge's metrics go (the engine's registry); unset: none kept. */
  readonly metrics?: Registry;
  /** Worker processes of this engine (each enforces its share of the limits when the shared store is away). */
  readonly workers?: number;
  /** Create the listeners but bind them only on listen() (a new worker waits for its tunnels first). */
  readonly deferListen?: boolean;
}


export class Edge {
  readonly state: EdgeState;
  readonly #servers: (Server | Http2SecureServer)[] = [];
  readonly #sessions = new Set<Http2Session>();
  /** SNI: external host -> its custom-domain certificate. */
  #contexts = new Map<string, { fingerprint: string; context: SecureContext }>();
  #authPool: WorkerPool<AuthTask, AuthResult> | undefined;
  /** Parser refusals logged per second. */
  readonly #refusals = new LogBudget(10);
  httpPort: number | undefined;
  httpsPort: number | undefined;
  #workers = 1;
  /** Listeners made but not bound yet. */
  #pending: (() => Promise<void>)[] = [];

  private constructor(state: EdgeState) {
    this.state = state;
  }

  static async start(options: EdgeOptions): Promise<Edge> {
    const limits = resolveLimits(options.limits);
    const edge = new Edge({
      routes: new RouteTable([]),
      registry: options.registry,
      throttle: new Throttle(limits, options.now, options.shared),
      limits,
      timers: options.timers ?? realTimers,
      log: options.logger ?? processLogger("engine"),
      inflight: 0,
      queue: [],
      ...(options.translate ? { translateLimits: options.translate } : {}),
      translateInlineMaxBytes: resolveSettings(translateLimitsSchema, options.translate ?? {}, "translate").inlineMaxBytes,
      ...(options.metrics ? {
        metrics: new EdgeMetrics(options.metrics, {
          inflight: () => edge.state.inflight,
          queued: () => edge.state.queue.length,
          tunnels: options.registry,
          pools: () => [
            ...(edge.state.translatePool ? [{ name: "translate" as const, queueSize: edge.state.translatePool.queueSize }] : []),
            ...(edge.#authPool ? [{ name: "auth" as const, queueSize: edge.#authPool.queueSize }] : []),
          ],
        }),
      } : {}),
    });
    const metrics = edge.state.metrics;
    edge.#workers = options.workers ?? 1;
    edge.state.gate = new AuthGate({
      pool: () => {
        if (edge.#authPool === undefined) {
          edge.#authPool = new WorkerPool<AuthTask, AuthResult>(
            resolveSettings(authPoolSchema, options.auth?.pool, "auth pool"), taskFile("auth-task"), "POSTERN_AUTH_UNAVAILABLE", "token validation");
          edge.#authPool.onTask = metrics?.poolObserver("auth");
        }
        return edge.#authPool;
      },
      ...(options.auth?.dispatcher ? { dispatcher: options.auth.dispatcher } : {}),
      ...(options.auth?.signIns || metrics ? {
        signIns: (record: SignInReport) => {
          metrics?.signIn(record.outcome);
          options.auth?.signIns?.(record);
        },
      } : {}),
      ...(options.now ? { now: options.now } : {}),
      ...(options.shared ? { shared: options.shared } : {}),
      ...(options.logger ? { logger: options.logger } : {}),
      page: authPage,
    });
    if (options.httpPort !== undefined) {
      const server = createServer({ ...http1Options(limits), ...STRICT });
      edge.#http1(server, "http");
      const port = options.httpPort;
      edge.#pending.push(async () => {
        edge.httpPort = await listen(server, options.host, port);
      });
      edge.#servers.push(server);
    }
    if (options.https) {
      const server = createSecureServer({
        key: readFileSync(options.https.keyFile),
        cert: readFileSync(options.https.certFile),
        allowHTTP1: true,
        ALPNProtocols: ["h2", "http/1.1"],
        SNICallback: (name, done) => done(null, edge.#contexts.get(name.toLowerCase())?.context),
        settings: {
          maxConcurrentStreams: limits.h2MaxConcurrentStreams,
          maxHeaderListSize: limits.maxHeaderBytes,
          enableConnectProtocol: true,
        },
        maxSessionMemory: limits.h2MaxSessionMemoryMb,
        maxHeaderListPairs: limits.maxHeaderCount + 8,
        maxSessionInvalidFrames: 100,
        maxSessionRejectedStreams: 100,
        peerMaxConcurrentStreams: 100,
        unknownProtocolTimeout: limits.headerTimeoutMs,
      });
      // The HTTP/1.1 side of the TLS port reads these from the server, as node:http does.
      Object.assign(server, http1Options(limits), STRICT);
      edge.#http1(server, "https");
      edge.#http2(server);
      const port = options.https.port;
      edge.#pending.push(async () => {
        edge.httpsPort = await listen(server, options.host, port);
      });
      edge.#servers.push(server);
    }
    if (!options.deferListen) await edge.listen();
    return edge;
  }

  /** Binds the listeners made by start() with deferListen. */
  async listen(): Promise<void> {
    const pending = this.#pending;
    this.#pending = [];
    for (const bind of pending) await bind();
  }

  /**
   * Stops taking connections and lets the requests in flight finish (or `graceMs` pass), then
   * closes what is left. A load balancer or the cluster sends new connections elsewhere meanwhile.
   */
  async drain(graceMs: number): Promise<void> {
    for (const server of this.#servers) {
      server.close();
      if ("closeIdleConnections" in server) server.closeIdleConnections();
    }
    for (const session of this.#sessions) session.close(); // HTTP/2: GOAWAY, open streams finish
    const deadline = Date.now() + graceMs;
    while ((this.state.inflight > 0 || this.state.queue.length > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    this.close();
  }

  /** Requests, upgrades and refusals on the HTTP/1.1 side of a listener. */
  #http1(server: Server | Http2SecureServer, scheme: "http" | "https"): void {
    const state = this.state;
    const onRequest = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse, expectContinue: boolean) => this.#guard(res, () => {
      if (isHttp2(req)) return this.#h2Request(req, res as Http2ServerResponse, expectContinue);
      inTurn(req as IncomingMessage, res as ServerResponse, () => this.#guard(res, () => handleRequest(state, req, res as EdgeResponse, scheme, expectContinue)));
    });
    server.on("request", (req, res) => onRequest(req, res, false));
    // Expect: 100-continue is answered once the request is admitted (routed, throttled, signed in).
    server.on("checkContinue", (req, res) => onRequest(req, res, true));
    server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      closeAfterThis(socket); // an upgraded connection carries no further HTTP requests
      try {
        handleUpgrade(state, req, socket, head, scheme);
      } catch (err) {
        state.log.error({ err }, "upgrade handler failed");
        socket.destroy();
      }
    });
    // CONNECT (HTTP/1.1) is never tunnelled: refused, and the connection closes.
    server.on("connect", (req: IncomingMessage | Http2ServerRequest, socket: Duplex | Http2ServerResponse) => {
      // HTTP/2 hands its CONNECT requests here too: extended CONNECT carries WebSockets.
      if (isHttp2(req)) return this.#h2Request(req, socket as Http2ServerResponse, false);
      this.#refuseRaw(socket as Duplex, 405, "CONNECT is not supported", req.socket?.remoteAddress);
    });
    // An expectation other than 100-continue cannot be met: 417, and the connection closes.
    server.on("checkExpectation", (req: IncomingMessage, res: ServerResponse) => {
      inTurn(req, res, () => sendError(state, pageWriter(res), undefined, "POSTERN_EXPECTATION_FAILED", randomUUID(), []));
    });
    server.on("clientError", (err: Error & { code?: string }, socket: Duplex) => {
      // Bytes after a request that closes the connection (HTTP/1.0, Connection: close) are
      // never read: that request's response still goes out, then the connection closes.
      if (err.code === "HPE_CLOSED_CONNECTION" && (socket as Socket & { _httpMessage?: unknown })._httpMessage) return closeAfterThis(socket);
      // The client went away (a load generator or balancer closing its connections): nothing to answer, nothing to log.
      if (err.code === "ECONNRESET" || err.code === "EPIPE") return void socket.destroy();
      const status = err.code === "HPE_HEADER_OVERFLOW" ? 431 : err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400;
      this.#refuseRaw(socket, status, err.code ?? "bad request", (socket as Socket).remoteAddress);
    });
  }

  /** HTTP/2 sessions: stream limits, reset floods, idle sessions; requests go to the same handler. */
  #http2(server: Http2SecureServer): void {
    const limits = this.state.limits;
    server.on("session", (session: Http2Session) => {
      this.#sessions.add(session);
      session.once("close", () => this.#sessions.delete(session));
      session.setTimeout(limits.keepAliveTimeoutMs, () => session.close());
      // Rapid reset (CVE-2023-44487): a client that opens and cancels streams faster than it
      // lets them complete is cut off.
      let windowStart = 0;
      let opened = 0;
      let reset = 0;
      session.on("stream", (stream: ServerHttp2Stream) => {
        const now = Date.now();
        if (now - windowStart > 1000) {
          windowStart = now;
          opened = 0;
          reset = 0;
        }
        opened++;
        stream.once("aborted", () => {
          reset++;
          if (opened >= limits.h2ResetFloodMinStreams && reset / opened > 0.5) {
            this.#logRefusal("HTTP/2 rapid reset", session.socket?.remoteAddress);
            // GOAWAY with ENHANCE_YOUR_CALM (RFC 9113 §7), then the session ends: at once when
            // its streams are done, within a second in any case.
            if (session.closed || session.destroyed) return;
            session.goaway(h2.NGHTTP2_ENHANCE_YOUR_CALM);
            session.close();
            setTimeout(() => session.destroy(), 1000).unref();
          }
        });
      });
    });
  }

  #h2Request(req: Http2ServerRequest, res: Http2ServerResponse, expectContinue: boolean): void {
    if (req.method === "CONNECT" && req.headers[":protocol"] === "websocket") return handleH2WebSocket(this.state, req, res, "https");
    handleRequest(this.state, req, res, "https", expectContinue);
  }

  /**
   * A bug in a handler fails that one request (500, logged with its stack), never the
   * process: one client's request must not take every other user's down.
   */
  #guard(res: ServerResponse | Http2ServerResponse, run: () => void): void {
    try {
      run();
    } catch (err) {
      const requestId = randomUUID();
      this.state.log.error({ err, requestId }, "request handler failed");
      if (!res.headersSent) sendError(this.state, pageWriter(res as EdgeResponse), undefined, "POSTERN_INTERNAL", requestId);
      else abortResponse(res as EdgeResponse);
    }
  }

  /** Answers on a raw socket and closes it; refusals are logged, at most 10 a second. */
  #refuseRaw(socket: Duplex, status: number, reason: string, peer: string | undefined): void {
    closeAfterThis(socket);
    this.#logRefusal(reason, peer, status);
    // A body that breaks framing mid-request fails the request it belongs to: if its response has
    // not started, the client gets the refusal; the proxied request sees the socket close.
    const current = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (!socket.writable || current?.headersSent) return void socket.destroy();
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`, () => socket.destroy());
  }

  #logRefusal(reason: string, peer: string | undefined, status?: number): void {
    const budget = this.#refusals.take();
    if (budget.ok) this.state.log.warn({ reason, client: peer, status, ...(budget.dropped ? { dropped: budget.dropped } : {}) }, "request refused by the HTTP parser");
  }

  /** Swaps in the routes of a new config snapshot, and the custom-domain certificates. */
  apply(config: EngineConfig): void {
    const apps = config.apps;
    this.state.routes = new RouteTable(apps);
    this.state.gate?.apply((config as { auth?: AuthConfig }).auth);
    this.state.throttle.retain(new Set(apps.map((a) => `${a.tenantId}/${a.name}`)), new Set(apps.map((a) => a.tenantId)));
    this.state.throttle.setFleetSize((config.engines ?? 1) * this.#workers);
    const next = new Map<string, { fingerprint: string; context: SecureContext }>();
    for (const cert of config.certificates ?? []) {
      const host = cert.host.toLowerCase();
      const known = this.#contexts.get(host);
      next.set(host, known?.fingerprint === cert.fingerprint ? known : { fingerprint: cert.fingerprint, context: createSecureContext({ key: cert.keyPem, cert: cert.certPem }) });
    }
    this.#contexts = next;
  }

  /** Stops accepting; in-flight requests finish; idle connections close. */
  close(): void {
    for (const server of this.#servers) {
      server.close();
      if ("closeIdleConnections" in server) server.closeIdleConnections();
    }
    for (const session of this.#sessions) session.close();
    void this.state.translatePool?.close();
    void this.#authPool?.close();
  }
}

/**
 * llhttp without lenient flags; duplicate headers kept apart. A missing Host is refused by the
 * edge itself (Node's own check answers without closing, so a pipelined request would run).
 */
const STRICT = { requireHostHeader: false, insecureHTTPParser: false, joinDuplicateHeaders: false } as const;

function http1Options(limits: EdgeLimits) {
  return {
    maxHeaderSize: limits.maxHeaderBytes + limits.maxUrlBytes,
    // Node drops headers past this silently: one more than the limit lets the edge see and refuse them.
    maxHeadersCount: limits.maxHeaderCount + 1,
    headersTimeout: limits.headerTimeoutMs,
    // The body has its own idle deadline (bodyIdleMs); a 2 GiB upload may take long.
    requestTimeout: 0,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionsCheckingInterval: Math.min(1000, limits.headerTimeoutMs),
  };
}

function listen(server: Server | Http2SecureServer, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      const address = server.address();
      resolve(typeof address === "object" && address ? address.port : port);
    });
  });
}
