/**
 * App settings rules that need more than a shape check (URL form, uniqueness, custom home
 * page). Parsing turns untrusted input (`AppInput`) into a complete, frozen `AppSettings`;
 * every refusal names the field and says what is wrong, the way an operator would want to read it.
 */
import { isIP } from "node:net";
import type { z } from "zod";
import { appSettingsSchema, type AppSettings } from "./contract/apps.js";

/**
 * Where the secret store keeps an app's client secret at its external issuer, sealed: never in
 * the settings, so no listing, export or audit entry of them can carry it.
 */
export function clientSecretName(appId: string): string {
  return `oidc-client-secret:${appId}`;
}

/** Whether an app signs in at an external issuer, where it may be a confidential client. */
export function usesExternalIssuer(settings: AppSettings): boolean {
  return settings.preAuthentication === "oidc" && settings.oidc.discoveryUrl !== undefined;
}

/** A field-level refusal; `field` is a dotted path into the settings. */
export interface Problem {
  readonly field: string;
  readonly message: string;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; problems: Problem[] };

/** Turns zod issues into problems whose field is a dotted path (`cookie.secure`). */
export function problemsFromZod(error: z.ZodError): Problem[] {
  return error.issues.map((issue) => {
    const path = issue.path.map(String).join(".");
    if (issue.code === "unrecognized_keys") {
      const keys = issue.keys.map((k) => (path ? `${path}.${k}` : k));
      return { field: keys.join(", "), message: `unknown setting ${keys.map((k) => `"${k}"`).join(", ")}` };
    }
    if (issue.code === "invalid_key") {
      const key = String(issue.path[issue.path.length - 1]);
      return { field: path, message: `"${key}" is not valid: ${issue.issues.map((i) => i.message).join("; ")}` };
    }
    return { field: path || "(body)", message: issue.message };
  });
}

/** Everything an app's URLs are checked against besides its own fields. */
export interface AppRuleContext {
  /** Other apps of the same tenant (internal URLs must be unique per tenant). */
  readonly tenantApps: readonly AppSettings[];
  /** Every app of every tenant (external URLs must be globally unique). */
  readonly allApps: readonly AppSettings[];
  /** Names of the tenant's connector groups. */
  readonly connectorGroups: readonly string[];
}

/** Shape check plus every app rule; `name` of the app being updated is excluded from uniqueness. */
export function parseApp(input: unknown, context: AppRuleContext, replacing?: string): Parsed<AppSettings> {
  const shaped = appSettingsSchema.safeParse(input);
  if (!shaped.success) return { ok: false, problems: problemsFromZod(shaped.error) };
  const app = shaped.data;
  const problems: Problem[] = [];
  const internal = checkUrl(app.internalUrl, "internalUrl", problems);
  const external = checkUrl(app.externalUrl, "externalUrl", problems);
  const others = (list: readonly AppSettings[]) => list.filter((a) => a.name !== replacing);
  if (others(context.tenantApps).some((a) => a.name.toLowerCase() === app.name.toLowerCase())) {
    problems.push({ field: "name", message: `an app named "${app.name}" already exists` });
  }
  if (internal !== undefined) {
    const dup = others(context.tenantApps).find((a) => sameUrl(a.internalUrl, internal.href));
    if (dup) problems.push({ field: "internalUrl", message: `${internal.href} is already the internal URL of app "${dup.name}"` });
  }
  if (external !== undefined) {
    const dup = others(context.allApps).find((a) => sameUrl(a.externalUrl, external.href));
    if (dup) problems.push({ field: "externalUrl", message: `${external.href} is already the external URL of app "${dup.name}"` });
    if (app.customHomePage !== undefined) {
      const home = checkUrl(app.customHomePage, "customHomePage", problems, { trailingSlash: false });
      if (home !== undefined && !home.href.toLowerCase().startsWith(external.href.toLowerCase())) {
        problems.push({ field: "customHomePage", message: `${home.href} is not under the external URL ${external.href}` });
      }
    }
  }
  if (!context.connectorGroups.includes(app.connectorGroup)) {
    problems.push({ field: "connectorGroup", message: `no connector group named "${app.connectorGroup}"` });
  }
  app.policy.allowedIpRanges.forEach((range, i) => {
    if (!isCidr(range)) problems.push({ field: `policy.allowedIpRanges.${i}`, message: `"${range}" is not an address range like 10.0.0.0/8 or 2001:db8::/32` });
  });
  if (app.oidc.discoveryUrl !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(app.oidc.discoveryUrl);
    } catch {
      problems.push({ field: "oidc.discoveryUrl", message: `"${app.oidc.discoveryUrl}" is not a URL` });
    }
    if (url && url.protocol !== "https:" && !(url.protocol === "http:" && ["127.0.0.1", "localhost", "[::1]"].includes(url.hostname))) {
      problems.push({ field: "oidc.discoveryUrl", message: `${url.href} must use https (plain http only on loopback, for testing)` });
    }
    if (app.oidc.clientId === undefined) problems.push({ field: "oidc.clientId", message: "an external issuer (oidc.discoveryUrl) needs the app's client id there" });
  }
  if (problems.length > 0) return { ok: false, problems };
  return {
    ok: true,
    value: Object.freeze({ ...app, internalUrl: internal!.href, externalUrl: external!.href }),
  };
}

/** Checks the URL rules Entra documents; returns the parsed URL when it passes. */
function checkUrl(raw: string, field: string, problems: Problem[], options = { trailingSlash: true }): URL | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    problems.push({ field, message: `"${raw}" is not a URL` });
    return undefined;
  }
  const before = problems.length;
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    problems.push({ field, message: `${raw} must start with http:// or https:// (got ${url.protocol.slice(0, -1)})` });
  }
  if (options.trailingSlash && !url.pathname.endsWith("/")) {
    problems.push({ field, message: `${raw} must end with "/"` });
  }
  if (url.search !== "" || url.hash !== "") {
    problems.push({ field, message: `${raw} must not carry a query or fragment` });
  }
  if (url.username !== "" || url.password !== "") {
    problems.push({ field, message: `${raw} must not carry credentials` });
  }
  const host = url.hostname.replace(/^\[|\]$/g, "");
  if (isIP(host) !== 0) {
    problems.push({ field, message: `${raw} uses the IP address ${host}; use a domain name` });
  }
  return problems.length === before ? url : undefined;
}

function sameUrl(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

function isCidr(range: string): boolean {
  const slash = range.indexOf("/");
  if (slash < 0) return isIP(range) !== 0;
  const family = isIP(range.slice(0, slash));
  const bits = range.slice(slash + 1);
  if (family === 0 || !/^\d{1,3}$/.test(bits)) return false;
  return Number(bits) <= (family === 4 ? 32 : 128);
}

/** The default external URL: `<app>.<tenant>.<suffix>` with the engine's public origin. */
export function defaultExternalUrl(appName: string, tenant: string, suffix: string, scheme: "http" | "https", port?: number): string {
  const label = appName.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "") || "app";
  const portPart = port === undefined || (scheme === "https" && port === 443) || (scheme === "http" && port === 80) ? "" : `:${port}`;
  return `${scheme}://${label}.${tenant}.${suffix}${portPart}/`;
}
