/**
 * Protocol upgrades (WebSockets), connector side: the user's upgrade request goes to the
 * backend as it came (its headers in order, any subprotocol or extension offered), over a
 * connection of its own. A 101 switches the stream to raw bytes both ways (the same relay loop
 * as the engine's, engine/http/relay.ts). A refusal is answered on the stream as a plain
 * response whose body streams with backpressure; the backend connection is closed once it is
 * sent, never kept or leaked.
 */
import { request as httpRequest, type ClientRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import type { Socket } from "node:net";
import type { Logger } from "pino";
import type { ConnectorApp } from "../control/contract/feed.js";
import { wireCodeOf } from "../engine/errors/catalogue.js";
import { HOP_BY_HOP, isValidField } from "../engine/http/headers.js";
import { relay } from "../engine/http/relay.js";
import type { Stream } from "../engine/mux/stream.js";
import { WireError } from "../engine/protocol/constants.js";

/** Response headers of a switch that go back as they are (the rest of a 101 is hop-by-hop). */
const SWITCH_HEADERS = new Set(["upgrade", "connection", "sec-websocket-accept", "sec-websocket-protocol", "sec-websocket-extensions"]);

export function relayUpgrade(stream: Stream, url: URL, app: ConnectorApp, timeoutMs: number, logger: Logger): void {
  const head = stream.requestHead;
  const headers: string[] = [];
  for (let i = 0; i + 1 < head.headers.length; i += 2) {
    const lower = head.headers[i]!.toLowerCase();
    // The upgrade's own Connection and Upgrade stay; other hop-by-hop headers and any framing go.
    if ((HOP_BY_HOP.has(lower) && lower !== "connection" && lower !== "upgrade") || lower === "content-length" || lower === "transfer-encoding") continue;
    headers.push(head.headers[i]!, head.headers[i + 1]!);
  }
  const secure = url.protocol === "https:";
  const request: ClientRequest = (secure ? httpsRequest : httpRequest)({
    host: url.hostname.replace(/^\[|\]$/g, ""),
    port: url.port || (secure ? 443 : 80),
    method: head.method,
    path: head.target,
    headers,
    agent: false,
    ...(secure ? { rejectUnauthorized: app.validateBackendTls, servername: url.hostname } : {}),
  });
  let answered = false;
  const timer = setTimeout(() => {
    if (answered) return;
    answered = true;
    request.destroy();
    if (!stream.closed) stream.reset(wireCodeOf("POSTERN_BACKEND_TIMEOUT"));
  }, timeoutMs);
  stream.once("close", (err?: Error) => {
    clearTimeout(timer);
    if (err || !answered) request.destroy();
  });
  const respond = (res: IncomingMessage, keep: (lower: string) => boolean): boolean => {
    answered = true;
    clearTimeout(timer);
    const out: string[] = [];
    for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
      const name = res.rawHeaders[i]!;
      const value = res.rawHeaders[i + 1]!;
      if (!keep(name.toLowerCase())) continue;
      if (!isValidField(name, value)) {
        if (!stream.closed) stream.reset(wireCodeOf("POSTERN_BACKEND_INVALID"));
        return false;
      }
      out.push(name, value);
    }
    if (stream.closed) return false;
    stream.respond({ status: res.statusCode ?? 502, headers: out });
    return true;
  };
  request.once("upgrade", (res: IncomingMessage, socket: Socket, early: Buffer) => {
    if (!respond(res, (name) => SWITCH_HEADERS.has(name))) return void socket.destroy();
    relay(stream, socket, early);
  });
  request.once("response", (res: IncomingMessage) => {
    // Refused: the answer streams back with backpressure, then the backend connection closes.
    if (!respond(res, (name) => !HOP_BY_HOP.has(name) && name !== "transfer-encoding")) return void request.destroy();
    res.on("data", (chunk: Buffer) => {
      if (stream.closed) return void request.destroy();
      if (!stream.write(chunk)) res.pause();
    });
    stream.on("drain", () => res.resume());
    res.once("end", () => {
      if (!stream.closed) stream.end();
      request.destroy();
    });
  });
  request.once("error", (err: Error & { code?: string }) => {
    clearTimeout(timer);
    logger.info({ requestId: head.ext?.requestId, url: url.href, code: err.code, err: err.message }, "backend upgrade failed");
    if (stream.closed) return;
    stream.reset(answered ? WireError.CANCEL : wireCodeOf("POSTERN_BACKEND_UNREACHABLE"));
    answered = true;
  });
  request.end();
}
