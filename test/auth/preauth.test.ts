/**
 * Pre-authentication end to end on real sockets: the built-in IdP (oidc-provider in control),
 * the engine's gate with its worker pool, connectors and a backend that records what reaches
 * it. Every attack must fail with the right status and never reach the backend.
 */
import { createHash } from "node:crypto";
import { generateKeyPair, SignJWT, base64url } from "jose";
import { request } from "undici";
import WebSocket, { WebSocketServer } from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { safeReturn } from "../../engine/auth/gate.js";
import { api } from "../fixtures/control.js";
import { ScriptedBrowser, signIn } from "../fixtures/browser.js";
import { edgeRequest, startBackend, startRig, type Backend, type Rig } from "../fixtures/datapath.js";
import { until } from "../fixtures/lifecycle.js";

describe("pre-authentication with the built-in IdP", () => {
  let rig: Rig;
  let backend: Backend;
  const hits = () => backend.seen.filter((s) => !s.url.startsWith("/__"));
  let portal: string;
  let reports: string;
  let browser: ScriptedBrowser;

  beforeAll(async () => {
    backend = await startBackend((req, res) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ url: req.url, headers: req.headers })));
    rig = await startRig();
    for (const username of ["alice", "bob", "carol"]) {
      const made = await api(rig.control.url, "POST", "/api/v1/users", rig.admin, { username, password: `${username}-passw0rd`, displayName: username, email: `${username}@contoso.test` });
      expect(made.status, JSON.stringify(made.body)).toBe(201);
    }
    expect((await api(rig.control.url, "POST", "/api/v1/groups", rig.admin, { name: "Sales", members: ["alice", "carol"] })).status).toBe(201);
    ({ host: portal } = await rig.publish({
      name: "Portal", internalUrl: `${backend.origin}/portal/`, externalUrl: "http://portal.contoso.test/", preAuthentication: "oidc",
      assignments: { groups: ["Sales"] }, ssoHeaders: { "X-Remote-User": "preferred_username", "X-Remote-Groups": "groups" },
      oidc: { identityAssertion: true },
    }));
    ({ host: reports } = await rig.publish({ name: "Reports", internalUrl: `${backend.origin}/reports/`, externalUrl: "http://reports.contoso.test/", preAuthentication: "oidc" }));
    browser = new ScriptedBrowser(rig.edge, new Set([portal, reports]));
  }, 30_000);
  afterAll(async () => {
    await rig.close();
    await backend.close();
  });

  const cookieName = (host: string) => [...browser.cookies(host).keys()].find((k) => k.startsWith("postern_s_") || k.startsWith("__Host-postern_s_"));

  it("signs in through the IdP and lands on the original deep link with its fragment; the backend sees who, never the cookie", async () => {
    const before = hits().length;
    const back = await signIn(browser, `http://${portal}/deep/link?x=1#section-2`, { username: "alice", password: "alice-passw0rd" });
    expect(back.status).toBe(302);
    expect(back.headers.location).toBe("/deep/link?x=1#section-2");
    expect(hits().length).toBe(before); // nothing reached the backend while signing in
    const name = cookieName(portal)!;
    expect(name).toBeDefined();
    expect(browser.cookies(portal).get(name)!.length).toBeLessThan(3800);
    // A plain-http external URL: no __Host- prefix and no Secure flag (a browser would drop the
    // cookie), HttpOnly by default.
    expect(name.startsWith("postern_s_")).toBe(true);
    const line = ([back.headers["set-cookie"]].flat() as string[]).find((l) => l.startsWith(`${name}=`))!;
    expect(line).toMatch(/; HttpOnly/);
    expect(line).not.toMatch(/; Secure/);
    const page = await browser.fetch(`http://${portal}/deep/link?x=1`, { headers: { "x-remote-user": "mallory", "x-remote-groups": "Admins" } });
    expect(page.status).toBe(200);
    const seen = JSON.parse(page.text) as { headers: Record<string, string> };
    expect(seen.headers["x-remote-user"]).toBe("alice"); // the client's copy was dropped, the real one set
    expect(seen.headers["x-remote-groups"]).toBe("Sales");
    expect(seen.headers.cookie ?? "").not.toContain("postern");
    // The signed identity assertion verifies with the keys published under the app.
    const jwks = JSON.parse((await browser.fetch(`http://${portal}/.postern/jwks.json`)).text) as { keys: unknown[] };
    expect(jwks.keys).toHaveLength(1);
    const { createLocalJWKSet, jwtVerify } = await import("jose");
    const { payload } = await jwtVerify(seen.headers["x-postern-identity"]!, createLocalJWKSet(jwks as never), { issuer: "postern", audience: `http://${portal}/` });
    expect(payload.preferred_username).toBe("alice");
    // A reload needs no new sign-in.
    const again = await browser.fetch(`http://${portal}/other`);
    expect(again.status).toBe(200);
  });

  it("records the sign-in for Security Readers: user, app, result, reason, client address, transaction id", async () => {
    const reader = await rig.control.mintToken({ name: "auditor", roles: ["Security Reader"] });
    const log = await api(rig.control.url, "GET", "/api/v1/sign-ins", reader);
    expect(log.status).toBe(200);
    const entry = (log.body.entries as Record<string, string>[]).find((e) => e.app === "Portal" && e.username === "alice");
    expect(entry).toMatchObject({ outcome: "success", client: "engine", clientIp: "127.0.0.1", transactionId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
  });

  it("refuses an unassigned user with a page that says why, with a transaction id", async () => {
    const other = new ScriptedBrowser(rig.edge, new Set([portal]));
    const denied = await signIn(other, `http://${portal}/`, { username: "bob", password: "bob-passw0rd" });
    expect(denied.status).toBe(403);
    expect(denied.text).toContain("not assigned to this application");
    expect(denied.text).toMatch(/Transaction id: <code>[0-9a-f-]{36}<\/code>/);
  });

  it("signing out ends the session; the same cookie replayed gets no access", async () => {
    const b = new ScriptedBrowser(rig.edge, new Set([portal]));
    await signIn(b, `http://${portal}/`, { username: "carol", password: "carol-passw0rd" });
    const name = [...b.cookies(portal).keys()].find((k) => k.includes("postern_s_"))!;
    const cookie = b.cookies(portal).get(name)!;
    expect((await b.fetch(`http://${portal}/`)).status).toBe(200);
    const out = await b.fetch(`http://${portal}/.postern/signout`);
    expect(out.status).toBe(200);
    expect(out.text).toContain("Signed out");
    expect(b.cookies(portal).has(name)).toBe(false);
    const before = hits().length;
    const replay = await edgeRequest(rig, portal, "/", { headers: { cookie: `${name}=${cookie}`, accept: "application/json" } });
    expect(replay.status).toBe(401);
    expect(hits().length).toBe(before);
  });

  it("a cookie that is tampered with, or belongs to another app, is no session (never a 500)", async () => {
    const name = cookieName(portal)!;
    const cookie = browser.cookies(portal).get(name)!;
    const before = hits().length;
    for (const at of [5, 40, Math.floor(cookie.length / 2), cookie.length - 3]) {
      const flipped = cookie.slice(0, at) + (cookie[at] === "A" ? "B" : "A") + cookie.slice(at + 1);
      const res = await edgeRequest(rig, portal, "/", { headers: { cookie: `${name}=${flipped}`, accept: "application/json" } });
      expect(res.status, `flip at ${at}`).toBe(401);
    }
    // Portal's cookie presented to Reports under Reports' cookie name.
    const reportsName = name.replace(/postern_s_[0-9a-f]+/, `postern_s_${createHash("sha256").update(rig.engine.edge.state.routes.apps.find((a) => a.name === "Reports")!.id!).digest("hex").slice(0, 12)}`);
    const replay = await edgeRequest(rig, reports, "/", { headers: { cookie: `${reportsName}=${cookie}`, accept: "application/json" } });
    expect(replay.status).toBe(401);
    expect(hits().length).toBe(before);
  });

  it("answers API clients without credentials 401 with WWW-Authenticate, never a sign-in redirect", async () => {
    const res = await edgeRequest(rig, portal, "/api/orders", { headers: { accept: "application/json" } });
    expect(res.status).toBe(401);
    expect(res.headers["www-authenticate"]).toMatch(/^Bearer realm="http:\/\/portal\.contoso\.test\/"/);
    expect(res.headers.location).toBeUndefined();
  });

  it("keeps the way back on the same app: no open redirect", () => {
    const route = rig.engine.edge.state.routes.match(portal, "/")!;
    for (const bad of ["//evil.example", "/\\evil.example", "/\t/evil.example", "https:evil.example", "http://evil.example/", "/%2F/evil.example".replace("%2F", "\n"), " /x"]) {
      expect(safeReturn(bad, route), JSON.stringify(bad)).toBeUndefined();
    }
    expect(safeReturn("/%09/evil.example", route)).toBe("/%09/evil.example"); // stays a path of this app
    expect(safeReturn("/deep/link?x=1#frag", route)).toBe("/deep/link?x=1#frag");
  });

  it("sends the browser back to the app's root when the way back is not a path of the app", async () => {
    for (const bad of ["//evil.example", "/\\evil.example", "https:evil.example", "/\t/evil.example"]) {
      const b = new ScriptedBrowser(rig.edge, new Set([portal]));
      const start = await b.fetch(`http://${portal}/.postern/signin?return=${encodeURIComponent(bad)}`);
      expect(start.status).toBe(302);
      const isCallback = (hop: { url: string }) => hop.url.includes("/.postern/callback");
      let hop = await b.follow(new URL(String(start.headers.location), start.url).href, {}, isCallback);
      const { readForm } = await import("../fixtures/browser.js");
      const form = readForm(hop);
      hop = await b.fetch(form.action, { method: "POST", body: new URLSearchParams({ ...form.fields, username: "alice", password: "alice-passw0rd" }).toString() });
      hop = await b.follow(new URL(String(hop.headers.location), hop.url).href, {}, isCallback);
      expect(hop.status, bad).toBe(302);
      expect(hop.headers.location, bad).toBe("/");
    }
  });

  it("applies policy changes to live sessions: removing the assignment ends access", async () => {
    const b = new ScriptedBrowser(rig.edge, new Set([portal]));
    await signIn(b, `http://${portal}/`, { username: "carol", password: "carol-passw0rd" });
    expect((await b.fetch(`http://${portal}/`)).status).toBe(200);
    const changed = await api(rig.control.url, "PATCH", "/api/v1/apps/Portal", rig.admin, { assignments: { groups: [], users: ["alice"] } });
    expect(changed.status, JSON.stringify(changed.body)).toBe(200);
    await until(async () => (await b.fetch(`http://${portal}/`)).status === 403, 60_000, "carol refused after the change");
    const page = await b.fetch(`http://${portal}/`);
    expect(page.text).toContain("not assigned");
    // MFA and address policy, on the same live session of alice.
    expect((await browser.fetch(`http://${portal}/`)).status).toBe(200);
    await api(rig.control.url, "PATCH", "/api/v1/apps/Portal", rig.admin, { policy: { requireMfa: true } });
    await until(async () => (await browser.fetch(`http://${portal}/`)).status === 403, 10_000, "mfa required");
    expect((await browser.fetch(`http://${portal}/`)).text).toContain("multi-factor");
    await api(rig.control.url, "PATCH", "/api/v1/apps/Portal", rig.admin, { policy: { requireMfa: false, allowedIpRanges: ["10.0.0.0/8"] } });
    await until(async () => (await browser.fetch(`http://${portal}/`)).text.includes("network location"), 10_000, "location refused");
    await api(rig.control.url, "PATCH", "/api/v1/apps/Portal", rig.admin, { policy: { allowedIpRanges: ["127.0.0.0/8"] }, assignments: { groups: ["Sales"], users: [] } });
    await until(async () => (await browser.fetch(`http://${portal}/`)).status === 200, 10_000, "allowed again");
  }, 90_000);

  it("pre-authenticates WebSocket upgrades: refused without credentials, relayed with the user's identity", async () => {
    const wsBackend = await startBackend((_req, res) => res.writeHead(404).end());
    const wss = new WebSocketServer({ server: wsBackend.server });
    let upgrades = 0;
    wss.on("connection", (ws, req) => {
      upgrades++;
      ws.send(`hello ${String(req.headers["x-remote-user"])}`);
    });
    try {
      const { host, externalUrl } = await rig.publish({
        name: "Live", internalUrl: `${wsBackend.origin}/`, externalUrl: "http://live.contoso.test/", preAuthentication: "oidc", ssoHeaders: { "X-Remote-User": "preferred_username" },
      });
      const open = (headers: Record<string, string>) => new Promise<{ status?: number; message?: string }>((resolve) => {
        const ws = new WebSocket(`ws://127.0.0.1:${rig.engine.edge.httpPort}/socket`, { headers: { host, ...headers } });
        ws.on("unexpected-response", (_req, res) => resolve({ status: res.statusCode }));
        ws.on("message", (data) => {
          resolve({ message: data.toString() });
          ws.close();
        });
        ws.on("error", () => undefined);
      });
      expect(await open({})).toEqual({ status: 401 });
      const token = await rig.control.mintToken({ name: "alice", roles: [] }, 600, externalUrl);
      expect(await open({ authorization: `Bearer ${token}` })).toEqual({ message: "hello alice" });
      expect(upgrades).toBe(1); // only the authorised upgrade reached the backend
    } finally {
      wss.close();
      await wsBackend.close();
    }
  });

  describe("bearer tokens", () => {
    const audience = () => `http://${portal}/`;
    const ok = (token: string) => edgeRequest(rig, portal, "/api/orders", { headers: { authorization: `Bearer ${token}`, accept: "application/json" } });

    it("accepts a valid access token for this app, with identity headers from it", async () => {
      const token = await rig.control.mintToken({ name: "alice", roles: [], groups: ["Sales"] }, 600, audience());
      const res = await ok(token);
      expect(res.status, res.text).toBe(200);
      const seen = JSON.parse(res.text) as { headers: Record<string, string> };
      expect(seen.headers["x-remote-user"]).toBe("alice");
      expect(seen.headers.authorization).toBeUndefined(); // the token never reaches the backend
    });

    it("refuses forged, expired, early, misdirected and foreign tokens, each 401 with no backend hit", async () => {
      const before = hits().length;
      const valid = await rig.control.mintToken({ name: "alice", roles: [], groups: ["Sales"] }, 600, audience());
      const [h, p] = valid.split(".");
      const header = JSON.parse(Buffer.from(h!, "base64url").toString()) as Record<string, unknown>;
      const payload = JSON.parse(Buffer.from(p!, "base64url").toString()) as Record<string, unknown>;
      const enc = (o: unknown) => base64url.encode(JSON.stringify(o));
      const { kid } = header as { kid: string };
      const jwks = (await (await request(`${rig.control.url}/oidc/jwks`)).body.json()) as { keys: Record<string, unknown>[] };
      const publicKey = JSON.stringify(jwks.keys[0]);
      const hs = await new SignJWT(payload).setProtectedHeader({ alg: "HS256", kid }).sign(new TextEncoder().encode(publicKey));
      const other = await generateKeyPair("ES256");
      const foreign = await new SignJWT({ ...payload, iss: "http://evil.example/" }).setProtectedHeader({ alg: "ES256", kid: "evil" }).sign(other.privateKey);
      const now = Math.floor(Date.now() / 1000);
      const attacks: [string, string][] = [
        ["alg none", `${enc({ alg: "none", typ: "JWT" })}.${enc(payload)}.`],
        ["HS256 signed with the public key", hs],
        ["expired", await rig.control.mintToken({ name: "alice", roles: [], groups: ["Sales"] }, -120, audience())],
        ["for another app", await rig.control.mintToken({ name: "alice", roles: [], groups: ["Sales"] }, 600, `http://${reports}/`)],
        ["for the control API", await rig.control.mintToken({ name: "alice", roles: [] })],
        ["from another issuer", foreign],
        ["not valid yet", await new SignJWT({ ...payload, nbf: now + 3600 }).setProtectedHeader({ alg: "ES256", kid: "unknown" }).sign(other.privateKey)],
        ["signature bit-flipped", `${valid.slice(0, -4)}${valid.slice(-4) === "AAAA" ? "BBBB" : "AAAA"}`],
        ["garbage", "not.a.token"],
      ];
      for (const [name, token] of attacks) {
        const res = await ok(token);
        expect(res.status, name).toBe(401);
        expect(res.headers["www-authenticate"], name).toMatch(/error="invalid_token"/);
      }
      expect(hits().length).toBe(before);
    });

    it("fetches the issuer's keys at most once per 30 s under a flood of unknown and path-like key ids", async () => {
      const route = rig.engine.edge.state.routes.match(portal, "/")!;
      const issuer = rig.engine.edge.state.gate!.issuerFor(route.app)!;
      const other = await generateKeyPair("ES256");
      const before = issuer.keyFetches;
      const tokens = await Promise.all(Array.from({ length: 50 }, (_, i) =>
        new SignJWT({ sub: "x", aud: audience(), iss: `${rig.control.url}/oidc` }).setProtectedHeader({ alg: "ES256", kid: i % 2 ? `kid-${i}` : `../../etc/passwd${i}` }).setExpirationTime("5m").sign(other.privateKey)));
      const statuses = await Promise.all(tokens.map(async (t) => (await ok(t)).status));
      expect(new Set(statuses)).toEqual(new Set([401]));
      expect(issuer.keyFetches - before).toBeLessThanOrEqual(1);
    });

    it("requires one of the app's API scopes or roles when it names some", async () => {
      await api(rig.control.url, "PATCH", "/api/v1/apps/Reports", rig.admin, { oidc: { apiScopes: ["reports.read"], apiRoles: ["Reports.Admin"] } });
      await until(() => rig.engine.edge.state.routes.apps.some((a) => a.name === "Reports" && a.oidc.apiScopes.length === 1), 5000, "scopes applied");
      const aud = `http://${reports}/`;
      const call = async (token: string) => (await edgeRequest(rig, reports, "/x", { headers: { authorization: `Bearer ${token}` } })).status;
      expect(await call(await rig.control.mintToken({ name: "dave", roles: [] }, 600, aud))).toBe(403);
      expect(await call(await rig.control.mintToken({ name: "dave", roles: [], scope: "reports.read openid" }, 600, aud))).toBe(200);
      expect(await call(await rig.control.mintToken({ name: "erin", roles: ["Reports.Admin"] }, 600, aud))).toBe(200);
    });
  });
});

