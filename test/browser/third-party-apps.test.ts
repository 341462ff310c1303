/**
 * Real third-party web apps through Postern in Chromium, with no app-side flag: Node-RED (a
 * flow editor from npm, its editor talking over a WebSocket) and Jupyter Notebook (from
 * Debian: it checks Origin against Host on its API and its kernel WebSocket). Each is reached
 * on a host of its own and under a path prefix, over HTTP/1.1 and over HTTP/2 (TLS, where
 * Chromium carries WebSockets in extended CONNECT streams, RFC 8441).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api } from "../fixtures/control.js";
import { until } from "../fixtures/lifecycle.js";
import { startRig, type Rig } from "../fixtures/datapath.js";

const CHROMIUM = "/usr/bin/chromium";
const JUPYTER = "/usr/bin/jupyter-notebook";
const NODE_RED = fileURLToPath(new URL("../../node_modules/node-red/red.js", import.meta.url));
const SHOTS = join(tmpdir(), "postern-third-party");

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function waitHttp(url: string): Promise<void> {
  await until(async () => (await fetch(url).then((r) => r.status < 500, () => false)), 30_000, url);
}

describe("third-party apps through Postern in Chromium", () => {
  let rig: Rig;
  let browser: Browser;
  const children: ChildProcess[] = [];
  let httpPort: number;
  let httpsPort: number;

  beforeAll(async () => {
    for (const need of [CHROMIUM, JUPYTER]) if (!existsSync(need)) throw new Error(`${need} is missing: npm test installs it (.ci/system-packages.sh)`);
    mkdirSync(SHOTS, { recursive: true });
    rig = await startRig({ engine: { httpsPort: 0 } });
    httpPort = rig.engine.edge.httpPort!;
    httpsPort = rig.engine.edge.httpsPort!;
    // Node-RED at the root of its own port.
    const redPort = await freePort();
    const redDir = join(rig.dir, "node-red");
    mkdirSync(redDir);
    writeFileSync(join(redDir, "settings.js"), `module.exports = ${JSON.stringify({ uiHost: "127.0.0.1", uiPort: redPort, userDir: redDir, flowFile: "flows.json", logging: { console: { level: "warn" } }, editorTheme: { tours: false } })};\n`);
    children.push(spawn(process.execPath, [NODE_RED, "--settings", join(redDir, "settings.js")], { stdio: "ignore" }));
    // Jupyter serves under /nb/: its pages use absolute paths under that base.
    const nbPort = await freePort();
    const nbDir = join(rig.dir, "notebooks");
    mkdirSync(nbDir);
    children.push(spawn(JUPYTER, ["--no-browser", "--allow-root", `--port=${nbPort}`, "--ip=127.0.0.1", "--NotebookApp.token=", "--NotebookApp.password=",
      `--notebook-dir=${nbDir}`, "--NotebookApp.base_url=/nb/"], { stdio: "ignore", env: { ...process.env, HOME: nbDir, JUPYTER_RUNTIME_DIR: join(nbDir, ".run") } }));
    await waitHttp(`http://127.0.0.1:${redPort}/`);
    await waitHttp(`http://127.0.0.1:${nbPort}/nb/api`);
    const red = `http://localhost:${redPort}/`;
    const nb = `http://localhost:${nbPort}/nb/`;
    // One app each (an internal URL is published once per tenant); each case moves its external URL.
    await rig.publish({ name: "Flows", internalUrl: red, externalUrl: `http://flows.contoso.test:${httpPort}/` });
    await rig.publish({ name: "Notebook", internalUrl: nb, externalUrl: `http://notebook.contoso.test:${httpPort}/nb/` });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--ignore-certificate-errors", "--host-resolver-rules=MAP *.contoso.test 127.0.0.1"],
    });
  }, 90_000);
  afterAll(async () => {
    await browser?.close();
    for (const child of children) child.kill("SIGKILL");
    await rig?.close();
  });

  /** Moves an app to another external URL (own host, path prefix, https) and waits until the edge routes it. */
  async function moveTo(name: string, externalUrl: string): Promise<void> {
    const res = await api(rig.control.url, "PATCH", `/api/v1/apps/${name}`, rig.admin, { externalUrl });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    await until(() => rig.engine.edge.state.routes.apps.some((a) => a.name === name && a.externalUrl === externalUrl), 5000, `${name} at ${externalUrl}`);
  }

  /** The protocol the page came over ("http/1.1" or "h2"). */
  const protocol = (page: Page) => page.evaluate(() => (performance.getEntriesByType("navigation")[0] as PerformanceNavigationTiming).nextHopProtocol);

  for (const [label, base] of [
    ["own host, HTTP/1.1", () => `http://flows.contoso.test:${httpPort}/`],
    ["under a path prefix, HTTP/1.1", () => `http://tools.contoso.test:${httpPort}/flows/`],
    ["own host, HTTP/2", () => `https://flows.contoso.test:${httpsPort}/`],
  ] as const) {
    it(`Node-RED (${label}): the editor loads and hears a deploy over its WebSocket`, async () => {
      await moveTo("Flows", base());
      const page = await browser.newPage();
      try {
        const frames: string[] = [];
        page.on("websocket", (ws) => ws.on("framereceived", (f) => frames.push(String(f.payload))));
        await page.goto(base(), { waitUntil: "load" });
        await page.waitForSelector("#red-ui-palette-container", { timeout: 30_000 });
        await page.waitForFunction(() => document.querySelectorAll(".red-ui-palette-node").length > 10, undefined, { timeout: 30_000 });
        expect(await protocol(page)).toBe(label.includes("HTTP/2") ? "h2" : "http/1.1");
        // A deploy through the same published URL: the editor's WebSocket is told about it.
        const deployed = await page.evaluate(async (url) => {
          const res = await fetch(`${url}flows`, { method: "POST", headers: { "content-type": "application/json", "node-red-deployment-type": "full" }, body: JSON.stringify([{ id: "t1", type: "tab", label: "Postern" }]) });
          return res.status;
        }, base());
        expect(deployed).toBe(204);
        await until(() => frames.some((f) => f.includes("runtime-deploy")), 15_000, "deploy notification over the WebSocket");
        await page.screenshot({ path: join(SHOTS, `node-red-${label.replace(/\W+/g, "-")}.png`) });
      } finally {
        await page.close();
      }
    }, 90_000);
  }

  for (const [label, base] of [
    ["own host, HTTP/1.1", () => `http://notebook.contoso.test:${httpPort}/nb/`],
    ["under a path prefix, HTTP/1.1", () => `http://tools.contoso.test:${httpPort}/nb/`],
    ["own host, HTTP/2", () => `https://notebook.contoso.test:${httpsPort}/nb/`],
  ] as const) {
    it(`Jupyter Notebook (${label}): a notebook runs code in its kernel over the WebSocket`, async () => {
      await moveTo("Notebook", base());
      const page = await browser.newPage();
      try {
        await page.goto(`${base()}tree`, { waitUntil: "load" });
        await page.waitForSelector("#notebook_list", { timeout: 30_000 });
        expect(await protocol(page)).toBe(label.includes("HTTP/2") ? "h2" : "http/1.1");
        // A new notebook through the API, as the page itself would (XSRF cookie and header).
        const path = await page.evaluate(async (url) => {
          const xsrf = document.cookie.split("; ").find((c) => c.startsWith("_xsrf="))?.slice(6) ?? "";
          const res = await fetch(`${url}api/contents`, { method: "POST", headers: { "content-type": "application/json", "x-xsrftoken": decodeURIComponent(xsrf) }, body: JSON.stringify({ type: "notebook" }) });
          if (res.status !== 201) throw new Error(`contents API answered ${res.status}: ${await res.text()}`);
          return ((await res.json()) as { path: string }).path;
        }, base());
        await page.goto(`${base()}notebooks/${path}`, { waitUntil: "load" });
        await page.waitForFunction(() => {
          const w = window as unknown as { Jupyter?: { notebook?: { kernel?: { is_connected(): boolean } } } };
          return w.Jupyter?.notebook?.kernel?.is_connected() === true;
        }, undefined, { timeout: 60_000 });
        await page.evaluate(() => {
          const nb = (window as unknown as { Jupyter: { notebook: { get_cell(i: number): { set_text(t: string): void }; execute_cell_and_select_below(): void; select(i: number): void } } }).Jupyter.notebook;
          nb.select(0);
          nb.get_cell(0).set_text("print(6 * 7)");
          nb.execute_cell_and_select_below();
        });
        await page.waitForFunction(() => document.querySelector(".output_area pre")?.textContent?.trim() === "42", undefined, { timeout: 60_000 });
        await page.screenshot({ path: join(SHOTS, `jupyter-${label.replace(/\W+/g, "-")}.png`) });
      } finally {
        await page.close();
      }
    }, 120_000);
  }
});
