/**
 * The load-test backend, run as its own process so its CPU is not the load generator's: a
 * node:http server answering every request with `bytes` of body (default 1 KiB): plain text,
 * or with `--html BASEPATH` a typical intranet page whose links point at
 * http://localhost:PORT/BASEPATH (for translation scenarios). A query `?bytes=N&delay=MS`
 * overrides the size and adds latency per request (capacity sweeps use one backend for every
 * row). GET /__count answers how many requests it served (not counting itself). Prints its
 * port as one JSON line, exits on SIGTERM.
 *
 *   node dist/loadtest/backend.js [bytes] [--html /base/]
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { typicalPage } from "./pages.js";

const MAX_BYTES = 64 * 1024 * 1024;
const size = Number(process.argv[2] ?? "1024");
const htmlAt = process.argv.indexOf("--html");
let body = Buffer.alloc(size, 0x61);
let type = "text/plain";
const bodies = new Map<number, Buffer>();
let served = 0;

function bodyOf(bytes: number): Buffer {
  let b = bodies.get(bytes);
  if (!b) bodies.set(bytes, (b = Buffer.alloc(bytes, 0x61)));
  return b;
}

const server = createServer((req, res) => {
  const url = req.url ?? "/";
  if (url === "/__count") {
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ requests: served }));
    return;
  }
  served++;
  const q = url.indexOf("?");
  const params = q >= 0 ? new URLSearchParams(url.slice(q + 1)) : undefined;
  const bytes = Number(params?.get("bytes") ?? NaN);
  const delay = Number(params?.get("delay") ?? 0);
  const answer = Number.isInteger(bytes) && bytes >= 0 && bytes <= MAX_BYTES ? bodyOf(bytes) : body;
  const send = () => res.writeHead(200, { "content-type": type, "content-length": answer.length }).end(answer);
  req.resume();
  req.on("end", () => (delay > 0 && delay <= 60_000 ? setTimeout(send, delay) : send()));
});
server.keepAliveTimeout = 65_000;
server.maxRequestsPerSocket = 0;
server.listen(0, "127.0.0.1", () => {
  const port = (server.address() as AddressInfo).port;
  if (htmlAt > 0) {
    body = Buffer.from(typicalPage(size).replaceAll("http://intranet.corp.local/", `http://localhost:${port}${process.argv[htmlAt + 1] ?? "/"}`));
    type = "text/html; charset=utf-8";
  }
  process.stdout.write(JSON.stringify({ port }) + "\n");
});
process.once("SIGTERM", () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
