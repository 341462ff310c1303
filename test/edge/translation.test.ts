/**
 * Link translation on the real data path: backend -> connector -> tunnel -> engine edge ->
 * client, with the engine's worker pool doing the rewriting.
 */
import { gunzipSync, gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TranslatePool } from "../../engine/workers/pool.js";
import { edgeRequest, startBackend, startRig, type Backend, type Rig } from "../fixtures/datapath.js";
import { misbehavingTaskFile } from "../fixtures/translate.js";

describe("link translation in bodies (apps with translateBody on)", () => {
  let rig: Rig;
  let backend: Backend;
  let portal: string;
  let plain: string;
  /** Bytes the backend has written of /big so far. */
  let bigWritten = 0;
  const BIG_BLOCKS = 48; // of 1 MiB, each with 1024 links
  const page = (base: string, other: string) =>
    `<html><head><link rel="stylesheet" href="${base}site.css"><style>p{background:url(${other}bg.png)}</style></head>` +
    `<body><a href="${base}docs/">docs</a><a href="${other}list">other app</a><a href="http://unpublished.corp/">elsewhere</a>` +
    `<img srcset="${base}a.png 1x, ${base}b.png 2x"><script>var s = "${base}";</script></body></html>`;

  beforeAll(async () => {
    backend = await startBackend((req, res) => {
      const base = `http://localhost:${backend.port}/portal/`;
      const other = `http://LOCALHOST:${backend.port}/expenses/`;
      const url = req.url ?? "";
      if (url.endsWith("/page")) {
        // Written in 7-byte pieces so tags and URLs straddle chunk boundaries on the way.
        res.writeHead(200, { "content-type": "text/html; charset=utf-8", etag: '"v1"' });
        const body = page(base, other);
        let at = 0;
        const next = () => {
          if (at >= body.length) return void res.end();
          res.write(body.slice(at, (at += 7)));
          setImmediate(next);
        };
        next();
        return;
      }
      if (url.endsWith("/page.gz")) {
        const body = gzipSync(page(base, other).repeat(50));
        res.writeHead(200, { "content-type": "text/html", "content-encoding": "gzip", "content-length": body.length });
        res.end(body);
        return;
      }
      if (url.endsWith("/site.css")) {
        res.writeHead(200, { "content-type": "text/css", "content-length": 200 });
        res.end(`body { background: url(${base}bg.png) }\n@import "${other}more.css";`.padEnd(200));
        return;
      }
      if (url.endsWith("/data.js")) {
        res.writeHead(200, { "content-type": "application/javascript" });
        res.end(`fetch("${base}api")`);
        return;
      }
      if (url.endsWith("/big")) {
        res.writeHead(200, { "content-type": "text/html" });
        const block = Buffer.from(`<a href="${base}x">x</a>`.padEnd(1024, " ").repeat(1024));
        let sent = 0;
        const more = () => {
          while (sent < BIG_BLOCKS) {
            sent++;
            bigWritten += block.length;
            if (!res.write(block)) return void res.once("drain", more);
          }
          res.end();
        };
        more();
        return;
      }
      if (url.endsWith("/slow")) {
        // A page that streams: its first part must reach the client long before the rest.
        res.writeHead(200, { "content-type": "text/html" });
        res.write(`<a href="${base}first">first</a>`);
        setTimeout(() => res.end(`<a href="${base}last">last</a>`), 600);
        return;
      }
      if (url.endsWith("/hang")) {
        res.writeHead(200, { "content-type": "text/html" });
        res.end("<p>HANG-NOW</p>");
        return;
      }
      res.writeHead(404).end();
    });
    // Every body through the worker pool here (inline rewriting of small whole bodies is tested apart below).
    rig = await startRig({ engine: { translate: { inlineMaxBytes: 0 } } });
    ({ host: portal } = await rig.publish({ name: "Portal", internalUrl: `${backend.origin}/portal/`, externalUrl: "http://portal.contoso.test/", translateBody: true }));
    await rig.publish({ name: "Expenses", internalUrl: `${backend.origin}/expenses/`, externalUrl: "http://expenses.contoso.test/" });
    ({ host: plain } = await rig.publish({ name: "Plain", internalUrl: `${backend.origin}/plain/`, externalUrl: "http://plain.contoso.test/" }));
  }, 30_000);
  afterAll(async () => {
    await rig.close();
    await backend.close();
  });

  const translated = page("http://portal.contoso.test/", "http://expenses.contoso.test/").replace(
    '<script>var s = "http://portal.contoso.test/";',
    "<script>var s = \"http://localhost:PORT/portal/\";",
  );

  it("rewrites links to this app and to other apps of the tenant; leaves scripts and unpublished hosts alone", async () => {
    const res = await edgeRequest(rig, portal, "/page");
    expect(res.status).toBe(200);
    expect(res.headers.etag).toBe('W/"v1"'); // the bytes changed: the validator is weak now
    expect(res.text).toBe(translated.replace("PORT", String(backend.port)));
  });

  it("rewrites a gzip page and sends it gzip-encoded again", async () => {
    const res = await edgeRequest(rig, portal, "/page.gz");
    expect(res.status).toBe(200);
    expect(res.headers["content-encoding"]).toBe("gzip");
    // The backend's length was of the original bytes: whatever goes out says its own, or none.
    if (res.headers["content-length"] !== undefined) expect(Number(res.headers["content-length"])).toBe(res.body.length);
    expect(gunzipSync(res.body).toString()).toBe(translated.replace("PORT", String(backend.port)).repeat(50));
  });

  it("streams: the first part of a slow page reaches the client before the backend finishes it", async () => {
    const started = Date.now();
    const { request } = await import("node:http");
    const firstAt = await new Promise<{ first: number; text: string; chunked: boolean }>((resolve, reject) => {
      const req = request(`${rig.edge}/slow`, { headers: { host: portal } }, (res) => {
        let first = 0;
        let text = "";
        res.on("data", (c: Buffer) => {
          first ||= Date.now() - started;
          text += c.toString();
        });
        res.on("end", () => resolve({ first, text, chunked: res.headers["transfer-encoding"] === "chunked" }));
      });
      req.on("error", reject);
      req.end();
    });
    expect(firstAt.first).toBeLessThan(500);
    expect(firstAt.chunked).toBe(true);
    expect(firstAt.text).toBe('<a href="http://portal.contoso.test/first">first</a><a href="http://portal.contoso.test/last">last</a>');
  });

  it("a client that stops reading holds the backend back: a translated body is never buffered whole", async () => {
    const { request } = await import("node:http");
    const got = await new Promise<{ whilePaused: number; bytes: number; links: number }>((resolve, reject) => {
      const req = request(`${rig.edge}/big`, { headers: { host: portal } }, (res) => {
        res.pause();
        setTimeout(() => {
          const whilePaused = bigWritten;
          let bytes = 0;
          let links = 0;
          let tail = "";
          res.on("data", (c: Buffer) => {
            bytes += c.length;
            const text = tail + c.toString("latin1");
            links += text.split('href="http://portal.contoso.test/x"').length - 1;
            tail = text.slice(-64);
            links -= tail.split('href="http://portal.contoso.test/x"').length - 1; // counted again with the next chunk
          });
          res.on("end", () => resolve({ whilePaused, bytes, links: links + tail.split('href="http://portal.contoso.test/x"').length - 1 }));
          res.resume();
        }, 1500);
      });
      req.on("error", reject);
      req.end();
    });
    // All 48 MiB would be written within the pause without backpressure; the socket buffers
    // on every hop, the mux window and the translation batch hold about 9 MiB here.
    expect(got.whilePaused).toBeLessThan(24 * 1024 * 1024);
    expect(got.links).toBe(BIG_BLOCKS * 1024);
    const translatedBlock = '<a href="http://portal.contoso.test/x">x</a>'.length + 1024 - `<a href="http://localhost:${backend.port}/portal/x">x</a>`.length;
    expect(got.bytes).toBe(BIG_BLOCKS * 1024 * translatedBlock);
  }, 30_000);

  it("rewrites CSS; JavaScript passes through untouched", async () => {
    const css = await edgeRequest(rig, portal, "/site.css");
    const original = `body { background: url(http://localhost:${backend.port}/portal/bg.png) }\n@import "http://LOCALHOST:${backend.port}/expenses/more.css";`;
    // Every byte but the URLs passes through: the padding after them too.
    expect(css.text).toBe(`body { background: url(http://portal.contoso.test/bg.png) }\n@import "http://expenses.contoso.test/more.css";${" ".repeat(200 - original.length)}`);
    // A body that arrived in one piece goes out in one piece, with its new length (not chunked).
    expect(css.headers["content-length"]).toBe(String(css.body.length));
    expect(css.headers["transfer-encoding"]).toBeUndefined();
    const js = await edgeRequest(rig, portal, "/data.js");
    expect(js.text).toBe(`fetch("http://localhost:${backend.port}/portal/api")`);
  });

  it("leaves bodies alone when the app does not translate them", async () => {
    const res = await edgeRequest(rig, plain, "/page");
    expect(res.text).toBe(page(`http://localhost:${backend.port}/portal/`, `http://LOCALHOST:${backend.port}/expenses/`));
  });

  it("a worker that hangs fails only its own response, with a 502 page; a full pool answers 503", async () => {
    const state = rig.engine.edge.state;
    const previous = state.translatePool;
    const pool = new TranslatePool({ threads: 1, chunkTimeoutMs: 300, maxQueue: 1 }, misbehavingTaskFile());
    state.translatePool = pool;
    try {
      const [hung, fine] = await Promise.all([edgeRequest(rig, portal, "/hang"), edgeRequest(rig, portal, "/site.css")]);
      expect(hung.status).toBe(502);
      expect(hung.text).toContain("Translation failed");
      expect(hung.text).toContain(hung.headers["x-request-id"] as string);
      expect(fine.status).toBe(200);
      expect(fine.text).toContain("http://portal.contoso.test/bg.png");
      // One chunk hanging on the only thread, one waiting: saturated, so the next page is refused at once.
      const busy = [edgeRequest(rig, portal, "/hang"), edgeRequest(rig, portal, "/hang")];
      await new Promise((r) => setTimeout(r, 100));
      const refused = await edgeRequest(rig, portal, "/page");
      expect(refused.status).toBe(503);
      expect((await Promise.all(busy)).map((r) => r.status)).toEqual([502, 502]);
      // Pages that need no translation never wait for the pool.
      expect((await edgeRequest(rig, portal, "/data.js")).status).toBe(200);
    } finally {
      state.translatePool = previous;
      await pool.close();
    }
  });
});

