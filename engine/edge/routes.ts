import type { FeedApp } from "../../control/contract/feed.js";
import type { TenantLinks } from "../workers/translation.js";

/**
 * The engine's routing table: external host, then the longest published path prefix. Built
 * aside from each config snapshot and swapped in with one assignment.
 */

/** An app as the edge routes it: exactly what the feed carries (control/contract). */
export type EdgeApp = FeedApp;

const NO_NAMES: ReadonlySet<string> = new Set();

export interface Route {
  readonly app: EdgeApp;
  /** External path prefix, ending in "/". */
  readonly prefix: string;
  /** Internal base path, ending in "/". */
  readonly internalPrefix: string;
  readonly external: URL;
  readonly internal: URL;
}

export class RouteTable {
  readonly #byHost = new Map<string, Route[]>();
  /** Built once per table: response header translation asks for it on every response. */
  readonly #byTenant = new Map<string, Route[]>();
  /** Every SSO header name configured on any app of a tenant: no client may send one to any app. */
  readonly #ssoNames = new Map<string, ReadonlySet<string>>();
  /** Link translation maps per tenant, for apps that translate bodies. */
  readonly #links = new Map<string, TenantLinks>();
  /** Tells this table's link maps from the previous ones (workers cache them by key). */
  static #tables = 0;
  readonly #id = ++RouteTable.#tables;
  readonly apps: readonly EdgeApp[];

  constructor(apps: readonly EdgeApp[]) {
    this.apps = apps;
    for (const app of apps) {
      let external: URL;
      let internal: URL;
      try {
        external = new URL(app.externalUrl);
        internal = new URL(app.internalUrl);
      } catch {
        continue; // control validated these; a bad one only loses its own route
      }
      const host = external.hostname.toLowerCase();
      const list = this.#byHost.get(host) ?? [];
      list.push({ app, prefix: external.pathname, internalPrefix: internal.pathname, external, internal });
      this.#byHost.set(host, list);
    }
    for (const list of this.#byHost.values()) list.sort((a, b) => b.prefix.length - a.prefix.length);
    for (const route of [...this.#byHost.values()].flat()) {
      const list = this.#byTenant.get(route.app.tenantId) ?? [];
      list.push(route);
      this.#byTenant.set(route.app.tenantId, list);
    }
    for (const app of apps) {
      const names = new Set(this.#ssoNames.get(app.tenantId) ?? []);
      for (const name of Object.keys(app.ssoHeaders)) names.add(name.toLowerCase());
      this.#ssoNames.set(app.tenantId, names);
    }
  }

  /** The SSO header names configured anywhere in the tenant, lower-case. */
  tenantSsoNames(tenantId: string): ReadonlySet<string> {
    return this.#ssoNames.get(tenantId) ?? NO_NAMES;
  }

  /** The route for a Host header value and a normalised path, if any. */
  match(hostHeader: string, path: string): Route | undefined {
    const host = hostOnly(hostHeader);
    const list = this.#byHost.get(host);
    if (!list) return undefined;
    for (const route of list) {
      if (path.startsWith(route.prefix) || `${path}/` === route.prefix) return route;
    }
    return undefined;
  }

  /** Routes of a tenant's apps, for translating links to any of them. */
  tenantRoutes(tenantId: string): readonly Route[] {
    return this.#byTenant.get(tenantId) ?? [];
  }

  /** Internal -> external URLs of every app of the tenant (built on first use per table). */
  tenantLinks(tenantId: string): TenantLinks {
    let links = this.#links.get(tenantId);
    if (!links) {
      links = { key: `${this.#id}/${tenantId}`, mappings: this.tenantRoutes(tenantId).map((r) => ({ internalUrl: r.internal.href, externalUrl: r.external.href })) };
      this.#links.set(tenantId, links);
    }
    return links;
  }
}

/** Lower-case host without port, from a Host header (`[::1]:80` -> `::1`). */
export function hostOnly(hostHeader: string): string {
  const h = hostHeader.trim().toLowerCase();
  if (h.startsWith("[")) return h.slice(1, h.indexOf("]") > 0 ? h.indexOf("]") : undefined);
  const colon = h.lastIndexOf(":");
  return colon > 0 ? h.slice(0, colon) : h;
}
