/**
 * Sign-in in a real browser (Debian's Chromium, driven by playwright-core): open a protected
 * app's deep link, get sent to the built-in IdP, sign in, land on the original URL with its
 * fragment, reload without signing in again, sign out.
 */
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api } from "../fixtures/control.js";
import { startBackend, startRig, type Backend, type Rig } from "../fixtures/datapath.js";

const CHROMIUM = "/usr/bin/chromium";

describe("sign-in in Chromium", () => {
  let rig: Rig;
  let backend: Backend;
  let browser: Browser;
  let app: string;
  let idpOrigin: string;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)`);
    backend = await startBackend((req, res) => {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(`<!doctype html><title>Portal</title><h1 id="who">${String(req.headers["x-remote-user"] ?? "nobody")}</h1><p id="path">${req.url}</p>`);
    });
    rig = await startRig();
    idpOrigin = new URL(rig.control.url).origin;
    expect((await api(rig.control.url, "POST", "/api/v1/users", rig.admin, { username: "alice", password: "alice-passw0rd" })).status).toBe(201);
    const port = new URL(rig.edge).port;
    // The browser reaches the app by name; plain http here, so the cookie cannot be Secure.
    app = `http://portal.contoso.test:${port}`;
    await rig.publish({
      name: "Portal", internalUrl: `${backend.origin}/portal/`, externalUrl: `${app}/`, preAuthentication: "oidc",
      assignments: { users: ["alice"] }, ssoHeaders: { "X-Remote-User": "preferred_username" }, cookie: { secure: false, httpOnly: true },
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--host-resolver-rules=MAP portal.contoso.test 127.0.0.1"],
    });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await rig?.close();
    await backend?.close();
  });

  it("signs in at the IdP, lands on the deep link with its fragment, reloads without a new sign-in, signs out", async () => {
    const page = await browser.newPage();
    const idpRequests: string[] = [];
    page.on("request", (r) => {
      if (r.url().startsWith(idpOrigin)) idpRequests.push(r.url());
    });
    await page.goto(`${app}/reports/q3?view=summary#totals`);
    await page.waitForSelector('input[name="username"]', { timeout: 15_000 });
    expect(page.url().startsWith(`${idpOrigin}/oidc/interaction/`)).toBe(true);
    await page.fill('input[name="username"]', "alice");
    await page.fill('input[name="password"]', "alice-passw0rd");
    await Promise.all([page.waitForURL(`${app}/**`, { timeout: 15_000 }), page.click('button[type="submit"]')]);
    await page.waitForSelector("#who");
    expect(page.url()).toBe(`${app}/reports/q3?view=summary#totals`);
    expect(await page.textContent("#who")).toBe("alice");
    expect(await page.textContent("#path")).toBe("/portal/reports/q3?view=summary");
    await page.screenshot({ path: join(tmpdir(), "postern-signin.png") });

    const before = idpRequests.length;
    await page.reload();
    await page.waitForSelector("#who");
    expect(await page.textContent("#who")).toBe("alice");
    expect(idpRequests.length).toBe(before); // no new sign-in

    await page.goto(`${app}/.postern/signout`);
    expect(await page.textContent("h1")).toBe("Signed out");
    const cookies = await page.context().cookies(app);
    expect(cookies.filter((c) => c.name.includes("postern_s_"))).toEqual([]);
    // Back to the app: a new trip through the IdP happens before the page shows again.
    await page.goto(`${app}/again`);
    await page.waitForSelector("#who", { timeout: 15_000 });
    expect(idpRequests.length).toBeGreaterThan(before);
    await page.close();
  }, 60_000);
});
