/**
 * The demo's internal app, served on loopback for `postern up`: pages with hard-coded
 * internal absolute links and CSS (to show link translation), a redirect and a cookie (header
 * translation), a JSON API that echoes what the backend received (X-Forwarded-For, Host, ...),
 * a WebSocket echo, an upload endpoint that hashes what it gets, a download of N bytes and a
 * slow endpoint, so every feature can be tried by hand.
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer } from "ws";
import { PosternError } from "../engine/errors/catalogue.js";

export interface SampleApp {
  readonly server: Server;
  readonly port: number;
  /** The internal URL to publish: a host name, as control refuses IP addresses. */
  readonly internalUrl: string;
  close(): Promise<void>;
}

/** Largest download served, bytes. */
const MAX_DOWNLOAD = 4 * 1024 * 1024 * 1024;
/** Longest wait /slow accepts, ms. */
const MAX_SLOW_MS = 600_000;

export async function startSampleApp(port = 0, host = "127.0.0.1"): Promise<SampleApp> {
  let base = "";
  const server = createServer((req, res) => {
    handle(req, res, base).catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    });
  });
  const wss = new WebSocketServer({ server, path: "/ws", maxPayload: 16 * 1024 * 1024 });
  wss.on("connection", (ws) => ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary })));
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  const bound = (server.address() as AddressInfo).port;
  base = `http://localhost:${bound}/`;
  return {
    server,
    port: bound,
    internalUrl: base,
    close: () => new Promise((resolve) => {
      for (const client of wss.clients) client.terminate();
      wss.close();
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, base: string): Promise<void> {
  const url = new URL(req.url ?? "/", base);
  switch (url.pathname) {
    case "/":
      return html(res, `<h1>Postern sample app</h1>
<p>Every link on this page is a hard-coded <em>internal</em> URL; with "translate URLs in body" on, Postern rewrites them to the external URL.</p>
<ul>
<li><a href="${base}docs/">Documentation</a> (absolute internal link)</li>
<li><a href="${base}go">A redirect</a> (Location header translation)</li>
<li><a href="${base}api/echo">What the backend received</a> (JSON)</li>
<li><a href="${base}slow?ms=3000">A slow page</a> (3 s)</li>
</ul>
<form action="${base}upload" method="post" enctype="application/octet-stream"><input name="f" value="hello"><button>Upload</button></form>
<script>const ws = new WebSocket(location.origin.replace(/^http/, "ws") + "/ws"); ws.onopen = () => ws.send("ping"); ws.onmessage = (e) => document.title = "ws: " + e.data;</script>`, base);
    case "/docs/":
      return html(res, `<h1>Docs</h1><p><a href="${base}">Home</a></p>`, base);
    case "/static/site.css":
      res.writeHead(200, { "content-type": "text/css" });
      res.end(`body { font-family: system-ui, sans-serif; background: url(${base}static/bg.svg) no-repeat; }\n`);
      return;
    case "/static/bg.svg":
      res.writeHead(200, { "content-type": "image/svg+xml" });
      res.end('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4" height="4" fill="#eef"/></svg>');
      return;
    case "/go":
      res.writeHead(302, { location: `${base}docs/`, "set-cookie": `sample=1; Domain=localhost; Path=/; HttpOnly` });
      res.end();
      return;
    case "/api/echo": {
      const body = await readAll(req, 1024 * 1024);
      json(res, { method: req.method, url: req.url, headers: req.headers, bodyBytes: body.length });
      return;
    }
    case "/api/items":
      json(res, { items: [{ id: 1, name: "alpha" }, { id: 2, name: "beta" }] });
      return;
    case "/upload": {
      const hash = createHash("sha256");
      let bytes = 0;
      for await (const chunk of req) {
        hash.update(chunk as Buffer);
        bytes += (chunk as Buffer).length;
      }
      json(res, { bytes, sha256: hash.digest("hex") });
      return;
    }
    case "/download": {
      const total = Math.min(Number(url.searchParams.get("bytes") ?? "1024") || 0, MAX_DOWNLOAD);
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": total });
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      let left = total;
      while (left > 0) {
        const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
        left -= piece.length;
        if (!res.write(piece)) await new Promise<void>((resolve) => res.once("drain", resolve));
        if (res.destroyed) return;
      }
      res.end();
      return;
    }
    case "/slow": {
      const ms = Math.min(Number(url.searchParams.get("ms") ?? "1000") || 0, MAX_SLOW_MS);
      await new Promise((resolve) => setTimeout(resolve, ms));
      json(res, { waitedMs: ms });
      return;
    }
    default:
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found\n");
  }
}

function html(res: ServerResponse, body: string, base: string): void {
  res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
  res.end(`<!doctype html><html><head><meta charset="utf-8"><title>Sample</title><link rel="stylesheet" href="${base}static/site.css"></head><body>${body}</body></html>\n`);
}

function json(res: ServerResponse, value: unknown): void {
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify(value));
}

async function readAll(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new PosternError("POSTERN_BAD_REQUEST", "body too large");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
