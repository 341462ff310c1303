/**
 * Header handling at the edge, one way and the other.
 *
 * Requests: the client's headers go on in the order and spelling they were sent, less what
 * must not cross a hop (engine/http/headers.ts: hop-by-hop, framing, and whatever Connection
 * names; the connector writes fresh framing). Postern's own cookies and, on pre-authenticated
 * apps, the bearer token never leave the engine. No client can present an identity or a
 * client address: every SSO header name the tenant configures anywhere, a built-in list of
 * identity headers other proxies use, and the address and URL-rewrite headers backends are
 * known to trust are dropped on every app, passthrough included. X-Forwarded-For gets the peer
 * address appended (never replaced), and X-Forwarded-Host/Proto, X-Real-IP and a request id
 * are set by Postern. With header translation on (the default), Host is the internal host and
 * an Origin or Referer that points at a published app's external URL points at its internal
 * one, so apps that check Origin against Host work as they are.
 *
 * Responses: hop-by-hop and framing headers go (the edge frames the response), and with
 * translation on, Location, Content-Location, Refresh and Set-Cookie (Domain, Path) map
 * internal URLs of any of the tenant's apps to their external URLs.
 */
import type { IdentityHeaders } from "../auth/gate.js";
import { connectionTokens, FRAMING, HOP_BY_HOP } from "../http/headers.js";
import type { Route } from "./routes.js";

/** Cookies Postern owns (session and sign-in transaction cookies, with or without the __Host- prefix). */
export const POSTERN_COOKIE_PREFIX = "postern_";
const HOST_PREFIXED = `__host-${POSTERN_COOKIE_PREFIX}`;

/** Identity headers of other proxies and IdPs: a client must never be able to send one to a backend. */
const IDENTITY_HEADERS: ReadonlySet<string> = new Set([
  "remote-user", "x-remote-user", "x-remote-email", "x-remote-name", "x-remote-groups",
  "x-forwarded-user", "x-forwarded-email", "x-forwarded-preferred-username", "x-forwarded-groups", "x-forwarded-access-token",
  "x-webauth-user", "x-user", "x-email", "x-authenticated-user", "x-authenticated-userid",
  "cf-access-authenticated-user-email", "cf-access-jwt-assertion",
  "x-goog-authenticated-user-email", "x-goog-authenticated-user-id", "x-goog-iap-jwt-assertion",
]);
const IDENTITY_PREFIXES = ["x-postern-", "x-auth-request-", "x-pomerium-", "x-ms-client-principal", "x-ms-token-"];

/** Client address and URL-rewrite headers backends trust; Postern sets the ones it means. */
const SPOOFABLE: ReadonlySet<string> = new Set([
  "x-real-ip", "true-client-ip", "x-client-ip", "x-cluster-client-ip", "cf-connecting-ip", "fastly-client-ip",
  "x-original-url", "x-original-uri", "x-rewrite-url", "x-forwarded-prefix", "x-forwarded-port", "x-forwarded-host",
  "x-forwarded-proto", "x-forwarded-scheme", "x-forwarded-server", "x-forwarded-ssl", "x-url-scheme", "forwarded",
  "x-request-id", "expect",
]);

/** Whether a client-sent header claims an identity (the tenant's SSO names included). */
export function isIdentityHeader(lowerName: string, tenantSsoNames: ReadonlySet<string>): boolean {
  return tenantSsoNames.has(lowerName) || IDENTITY_HEADERS.has(lowerName) || IDENTITY_PREFIXES.some((p) => lowerName.startsWith(p));
}

export interface ForwardContext {
  readonly route: Route;
  /** Routes of the tenant's apps, for Origin and Referer translation. */
  readonly tenantRoutes: readonly Route[];
  /** Every SSO header name configured on any app of the tenant, lower-case. */
  readonly tenantSsoNames: ReadonlySet<string>;
  /** The address the decision was made for (the peer, or the client a trusted proxy names). */
  readonly clientAddress: string;
  /** The TCP peer: what X-Forwarded-For gets appended. */
  readonly peerAddress: string;
  readonly scheme: "http" | "https";
  readonly host: string;
  readonly requestId: string;
  /** SSO headers to set for the signed-in user. */
  readonly identity: IdentityHeaders;
  /** A protocol upgrade: Upgrade and Connection: upgrade go on to the backend. */
  readonly upgrade: boolean;
}

