/**
 * What the backend receives and what the user sees, on the strict edge: no client-made
 * identity or address reaches a backend on any app; Host, Origin and Referer agree; Postern's
 * own pages carry their security headers and no software header; Expect: 100-continue works
 * with curl; HTTP/2 multiplexes, carries WebSockets (RFC 8441) and cuts off a reset flood;
 * every request leaves one access-log line whose id the connector's lines carry too.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import { connect as h2connect, constants as h2 } from "node:http2";
import { connect as netConnect } from "node:net";
import { join } from "node:path";
import { Writable } from "node:stream";
import { promisify } from "node:util";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { until } from "../fixtures/lifecycle.js";
import { edgeRequest, rawExchange, startBackend, startRig, type Backend, type Rig } from "../fixtures/datapath.js";

/** JSON log lines written to a pino logger, kept for the test to read. */
function capture() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split("\n")) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { lines, logger: pino({ level: "info" }, stream) };
}

/** One masked client WebSocket frame (RFC 6455 §5.2), text, payload under 126 bytes. */
function clientFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = randomBytes(4);
  const out = Buffer.alloc(6 + payload.length);
  out[0] = 0x81;
  out[1] = 0x80 | payload.length;
  mask.copy(out, 2);
  for (let i = 0; i < payload.length; i++) out[6 + i] = payload[i]! ^ mask[i % 4]!;
  return out;
}

