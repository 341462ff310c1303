/**
 * Which absolute URLs to translate: the internal URL of every published app of a tenant maps
 * to its external URL. Hosts compare case-insensitively, an explicit default port equals none,
 * and protocol-relative links (`//host/...`) match on host and port alone.
 *
 * Runs for every URL of every translated page, so it parses nothing it does not have to: the
 * origin part of the URL (up to the first "/", "?" or "#" after "//") is cut, lower-cased and
 * looked up among the spellings of every published origin, built once. A URL to any other
 * host costs one scan of its origin and one map lookup.
 */

export interface LinkMapping {
  readonly internalUrl: string;
  readonly externalUrl: string;
}

interface Target {
  /** Internal path prefix, ending in "/". */
  readonly path: string;
  /** What replaces origin + path: the external URL, or its protocol-relative form. */
  readonly replacement: string;
}

const DEFAULT_PORT: Record<string, string> = { "http:": "80", "https:": "443" };

export class LinkMap {
  /** Lower-case origin spelling ("http://host", "http://host:80", "//host", ...) -> targets, longest path first. */
  readonly #byOrigin = new Map<string, Target[]>();

  constructor(mappings: readonly LinkMapping[]) {
    // https first, so a protocol-relative spelling shared by an http and an https app goes to https.
    const parsed = mappings.flatMap((m) => {
      try {
        return [{ internal: new URL(m.internalUrl), external: new URL(m.externalUrl) }];
      } catch {
        return [];
      }
    }).sort((a, b) => (a.internal.protocol === b.internal.protocol ? 0 : a.internal.protocol === "https:" ? -1 : 1));
    for (const { internal, external } of parsed) {
      const host = internal.host.toLowerCase(); // URL drops a default port
      const hosts = internal.port === "" ? [host, `${host}:${DEFAULT_PORT[internal.protocol] ?? ""}`] : [host];
      for (const h of hosts) {
        this.#add(`${internal.protocol}//${h}`, { path: internal.pathname, replacement: external.href });
        this.#add(`//${h}`, { path: internal.pathname, replacement: `//${external.host}${external.pathname}` });
      }
    }
    for (const list of this.#byOrigin.values()) list.sort((a, b) => b.path.length - a.path.length);
  }

  /** The first target for an origin and path stays (https before http). */
  #add(origin: string, target: Target): void {
    const list = this.#byOrigin.get(origin) ?? [];
    if (!list.some((t) => t.path === target.path)) list.push(target);
    this.#byOrigin.set(origin, list);
  }

  get empty(): boolean {
    return this.#byOrigin.size === 0;
  }

  /** The translated form of `url` when it points into a published app, else undefined. */
  translate(url: string): string | undefined {
    const slashes = url.indexOf("//");
    // "//host" or "scheme://host", the scheme being letters only (http, https, HTTP...).
    if (slashes < 0 || slashes > 10) return undefined;
    for (let i = 0; i < slashes; i++) {
      const c = url.charCodeAt(i) | 0x20;
      if (i === slashes - 1 ? c !== 0x3a /* ":" */ : c < 0x61 || c > 0x7a) return undefined;
    }
    let end = slashes + 2;
    while (end < url.length) {
      const c = url.charCodeAt(end);
      if (c === 0x2f || c === 0x3f || c === 0x23) break; // "/", "?", "#"
      end++;
    }
    const targets = this.#byOrigin.get(url.slice(0, end).toLowerCase());
    if (!targets) return undefined;
    const rest = end < url.length ? url.slice(end) : "/";
    for (const t of targets) {
      if (rest.startsWith(t.path)) return t.replacement + rest.slice(t.path.length); // under the published path
      if (`${rest}/` === t.path) return t.replacement; // the path without its trailing slash
      if (t.path === "/" && (rest[0] === "?" || rest[0] === "#")) return t.replacement + rest; // "http://host?q"
    }
    return undefined;
  }
}
