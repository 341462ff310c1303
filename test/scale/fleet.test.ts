/**
 * Scale-out end to end: two control replicas on one PostgreSQL, three engines sharing Redis
 * behind HAProxy, two connectors, every one a real process. Publishing on one replica reaches
 * every engine; a sign-in started on one engine and replica ends on others; a sign-out is
 * refused everywhere; the tenant's rate limit holds across engines; and killing an engine
 * and a replica under load loses only the killed engine's in-flight requests.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api } from "../fixtures/control.js";
import { ScriptedBrowser, decodeEntities, readForm, type Hop } from "../fixtures/browser.js";
import { startFleet, waitFor, type Fleet } from "../fixtures/fleet.js";

let fleet: Fleet;
let backend: Server;
let backendOrigin: string;
const dispatcher = new Agent({ connections: 128, keepAliveTimeout: 2_000 });

async function get(origin: string, host: string, path = "/", headers: Record<string, string> = {}) {
  const res = await request(`${origin}${path}`, { headers: { host, ...headers }, dispatcher, headersTimeout: 10_000, bodyTimeout: 10_000 });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

async function publish(settings: Record<string, unknown>, via = fleet.controlUrl) {
  const res = await api(via, "POST", "/api/v1/apps", fleet.admin, settings);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
}

beforeAll(async () => {
  backend = createServer((req, res) => {
    // A little latency, so requests are in flight when an engine is killed.
    setTimeout(() => res.writeHead(200, { "content-type": "text/plain" }).end(`backend saw ${req.url}`), 5);
  });
  await new Promise<void>((resolve) => backend.listen(0, "127.0.0.1", resolve));
  backendOrigin = `http://localhost:${(backend.address() as AddressInfo).port}`;
  fleet = await startFleet({ controls: 2, engines: 3, connectors: 2 });
}, 120_000);

afterAll(async () => {
  await fleet?.close();
  await dispatcher.close();
  backend?.close();
});

describe("several control and engine nodes on PostgreSQL and Redis", () => {
  it("publishes on one replica and serves through every engine within 2 s", async () => {
    const started = Date.now();
    await publish({ name: "Wiki", internalUrl: `${backendOrigin}/wiki/`, externalUrl: "http://wiki.fleet.test/", preAuthentication: "passthrough" }, fleet.controls[0]!.origin);
    for (const engine of fleet.engines) {
      await waitFor(async () => (await get(engine.origin, "wiki.fleet.test", "/page")).status === 200, 5_000, `${engine.name} serves Wiki`);
    }
    expect(Date.now() - started).toBeLessThan(2_000);
    // The other replica reads the same store.
    const listed = await api(fleet.controls[1]!.origin, "GET", "/api/v1/apps", fleet.admin);
    expect(listed.body.apps.map((a: { name: string }) => a.name)).toContain("Wiki");
    const page = await get(fleet.edgeUrl, "wiki.fleet.test", "/page");
    expect(page.text).toBe("backend saw /wiki/page");
  });

  it("connectors pick up an engine joining, and drop it when it leaves", async () => {
    const joined = await fleet.addEngine("engine4");
    const started = Date.now();
    await waitFor(async () => (await get(joined.origin, "wiki.fleet.test", "/")).status === 200, 10_000, "the new engine serves through both connectors' tunnels");
    expect(Date.now() - started).toBeLessThan(5_000);
    for (const connector of fleet.connectors) await connector.waitForLog((l) => l.msg === "configuration applied" && l.engines === 4, 5_000);
    await joined.service.kill("SIGTERM");
    for (const connector of fleet.connectors) await connector.waitForLog((l) => l.msg === "configuration applied" && l.engines === 3, 5_000);
  }, 30_000);

  describe("pre-authentication across engines and replicas", () => {
    let browser: ScriptedBrowser;
    const portal = "portal.fleet.test";
    let sessionCookie: [string, string];

    beforeAll(async () => {
      const made = await api(fleet.controlUrl, "POST", "/api/v1/users", fleet.admin, { username: "alice", password: "alice-passw0rd", displayName: "Alice", email: "alice@fleet.test" });
      expect(made.status, JSON.stringify(made.body)).toBe(201);
      await publish({ name: "Portal", internalUrl: `${backendOrigin}/portal/`, externalUrl: `http://${portal}/`, preAuthentication: "oidc" });
      for (const engine of fleet.engines) {
        await waitFor(async () => (await get(engine.origin, portal, "/")).status === 401, 5_000, `${engine.name} knows Portal`);
      }
      browser = new ScriptedBrowser(fleet.engines[0]!.origin, new Set([portal]));
    });

    /** The sign-in transaction cookie as the callback carried it (for a replay). */
    let txCookie = "";

    /** Follows redirects one hop at a time, letting `route` pick the engine or replica for each. */
    async function walk(hop: Hop, route: (url: URL) => void): Promise<Hop> {
      for (let i = 0; i < 20 && hop.status >= 300 && hop.status < 400; i++) {
        const next = new URL(String(hop.headers.location), hop.url);
        route(next);
        if (next.pathname.endsWith("/.postern/callback")) {
          txCookie = [...browser.cookies(portal)].filter(([n]) => n.startsWith("postern_t_")).map(([n, v]) => `${n}=${v}`).join("; ");
          return browser.fetch(next.href);
        }
        hop = await browser.fetch(next.href);
      }
      return hop;
    }

    it("a sign-in started on engine 1 and replica 1 completes on replica 2 and engine 2, and the session works on engine 3", async () => {
      const lb = new URL(fleet.controlUrl).host;
      const [replica1, replica2] = fleet.controls.map((c) => c.origin);
      // Engine 1 starts the sign-in (its transaction cookie is sealed with the fleet's keys).
      browser.edge = fleet.engines[0]!.origin;
      const first = await browser.fetch(`http://${portal}/reports?q=1`);
      expect(first.status).toBe(200);
      const link = decodeEntities(/<a href="([^"]+)">Continue to sign in<\/a>/.exec(first.text)![1]!);
      browser.via.set(lb, replica1!);
      let hop = await walk(await browser.fetch(new URL(link, `http://${portal}`).href), () => undefined);
      expect(hop.status).toBe(200); // replica 1's login form
      // The form is posted to replica 2: the interaction lives in the shared store.
      browser.via.set(lb, replica2!);
      for (let step = 0; step < 5 && !hop.url.includes("/.postern/callback"); step++) {
        const form = readForm(hop);
        hop = await browser.fetch(form.action, { method: "POST", body: new URLSearchParams({ ...form.fields, username: "alice", password: "alice-passw0rd" }).toString() });
        hop = await walk(hop, (url) => {
          if (url.host === portal) browser.edge = fleet.engines[1]!.origin; // the callback lands on engine 2
        });
      }
      expect(hop.url).toContain("/.postern/callback");
      expect(hop.status, hop.text.slice(0, 300)).toBe(302);
      expect(hop.headers.location).toBe("/reports?q=1");
      const cookies = [...browser.cookies(portal)].filter(([name]) => name.startsWith("postern_s_"));
      expect(cookies).toHaveLength(1);
      sessionCookie = cookies[0]!;
      for (const engine of fleet.engines) {
        browser.edge = engine.origin;
        const page = await browser.fetch(`http://${portal}/reports?q=1`);
        expect(page.status, engine.name).toBe(200);
        expect(page.text).toBe("backend saw /portal/reports?q=1");
      }
      // Replaying the callback, transaction cookie and all, to engine 3 fails: single use is fleet-wide.
      const callback = new URL(hop.url);
      expect(txCookie).toMatch(/^postern_t_/);
      const replay = await get(fleet.engines[2]!.origin, portal, `${callback.pathname}${callback.search}`, { cookie: txCookie, accept: "text/html" });
      expect(replay.status).toBe(400);
      expect(replay.text).toMatch(/already used/);
    }, 30_000);

    it("signs out on engine 1 and is refused on every engine within 1 s", async () => {
      const cookie = `${sessionCookie[0]}=${sessionCookie[1]}`;
      browser.edge = fleet.engines[0]!.origin;
      const out = await browser.fetch(`http://${portal}/.postern/signout`);
      expect(out.status).toBe(200);
      const started = Date.now();
      for (const engine of fleet.engines) {
        await waitFor(async () => (await get(engine.origin, portal, "/", { cookie, accept: "application/json" })).status === 401, 1_000, `${engine.name} refuses the signed-out session`);
      }
      expect(Date.now() - started).toBeLessThan(1_000);
    });

    it("with Redis stopped: an engine keeps the sessions it has seen, refuses ones it has not (503), and recovers when Redis is back", async () => {
      // A fresh session, used on engine 1 only.
      const jar = browser.cookies(portal);
      jar.clear();
      browser.edge = fleet.engines[0]!.origin;
      browser.via.delete(new URL(fleet.controlUrl).host);
      const first = await browser.fetch(`http://${portal}/`);
      const link = decodeEntities(/<a href="([^"]+)">Continue to sign in<\/a>/.exec(first.text)![1]!);
      let hop = await walk(await browser.fetch(new URL(link, `http://${portal}`).href), () => undefined);
      for (let step = 0; step < 5 && !hop.url.includes("/.postern/callback"); step++) {
        const form = readForm(hop);
        hop = await browser.fetch(form.action, { method: "POST", body: new URLSearchParams({ ...form.fields, username: "alice", password: "alice-passw0rd" }).toString() });
        hop = await walk(hop, () => undefined);
      }
      expect(hop.status).toBe(302);
      const [name, value] = [...jar].find(([n]) => n.startsWith("postern_s_"))!;
      const cookie = `${name}=${value}`;
      expect((await get(fleet.engines[0]!.origin, portal, "/", { cookie })).status).toBe(200);
      await fleet.redis.stop();
      try {
        await fleet.engines[1]!.service.waitForLog((l) => /redis .*connection/.test(String(l.msg)) && l.level === 40, 5_000);
        expect((await get(fleet.engines[0]!.origin, portal, "/", { cookie })).status).toBe(200);
        const unseen = await get(fleet.engines[1]!.origin, portal, "/", { cookie });
        expect(unseen.status).toBe(503);
        expect(unseen.text).toMatch(/sign-outs right now|unavailable/i);
      } finally {
        await fleet.redis.start();
      }
      await waitFor(async () => (await get(fleet.engines[1]!.origin, portal, "/", { cookie })).status === 200, 10_000, "engine 2 admits the session once Redis is back");
    }, 30_000);
  });

  it("holds the tenant's 750 requests/s across three engines within 5%", async () => {
    await publish({ name: "Docs", internalUrl: `${backendOrigin}/docs/`, externalUrl: "http://docs.fleet.test/", preAuthentication: "passthrough" });
    for (const engine of fleet.engines) await waitFor(async () => (await get(engine.origin, "docs.fleet.test", "/")).status === 200, 5_000, `${engine.name} serves Docs`);
    await new Promise((r) => setTimeout(r, 500)); // the buckets refill after the checks above
    // 1000 requests/s through HAProxy, half to each app (500/s app limit each), so the tenant's 750 binds.
    const seconds = 4;
    const perSecond = 1000;
    const counts = new Map<number | string, number>();
    const pending: Promise<void>[] = [];
    const started = Date.now();
    let sent = 0;
    while (Date.now() - started < seconds * 1000) {
      const due = Math.floor(((Date.now() - started) / 1000) * perSecond);
      for (; sent < due; sent++) {
        const host = sent % 2 === 0 ? "wiki.fleet.test" : "docs.fleet.test";
        pending.push(get(fleet.edgeUrl, host).then((r) => void counts.set(r.status, (counts.get(r.status) ?? 0) + 1), (e: Error) => void counts.set(e.message, (counts.get(e.message) ?? 0) + 1)));
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await Promise.all(pending);
    // On a busy host requests reach the engines later than they were sent, and the buckets
    // refill meanwhile: the admissions span at most from the first send to the last answer.
    const spanned = (Date.now() - started) / 1000;
    const ok = counts.get(200) ?? 0;
    const burst = 750 * 0.1;
    expect(counts.get(429) ?? 0, JSON.stringify([...counts])).toBeGreaterThan(0);
    expect((ok - burst) / seconds, JSON.stringify([...counts])).toBeGreaterThan(750 * 0.95);
    expect((ok - burst) / spanned, `${JSON.stringify([...counts])} over ${spanned} s`).toBeLessThan(750 * 1.05);
  }, 30_000);

  it("kill -9 of one engine and one control replica under load: only the killed engine's in-flight requests fail; admin and feed keep working", async () => {
    await new Promise((r) => setTimeout(r, 500)); // the tenant's bucket refills after the rate test drained it
    const concurrency = 16;
    const results: { at: number; status: number | string }[] = [];
    const started = Date.now();
    let stop = false;
    const loops = Array.from({ length: concurrency }, async () => {
      while (!stop) {
        const at = Date.now() - started;
        try {
          const res = await get(fleet.edgeUrl, "wiki.fleet.test", "/load");
          results.push({ at, status: res.status });
        } catch (err) {
          results.push({ at, status: (err as Error).message });
        }
        await new Promise((r) => setTimeout(r, 50)); // ~300 requests/s in all: well under the app's 500/s
      }
    });
    await new Promise((r) => setTimeout(r, 1_000));
    const killedAt = Date.now() - started;
    await Promise.all([fleet.engines[2]!.service.kill("SIGKILL"), fleet.controls[1]!.service.kill("SIGKILL")]);
    await new Promise((r) => setTimeout(r, 2_500));
    // Admin through the load balancer, and a change that must still reach the engines left.
    const listed = await api(fleet.controlUrl, "GET", "/api/v1/apps", fleet.admin);
    expect(listed.status).toBe(200);
    const published = Date.now();
    await publish({ name: "After", internalUrl: `${backendOrigin}/after/`, externalUrl: "http://after.fleet.test/", preAuthentication: "passthrough" });
    for (const engine of fleet.engines.slice(0, 2)) {
      await waitFor(async () => (await get(engine.origin, "after.fleet.test", "/")).status === 200, 5_000, `${engine.name} serves an app published after the kill`);
    }
    expect(Date.now() - published).toBeLessThan(2_000);
    stop = true;
    await Promise.all(loops);
    const failed = results.filter((r) => r.status !== 200);
    const before = results.filter((r) => r.at < killedAt);
    expect(before.length).toBeGreaterThan(100);
    expect(before.filter((r) => r.status !== 200)).toEqual([]);
    // At most one request per client was in flight on the killed engine.
    expect(failed.length, JSON.stringify(failed)).toBeLessThanOrEqual(concurrency);
    // Nothing fails once the load balancer knows (half a second after the kill).
    expect(failed.filter((r) => r.at > killedAt + 500), JSON.stringify(failed)).toEqual([]);
    expect(results.filter((r) => r.at > killedAt + 500 && r.status === 200).length).toBeGreaterThan(100);
  }, 40_000);
});
