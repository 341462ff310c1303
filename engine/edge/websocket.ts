/**
 * WebSocket pass-through, engine side. The upgrade is checked and routed like any request;
 * the connector opens the backend WebSocket and only when the backend answers 101 does the
 * engine complete the user's upgrade (a refusal goes back as a plain response). Messages then
 * travel as relay records (engine/protocol/ws-relay.ts), with the tunnel stream paused while
 * the user's socket has too much buffered, and the user's socket closed if it floods a stream
 * that cannot keep up.
 */
import type { Stream } from "../mux/stream.js";
import { WireError } from "../protocol/constants.js";
import { codeOfWire, type PosternError } from "../errors/catalogue.js";
import { RelayDecoder, RelayKind, encodeRelay, encodeRelayClose, MAX_RELAY_MESSAGE } from "../http/ws-relay.js";
import { uws, type TemplatedApp, type WebSocket } from "../uws/index.js";
import { outside } from "./outside.js";
import { STATUS_CODES } from "node:http";
import { admit, authorize, backendTimeoutMs, openStream, pickSession, readRequest, sendError, type EdgeState } from "./proxy.js";
import { noIdentity, type IdentityHeaders } from "../auth/gate.js";
import type { Session } from "../mux/session.js";
import { responseHeaders } from "./headers.js";

interface Relay {
  stream: Stream;
  /** The user's socket closed: uWS must not be touched through it again. */
  closed?: boolean;
}

/** Bytes buffered for the user (or queued into the stream) before the other side waits. */
const HIGH_WATER = 1024 * 1024;

export function attachWebSockets(app: TemplatedApp, state: EdgeState, scheme: "http" | "https"): void {
  app.ws<Relay>("/*", {
    compression: uws.DISABLED,
    maxPayloadLength: MAX_RELAY_MESSAGE,
    maxBackpressure: 4 * HIGH_WATER,
    idleTimeout: 120,
    sendPingsAutomatically: true,
    upgrade: (res, req, context) => {
      const request = readRequest(state, res, req, scheme);
      if (typeof request === "string") return sendError(res, request, "-", [], true);
      const key = req.getHeader("sec-websocket-key");
      const admitted = admit(state, request);
      if ("error" in admitted) {
        return sendError(res, admitted.error, request.requestId, admitted.retryAfterS ? [["retry-after", String(admitted.retryAfterS)]] : []);
      }
      const relay = (identity: IdentityHeaders, session: Session | undefined) => {
        const stream = session ? openStream(state, request, admitted.route, session, identity, true) : undefined;
        if (!stream) return sendError(res, "POSTERN_NO_CONNECTOR", request.requestId);
        let aborted = false;
        res.onAborted(() => {
          aborted = true;
          state.timers.clear(timer);
          if (!stream.closed) stream.reset(WireError.CANCEL);
        });
        const timer = state.timers.set(() => {
          if (!stream.closed) stream.reset(WireError.BACKEND_TIMEOUT);
          if (!aborted) outside(() => !aborted && sendError(res, "POSTERN_BACKEND_TIMEOUT", request.requestId, [], true));
          aborted = true;
        }, backendTimeoutMs(state, admitted.route.app));
        stream.once("response", (head: { status: number; headers: string[] }) => outside(() => {
          state.timers.clear(timer);
          if (aborted) return;
          aborted = true; // res is handed over (upgrade) or finished below: no further use
          if (head.status === 101) {
            const protocol = head.headers[head.headers.indexOf("sec-websocket-protocol") + 1] ?? "";
            // No extensions are negotiated: messages are relayed as they are, uncompressed.
            res.cork(() => res.upgrade<Relay>({ stream }, key, head.headers.includes("sec-websocket-protocol") ? protocol : "", "", context));
            return;
          }
          // The backend refused the upgrade: pass its answer on (bodies of refusals are small).
          const chunks: Buffer[] = [];
          stream.on("data", (c: Buffer) => chunks.push(c));
          stream.once("end", () => outside(() => res.cork(() => {
            res.writeStatus(`${head.status} ${STATUS_CODES[head.status] ?? "Status"}`);
            for (const [k, v] of responseHeaders(head.headers, admitted.route, state.routes.tenantRoutes(admitted.route.app.tenantId))) res.writeHeader(k, v);
            res.writeHeader("x-request-id", request.requestId).end(Buffer.concat(chunks));
          })));
        }));
        stream.once("close", (err?: PosternError) => {
          if (err && !aborted) {
            aborted = true;
            state.timers.clear(timer);
            outside(() => sendError(res, codeOfWire(err?.wireCode), request.requestId, [], true));
          }
        });
      };
      if (admitted.route.app.preAuthentication !== "oidc") return relay(noIdentity(admitted.route.app), admitted.session);
      authorize(state, res, request, admitted.route, false, (identity) => relay(identity, pickSession(state.registry, admitted.route.app)));
    },
    open: (ws: WebSocket<Relay>) => {
      const { stream } = ws.getUserData();
      const decoder = new RelayDecoder((kind, payload) => {
        const data = ws.getUserData();
        if (data.closed) return;
        if (kind === RelayKind.CLOSE) {
          const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1000;
          outside(() => data.closed || ws.end(code, payload.subarray(2)));
          return;
        }
        ws.send(payload, kind === RelayKind.BINARY);
        if (ws.getBufferedAmount() > HIGH_WATER) stream.pause();
      });
      stream.on("data", (chunk: Buffer) => {
        try {
          decoder.push(chunk);
        } catch {
          stream.reset(WireError.PROTOCOL_ERROR);
          if (!ws.getUserData().closed) ws.end(1011, "relay error");
        }
      });
      stream.once("close", (err?: PosternError) => {
        if (err) outside(() => ws.getUserData().closed || ws.end(1011, "backend connection lost"));
      });
    },
    message: (ws, message, isBinary) => {
      const { stream } = ws.getUserData();
      if (stream.closed) return;
      stream.write(encodeRelay(isBinary ? RelayKind.BINARY : RelayKind.TEXT, new Uint8Array(message)));
      // A user who keeps sending while the backend does not read is cut off, not buffered for.
      if (stream.writableLength > HIGH_WATER) ws.end(1008, "backend is not keeping up");
    },
    drain: (ws) => ws.getUserData().stream.resume(),
    close: (ws, code, message) => {
      const data = ws.getUserData();
      data.closed = true;
      const { stream } = data;
      if (stream.closed) return;
      stream.write(encodeRelayClose(code, Buffer.from(message).toString()));
      stream.end();
    },
  });
}
