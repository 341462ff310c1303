/**
 * Header handling at the edge, one way and the other.
 *
 * Requests: hop-by-hop headers go (and any the client names in Connection), the framing
 * headers too (the connector writes fresh HTTP/1.1 framing), Postern's own cookies and, on
 * pre-authenticated apps, the bearer token never leave the engine, client-supplied identity
 * headers are dropped, X-Forwarded-For gets the real peer address appended (never replaced or
 * trusted), X-Forwarded-Host/Proto and a request id are set, and Host becomes the internal
 * host when the app translates URLs in headers.
 *
 * Responses: hop-by-hop and framing headers go (uWS frames the response), and with
 * translation on, Location, Content-Location, Refresh and Set-Cookie (Domain, Path) map
 * internal URLs of any of the tenant's apps to their external URLs.
 */
import type { IdentityHeaders } from "../auth/gate.js";
import type { Route } from "./routes.js";

const HOP_BY_HOP = new Set([
  "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
  "proxy-authorization", "proxy-authenticate", "content-length", "host",
]);
/** Headers only Postern may set towards a backend: a client sending them is ignored. */
const RESERVED_PREFIX = "x-postern-";
/** Cookies Postern owns (session and sign-in transaction cookies, with or without the __Host- prefix). */
export const POSTERN_COOKIE_PREFIX = "postern_";
const HOST_PREFIXED = `__host-${POSTERN_COOKIE_PREFIX}`;

export interface ForwardContext {
  readonly route: Route;
  readonly clientAddress: string;
  readonly scheme: "http" | "https";
  readonly host: string;
  readonly requestId: string;
  /** SSO headers to set (and the names whose client copies are dropped). */
  readonly identity: IdentityHeaders;
}

/** The flat header list sent to the connector for a client request. */
export function requestHeaders(incoming: readonly (readonly [string, string])[], ctx: ForwardContext): string[] {
  const out: string[] = [];
  const named = new Set<string>();
  let xff: string | undefined;
  for (const [name, value] of incoming) {
    if (name === "connection") for (const token of value.split(",")) named.add(token.trim().toLowerCase());
  }
  for (const [name, value] of incoming) {
    if (HOP_BY_HOP.has(name) || named.has(name) || name.startsWith(RESERVED_PREFIX) || name === "x-request-id" || ctx.identity.drop.has(name)) continue;
    if (name === "x-forwarded-for") {
      xff = xff === undefined ? value : `${xff}, ${value}`;
      continue;
    }
    if (name === "x-forwarded-host" || name === "x-forwarded-proto" || name === "forwarded") continue;
    if (name === "cookie") {
      const kept = stripPosternCookies(value);
      if (kept !== "") out.push("cookie", kept);
      continue;
    }
    if (name === "authorization" && ctx.route.app.preAuthentication === "oidc" && /^bearer\s/i.test(value)) continue;
    out.push(name, value);
  }
  out.push(
    "host", ctx.route.app.translateHeaders ? ctx.route.internal.host : ctx.host,
    "x-forwarded-for", xff === undefined ? ctx.clientAddress : `${xff}, ${ctx.clientAddress}`,
    "x-forwarded-host", ctx.host,
    "x-forwarded-proto", ctx.scheme,
    "x-request-id", ctx.requestId,
  );
  for (const [name, value] of ctx.identity.set) out.push(name, value);
  return out;
}

export function stripPosternCookies(cookieHeader: string): string {
  return cookieHeader
    .split(";")
    .map((c) => c.trim())
    .filter((c) => c !== "" && !c.toLowerCase().startsWith(POSTERN_COOKIE_PREFIX) && !c.toLowerCase().startsWith(HOST_PREFIXED))
    .join("; ");
}

/** The backend path for a normalised external path and query. */
export function backendTarget(route: Route, path: string, query: string): string {
  const rest = path.length >= route.prefix.length ? path.slice(route.prefix.length) : "";
  return `${route.internalPrefix}${rest}${query === "" ? "" : `?${query}`}`;
}

/** Response headers for the client: framing removed, URLs translated when the app says so. */
export function responseHeaders(headers: readonly string[], route: Route, tenantRoutes: readonly Route[]): [string, string][] {
  const out: [string, string][] = [];
  const translate = route.app.translateHeaders;
  for (let i = 0; i + 1 < headers.length; i += 2) {
    const name = headers[i]!.toLowerCase();
    let value = headers[i + 1]!;
    if (HOP_BY_HOP.has(name) || name === "date") continue;
    if (translate) {
      if (name === "location" || name === "content-location") value = translateUrl(value, tenantRoutes);
      else if (name === "refresh") value = value.replace(/(url\s*=\s*)(\S+)/i, (_m, p: string, u: string) => p + translateUrl(u, tenantRoutes));
      else if (name === "set-cookie") value = translateCookie(value, route);
    }
    out.push([name, value]);
  }
  return out;
}

/** Maps an absolute internal URL of any tenant app to its external URL; anything else as is. */
export function translateUrl(value: string, routes: readonly Route[]): string {
  const lower = value.toLowerCase();
  let best: Route | undefined;
  for (const r of routes) {
    const base = r.internal.href.toLowerCase();
    if ((lower.startsWith(base) || `${lower}/` === base) && (!best || r.internal.href.length > best.internal.href.length)) best = r;
  }
  if (!best) return value;
  return best.external.href + value.slice(Math.min(best.internal.href.length, value.length));
}

function translateCookie(value: string, route: Route): string {
  const internalHost = route.internal.hostname.toLowerCase();
  return value
    .split(";")
    .map((part, i) => {
      if (i === 0) return part;
      const eq = part.indexOf("=");
      const key = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase();
      const attr = eq < 0 ? "" : part.slice(eq + 1).trim();
      if (key === "domain" && attr.replace(/^\./, "").toLowerCase() === internalHost) return ` Domain=${route.external.hostname}`;
      if (key === "path" && attr.startsWith(route.internalPrefix)) return ` Path=${route.prefix}${attr.slice(route.internalPrefix.length)}`;
      if (key === "path" && `${attr}/` === route.internalPrefix) return ` Path=${route.prefix}`;
      return part;
    })
    .join(";");
}
