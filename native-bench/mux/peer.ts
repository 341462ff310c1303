/**
 * The far side of the loopback benchmarks, run as a child process so each side has a core:
 *   mux-responder PORT BODY_BYTES  dial the tunnel and answer every stream with BODY_BYTES
 *   raw-sender PORT TOTAL_BYTES    plain WebSocket: send TOTAL_BYTES in 64 KiB messages
 *   h2-server BODY_BYTES           Node http2 server answering every stream; prints its port
 */
import { createServer, constants as h2 } from "node:http2";
import WebSocket from "ws";
import { dialTunnel } from "../../connector/transport.js";
import type { Stream } from "../../engine/mux/stream.js";
import { pump } from "../../test/fixtures/pump.js";

const [mode, a, b] = process.argv.slice(2);
const CHUNK = Buffer.alloc(64 * 1024, 0x61);

if (mode === "mux-responder") {
  const body = Number(b);
  const small = Buffer.alloc(Math.min(body, CHUNK.length), 0x62);
  const session = await dialTunnel({ url: `ws://127.0.0.1:${a}/tunnel`, session: { config: { maxConcurrentStreams: 10_000 } } });
  session.on("stream", (s: Stream) => {
    s.respond({ status: 200, headers: ["content-type", "application/octet-stream"] });
    if (body <= CHUNK.length) s.end(small);
    else void pump(s, body);
  });
  session.on("close", () => process.exit(0));
} else if (mode === "raw-sender") {
  const total = Number(b);
  const ws = new WebSocket(`ws://127.0.0.1:${a}/raw`, { perMessageDeflate: false });
  ws.on("open", () => {
    let sent = 0;
    const socket = (ws as unknown as { _socket: import("node:net").Socket })._socket;
    const go = (): void => {
      while (sent < total) {
        ws.send(CHUNK, { binary: true });
        sent += CHUNK.length;
        if (ws.bufferedAmount > 1024 * 1024) return void socket.once("drain", go);
      }
      ws.close(1000);
    };
    go();
  });
  ws.on("close", () => process.exit(0));
} else if (mode === "h2-server") {
  const body = Number(a);
  const small = Buffer.alloc(Math.min(body, CHUNK.length), 0x62);
  const server = createServer({ settings: { initialWindowSize: 256 * 1024, maxConcurrentStreams: 10_000 } });
  server.on("session", (s) => s.setLocalWindowSize(4 * 1024 * 1024));
  server.on("stream", (stream) => {
    stream.respond({ [h2.HTTP2_HEADER_STATUS]: 200, "content-type": "application/octet-stream" });
    if (body <= CHUNK.length) stream.end(small);
    else void pump(stream, body);
  });
  server.listen(0, "127.0.0.1", () => {
    const addr = server.address();
    process.stdout.write(`${typeof addr === "object" && addr ? addr.port : 0}\n`);
  });
} else {
  process.stderr.write(`unknown mode ${mode}\n`);
  process.exit(2);
}
