import fc from "fast-check";
import { createServer, type AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { edgeRequest, rawExchange, startBackend, startRig, type Backend, type Rig } from "../fixtures/datapath.js";

// Arbitrary, mostly-malformed HTTP at the edge: every input gets an answer or a closed
// connection, never a crash, and the engine keeps serving afterwards. Time-boxed.
describe("edge fuzzing", () => {
  let rig: Rig;
  let backend: Backend;
  let host: string;
  beforeAll(async () => {
    backend = await startBackend((req, res) => {
      req.resume();
      req.on("end", () => res.writeHead(200).end("ok"));
    });
    rig = await startRig();
    ({ host } = await rig.publish({ name: "Fuzz", internalUrl: `${backend.origin}/f/` }));
  }, 30_000);
  afterAll(async () => {
    await rig.close();
    await backend.close();
  });

  const token = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}$/);
  const anyText = fc.string({ unit: "binary", maxLength: 40 });
  const header = fc.oneof(
    fc.tuple(token, anyText).map(([k, v]) => `${k}: ${v}`),
    fc.constantFrom("Content-Length: 5", "Content-Length: -1", "Content-Length: 99999999999", "Transfer-Encoding: chunked", "Transfer-Encoding: identity",
      "Connection: upgrade", "Upgrade: websocket", "Expect: 100-continue", "X-Forwarded-For: ::1", "Cookie: postern_session=x", " folded", ""),
    anyText,
  );
  const request = fc.record({
    method: fc.oneof(fc.constantFrom("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE"), token),
    path: fc.oneof(fc.constantFrom("/", "/a/../../b", "/%2e%2e/x", "/%2F", "//x", "/a\\b", "*", "http://evil/", "/%zz", "/;x/y"), fc.webPath(), anyText.map((s) => `/${s}`)),
    version: fc.constantFrom("HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1x", ""),
    headers: fc.array(header, { maxLength: 12 }),
    withHost: fc.boolean(),
    eol: fc.constantFrom("\r\n", "\n", "\r"),
    body: fc.oneof(fc.constant(""), anyText, fc.constant("5\r\nhello\r\n0\r\n\r\n")),
  });

  it("answers or closes on arbitrary input and keeps serving", async () => {
    const port = rig.engine.edge.httpPort!;
    const deadline = Date.now() + 15_000;
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        if (Date.now() > deadline) return;
        const lines = [`${r.method} ${r.path} ${r.version}`, ...(r.withHost ? [`Host: ${host}`] : []), ...r.headers];
        const answer = await rawExchange(port, lines.join(r.eol) + r.eol + r.eol + r.body, 150);
        // Whatever came back is HTTP or nothing, and never a 5xx from the engine itself except the documented pages.
        expect(answer === "" || /^HTTP\/1\.1 \d{3} /.test(answer)).toBe(true);
        expect(answer.startsWith("HTTP/1.1 500")).toBe(false);
      }),
      { numRuns: 300, interruptAfterTimeLimit: 20_000 },
    );
    expect((await edgeRequest(rig, host, "/after")).status).toBe(200);
  }, 60_000);

  it("fails only the one request when a backend answers arbitrary bytes", async () => {
    let reply = Buffer.alloc(0);
    const raw = createServer((socket) => {
      socket.once("data", () => socket.end(reply));
      socket.on("error", () => undefined);
    });
    await new Promise<void>((resolve) => raw.listen(0, "127.0.0.1", resolve));
    const { host: rawHost } = await rig.publish({ name: "Garbage", internalUrl: `http://localhost:${(raw.address() as AddressInfo).port}/` });
    const replies = fc.oneof(
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
      fc.tuple(fc.constantFrom("HTTP/1.1 200 OK", "HTTP/1.1 999 X", "HTTP/1.0 204 No", "HTTP/1.1 200"), fc.array(fc.string({ unit: "binary", maxLength: 30 }), { maxLength: 5 }), fc.string({ maxLength: 20 }))
        .map(([line, headers, body]) => Buffer.from(`${line}\r\n${headers.join("\r\n")}\r\n\r\n${body}`, "latin1")),
    );
    const deadline = Date.now() + 10_000;
    await fc.assert(
      fc.asyncProperty(replies, async (bytes) => {
        if (Date.now() > deadline) return;
        reply = bytes;
        const res = await edgeRequest(rig, rawHost, "/").catch(() => ({ status: 0 }));
        // A valid answer passes, anything else is the 502 page; the client never sees garbage.
        expect(res.status === 502 || (res.status >= 200 && res.status <= 599)).toBe(true);
      }),
      { numRuns: 200, interruptAfterTimeLimit: 15_000 },
    );
    raw.close();
    expect((await edgeRequest(rig, host, "/still")).status).toBe(200);
  }, 60_000);
});
