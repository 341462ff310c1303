/**
 * The load-test backend, run as its own process so its CPU is not the load generator's: a
 * node:http server answering every request with `bytes` of body (default 1 KiB). Prints its
 * port as one JSON line, exits on SIGTERM.
 *
 *   node dist/loadtest/backend.js [bytes]
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

const size = Number(process.argv[2] ?? "1024");
const body = Buffer.alloc(size, 0x61);
const server = createServer((req, res) => {
  req.resume();
  req.on("end", () => res.writeHead(200, { "content-type": "text/plain", "content-length": size }).end(body));
});
server.keepAliveTimeout = 65_000;
server.listen(0, "127.0.0.1", () => process.stdout.write(JSON.stringify({ port: (server.address() as AddressInfo).port }) + "\n"));
process.once("SIGTERM", () => server.close(() => process.exit(0)));