/** The flat header list sent to the connector for a client request; `raw` is the client's list as sent. */
export function requestHeaders(raw: readonly string[], ctx: ForwardContext): string[] {
  const out: string[] = [];
  const connection: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() === "connection") connection.push(raw[i + 1]!);
  const named = connectionTokens(connection);
  const translate = ctx.route.app.translateHeaders;
  let xff: string | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    const lower = name.toLowerCase();
    if (lower.charCodeAt(0) === 58 /* ":" h2 pseudo-header */ || lower === "host") continue;
    if (ctx.upgrade && (lower === "upgrade" || lower === "connection")) {
      out.push(name, value);
      continue;
    }
    if (HOP_BY_HOP.has(lower) || FRAMING.has(lower) || (named.has(lower) && !(ctx.upgrade && lower === "upgrade"))) continue;
    if (SPOOFABLE.has(lower) || ctx.identity.drop.has(lower) || isIdentityHeader(lower, ctx.tenantSsoNames)) continue;
    if (lower === "x-forwarded-for") {
      xff = xff === undefined ? value : `${xff}, ${value}`;
      continue;
    }
    if (lower === "cookie") {
      const kept = stripPosternCookies(value);
      if (kept !== "") out.push(name, kept);
      continue;
    }
    if (lower === "authorization" && ctx.route.app.preAuthentication === "oidc" && /^bearer\s/i.test(value)) continue;
    if (translate && lower === "origin") {
      out.push(name, originToInternal(value, ctx.tenantRoutes));
      continue;
    }
    if (translate && lower === "referer") {
      out.push(name, urlToInternal(value, ctx.tenantRoutes));
      continue;
    }
    out.push(name, value);
  }
  out.push(
    "host", translate ? ctx.route.internal.host : ctx.host,
    "x-forwarded-for", xff === undefined ? ctx.peerAddress : `${xff}, ${ctx.peerAddress}`,
    "x-forwarded-host", ctx.host,
    "x-forwarded-proto", ctx.scheme,
    "x-real-ip", ctx.clientAddress,
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

/** The backend target for a raw path and query as sent: the published prefix mapped, nothing else changed. */
export function backendTarget(route: Route, rawPath: string, query: string | undefined): string {
  const rest = rawPath.length >= route.prefix.length ? rawPath.slice(route.prefix.length) : "";
  return `${route.internalPrefix}${rest}${query === undefined ? "" : `?${query}`}`;
}

/** Response headers for the client: framing removed, URLs translated when the app says so. */
export function responseHeaders(headers: readonly string[], route: Route, tenantRoutes: readonly Route[]): [string, string][] {
  const out: [string, string][] = [];
  const translate = route.app.translateHeaders;
  for (let i = 0; i + 1 < headers.length; i += 2) {
    const name = headers[i]!.toLowerCase();
    let value = headers[i + 1]!;
    if (HOP_BY_HOP.has(name) || name === "transfer-encoding") continue;
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
  return mapUrl(value, routes, (r) => r.internal.href, (r) => r.external.href);
}

/** Maps an absolute external URL of any tenant app to its internal URL (Referer); anything else as is. */
export function urlToInternal(value: string, routes: readonly Route[]): string {
  return mapUrl(value, routes, (r) => r.external.href, (r) => r.internal.href);
}

function mapUrl(value: string, routes: readonly Route[], from: (r: Route) => string, to: (r: Route) => string): string {
  const lower = value.toLowerCase();
  let best: Route | undefined;
  for (const r of routes) {
    const base = from(r).toLowerCase();
    if ((lower.startsWith(base) || `${lower}/` === base) && (!best || from(r).length > from(best).length)) best = r;
  }
  if (!best) return value;
  return to(best) + value.slice(Math.min(from(best).length, value.length));
}

/** An Origin that is a tenant app's external origin becomes its internal origin. */
function originToInternal(value: string, routes: readonly Route[]): string {
  const lower = value.toLowerCase();
  for (const r of routes) if (r.external.origin.toLowerCase() === lower) return r.internal.origin;
  return value;
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
