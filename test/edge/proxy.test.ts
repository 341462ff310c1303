import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket, { WebSocketServer } from "ws";
import { edgeRequest, rawExchange, startBackend, startRig, type Backend, type Rig } from "../fixtures/datapath.js";

describe("requests through engine and connector", () => {
  let rig: Rig;
  let backend: Backend;
  let host: string;

  beforeAll(async () => {
    backend = await startBackend((req, res) => {
      const url = new URL(req.url!, "http://x");
      if (url.pathname.startsWith("/app/echo")) {
        const hash = createHash("sha256");
        let bytes = 0;
        req.on("data", (c: Buffer) => {
          hash.update(c);
          bytes += c.length;
        });
        req.on("end", () => {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(JSON.stringify({ bytes, sha256: hash.digest("hex"), method: req.method, headers: req.headers, url: req.url }));
        });
        return;
      }
      if (url.pathname === "/app/download") {
        const total = Number(url.searchParams.get("bytes"));
        res.writeHead(200, { "content-length": total });
        const chunk = Buffer.alloc(65536);
        for (let i = 0; i < chunk.length; i++) chunk[i] = i % 251;
        let left = total;
        const pump = () => {
          while (left > 0) {
            const piece = chunk.subarray(0, Math.min(left, chunk.length));
            left -= piece.length;
            if (!res.write(piece)) return void res.once("drain", pump);
          }
          res.end();
        };
        pump();
        return;
      }
      if (url.pathname === "/app/redirect") {
        res.writeHead(301, {
          location: `${backend.origin}/app/landing`, "content-location": `${backend.origin}/app/x`, refresh: `5; url=${backend.origin}/app/r`,
          "set-cookie": ["a=1; Domain=localhost; Path=/app/sub", "b=2; Path=/other"],
        });
        res.end();
        return;
      }
      if (url.pathname === "/app/empty") {
        res.writeHead(204);
        res.end();
        return;
      }
      if (url.pathname === "/app/bad-header") {
        // A header name no HTTP client accepts: the request fails alone.
        res.socket!.write("HTTP/1.1 200 OK\r\nBad Header: x\r\nContent-Length: 2\r\n\r\nok");
        res.socket!.end();
        return;
      }
      res.writeHead(404);
      res.end();
    });
    rig = await startRig();
    ({ host } = await rig.publish({ name: "Files", internalUrl: `${backend.origin}/app/`, externalUrl: "http://files.contoso.test/" }));
  }, 30_000);
  afterAll(async () => {
    await rig.close();
    await backend.close();
  });

  it.each([
    ["GET", 0], ["POST", 0], ["POST", 1024], ["PUT", 1024], ["POST", 10 * 1024 * 1024], ["PUT", 10 * 1024 * 1024],
  ] as const)("%s with a %i-byte body arrives byte-exact", async (method, size) => {
    const body = Buffer.alloc(size);
    for (let i = 0; i < size; i++) body[i] = (i * 7) % 256;
    const res = await edgeRequest(rig, host, "/echo", { method, ...(method !== "GET" ? { body } : {}) });
    expect(res.status).toBe(200);
    const seen = JSON.parse(res.text) as { bytes: number; sha256: string; method: string };
    expect(seen).toMatchObject({ bytes: size, sha256: createHash("sha256").update(body).digest("hex"), method });
  });

  it.each([0, 1024, 10 * 1024 * 1024])("downloads %i bytes byte-exact with the backend's Content-Length", async (size) => {
    const res = await edgeRequest(rig, host, `/download?bytes=${size}`);
    expect(res.status).toBe(200);
    expect(res.headers["content-length"]).toBe(String(size));
    expect(res.body.length).toBe(size);
    for (let i = 0; i < size; i += 65536 * 3 + 17) expect(res.body[i]).toBe((i % 65536) % 251);
  });

  it("appends the client address to X-Forwarded-For, sets the forwarding headers, never forwards Postern's cookie", async () => {
    const res = await edgeRequest(rig, host, "/echo", {
      headers: { "x-forwarded-for": "6.6.6.6, 7.7.7.7", cookie: "postern_session=secret; theme=dark", "x-postern-user": "forged" },
    });
    const seen = JSON.parse(res.text) as { headers: Record<string, string> };
    expect(seen.headers["x-forwarded-for"]).toBe("6.6.6.6, 7.7.7.7, 127.0.0.1");
    expect(seen.headers["x-forwarded-host"]).toBe(host);
    expect(seen.headers["x-forwarded-proto"]).toBe("http");
    expect(seen.headers.cookie).toBe("theme=dark");
    expect(seen.headers["x-postern-user"]).toBeUndefined();
    expect(seen.headers.host).toBe(`localhost:${backend.port}`); // translated to the internal host
    expect(res.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(seen.headers["x-request-id"]).toBe(res.headers["x-request-id"]);
    // Headers the client names in Connection are hop-by-hop too (undici would not send these).
    const raw = await rawExchange(rig.engine.edge.httpPort!, `GET /echo HTTP/1.1\r\nHost: ${host}\r\nConnection: close, X-Drop-Me\r\nX-Drop-Me: 1\r\nX-Keep: 2\r\n\r\n`);
    const echoed = JSON.parse(raw.slice(raw.indexOf("{"), raw.lastIndexOf("}") + 1)) as { headers: Record<string, string> };
    expect(echoed.headers["x-drop-me"]).toBeUndefined();
    expect(echoed.headers["x-keep"]).toBe("2");
  });

  it("frames bodiless answers correctly: 204, and HEAD with the backend's length", async () => {
    const empty = await rawExchange(rig.engine.edge.httpPort!, `GET /empty HTTP/1.1\r\nHost: ${host}\r\n\r\n`, 500);
    expect(empty).toMatch(/^HTTP\/1\.1 204 /);
    expect(empty).not.toMatch(/content-length/i);
    const head = await rawExchange(rig.engine.edge.httpPort!, `HEAD /download?bytes=4096 HTTP/1.1\r\nHost: ${host}\r\n\r\n`, 500);
    expect(head).toMatch(/^HTTP\/1\.1 200 /);
    expect(head).toMatch(/Content-Length: 4096\r\n/i);
    expect(head.endsWith("\r\n\r\n")).toBe(true); // and no body
  });

  it("maps Location, Content-Location, Refresh and Set-Cookie from internal to external", async () => {
    const res = await edgeRequest(rig, host, "/redirect");
    expect(res.status).toBe(301);
    expect(res.headers.location).toBe("http://files.contoso.test/landing");
    expect(res.headers["content-location"]).toBe("http://files.contoso.test/x");
    expect(res.headers.refresh).toBe("5; url=http://files.contoso.test/r");
    expect(res.headers["set-cookie"]).toEqual(["a=1; Domain=files.contoso.test; Path=/sub", "b=2; Path=/other"]);
  });

  it("answers robots.txt itself, 404 for unknown hosts, and fails only the one request on an invalid backend header", async () => {
    const robots = await edgeRequest(rig, host, "/robots.txt");
    expect(robots.text).toBe("User-agent: *\nDisallow: /\n");
    const unknown = await edgeRequest(rig, "unknown.contoso.test", "/");
    expect(unknown.status).toBe(404);
    expect(unknown.text).toMatch(/No application is published/);
    expect(unknown.text).toContain(String(unknown.headers["x-request-id"]));
    const bad = await edgeRequest(rig, host, "/bad-header");
    expect(bad.status).toBe(502);
    expect((await edgeRequest(rig, host, "/echo")).status).toBe(200); // the tunnel and the process are fine
  });

  it("refuses smuggling attempts before anything reaches the backend", async () => {
    const port = rig.engine.edge.httpPort!;
    const before = backend.seen.length;
    const attacks = {
      "conflicting Content-Length": `POST /echo HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhello`,
      "Content-Length and Transfer-Encoding": `POST /echo HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /echo HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
      "Transfer-Encoding other than chunked": `POST /echo HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
      "obs-fold": `GET /echo HTTP/1.1\r\nHost: ${host}\r\nX-A: 1\r\n continued\r\n\r\n`,
      "bare LF": `GET /echo HTTP/1.1\nHost: ${host}\n\n`,
      "invalid chunk size": `POST /echo HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n`,
      "malformed Content-Length": `POST /echo HTTP/1.1\r\nHost: ${host}\r\nContent-Length: +5\r\n\r\nhello`,
      "encoded slash": `GET /..%2f..%2fetc/passwd HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
      "path above the root": `GET /../../etc/passwd HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
    };
    for (const [name, bytes] of Object.entries(attacks)) {
      const answer = await rawExchange(port, bytes, 500);
      expect(answer.startsWith("HTTP/1.1 400"), `${name}: ${answer.slice(0, 60)}`).toBe(true);
      expect(answer.match(/HTTP\/1\.1 /g)?.length ?? 0, name).toBeLessThanOrEqual(1);
    }
    expect(backend.seen.length).toBe(before);
    const headers = (n: number) => Array.from({ length: n }, (_, i) => `X-H${i}: v\r\n`).join("");
    expect(await rawExchange(port, `GET /echo HTTP/1.1\r\nHost: ${host}\r\n${headers(100)}\r\n`, 500)).toMatch(/^HTTP\/1\.1 431/);
    expect(await rawExchange(port, `GET /echo HTTP/1.1\r\nHost: ${host}\r\nX-Big: ${"b".repeat(17_000)}\r\n\r\n`, 500)).toMatch(/^HTTP\/1\.1 431/);
    expect(await rawExchange(port, `GET /echo HTTP/1.1\r\nHost: ${host}\r\n${headers(500)}\r\n`, 500)).toMatch(/^HTTP\/1\.1 431/);
    expect(await rawExchange(port, `GET /${"a".repeat(9000)} HTTP/1.1\r\nHost: ${host}\r\n\r\n`, 500)).toMatch(/^HTTP\/1\.1 414/);
    expect(backend.seen.length).toBe(before);
  });

  it("passes WebSocket upgrades through the tunnel both ways", async () => {
    const wsBackend = await startBackend((_req, res) => res.writeHead(404).end());
    const wss = new WebSocketServer({ server: wsBackend.server });
    wss.on("connection", (ws, req) => {
      ws.send(`hello ${req.headers["x-forwarded-for"]}`);
      ws.on("message", (data, binary) => ws.send(data as Buffer, { binary }));
    });
    const { host: wsHost } = await rig.publish({ name: "Chat", internalUrl: `${wsBackend.origin}/`, externalUrl: "http://chat.contoso.test/" });
    const ws = new WebSocket(`ws://127.0.0.1:${rig.engine.edge.httpPort}/socket`, { headers: { host: wsHost } });
    const messages: (string | Buffer)[] = [];
    const big = Buffer.alloc(200_000, 7);
    await new Promise<void>((resolve, reject) => {
      ws.on("error", reject);
      ws.on("message", (data, binary) => {
        messages.push(binary ? (data as Buffer) : data.toString());
        if (messages.length === 1) {
          ws.send("text message");
          ws.send(big);
        }
        if (messages.length === 3) resolve();
      });
    });
    expect(messages[0]).toBe("hello 127.0.0.1");
    expect(messages[1]).toBe("text message");
    expect(Buffer.compare(messages[2] as Buffer, big)).toBe(0);
    const closed = new Promise<number>((resolve) => ws.on("close", (code) => resolve(code)));
    ws.close(4001, "bye");
    expect(await closed).toBe(4001);
    wss.close();
    await wsBackend.close();
  });
});