describe("a full token validation queue", () => {
  it("answers 503 at once instead of queueing without bound", async () => {
    const rig = await startRig({ engine: { authPool: { threads: 1, maxQueue: 1 } } });
    const backend = await startBackend((_req, res) => res.writeHead(200).end("ok"));
    try {
      const { host, externalUrl } = await rig.publish({ name: "Busy", internalUrl: `${backend.origin}/`, externalUrl: "http://busy.contoso.test/", preAuthentication: "oidc" });
      // Distinct tokens: none is in the cache, every one needs the pool.
      const tokens = await Promise.all(Array.from({ length: 40 }, (_, i) => rig.control.mintToken({ name: `user${i}`, roles: [] }, 600, externalUrl)));
      const statuses = await Promise.all(tokens.map(async (t) => (await edgeRequest(rig, host, "/", { headers: { authorization: `Bearer ${t}` } })).status));
      expect(statuses.filter((s) => s === 503).length).toBeGreaterThan(0);
      expect(statuses.every((s) => s === 200 || s === 503)).toBe(true);
      // Once the burst is over, it serves again.
      expect((await edgeRequest(rig, host, "/", { headers: { authorization: `Bearer ${tokens[0]}` } })).status).toBe(200);
    } finally {
      await rig.close();
      await backend.close();
    }
  }, 30_000);
});
