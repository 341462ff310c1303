/**
 * Protocol upgrades (WebSockets), engine side. The upgrade is checked, routed and
 * pre-authenticated like any request; the connector sends it to the backend, and only when
 * the backend answers 101 does the user's connection switch. From then on raw bytes go both
 * ways (engine/http/relay.ts), whatever subprotocol or extension the two ends agreed on. A
 * refusal goes back as a plain response, streamed with backpressure, and the connection then
 * closes. Over HTTP/2 the same happens for an extended CONNECT (RFC 8441): the backend still
 * gets an HTTP/1.1 upgrade, the user's stream carries the WebSocket frames.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { STATUS_CODES } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import type { Duplex } from "node:stream";
import { noIdentity, type IdentityHeaders } from "../auth/gate.js";
import { codeOfWire, type ErrorCode, type PosternError } from "../errors/catalogue.js";
import { relay } from "../http/relay.js";
import { WireError } from "../protocol/constants.js";
import type { LiveConnection } from "../tunnel/registry.js";
import { responseHeaders } from "./headers.js";
import { admit, authorize, backendTimeoutMs, headerRecord, logAccess, openStream, pageWriter, pickConnection, sendError, type EdgeResponse, type EdgeState, type PageWriter } from "./proxy.js";
import { readRequest, type EdgeIncoming, type EdgeRequest } from "./request.js";
import type { Route } from "./routes.js";

/** Response headers of a 101 that belong to the switch itself and go to the user as they are. */
const SWITCH_HEADERS = new Set(["upgrade", "connection", "sec-websocket-accept", "sec-websocket-protocol", "sec-websocket-extensions"]);

/** How the user's side of an upgrade answers: a raw HTTP/1.1 socket, or an HTTP/2 stream. */
interface UserSide extends PageWriter {
  /** Writes the head of a refusal whose body follows on `body` (HTTP/1.1: with Connection: close). */
  head(status: number, headers: readonly (readonly [string, string])[]): void;
  /** The backend switched: tell the user, and hand over the byte pipe. */
  switched(headers: readonly string[]): Duplex;
  /** The pipe a refusal's body is written to. */
  readonly body: Duplex;
  close(): void;
}