describe("forwarding and security at the strict edge", () => {
  let rig: Rig;
  let backend: Backend;
  let wsBackend: Backend;
  let wss: WebSocketServer;
  const engineLog = capture();
  const connectorLog = capture();
  let open: string;
  let origin: string;
  let kept: string;
  const upgrades: { host: string; origin: string | undefined }[] = [];

  beforeAll(async () => {
    backend = await startBackend((req, res) => {
      if (req.url?.includes("/refuse-ws")) return void res.writeHead(403).end();
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks);
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bytes: body.length, sha: body.length ? (body.toString("base64").length) : 0 }));
      });
    });
    wsBackend = await startBackend((_req, res) => res.writeHead(404).end());
    wss = new WebSocketServer({ noServer: true });
    wsBackend.server.on("upgrade", (req, socket, head) => {
      upgrades.push({ host: req.headers.host ?? "", origin: req.headers.origin });
      if (req.url?.includes("/refuse")) {
        socket.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: ${2 * 1024 * 1024}\r\n\r\n${"r".repeat(2 * 1024 * 1024)}`);
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => ws.on("message", (data, binary) => ws.send(data, { binary })));
    });
    rig = await startRig({ connectors: 0, engine: { httpsPort: 0, logger: engineLog.logger } });
    await rig.addConnector("c", { logger: connectorLog.logger });
    ({ host: open } = await rig.publish({ name: "Open", internalUrl: `${backend.origin}/`, externalUrl: "http://shared.contoso.test/" }));
    await rig.publish({
      name: "Secure", internalUrl: `${backend.origin}/secure/`, externalUrl: "http://shared.contoso.test/secure/",
      preAuthentication: "oidc", ssoHeaders: { "X-Custom-Identity": "preferred_username" },
    });
    ({ host: origin } = await rig.publish({ name: "Notebook", internalUrl: `${wsBackend.origin}/nb/`, externalUrl: "http://notebook.contoso.test/" }));
    ({ host: kept } = await rig.publish({ name: "Kept", internalUrl: `${wsBackend.origin}/kept/`, externalUrl: "http://kept.contoso.test/", translateHeaders: false }));
    await rig.publish({ name: "Echo", internalUrl: `${backend.origin}/echo/`, externalUrl: "http://echo.contoso.test/" });
  }, 60_000);
  afterAll(async () => {
    wss?.close();
    await rig?.close();
    await backend?.close();
    await wsBackend?.close();
  });

  it("drops every identity and address header a client sends, on a passthrough app beside a signed-in one", async () => {
    const spoof = {
      "x-remote-user": "admin", "remote-user": "admin", "x-forwarded-user": "admin", "x-forwarded-email": "a@b", "x-auth-request-user": "admin",
      "x-postern-identity": "forged", "x-custom-identity": "admin", "x-real-ip": "10.0.0.1", "true-client-ip": "10.0.0.1", "x-client-ip": "10.0.0.1",
      "x-original-url": "/admin", "x-rewrite-url": "/admin", "x-forwarded-prefix": "/admin", "x-forwarded-port": "1", "x-forwarded-host": "evil", forwarded: "for=10.0.0.1",
    };
    const res = await edgeRequest(rig, open, "/whoami", { headers: spoof });
    expect(res.status).toBe(200);
    const seen = JSON.parse(res.text) as { headers: Record<string, string> };
    for (const name of Object.keys(spoof)) {
      if (name === "x-real-ip" || name === "x-forwarded-host") continue;
      expect(seen.headers[name], name).toBeUndefined();
    }
    expect(seen.headers["x-real-ip"]).toBe("127.0.0.1");
    expect(seen.headers["x-forwarded-host"]).toBe(open);
    expect(seen.headers["x-forwarded-for"]).toBe("127.0.0.1");
  });

  it("never lets a path spelled differently reach the signed-in app's prefix through the open one", async () => {
    const before = backend.seen.length;
    for (const path of ["/secure;x/whoami", "/%73ecure/whoami", "//secure/whoami", "/secure/./whoami", "/x/../secure/whoami", "/Secure/whoami"]) {
      const answer = await rawExchange(rig.engine.edge.httpPort!, `GET ${path} HTTP/1.1\r\nHost: ${open}\r\nX-Remote-User: admin\r\n\r\n`, 1000);
      // Refused, or (a prefix in other letters) the open app's own path: never the signed-in app's.
      if (path === "/Secure/whoami") expect(answer, path).toMatch(/^HTTP\/1\.1 200 /);
      else expect(answer, path).toMatch(/^HTTP\/1\.1 400 /);
    }
    // The real prefix asks for sign-in, and the backend sees nothing.
    expect((await edgeRequest(rig, open, "/secure/whoami", { headers: { accept: "application/json" } })).status).toBe(401);
    expect(backend.seen.slice(before).map((r) => r.url)).toEqual(["/Secure/whoami"]);
    expect(backend.seen.at(-1)!.headers["x-remote-user"]).toBeUndefined();
  });

  it("makes Host, Origin and Referer agree for the backend, for requests and WebSocket upgrades alike", async () => {
    const ws = await new Promise<{ host: string; origin: string | undefined }>((resolve, reject) => {
      const socket = netConnect(rig.engine.edge.httpPort!, "127.0.0.1", () => socket.write(
        `GET /api/kernels/1/channels HTTP/1.1\r\nHost: ${origin}\r\nOrigin: http://${origin}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`));
      socket.once("data", (d: Buffer) => {
        expect(d.toString()).toMatch(/^HTTP\/1\.1 101 /);
        socket.write(clientFrame("ping"));
        socket.once("data", (echo: Buffer) => {
          expect(echo.subarray(2).toString()).toBe("ping");
          socket.destroy();
          resolve(upgrades.at(-1)!);
        });
      });
      socket.on("error", reject);
    });
    const internal = new URL(wsBackend.origin);
    expect(ws).toEqual({ host: internal.host, origin: `http://${internal.host}` });
    // The app that keeps the external Host keeps the external Origin too, on upgrades as well.
    await new Promise<void>((resolve) => {
      const socket = netConnect(rig.engine.edge.httpPort!, "127.0.0.1", () => socket.write(
        `GET /socket HTTP/1.1\r\nHost: ${kept}\r\nOrigin: http://${kept}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`));
      socket.once("data", () => {
        socket.destroy();
        resolve();
      });
    });
    expect(upgrades.at(-1)).toEqual({ host: kept, origin: `http://${kept}` });
  });

  it("translates Origin and Referer of a published app on plain requests", async () => {
    const echo = "echo.contoso.test";
    const res = await edgeRequest(rig, echo, "/form", { method: "POST", body: "x=1", headers: { origin: `http://${echo}`, referer: `http://${echo}/page?a=1`, "content-type": "application/x-www-form-urlencoded" } });
    const seen = JSON.parse(res.text) as { headers: Record<string, string> };
    const internal = new URL(backend.origin);
    expect(seen.headers.host).toBe(internal.host);
    expect(seen.headers.origin).toBe(`http://${internal.host}`);
    expect(seen.headers.referer).toBe(`${backend.origin}/echo/page?a=1`);
    // Another site's Origin passes as it is: the backend decides about it.
    const other = await edgeRequest(rig, echo, "/form", { method: "POST", body: "x=1", headers: { origin: "https://attacker.test" } });
    expect((JSON.parse(other.text) as { headers: Record<string, string> }).headers.origin).toBe("https://attacker.test");
  });

  it("streams a refused upgrade's answer with backpressure and closes the backend connection", async () => {
    const before = await new Promise<number>((r) => wsBackend.server.getConnections((_e, n) => r(n)));
    const answer = await rawExchange(rig.engine.edge.httpPort!,
      `GET /refuse HTTP/1.1\r\nHost: ${origin}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`, 5000);
    expect(answer).toMatch(/^HTTP\/1\.1 403 /);
    expect(answer.length - answer.indexOf("\r\n\r\n") - 4).toBe(2 * 1024 * 1024);
    await until(async () => (await new Promise<number>((r) => wsBackend.server.getConnections((_e, n) => r(n)))) <= before, 5000, "backend socket closed");
  });

  it("sends Postern's pages with a strict CSP and no software header on any response", async () => {
    const missing = await edgeRequest(rig, "nothing.contoso.test", "/");
    expect(missing.status).toBe(404);
    expect(missing.headers["content-security-policy"]).toMatch(/default-src 'none'/);
    expect(missing.headers["content-security-policy"]).toMatch(/frame-ancestors 'none'/);
    expect(missing.headers["x-content-type-options"]).toBe("nosniff");
    expect(missing.headers["referrer-policy"]).toBe("no-referrer");
    const proxied = await edgeRequest(rig, open, "/x");
    for (const res of [missing, proxied]) {
      expect(res.headers.server).toBeUndefined();
      expect(Object.keys(res.headers).some((h) => /uwebsockets|x-powered-by/i.test(h))).toBe(false);
    }
  });

  it("takes curl's Expect: 100-continue upload byte-exact", async () => {
    const file = join(rig.dir, "upload.bin");
    const data = randomBytes(3 * 1024 * 1024);
    writeFileSync(file, data);
    const { stdout, stderr } = await promisify(execFile)("curl", ["-sS", "-v", "-T", file, "-H", `Host: ${open}`, `${rig.edge}/upload`], { maxBuffer: 1 << 20 });
    expect(stderr).toMatch(/Expect: 100-continue/);
    expect(stderr).toMatch(/HTTP\/1\.1 100 Continue/);
    const seen = JSON.parse(stdout) as { method: string; bytes: number; headers: Record<string, string> };
    expect(seen).toMatchObject({ method: "PUT", bytes: data.length });
    expect(seen.headers.expect).toBeUndefined();
  });

  it("serves HTTP/2 over TLS: streams multiplexed, the stream limit announced, WebSockets by extended CONNECT", async () => {
    const session = h2connect(`https://127.0.0.1:${rig.engine.edge.httpsPort}`, { rejectUnauthorized: false });
    try {
      await once(session, "remoteSettings");
      expect(session.remoteSettings.maxConcurrentStreams).toBe(100);
      expect(session.remoteSettings.enableConnectProtocol).toBe(true);
      const get = (i: number) => new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = session.request({ ":path": `/h2/${i}`, ":authority": open });
        let status = 0;
        let body = "";
        req.on("response", (h) => (status = Number(h[":status"])));
        req.on("data", (c: Buffer) => (body += c));
        req.on("end", () => resolve({ status, body }));
        req.on("error", reject);
      });
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => get(i)));
      expect(results.every((r) => r.status === 200)).toBe(true);
      expect(new Set(results.map((r) => (JSON.parse(r.body) as { url: string }).url)).size).toBe(50);
      // RFC 8441: a WebSocket over an HTTP/2 stream; the backend gets an ordinary HTTP/1.1 upgrade.
      const ws = session.request({ ":method": "CONNECT", ":protocol": "websocket", ":scheme": "https", ":path": "/h2socket", ":authority": origin, "sec-websocket-version": "13" }, { endStream: false });
      const [headers] = (await once(ws, "response")) as [Record<string, string>];
      expect(headers[":status"]).toBe(200);
      ws.write(clientFrame("over h2"));
      const [echo] = (await once(ws, "data")) as [Buffer];
      expect(echo.subarray(2).toString()).toBe("over h2");
      ws.close();
    } finally {
      session.close();
    }
  });

  it("cuts off an HTTP/2 client that opens and resets streams in a flood (rapid reset)", async () => {
    const session = h2connect(`https://127.0.0.1:${rig.engine.edge.httpsPort}`, { rejectUnauthorized: false });
    session.on("error", () => undefined);
    await once(session, "remoteSettings");
    let code: number | undefined;
    session.once("goaway", (c: number) => (code = c));
    session.once("close", () => (code ??= -1));
    // Bursts of opened-and-cancelled streams until the edge says no (at most 5 s).
    const deadline = Date.now() + 5000;
    for (let i = 0; code === undefined && Date.now() < deadline; i++) {
      if (!session.destroyed && !session.closed) {
        try {
          const req = session.request({ ":path": `/flood/${i}`, ":authority": open });
          req.on("error", () => undefined);
          req.close(h2.NGHTTP2_CANCEL);
        } catch {
          // the session is going away
        }
      }
      if (i % 100 === 99) await new Promise((r) => setTimeout(r, 10));
    }
    // Cut off by the edge's own rapid-reset guard (ENHANCE_YOUR_CALM) or, when the resets land on
    // streams already gone, by Node's limit on invalid frames (INTERNAL_ERROR): never left open.
    expect([h2.NGHTTP2_ENHANCE_YOUR_CALM, h2.NGHTTP2_INTERNAL_ERROR, -1]).toContain(code);
    session.destroy();
  });

  it("writes one access-log line per request, and the connector's lines carry the same request id", async () => {
    const res = await edgeRequest(rig, open, "/logged?q=1");
    const id = res.headers["x-request-id"] as string;
    await until(() => engineLog.lines.some((l) => l.requestId === id), 2000, "access log line");
    const line = engineLog.lines.find((l) => l.requestId === id)!;
    expect(line).toMatchObject({ msg: "request", app: "Open", method: "GET", path: "/logged", status: 200, client: "127.0.0.1", connector: rig.agents[0]!.id });
    expect(line.bytes).toBe(res.body.length);
    expect(typeof line.durationMs).toBe("number");
    // A backend the connector cannot reach: its log line names the request.
    await rig.publish({ name: "Gone", internalUrl: "http://localhost:1/", externalUrl: "http://gone.contoso.test/" });
    const failed = await edgeRequest(rig, "gone.contoso.test", "/");
    expect(failed.status).toBe(502);
    const failedId = failed.headers["x-request-id"] as string;
    expect(failed.text).toContain(failedId);
    await until(() => connectorLog.lines.some((l) => l.requestId === failedId), 2000, "connector line with the request id");
    expect(engineLog.lines.find((l) => l.requestId === failedId)).toMatchObject({ status: 502, error: "POSTERN_BACKEND_UNREACHABLE" });
  });
});

describe("trusted proxies in front of the engine", () => {
  it("takes the client address from X-Forwarded-For only when the peer is a trusted proxy", async () => {
    const backend = await startBackend((req, res) => res.end(JSON.stringify(req.headers)));
    const trusting = await startRig({ engine: { limits: { trustedProxies: ["127.0.0.0/8"] } } });
    const plain = await startRig();
    try {
      for (const [rig, expected] of [[trusting, "203.0.113.7"], [plain, "127.0.0.1"]] as const) {
        const { host } = await rig.publish({ name: "Behind", internalUrl: `${backend.origin}/` });
        const res = await edgeRequest(rig, host, "/", { headers: { "x-forwarded-for": "198.51.100.1, 203.0.113.7" } });
        const headers = JSON.parse(res.text) as Record<string, string>;
        expect(headers["x-real-ip"]).toBe(expected);
        expect(headers["x-forwarded-for"]).toBe("198.51.100.1, 203.0.113.7, 127.0.0.1");
      }
    } finally {
      await trusting.close();
      await plain.close();
      await backend.close();
    }
  }, 60_000);
});
