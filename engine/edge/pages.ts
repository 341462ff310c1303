/**
 * The one place that turns an edge outcome into what the user sees: a status, a page that
 * names the cause (like Entra's error pages) and the request id to quote to support.
 */

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

export function errorPage(kind: EdgeError, requestId: string): { status: string; body: string } {
  const spec = PAGES[kind];
  const body = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${spec.status} ${spec.title}</title>
<style>body{font:16px system-ui,sans-serif;margin:4rem auto;max-width:36rem;color:#222}code{background:#f2f2f2;padding:.1rem .3rem}</style></head>
<body><h1>${spec.title}</h1><p>${spec.cause}</p><p>Request id: <code>${requestId}</code></p></body></html>\n`;
  return { status: `${spec.status} ${STATUS_TEXT[spec.status] ?? spec.title}`, body };
}

export const STATUS_TEXT: Record<number, string> = {
  200: "OK", 101: "Switching Protocols", 201: "Created", 204: "No Content", 301: "Moved Permanently", 302: "Found", 303: "See Other",
  304: "Not Modified", 307: "Temporary Redirect", 308: "Permanent Redirect", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
  404: "Not Found", 408: "Request Timeout", 413: "Payload Too Large", 414: "URI Too Long", 429: "Too Many Requests",
  431: "Request Header Fields Too Large", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
};
