/**
 * The one place that turns an edge outcome into what the user sees: the status and page of a
 * catalogue error (engine/errors), naming the cause like Entra's error pages, with the request
 * id to quote to support; and the pre-authentication pages that are no error (signed out, the
 * hop to sign-in). Every page carries the same strict security headers.
 */
import { createHash } from "node:crypto";
import { httpStatusOf, pageOf, type ErrorCode } from "../errors/catalogue.js";
import type { AuthPage } from "../auth/gate.js";

/**
 * Headers on every page Postern itself writes: no script but the sign-in hop's own (by hash),
 * never framed, never sniffed, no referrer leaks to other origins.
 */
export function pageHeaders(scriptHash?: string): [string, string][] {
  const script = scriptHash ? `'${scriptHash}'` : "'none'";
  return [
    ["content-type", "text/html; charset=utf-8"],
    ["cache-control", "no-store"],
    ["content-security-policy", `default-src 'none'; style-src 'unsafe-inline'; script-src ${script}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'`],
    ["x-content-type-options", "nosniff"],
    ["x-frame-options", "DENY"],
    ["referrer-policy", "no-referrer"],
  ];
}

function html(title: string, body: string, head = ""): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title>${head}
<style>body{font:16px system-ui,sans-serif;margin:4rem auto;max-width:36rem;color:#222}code{background:#f2f2f2;padding:.1rem .3rem}</style></head>
<body>${body}</body></html>\n`;
}

/** The page of an edge error: its status, and a body that names the cause and the request id. */
export function errorPage(code: ErrorCode, requestId: string): { status: number; body: string } {
  const status = httpStatusOf(code) ?? 500;
  const spec = pageOf(code) ?? { title: "Error", cause: "The request could not be completed." };
  const body = html(`${status} ${spec.title}`, `<h1>${spec.title}</h1><p>${spec.cause}</p><p>Request id: <code>${escape(requestId)}</code></p>`);
  return { status, body };
}

const DENIALS: Record<string, string> = {
  not_assigned: "You are signed in, but you are not assigned to this application. Ask its administrator for access.",
  mfa_required: "This application requires multi-factor authentication. Sign in again with your second factor.",
  location_not_allowed: "This application cannot be used from your current network location.",
  session_expired: "Your session has expired. Sign in again.",
};

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Pages of pre-authentication (engine/auth/gate.ts): denied with the reason, signed out, the hop to sign-in. */
export function authPage(page: AuthPage, detail: { reason?: string; transactionId: string; signInUrl?: string }): { status: number; body: string; headers: [string, string][] } {
  const { status, body, scriptHash } = authPageBody(page, detail);
  return { status, body, headers: pageHeaders(scriptHash) };
}

function authPageBody(page: AuthPage, detail: { reason?: string; transactionId: string; signInUrl?: string }): { status: number; body: string; scriptHash?: string } {
  const id = `<p>Transaction id: <code>${escape(detail.transactionId)}</code></p>`;
  const again = detail.signInUrl ? `<p><a href="${escape(detail.signInUrl)}">Sign in</a></p>` : "";
  switch (page) {
    case "POSTERN_ACCESS_DENIED":
      return { status: 403, body: html("Access denied", `<h1>Access denied</h1><p>${escape(DENIALS[detail.reason ?? ""] ?? pageOf(page)!.cause)}</p><p>Reason: <code>${escape(detail.reason ?? "policy")}</code></p>${id}${detail.reason === "session_expired" || detail.reason === "mfa_required" ? again : ""}`) };
    case "POSTERN_SIGNIN_FAILED":
      return { status: 400, body: html("Sign-in failed", `<h1>Sign-in failed</h1><p>${escape(detail.reason ?? pageOf(page)!.cause)}</p>${id}${again}`) };
    case "POSTERN_AUTH_UNAVAILABLE":
    case "POSTERN_POOL_FULL": {
      const spec = pageOf(page)!;
      return { status: httpStatusOf(page)!, body: html(spec.title, `<h1>${spec.title}</h1><p>${spec.cause}</p>${id}`) };
    }
    case "signed_out":
      return { status: 200, body: html("Signed out", `<h1>Signed out</h1><p>You have signed out of this application.</p>${again}`) };
    case "to_signin": {
      // The fragment never reaches a server: this page adds it to the way back before leaving.
      const target = JSON.stringify(detail.signInUrl ?? "/");
      const code = `location.replace(${target.replace(/</g, "\\u003c")}.replace(/return=[^&]*/, "return=" + encodeURIComponent(location.pathname + location.search + location.hash)));`;
      return {
        status: 200,
        body: html("Signing in", `<h1>Signing in...</h1><noscript><p><a href="${escape(detail.signInUrl ?? "/")}">Continue to sign in</a></p></noscript><script>${code}</script>`, '<meta name="robots" content="noindex">'),
        scriptHash: `sha256-${createHash("sha256").update(code).digest("base64")}`,
      };
    }
  }
}
