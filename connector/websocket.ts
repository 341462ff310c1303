/**
 * WebSocket pass-through, connector side: open a WebSocket to the backend with the user's
 * headers, answer the engine's stream with the backend's 101 (or its refusal as a plain
 * response), then relay messages as records (engine/protocol/ws-relay.ts) both ways, pausing
 * the side that reads when the other cannot keep up.
 */
import type { Logger } from "pino";
import WebSocket from "ws";
import type { Stream } from "../engine/mux/stream.js";
import { WireError } from "../engine/protocol/constants.js";
import type { ConnectorConfig } from "../control/contract/feed.js";
import { MAX_RELAY_MESSAGE, RelayDecoder, RelayKind, encodeRelay, encodeRelayClose } from "../engine/http/ws-relay.js";

/** Backend bytes buffered towards the engine before the backend socket is paused. */
const HIGH_WATER = 1024 * 1024;
const SKIP = new Set(["host", "connection", "upgrade", "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol", "content-length"]);

export function relayWebSocket(stream: Stream, url: URL, app: ConnectorConfig["apps"][number], logger: Logger): void {
  const head = stream.requestHead;
  const headers: Record<string, string> = {};
  let protocols: string[] = [];
  for (let i = 0; i + 1 < head.headers.length; i += 2) {
    const name = head.headers[i]!;
    const value = head.headers[i + 1]!;
    if (name === "sec-websocket-protocol") protocols = value.split(",").map((p) => p.trim()).filter(Boolean);
    else if (!SKIP.has(name)) headers[name] = value;
  }
  const target = new URL(url.href);
  target.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const backend = new WebSocket(target, protocols, {
    headers,
    rejectUnauthorized: app.validateBackendTls,
    maxPayload: MAX_RELAY_MESSAGE,
    followRedirects: false,
    handshakeTimeout: app.backendTimeoutMs,
    perMessageDeflate: false,
  });
  let open = false;
  backend.once("upgrade", (res) => {
    const out: string[] = [];
    const protocol = res.headers["sec-websocket-protocol"];
    if (typeof protocol === "string") out.push("sec-websocket-protocol", protocol);
    stream.respond({ status: 101, headers: out });
  });
  backend.once("open", () => {
    open = true;
    const decoder = new RelayDecoder((kind, payload) => {
      if (kind === RelayKind.CLOSE) {
        const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1000;
        backend.close(code >= 1000 && code < 5000 && code !== 1005 && code !== 1006 ? code : 1000, payload.subarray(2).toString());
        return;
      }
      backend.send(payload, { binary: kind === RelayKind.BINARY });
    });
    stream.on("data", (chunk: Buffer) => {
      try {
        decoder.push(chunk);
      } catch {
        stream.reset(WireError.PROTOCOL_ERROR);
        backend.terminate();
      }
    });
    stream.on("end", () => backend.close(1000));
  });
  backend.on("message", (data, isBinary) => {
    const payload = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    if (!stream.write(encodeRelay(isBinary ? RelayKind.BINARY : RelayKind.TEXT, payload)) || stream.writableLength > HIGH_WATER) {
      backend.pause();
      stream.once("drain", () => backend.resume());
    }
  });
  backend.once("close", (code, reason) => {
    if (stream.closed) return;
    stream.write(encodeRelayClose(code === 1005 ? 1000 : code, reason.toString()));
    stream.end();
  });
  backend.once("unexpected-response", (_req, res) => {
    const out: string[] = [];
    for (const [k, v] of Object.entries(res.headers)) {
      if (!["connection", "transfer-encoding", "keep-alive", "upgrade", "content-length"].includes(k)) for (const x of [v].flat()) if (x !== undefined) out.push(k, x);
    }
    stream.respond({ status: res.statusCode ?? 502, headers: out });
    res.on("data", (c: Buffer) => stream.write(c));
    res.on("end", () => stream.end());
  });
  backend.once("error", (err) => {
    logger.info({ url: target.href, err: err.message }, "backend WebSocket failed");
    if (!stream.closed && !open && stream.responseHead === undefined) stream.reset(WireError.BACKEND_UNREACHABLE);
    else if (!stream.closed) stream.reset(WireError.CANCEL);
  });
  stream.once("close", (err?: Error) => {
    if (err) backend.terminate();
  });
}