describe("link translation of small whole bodies on the event loop", () => {
  let rig: Rig;
  let backend: Backend;

  beforeAll(async () => {
    backend = await startBackend((req, res) => {
      const base = `http://localhost:${backend.port}/portal/`;
      // Whole bodies with their length, as most apps send pages.
      const whole = (body: string) => res.writeHead(200, { "content-type": "text/html", "content-length": Buffer.byteLength(body) }).end(body);
      if (req.url?.endsWith("/small")) return void whole(`<a href="${base}a">a</a><img src="${base}b.png">`);
      if (req.url?.endsWith("/large")) return void whole(`<a href="${base}big">big</a>`.padEnd(200 * 1024, " "));
      res.writeHead(404).end();
    });
    rig = await startRig({ engine: { translate: { inlineMaxBytes: 64 * 1024 } } });
    await rig.publish({ name: "Portal", internalUrl: `${backend.origin}/portal/`, externalUrl: "http://portal.contoso.test/", translateBody: true });
  }, 30_000);
  afterAll(async () => {
    await rig.close();
    await backend.close();
  });

  it("rewrites a small page inline, with its length, without starting the pool; a large one goes to the pool", async () => {
    const small = await edgeRequest(rig, "portal.contoso.test", "/small");
    expect(small.status).toBe(200);
    expect(small.text).toBe('<a href="http://portal.contoso.test/a">a</a><img src="http://portal.contoso.test/b.png">');
    expect(Number(small.headers["content-length"])).toBe(Buffer.byteLength(small.text));
    expect(rig.engine.edge.state.translatePool).toBeUndefined();
    const large = await edgeRequest(rig, "portal.contoso.test", "/large");
    expect(large.status).toBe(200);
    expect(large.text.startsWith('<a href="http://portal.contoso.test/big">big</a>')).toBe(true);
    expect(rig.engine.edge.state.translatePool).toBeDefined();
  });
});

