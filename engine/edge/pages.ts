/**
 * The one place that turns an edge outcome into what the user sees: a status, a page that
 * names the cause (like Entra's error pages) and the request id to quote to support.
 */

import type { AuthPage } from "../auth/gate.js";

export type EdgeError =
  | "not_found" | "bad_request" | "uri_too_long" | "headers_too_large" | "maintenance" | "throttled" | "overloaded"
  | "no_connector" | "backend_unreachable" | "backend_timeout" | "backend_invalid" | "target_forbidden" | "connector_lost"
  | "preauth_unavailable" | "body_timeout" | "translate_failed";

interface PageSpec {
  readonly status: number;
  readonly title: string;
  readonly cause: string;
}

const PAGES: Record<EdgeError, PageSpec> = {
  not_found: { status: 404, title: "Not found", cause: "No application is published at this address." },
  bad_request: { status: 400, title: "Bad request", cause: "The request was malformed and was not forwarded." },
  uri_too_long: { status: 414, title: "URI too long", cause: "The request line is longer than this service accepts." },
  headers_too_large: { status: 431, title: "Request headers too large", cause: "The request has too many headers or they are too large." },
  maintenance: { status: 503, title: "Down for maintenance", cause: "This application is in maintenance mode. Try again later." },
  throttled: { status: 429, title: "Too many requests", cause: "This application is receiving more requests than it is allowed. Try again shortly." },
  overloaded: { status: 503, title: "Service busy", cause: "Too many requests are in progress. Try again shortly." },
  no_connector: { status: 503, title: "No connector available", cause: "No connector in this application's connector group is connected, so the application cannot be reached." },
  backend_unreachable: { status: 502, title: "Application unreachable", cause: "The connector could not reach the application's internal URL." },
  backend_timeout: { status: 504, title: "Application timed out", cause: "The application did not answer within the backend timeout." },
  backend_invalid: { status: 502, title: "Invalid response", cause: "The application sent a response that is not valid HTTP." },
  target_forbidden: { status: 502, title: "Not published through this connector", cause: "The connector refused to reach this internal address: it is not published through its connector group." },
  connector_lost: { status: 502, title: "Connector disconnected", cause: "The connector serving this request went away before the application answered." },
  preauth_unavailable: { status: 503, title: "Sign-in unavailable", cause: "This application requires sign-in, which is not available on this engine yet." },
  translate_failed: { status: 502, title: "Translation failed", cause: "The application answered, but the links in its page could not be translated to their external addresses." },
  body_timeout: { status: 408, title: "Request timeout", cause: "The request body stopped arriving." },
};

export function errorStatus(kind: EdgeError): number {
  return PAGES[kind].status;
}

function html(title: string, body: string, head = ""): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title>${head}
<style>body{font:16px system-ui,sans-serif;margin:4rem auto;max-width:36rem;color:#222}code{background:#f2f2f2;padding:.1rem .3rem}</style></head>
<body>${body}</body></html>\n`;
}

export function errorPage(kind: EdgeError, requestId: string): { status: string; body: string } {
  const spec = PAGES[kind];
  const body = html(`${spec.status} ${spec.title}`, `<h1>${spec.title}</h1><p>${spec.cause}</p><p>Request id: <code>${requestId}</code></p>`);
  return { status: `${spec.status} ${STATUS_TEXT[spec.status] ?? spec.title}`, body };
}

const DENIALS: Record<string, string> = {
  not_assigned: "You are signed in, but you are not assigned to this application. Ask its administrator for access.",
  mfa_required: "This application requires multi-factor authentication. Sign in again with your second factor.",
  location_not_allowed: "This application cannot be used from your current network location.",
  session_expired: "Your session has expired. Sign in again.",
};

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Pages of pre-authentication (engine/auth/gate.ts): denied with the reason, signed out, the hop to sign-in. */
export function authPage(page: AuthPage, detail: { reason?: string; transactionId: string; signInUrl?: string }): { status: number; body: string } {
  const id = `<p>Transaction id: <code>${escape(detail.transactionId)}</code></p>`;
  const again = detail.signInUrl ? `<p><a href="${escape(detail.signInUrl)}">Sign in</a></p>` : "";
  switch (page) {
    case "denied":
      return { status: 403, body: html("Access denied", `<h1>Access denied</h1><p>${escape(DENIALS[detail.reason ?? ""] ?? "Access to this application was refused.")}</p><p>Reason: <code>${escape(detail.reason ?? "policy")}</code></p>${id}${detail.reason === "session_expired" || detail.reason === "mfa_required" ? again : ""}`) };
    case "signed_out":
      return { status: 200, body: html("Signed out", `<h1>Signed out</h1><p>You have signed out of this application.</p>${again}`) };
    case "bad_signin":
      return { status: 400, body: html("Sign-in failed", `<h1>Sign-in failed</h1><p>${escape(detail.reason ?? "The sign-in could not be completed.")}</p>${id}${again}`) };
    case "auth_unavailable":
      return { status: 503, body: html("Sign-in unavailable", `<h1>Sign-in unavailable</h1><p>The identity provider cannot be reached right now. Try again shortly.</p>${id}`) };
    case "overloaded":
      return { status: 503, body: html("Service busy", `<h1>Service busy</h1><p>Too many sign-ins are being checked. Try again shortly.</p>${id}`) };
    case "to_signin": {
      // The fragment never reaches a server: this page adds it to the way back before leaving.
      const target = JSON.stringify(detail.signInUrl ?? "/");
      const script = `<script>location.replace(${target.replace(/</g, "\\u003c")}.replace(/return=[^&]*/, "return=" + encodeURIComponent(location.pathname + location.search + location.hash)));</script>`;
      return { status: 200, body: html("Signing in", `<h1>Signing in...</h1><noscript><p><a href="${escape(detail.signInUrl ?? "/")}">Continue to sign in</a></p></noscript>${script}`, '<meta name="robots" content="noindex">') };
    }
  }
}

export const STATUS_TEXT: Record<number, string> = {
  200: "OK", 101: "Switching Protocols", 201: "Created", 204: "No Content", 301: "Moved Permanently", 302: "Found", 303: "See Other",
  304: "Not Modified", 307: "Temporary Redirect", 308: "Permanent Redirect", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
  404: "Not Found", 408: "Request Timeout", 413: "Payload Too Large", 414: "URI Too Long", 429: "Too Many Requests",
  431: "Request Header Fields Too Large", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
};
