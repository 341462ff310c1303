/**
 * Serves the web console (admin pages under /admin/, My Apps under /myapps/): the page, its
 * script and stylesheet built by ui/build.mjs into dist/ui, and the settings it signs in with.
 * Every page carries a strict Content-Security-Policy: scripts and styles from this origin
 * only, no inline script, no framing. The console talks only to the admin API.
 */
import { existsSync, readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { fileURLToPath } from "node:url";
import { CONSOLE_CALLBACK_PATH, CONSOLE_CLIENT_ID, CONTROL_API_AUDIENCE } from "./idp/constants.js";

export const CONSOLE_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; "
  + "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const SECURITY_HEADERS = {
  "content-security-policy": CONSOLE_CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

/** dist/ui beside the built control (dist/control), or under dist/ when run from the sources. */
const UI_DIR = [new URL("../ui/", import.meta.url), new URL("../dist/ui/", import.meta.url)]
  .map((u) => fileURLToPath(u)).find((dir) => existsSync(`${dir}app.js`));

const ASSETS: Record<string, string> = {
  "/ui/app.js": "text/javascript; charset=utf-8",
  "/ui/app.css": "text/css; charset=utf-8",
};

/** Whether `path` is the console's; then it has been answered. */
export function serveConsole(req: IncomingMessage, res: ServerResponse, path: string, signIn: { issuer: string | undefined; controlUrl: string }): boolean {
  if (path === "/") {
    res.writeHead(302, { location: "/myapps/" }).end();
    return true;
  }
  const page = path === "/admin" || path.startsWith("/admin/") || path === "/myapps" || path.startsWith("/myapps/") || path === CONSOLE_CALLBACK_PATH;
  if (!page && !path.startsWith("/ui/")) return false;
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" }).end("GET only\n");
    return true;
  }
  if (path === "/ui/config.json") {
    if (!signIn.issuer) {
      res.writeHead(503, { "content-type": "application/json", ...SECURITY_HEADERS }).end(JSON.stringify({ error: { code: "POSTERN_CONFIG", message: "the console signs in at the built-in IdP; this control trusts an external issuer: use the CLI" } }));
      return true;
    }
    const body = JSON.stringify({ issuer: signIn.issuer, clientId: CONSOLE_CLIENT_ID, resource: CONTROL_API_AUDIENCE, redirectUri: `${signIn.controlUrl}${CONSOLE_CALLBACK_PATH}` });
    res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store", ...SECURITY_HEADERS }).end(body);
    return true;
  }
  if (UI_DIR === undefined) {
    res.writeHead(503, { "content-type": "text/plain" }).end("The console is not built: run npm run build.\n");
    return true;
  }
  const type = page ? "text/html; charset=utf-8" : ASSETS[path];
  if (type === undefined) {
    res.writeHead(404, { "content-type": "text/plain", ...SECURITY_HEADERS }).end("Not found\n");
    return true;
  }
  const file = page ? "index.html" : path.slice("/ui/".length);
  let body: Buffer;
  try {
    body = readFileSync(`${UI_DIR}${file}`);
  } catch {
    res.writeHead(503, { "content-type": "text/plain" }).end("The console is not built completely: run npm run build.\n");
    return true;
  }
  // The page is never cached (it names the current bundle); the bundle revalidates.
  res.writeHead(200, { "content-type": type, "content-length": body.length, "cache-control": page ? "no-store" : "no-cache", ...SECURITY_HEADERS });
  res.end(req.method === "HEAD" ? undefined : body);
  return true;
}
