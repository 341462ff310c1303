/**
 * The load-test backend, run as its own process so its CPU is not the load generator's: a
 * node:http server answering every request with `bytes` of body (default 1 KiB): plain text,
 * or with `--html BASEPATH` a typical intranet page whose links point at
 * http://localhost:PORT/BASEPATH (for translation scenarios). Prints its port as one JSON
 * line, exits on SIGTERM.
 *
 *   node dist/loadtest/backend.js [bytes] [--html /base/]
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { typicalPage } from "./pages.js";

const size = Number(process.argv[2] ?? "1024");
const htmlAt = process.argv.indexOf("--html");
let body = Buffer.alloc(size, 0x61);
let type = "text/plain";
const server = createServer((req, res) => {
  req.resume();
  req.on("end", () => res.writeHead(200, { "content-type": type, "content-length": body.length }).end(body));
});
server.keepAliveTimeout = 65_000;
server.listen(0, "127.0.0.1", () => {
  const port = (server.address() as AddressInfo).port;
  if (htmlAt > 0) {
    body = Buffer.from(typicalPage(size).replaceAll("http://intranet.corp.local/", `http://localhost:${port}${process.argv[htmlAt + 1] ?? "/"}`));
    type = "text/html; charset=utf-8";
  }
  process.stdout.write(JSON.stringify({ port }) + "\n");
});
process.once("SIGTERM", () => server.close(() => process.exit(0)));
