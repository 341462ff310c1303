/**
 * The floor of one proxy hop on Postern's own stack: node:http in, undici out, nothing else
 * (no routing, headers, limits, logs, metrics or tunnel). `postern loadtest --compare` runs it
 * so that Postern's CPU per request can be read against what its two hops cannot go below.
 * Prints its port as one JSON line, exits on SIGTERM.
 *
 *   node dist/loadtest/node-hop.js BACKEND_PORT
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Pool, type Dispatcher } from "undici";

const backendPort = Number(process.argv[2]);
if (!Number.isInteger(backendPort) || backendPort <= 0) throw new Error("usage: node-hop.js BACKEND_PORT");
const pool = new Pool(`http://127.0.0.1:${backendPort}`, { connections: 256 });

const server = createServer((req, res) => {
  const handler: Dispatcher.DispatchHandler = {
    onRequestStart() {},
    onResponseStart(_c, status, headers) {
      const length = headers["content-length"];
      if (typeof length === "string") res.setHeader("content-length", length);
      res.writeHead(status);
    },
    onResponseData(c, chunk) {
      if (!res.write(chunk)) {
        c.pause();
        res.once("drain", () => c.resume());
      }
    },
    onResponseEnd: () => res.end(),
    onResponseError(_c, err) {
      if (res.headersSent) res.destroy(err);
      else res.writeHead(502).end();
    },
  };
  pool.dispatch({ path: req.url ?? "/", method: req.method as Dispatcher.HttpMethod, headers: { host: `127.0.0.1:${backendPort}` } }, handler);
  req.resume();
});
server.keepAliveTimeout = 65_000;
server.listen(0, "127.0.0.1", () => process.stdout.write(JSON.stringify({ port: (server.address() as AddressInfo).port }) + "\n"));
process.once("SIGTERM", () => {
  server.closeAllConnections();
  server.close(() => void pool.close().then(() => process.exit(0)));
});