/** HTTP/1.1 `Upgrade:` on a public listener (the server's 'upgrade' event). */
export function handleUpgrade(state: EdgeState, req: EdgeIncoming, socket: Duplex, early: Buffer, scheme: "http" | "https"): void {
  let answered = false;
  const user: UserSide = {
    head(status, headers) {
      answered = true;
      let text = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Status"}\r\n`;
      for (const [k, v] of headers) text += `${k}: ${v}\r\n`;
      socket.write(`${text}connection: close\r\n\r\n`);
    },
    page(status, headers, body) {
      if (answered || socket.destroyed) return 0;
      this.head(status, [...headers, ["content-length", String(Buffer.byteLength(body))]]);
      socket.end(body);
      return Buffer.byteLength(body);
    },
    switched(headers) {
      answered = true;
      let text = "HTTP/1.1 101 Switching Protocols\r\n";
      for (let i = 0; i + 1 < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`;
      socket.write(`${text}\r\n`);
      return socket;
    },
    body: socket,
    close: () => socket.end(),
    gone: () => answered || socket.destroyed,
  };
  socket.on("error", () => undefined); // a reset by the user ends in 'close'
  const upgradeHeader = headerOf(req.rawHeaders, "upgrade") ?? "";
  if (!/^websocket$/i.test(upgradeHeader.trim())) {
    // h2c and other upgrades are not offered: refuse, and nothing after this request is read.
    return refuse(state, user, undefined, "POSTERN_BAD_REQUEST", randomUUID());
  }
  start(state, req, scheme, user, [...req.rawHeaders], early);
}

/** An HTTP/2 extended CONNECT with :protocol websocket (RFC 8441). */
export function handleH2WebSocket(state: EdgeState, req: Http2ServerRequest, res: EdgeResponse, scheme: "http" | "https"): void {
  const stream = req.stream;
  const pages = pageWriter(res);
  const user: UserSide = {
    head(status, headers) {
      res.writeHead(status, headerRecord(headers));
    },
    page: pages.page,
    switched(headers) {
      const out: Record<string, string> = {};
      for (let i = 0; i + 1 < headers.length; i += 2) {
        const name = headers[i]!.toLowerCase();
        if (name === "sec-websocket-protocol" || name === "sec-websocket-extensions") out[name] = headers[i + 1]!;
      }
      res.writeHead(200, out);
      return stream;
    },
    body: stream,
    close: () => res.end(),
    gone: pages.gone,
  };
  // The backend gets an HTTP/1.1 upgrade: the handshake fields HTTP/2 leaves out are made here.
  const headers = [...req.rawHeaders, "connection", "Upgrade", "upgrade", "websocket"];
  if (headerOf(req.rawHeaders, "sec-websocket-key") === undefined) headers.push("sec-websocket-key", randomBytes(16).toString("base64"));
  if (headerOf(req.rawHeaders, "sec-websocket-version") === undefined) headers.push("sec-websocket-version", "13");
  start(state, req, scheme, user, headers, undefined);
}

function start(state: EdgeState, req: EdgeIncoming, scheme: "http" | "https", user: UserSide, headers: readonly string[], early: Buffer | undefined): void {
  const request = readRequest(state.limits, state.limits.trustedProxies, req, scheme);
  if (typeof request === "string") return refuse(state, user, undefined, request === "asterisk" ? "POSTERN_BAD_REQUEST" : request, randomUUID());
  admit(state, request, user.gone, (admitted) => {
    if ("error" in admitted) {
      return refuse(state, user, request, admitted.error, request.requestId, admitted.retryAfterS ? [["retry-after", String(admitted.retryAfterS)]] : [], admitted.app);
    }
    const { route } = admitted;
    const go = (identity: IdentityHeaders, live: LiveConnection | undefined) => relayUpgrade(state, user, request, route, live, identity, headers, early);
    if (route.app.preAuthentication !== "oidc") return go(noIdentity(route.app), admitted.live);
    authorize(state, user, request, route, (identity) => go(identity, pickConnection(state.registry, route.app)));
  });
}

function refuse(state: EdgeState, user: UserSide, request: EdgeRequest | undefined, code: ErrorCode, requestId: string, extra: [string, string][] = [], app?: string): void {
  if (!user.gone()) sendError(state, user, request, code, requestId, extra, app);
}

function relayUpgrade(state: EdgeState, user: UserSide, request: EdgeRequest, route: Route, live: LiveConnection | undefined, identity: IdentityHeaders, headers: readonly string[], early: Buffer | undefined): void {
  const opened = live ? openStream(state, request, route, live, identity, { headers }) : undefined;
  if (!opened) return refuse(state, user, request, "POSTERN_NO_CONNECTOR", request.requestId);
  const { stream } = opened;
  let answered = false;
  const finish = (status: number, bytes: number, error?: ErrorCode) =>
    logAccess(state, request, request.requestId, status, bytes, { app: route.app.name, connector: opened.live.identity.id, ...(error ? { error } : {}) });
  user.body.once("close", () => {
    if (!answered && !stream.closed) stream.reset(WireError.CANCEL);
  });
  const timer = state.timers.set(() => {
    if (answered) return;
    answered = true;
    if (!stream.closed) stream.reset(WireError.BACKEND_TIMEOUT);
    refuse(state, user, request, "POSTERN_BACKEND_TIMEOUT", request.requestId);
  }, backendTimeoutMs(state, route.app));
  stream.once("response", (head: { status: number; headers: string[] }) => {
    state.timers.clear(timer);
    if (answered || user.gone()) return;
    answered = true;
    if (head.status === 101) {
      const switching: string[] = [];
      for (let i = 0; i + 1 < head.headers.length; i += 2) {
        if (SWITCH_HEADERS.has(head.headers[i]!.toLowerCase())) switching.push(head.headers[i]!, head.headers[i + 1]!);
      }
      const pipe = user.switched(switching);
      relay(stream, pipe, early);
      pipe.once("close", () => finish(101, 0));
      return;
    }
    // The backend refused the upgrade: its answer streams to the user with backpressure, then the connection closes.
    const out = responseHeaders(head.headers, route, state.routes.tenantRoutes(route.app.tenantId)).filter(([k]) => k !== "content-length");
    user.head(head.status, [...out, ["x-request-id", request.requestId]]);
    let bytes = 0;
    stream.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
      if (!user.body.write(chunk)) stream.pause();
    });
    user.body.on("drain", () => stream.resume());
    stream.once("end", () => {
      user.close();
      finish(head.status, bytes);
    });
  });
  stream.once("close", (err?: PosternError) => {
    state.timers.clear(timer);
    if (!err || answered) {
      if (err && !user.gone()) user.body.destroy();
      return;
    }
    answered = true;
    refuse(state, user, request, codeOfWire(err.wireCode), request.requestId);
  });
}

function headerOf(raw: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) return raw[i + 1];
  return undefined;
}
