/**
 * The framing sweep: raw-socket requests from every class of request smuggling and parser
 * disagreement (CL/TE combinations, chunk sizes and extensions, missing or wrong CRLFs,
 * trailers, obs-fold, bare LF, NUL/CR/LF in names and values, duplicate Host, absolute form,
 * CONNECT, OPTIONS *, HTTP/1.0, Expect, h2c upgrades, methods, paths). Each vector is sent
 * followed by a pipelined probe, once in the same write and once in a later write on the same
 * connection. A refused vector must be answered 4xx and no probe may reach the backend; a
 * valid vector must reach the backend exactly as RFC 9112 says it was sent (method, target,
 * the headers it names, body bytes).
 */
import { once } from "node:events";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBackend, startRig, type Backend, type Rig } from "../fixtures/datapath.js";

interface Seen {
  method: string;
  url: string;
  raw: string[];
  body: Buffer;
  complete: boolean;
}

type Expectation =
  /** Answered by the edge, never forwarded; `probe`: the connection stays usable for the next request. */
  | { readonly refused: true; readonly status?: RegExp; readonly probe?: boolean }
  | { readonly method: string; readonly url: string; readonly body?: string; readonly header?: readonly [string, string]; readonly probe?: boolean };

interface Vector {
  readonly name: string;
  /** The request; HOST is replaced with the app's host, ID with a unique tag. */
  readonly bytes: string;
  readonly expect: Expectation;
}

const REFUSED: Expectation = { refused: true, status: /^HTTP\/1\.1 4\d\d /};

