/**
 * The web console and My Apps in a real browser (Debian's Chromium, playwright-core): an admin
 * signs in at the built-in IdP, publishes an app through the form (first a validation error
 * shown at its field, then success), sees the connector active and runs "Test application";
 * users sign in to My Apps and see exactly the apps assigned to them, and open one. Every page
 * is checked with axe-core (no serious or critical violation), under the console's own CSP
 * (no violation either), and saved as a screenshot in test-results/screenshots/.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api } from "../fixtures/control.js";
import { startBackend, startRig, type Backend, type Rig } from "../fixtures/datapath.js";

const CHROMIUM = "/usr/bin/chromium";
const SHOTS = new URL("../../test-results/screenshots/", import.meta.url).pathname;
const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

interface AxeViolation {
  readonly id: string;
  readonly impact: string | null;
  readonly help: string;
  readonly nodes: readonly { target: readonly string[] }[];
}

describe("the web console and My Apps in Chromium", () => {
  let rig: Rig;
  let backend: Backend;
  let browser: Browser;
  let appOrigin: string;
  const checked: string[] = [];

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)`);
    mkdirSync(SHOTS, { recursive: true });
    backend = await startBackend((req, res) => {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(`<!doctype html><html lang="en"><title>Portal</title><h1 id="who">Hello ${String(req.headers["x-remote-user"] ?? "nobody")}</h1></html>`);
    });
    rig = await startRig();
    const port = new URL(rig.edge).port;
    appOrigin = `http://portal.contoso.test:${port}`;
    for (const [username, roles] of [["root", ["Global Administrator"]], ["alice", []], ["bob", []]] as const) {
      const made = await api(rig.control.url, "POST", "/api/v1/users", rig.admin, { username, password: `${username}-passw0rd`, roles });
      expect(made.status, JSON.stringify(made.body)).toBe(201);
    }
    expect((await api(rig.control.url, "POST", "/api/v1/groups", rig.admin, { name: "Sales", members: ["alice"] })).status).toBe(201);
    expect((await api(rig.control.url, "POST", "/api/v1/groups", rig.admin, { name: "Finance", members: [] })).status).toBe(201);
    await rig.publish({ name: "Ledger", internalUrl: `${backend.origin}/ledger/`, externalUrl: `http://ledger.contoso.test:${port}/`, preAuthentication: "oidc", assignments: { groups: ["Finance"] } });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--host-resolver-rules=MAP portal.contoso.test 127.0.0.1, MAP ledger.contoso.test 127.0.0.1"],
    });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await rig?.close();
    await backend?.close();
  });

  /** A context that records CSP violations (the console's CSP stays on: axe is injected over the debugging protocol). */
  async function context(viewport = { width: 1280, height: 800 }): Promise<BrowserContext> {
    const ctx = await browser.newContext({ viewport });
    await ctx.addInitScript(() => {
      const w = window as unknown as { __csp: string[] };
      w.__csp = [];
      document.addEventListener("securitypolicyviolation", (e) => w.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
    });
    return ctx;
  }

  /** Screenshot, axe-core and CSP check of the page as it is now. */
  async function check(page: Page, name: string): Promise<void> {
    await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
    await page.evaluate(AXE);
    const violations = await page.evaluate(async () => {
      const axe = (window as unknown as { axe: { run(ctx: Document, opts: object): Promise<{ violations: AxeViolation[] }> } }).axe;
      return (await axe.run(document, { runOnly: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] })).violations;
    });
    const grave = violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => `${v.id}: ${v.help} at ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
    expect(grave, `${name}: accessibility`).toEqual([]);
    expect(await page.evaluate(() => (window as unknown as { __csp: string[] }).__csp), `${name}: CSP violations`).toEqual([]);
    checked.push(name);
  }

  async function signInAt(page: Page, start: string, username: string): Promise<void> {
    await page.goto(start);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForSelector('input[name="username"]', { timeout: 15_000 });
    await page.fill('input[name="username"]', username);
    await page.fill('input[name="password"]', `${username}-passw0rd`);
    await page.click('button[type="submit"]');
    await page.waitForURL((url) => url.pathname === new URL(start).pathname, { timeout: 15_000 });
  }

  it("serves the console under a strict CSP, with no inline script", async () => {
    const res = await fetch(`${rig.control.url}/admin/`);
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain("unsafe-inline");
    expect(csp).toContain("frame-ancestors 'none'");
    const html = await res.text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/); // every script is a file
  });

  it("an admin signs in, gets a validation error at its field, publishes an app, sees the connector active and tests the app", async () => {
    const ctx = await context();
    const page = await ctx.newPage();
    await signInAt(page, `${rig.control.url}/admin/`, "root");
    await page.getByRole("heading", { level: 1, name: "Apps", exact: true }).waitFor();
    await page.getByRole("table", { name: "Published apps" }).getByRole("link", { name: "Ledger", exact: true }).waitFor();
    await check(page, "admin-apps");

    await page.getByRole("link", { name: "Add an app" }).click();
    await page.getByRole("heading", { level: 1, name: "Add an app" }).waitFor();
    await page.getByLabel("Name (required)", { exact: true }).fill("Portal");
    // An address where a name belongs: control refuses it, and the form says so at the field.
    await page.getByLabel("Internal URL (required)", { exact: true }).fill("http://10.1.2.3/portal/");
    await page.getByLabel("External URL", { exact: true }).fill(`${appOrigin}/`);
    await page.getByLabel("Assigned groups", { exact: true }).fill("Sales");
    await page.getByLabel("SSO headers to the backend", { exact: true }).fill("X-Remote-User: preferred_username");
    await page.getByRole("button", { name: "Publish app" }).click();
    const internal = page.getByLabel("Internal URL (required)", { exact: true });
    await expect.poll(() => internal.getAttribute("aria-invalid")).toBe("true");
    const describedBy = (await internal.getAttribute("aria-describedby"))!.split(" ").find((id) => id.endsWith("-error"))!;
    expect(await page.locator(`#${describedBy}`).textContent()).toMatch(/uses the IP address 10\.1\.2\.3; use a domain name/);
    await expect.poll(() => page.evaluate(() => document.activeElement?.getAttribute("name"))).toBe("internalUrl"); // focus moved to it
    expect((await api(rig.control.url, "GET", "/api/v1/apps/Portal", rig.admin)).status).toBe(404);
    await check(page, "admin-app-validation-error");

    await internal.fill(`${backend.origin}/portal/`);
    await page.getByRole("button", { name: "Publish app" }).click();
    await page.getByRole("heading", { level: 1, name: "App Portal" }).waitFor({ timeout: 10_000 });
    const saved = await api(rig.control.url, "GET", "/api/v1/apps/Portal", rig.admin);
    expect(saved.status).toBe(200);
    expect(saved.body).toMatchObject({
      internalUrl: `${backend.origin}/portal/`, externalUrl: `${appOrigin}/`, preAuthentication: "oidc", assignments: { groups: ["Sales"] }, ssoHeaders: { "X-Remote-User": "preferred_username" },
    });

    await page.getByRole("button", { name: "Test application" }).click();
    await page.getByText("The connector reached the app").waitFor({ timeout: 20_000 });
    expect(await page.locator(".steps li").allTextContents()).toEqual([
      expect.stringMatching(/^DNS passed/), expect.stringMatching(/^TCP passed/), expect.stringMatching(/^HTTP passed.*-> 200/),
    ]);
    await check(page, "admin-app-test-report");
    // A certificate upload goes through the same checks as the API's: a file that is no certificate is refused at its field.
    await page.getByLabel("Certificate file (PEM with key, or PFX)", { exact: true }).setInputFiles({ name: "portal.pem", mimeType: "application/x-pem-file", buffer: Buffer.from("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n") });
    await page.getByRole("button", { name: "Upload certificate" }).click();
    const upload = page.getByLabel("Certificate file (PEM with key, or PFX)", { exact: true });
    await expect.poll(() => upload.getAttribute("aria-invalid")).toBe("true");
    expect(await page.locator("#certificate-error").textContent()).toMatch(/private key|certificate/i);

    await page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name: "Connectors", exact: true }).click();
    await page.getByRole("heading", { level: 1, name: "Connectors" }).waitFor();
    const row = page.getByRole("table", { name: "Connectors of group Default" }).getByRole("row").nth(1);
    await expect.poll(() => row.textContent()).toMatch(/active/);
    expect(await row.textContent()).toContain(`127.0.0.1:${rig.engine.tunnelPort}: 2`); // tunnels per engine
    expect(await page.getByRole("heading", { name: /Group Default/ }).textContent()).toContain("1 active");
    await check(page, "admin-connectors");

    for (const [link, heading, name] of [["Users and groups", "Users and groups", "admin-users"], ["Audit log", "Audit log", "admin-audit"], ["Sign-in log", "Sign-in log", "admin-sign-ins"]] as const) {
      await page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name: link, exact: true }).click();
      await page.getByRole("heading", { level: 1, name: heading }).waitFor();
      await page.getByRole("table").first().waitFor();
      await check(page, name);
    }
    // The audit log filters: the publish is there, under its action.
    await page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name: "Audit log", exact: true }).click();
    await page.getByLabel("Action", { exact: true }).fill("app.add");
    await page.getByRole("button", { name: "Filter" }).click();
    await expect.poll(async () => [...new Set(await page.locator("table tbody tr td:nth-child(3)").allTextContents())]).toEqual(["app.add"]);
    expect(await page.getByRole("table", { name: "Audit log, newest first" }).textContent()).toContain("Portal");

    // Readable at phone width: nothing but the tables' own regions scrolls sideways.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name: "Apps", exact: true }).click();
    await page.getByRole("heading", { level: 1, name: "Apps", exact: true }).waitFor();
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
    await check(page, "admin-apps-phone");
    await ctx.close();
  }, 120_000);

  it("a user signs in to My Apps, sees only the apps assigned to them, and opens one; another sees the empty state", async () => {
    const ctx = await context();
    const page = await ctx.newPage();
    await signInAt(page, `${rig.control.url}/myapps/`, "alice");
    const tiles = page.getByRole("list", { name: "Your apps" });
    await tiles.waitFor();
    expect(await tiles.getByRole("link").allTextContents()).toEqual([expect.stringContaining("Portal")]); // not Ledger (Finance only)
    await check(page, "myapps-alice");
    // Opening it: the app's own sign-in goes through the IdP session she already has.
    await tiles.getByRole("link", { name: /Portal/ }).click();
    await page.waitForURL((url) => url.host === new URL(appOrigin).host && !url.pathname.startsWith("/.postern"), { timeout: 20_000 });
    expect(await page.locator("#who").textContent()).toBe("Hello alice");
    // Sign out of My Apps: one confirmation at the IdP, then back to My Apps, signed out.
    await page.goto(`${rig.control.url}/myapps/`);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("button", { name: "Yes, sign me out" }).click();
    await page.waitForURL(`${rig.control.url}/myapps/`, { timeout: 15_000 });
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    expect(await page.evaluate(() => sessionStorage.getItem("postern.session"))).toBeNull();
    // The IdP session ended too: signing in again asks for the password.
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForSelector('input[name="username"]', { timeout: 15_000 });
    await ctx.close();

    const other = await context({ width: 390, height: 844 });
    const bobPage = await other.newPage();
    await signInAt(bobPage, `${rig.control.url}/myapps/`, "bob");
    await bobPage.getByText("No app is assigned to you yet.").waitFor();
    await check(bobPage, "myapps-empty-phone");
    // Keyboard: the first Tab reaches the skip link, which moves focus to the content.
    await bobPage.keyboard.press("Tab");
    expect(await bobPage.evaluate(() => document.activeElement?.textContent)).toBe("Skip to content");
    await bobPage.keyboard.press("Enter");
    expect(await bobPage.evaluate(() => location.hash)).toBe("#main");
    await other.close();
  }, 60_000);

  it("checked every page it saw", () => {
    expect(checked).toEqual(expect.arrayContaining(["admin-apps", "admin-app-validation-error", "admin-app-test-report", "admin-connectors", "admin-users", "admin-audit", "admin-sign-ins", "admin-apps-phone", "myapps-alice", "myapps-empty-phone"]));
  });
});