function vectors(): Vector[] {
  const v: Vector[] = [];
  const post = (name: string, headers: string, body: string, expect: Expectation) =>
    v.push({ name, bytes: `POST /v/ID HTTP/1.1\r\nHost: HOST\r\n${headers}\r\n${body}`, expect });
  const chunked = (name: string, body: string, expect: Expectation) => post(name, "Transfer-Encoding: chunked\r\n", body, expect);
  const ok = (body: string): Expectation => ({ method: "POST", url: "/v/ID", body });

  // Content-Length and Transfer-Encoding
  post("CL twice, different", "Content-Length: 0\r\nContent-Length: 47\r\n", "", REFUSED);
  post("CL twice, same", "Content-Length: 5\r\nContent-Length: 5\r\n", "hello", REFUSED);
  post("CL list", "Content-Length: 5, 5\r\n", "hello", REFUSED);
  for (const bad of ["+5", "-1", "0x5", "5 5", "", "5a", "1e1", "99999999999999999999999"]) post(`CL ${JSON.stringify(bad)}`, `Content-Length: ${bad}\r\n`, "hello", REFUSED);
  post("CL with leading zeros (10 digits)", "Content-Length: 0000000005\r\n", "hello", ok("hello"));
  post("CL then TE", "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n", REFUSED);
  post("TE then CL", "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n", "0\r\n\r\n", REFUSED);
  for (const te of ["chunked, identity", "identity", "gzip", "gzip, chunked", "chunked, chunked", "xchunked", "chunked;q=1", "chunked\x0b", "\x0bchunked"]) {
    post(`TE ${JSON.stringify(te)}`, `Transfer-Encoding: ${te}\r\n`, "5\r\nhello\r\n0\r\n\r\n", REFUSED);
  }
  post("TE twice", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n", REFUSED);
  post("TE: Chunked (case)", "Transfer-Encoding: Chunked\r\n", "5\r\nhello\r\n0\r\n\r\n", ok("hello"));
  post("TE on HTTP/1.0", "", "", ok("")); // placeholder replaced below
  v.pop();
  v.push({ name: "TE on HTTP/1.0", bytes: "POST /v/ID HTTP/1.0\r\nHost: HOST\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", expect: REFUSED });

  // chunk sizes and extensions
  chunked("chunk: plain", "5\r\nhello\r\n0\r\n\r\n", ok("hello"));
  chunked("chunk: hex upper", "A\r\n0123456789\r\n0\r\n\r\n", ok("0123456789"));
  chunked("last chunk with extension 0;a", "0;a\r\n\r\n", ok(""));
  chunked("chunk with extension", "5;name=value\r\nhello\r\n0\r\n\r\n", ok("hello"));
  chunked("chunk with quoted extension", '5;name="va lue"\r\nhello\r\n0\r\n\r\n', ok("hello"));
  for (const size of [";", "g", "G", ":", "<", "=", ">", "?", "@", "-1", "+5", "0x5", " 5", "5 ", "5\t", "ffffffffffffffffff", ""]) {
    chunked(`chunk size ${JSON.stringify(size)}`, `${size}\r\nhello\r\n0\r\n\r\n`, REFUSED);
  }
  chunked("g as a size before 16 bytes", "g\r\n0123456789abcdef\r\n0\r\n\r\n", REFUSED);
  chunked("extension with NUL", "5;a\x00b\r\nhello\r\n0\r\n\r\n", REFUSED);
  chunked("extension with bare LF", "5;a\nhello\r\n0\r\n\r\n", REFUSED);
  // missing or wrong CRLFs
  chunked("data overrun before the last chunk", "5\r\nhelloXX0\r\n\r\n", REFUSED);
  chunked("garbage after the last chunk", "0\r\nXX", REFUSED);
  chunked("no CRLF after data", "5\r\nhello0\r\n\r\n", REFUSED);
  chunked("bare LF chunk lines", "5\nhello\n0\n\n", REFUSED);
  chunked("CR without LF after data", "5\r\nhello\r0\r\n\r\n", REFUSED);
  // trailers
  chunked("valid trailer", "5\r\nhello\r\n0\r\nX-Trailer: y\r\n\r\n", ok("hello"));
  chunked("trailer without colon", "0\r\nX y\r\n\r\n", REFUSED);
  chunked("trailer with bare LF", "0\r\nX: y\n\r\n", REFUSED);
  chunked("trailer naming Content-Length", "5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n", REFUSED);

  // header syntax
  const get = (name: string, headers: string, expect: Expectation, line = "GET /g/ID HTTP/1.1") =>
    v.push({ name, bytes: `${line}\r\nHost: HOST\r\n${headers}\r\n`, expect });
  const fine = (header?: readonly [string, string]): Expectation => ({ method: "GET", url: "/g/ID", ...(header ? { header } : {}) });
  get("obs-fold (space)", "X-A: 1\r\n continued\r\n", REFUSED);
  get("obs-fold (tab)", "X-A: 1\r\n\tcontinued\r\n", REFUSED);
  v.push({ name: "bare LF request", bytes: "GET /g/ID HTTP/1.1\nHost: HOST\n\n", expect: REFUSED });
  get("bare LF after a header", "X-A: 1\nX-B: 2\r\n", REFUSED);
  get("bare CR in a value", "X-A: a\rb\r\n", REFUSED);
  get("NUL in a value", "X-A: a\x00b\r\n", REFUSED);
  get("NUL in a name", "X\x00A: v\r\n", REFUSED);
  get("space in a name", "X A: v\r\n", REFUSED);
  get("space before the colon", "X-A : v\r\n", REFUSED);
  get("empty name", ": v\r\n", REFUSED);
  get("parenthesis in a name", "X(A): v\r\n", REFUSED);
  get("DEL in a value", "X-A: a\x7fb\r\n", REFUSED);
  get("header value with obs-text bytes", "X-Latin: \xe9t\xe9\r\n", fine(["x-latin", "\xe9t\xe9"]));
  get("value starting with 0x80-0xff", "X-High: \xff\xfeab\r\n", fine(["x-high", "\xff\xfeab"]));
  get("tab inside a value", "X-Tab: a\tb\r\n", fine(["x-tab", "a\tb"]));
  get("60 headers", Array.from({ length: 60 }, (_, i) => `X-H${i}: v${i}\r\n`).join(""), fine(["x-h59", "v59"]));
  get("101 headers", Array.from({ length: 101 }, (_, i) => `X-H${i}: v\r\n`).join(""), { refused: true, status: /^HTTP\/1\.1 431 / });
  // Host
  v.push({ name: "two Host headers", bytes: "GET /g/ID HTTP/1.1\r\nHost: HOST\r\nHost: other.test\r\n\r\n", expect: REFUSED });
  v.push({ name: "two equal Host headers", bytes: "GET /g/ID HTTP/1.1\r\nHost: HOST\r\nHost: HOST\r\n\r\n", expect: REFUSED });
  v.push({ name: "no Host on HTTP/1.1", bytes: "GET /g/ID HTTP/1.1\r\nX-A: 1\r\n\r\n", expect: REFUSED });
  v.push({ name: "empty Host", bytes: "GET /g/ID HTTP/1.1\r\nHost: \r\n\r\n", expect: REFUSED });
  v.push({ name: "Host with a path", bytes: "GET /g/ID HTTP/1.1\r\nHost: HOST/x\r\n\r\n", expect: REFUSED });
  v.push({ name: "Host with userinfo", bytes: "GET /g/ID HTTP/1.1\r\nHost: a@HOST\r\n\r\n", expect: REFUSED });
  v.push({ name: "Host of another app", bytes: "GET /g/ID HTTP/1.1\r\nHost: unknown.contoso.test\r\n\r\n", expect: { refused: true, status: /^HTTP\/1\.1 404 / } });
  // request line and target forms
  v.push({ name: "absolute form routes by its authority", bytes: "GET http://HOST/g/ID HTTP/1.1\r\nHost: ignored.test\r\n\r\n", expect: fine() });
  v.push({ name: "absolute form of another host", bytes: "GET http://unknown.contoso.test/g/ID HTTP/1.1\r\nHost: HOST\r\n\r\n", expect: { refused: true, status: /^HTTP\/1\.1 404 / } });
  v.push({ name: "authority form on GET", bytes: "GET HOST:80 HTTP/1.1\r\nHost: HOST\r\n\r\n", expect: REFUSED });
  v.push({ name: "CONNECT", bytes: "CONNECT HOST:443 HTTP/1.1\r\nHost: HOST\r\n\r\n", expect: { refused: true, status: /^HTTP\/1\.1 405 / } });
  v.push({ name: "OPTIONS *", bytes: "OPTIONS * HTTP/1.1\r\nHost: HOST\r\n\r\n", expect: { refused: true, status: /^HTTP\/1\.1 200 /, probe: true } });
  v.push({ name: "HTTP/1.0", bytes: "GET /g/ID HTTP/1.0\r\nHost: HOST\r\n\r\n", expect: { ...fine(), probe: false } });
  v.push({ name: "HTTP/1.0 keep-alive", bytes: "GET /g/ID HTTP/1.0\r\nHost: HOST\r\nConnection: keep-alive\r\n\r\n", expect: fine() });
  v.push({ name: "HTTP/1.0 POST with a length", bytes: "POST /v/ID HTTP/1.0\r\nHost: HOST\r\nContent-Length: 5\r\n\r\nhello", expect: { ...ok("hello"), probe: false } });
  v.push({ name: "leading blank line", bytes: "\r\nGET /g/ID HTTP/1.1\r\nHost: HOST\r\n\r\n", expect: fine() });
  // Extra spaces between the parts are read unambiguously (the request is rebuilt from its parsed form).
  v.push({ name: "two spaces after the method", bytes: "GET  /g/ID HTTP/1.1\r\nHost: HOST\r\n\r\n", expect: fine() });
  v.push({ name: "two spaces before the version", bytes: "GET /g/ID  HTTP/1.1\r\nHost: HOST\r\n\r\n", expect: fine() });
  // HTTP/2.0 in an HTTP/1.1 request line: llhttp passes it on; the edge refuses it.
  v.push({ name: "request line with HTTP/2.0", bytes: "GET /g/ID HTTP/2.0\r\nHost: HOST\r\n\r\n", expect: REFUSED });
  v.push({ name: "request line with HTTP/3.0", bytes: "GET /g/ID HTTP/3.0\r\nHost: HOST\r\n\r\n", expect: REFUSED });
  for (const line of ["GET /g/ID HTTP/1.1 ", "GET /g/ID HTTP/0.9", "GET /g/ID http/1.1", "GET /g/ID", "G\x00T /g/ID HTTP/1.1", "GET\t/g/ID HTTP/1.1"]) {
    v.push({ name: `request line ${JSON.stringify(line)}`, bytes: `${line}\r\nHost: HOST\r\n\r\n`, expect: REFUSED });
  }
  v.push({ name: "HTTP/2 preface on HTTP/1.1", bytes: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", expect: REFUSED });
  // Expect and upgrades
  post("Expect: 100-continue", "Expect: 100-continue\r\nContent-Length: 5\r\n", "hello", ok("hello"));
  post("Expect: something else", "Expect: teapot\r\nContent-Length: 5\r\n", "hello", REFUSED);
  get("h2c upgrade", "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n", REFUSED);
  get("unknown upgrade", "Connection: Upgrade\r\nUpgrade: foo/1\r\n", REFUSED);
  get("Upgrade without Connection: upgrade is ignored", "Upgrade: h2c\r\n", fine());
  // methods a backend may accept (WebDAV, CalDAV, QUERY)
  for (const method of ["PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH", "REPORT", "PURGE", "QUERY", "MKCALENDAR", "PATCH", "DELETE", "OPTIONS", "TRACE"]) {
    v.push({ name: `method ${method}`, bytes: `${method} /m/ID HTTP/1.1\r\nHost: HOST\r\nContent-Length: 0\r\n\r\n`, expect: { method, url: "/m/ID" } });
  }
  v.push({ name: "HEAD", bytes: "HEAD /m/ID HTTP/1.1\r\nHost: HOST\r\n\r\n", expect: { method: "HEAD", url: "/m/ID" } });
  v.push({ name: "unknown method", bytes: "FROB /m/ID HTTP/1.1\r\nHost: HOST\r\n\r\n", expect: REFUSED });
  // paths: forwarded exactly, or refused when they could mean two things
  const path = (target: string, expect: Expectation) => v.push({ name: `path ${JSON.stringify(target)}`, bytes: `GET ${target} HTTP/1.1\r\nHost: HOST\r\n\r\n`, expect });
  path("/p/ID/a/b/?x=1", { method: "GET", url: "/p/ID/a/b/?x=1" });
  path("/p/ID/page;jsessionid=ABC", { method: "GET", url: "/p/ID/page;jsessionid=ABC" });
  path("/p/ID/%7Euser/caf%C3%A9", { method: "GET", url: "/p/ID/%7Euser/caf%C3%A9" });
  path("/p/ID/a//b", { method: "GET", url: "/p/ID/a//b" });
  path("/p/ID?", { method: "GET", url: "/p/ID?" });
  path("/p/ID?a=%2F&b=../c", { method: "GET", url: "/p/ID?a=%2F&b=../c" });
  for (const bad of ["/p/ID/a%2Fb", "/p/ID/a%5cb", "/p/ID/../x", "/p/ID/./x", "/p/ID/%2e%2e/x", "/p/ID/.%2E/x", "/p/ID/..;/x", "/p/ID/a\\b", "/p/ID/a%00b", "/p/ID/%zz", "/p/ID#frag"]) path(bad, REFUSED);
  return v;
}

describe("framing sweep: raw HTTP/1.1 vectors, each followed by a pipelined probe", () => {
  let rig: Rig;
  let backend: Backend;
  let host: string;
  const seen: Seen[] = [];
  // SWEEP_ONLY=text runs the vectors whose name contains it (when a vector needs a closer look).
  const all = vectors().filter((v) => process.env.SWEEP_ONLY === undefined || v.name.includes(process.env.SWEEP_ONLY));

  beforeAll(async () => {
    backend = await startBackend((req, res) => {
      const entry: Seen = { method: req.method ?? "", url: req.url ?? "", raw: req.rawHeaders, body: Buffer.alloc(0), complete: false };
      seen.push(entry);
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        entry.body = Buffer.concat(chunks);
        entry.complete = true;
        res.end("ok");
      });
    });
    rig = await startRig();
    ({ host } = await rig.publish({ name: "Sweep", internalUrl: `${backend.origin}/` }));
  }, 60_000);
  afterAll(async () => {
    await rig?.close();
    await backend?.close();
  });

  /** Sends the vector, and the probe in the same write or after the answer; returns everything read. */
  async function exchange(bytes: string, probe: string, sameWrite: boolean): Promise<string> {
    const socket = connect(rig.engine.edge.httpPort!, "127.0.0.1");
    await once(socket, "connect");
    let answer = "";
    let last = Date.now();
    socket.on("data", (d: Buffer) => {
      answer += d.toString("latin1");
      last = Date.now();
    });
    socket.on("error", () => undefined);
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    socket.write(Buffer.from(sameWrite ? bytes + probe : bytes, "latin1"));
    /** Waits for an answer past `from` characters, then until the connection is quiet for `ms`. */
    const idle = async (from: number, ms: number, max: number) => {
      const start = Date.now();
      while (!socket.destroyed && Date.now() - start < max && (answer.length <= from || Date.now() - last < ms)) await new Promise((r) => setTimeout(r, 20));
    };
    await idle(0, 150, 1500);
    if (!sameWrite && !socket.destroyed && socket.writable) {
      const before = answer.length;
      socket.write(probe);
      await idle(before, 150, 1000);
    }
    socket.destroy();
    await closed;
    return answer;
  }

  it(`has at least 100 vectors across the classes (${all.length})`, () => {
    expect(vectors().length).toBeGreaterThanOrEqual(100);
  });

  for (const sameWrite of [true, false]) {
    it(`${sameWrite ? "same write" : "later write"}: refused vectors let no probe through; valid ones arrive exactly as sent`, async () => {
      const failures: string[] = [];
      const run = async (vector: Vector, index: number) => {
        const id = `${sameWrite ? "s" : "l"}${index}`;
        const bytes = vector.bytes.replaceAll("HOST", host).replaceAll("ID", id);
        const probe = `GET /probe/${id} HTTP/1.1\r\nHost: ${host}\r\n\r\n`;
        const answer = await exchange(bytes, probe, sameWrite);
        // Requests reach the backend asynchronously: let the tunnel deliver what it will.
        await new Promise((r) => setTimeout(r, 100));
        const probes = seen.filter((s) => s.url === `/probe/${id}`);
        const ownUrl = new RegExp(`/${id}(?:[/?;]|$)`);
        const mine = seen.filter((s) => ownUrl.test(s.url) && !s.url.startsWith("/probe/"));
        const e = vector.expect;
        const url = "url" in e ? e.url.replaceAll("ID", id) : "";
        // An interim 100 Continue may come first (Expect: 100-continue).
        const final = answer.replace(/^HTTP\/1\.1 100 Continue\r\n\r\n/, "");
        if ("refused" in e) {
          if (e.status && !e.status.test(answer)) failures.push(`${vector.name}: answered ${JSON.stringify(answer.slice(0, 40))}`);
          if (probes.length !== (e.probe ? 1 : 0)) failures.push(`${vector.name}: the probe reached the backend ${probes.length} times`);
          if (mine.some((s) => s.complete)) failures.push(`${vector.name}: reached the backend whole`);
          return;
        }
        if (!/^HTTP\/1\.1 200 /.test(final)) failures.push(`${vector.name}: answered ${JSON.stringify(final.slice(0, 40))}`);
        if (mine.length !== 1) return void failures.push(`${vector.name}: the backend saw ${mine.length} requests`);
        const got = mine[0]!;
        if (got.method !== e.method || got.url !== url) failures.push(`${vector.name}: backend saw ${got.method} ${got.url}`);
        if (e.body !== undefined && got.body.toString("latin1") !== e.body) failures.push(`${vector.name}: body ${JSON.stringify(got.body.toString("latin1"))}`);
        if (e.header) {
          const at = got.raw.findIndex((h, i) => i % 2 === 0 && h.toLowerCase() === e.header![0]);
          if (at < 0 || got.raw[at + 1] !== e.header[1]) failures.push(`${vector.name}: header ${e.header[0]} arrived as ${JSON.stringify(at < 0 ? undefined : got.raw[at + 1])}`);
        }
        // A valid request on a connection that stays open: the probe is served after it.
        if (e.probe !== false && probes.length !== 1) failures.push(`${vector.name}: the probe after a valid request was not served once (${probes.length}): ${JSON.stringify(final.slice(-80))}`);
        if (e.probe === false && probes.length > 0) failures.push(`${vector.name}: the probe went through a connection that closes`);
      };
      // Twenty connections at a time: each vector has its own connection and ids.
      for (let i = 0; i < all.length; i += 20) await Promise.all(all.slice(i, i + 20).map((vector, j) => run(vector, i + j)));
      expect(failures).toEqual([]);
    }, 120_000);
  }
});
