/**
 * Which absolute URLs to translate: the internal URL of every published app of a tenant maps
 * to its external URL. Hosts compare case-insensitively, an explicit default port equals none,
 * and protocol-relative links (`//host/...`) match on host and port alone.
 */

export interface LinkMapping {
  readonly internalUrl: string;
  readonly externalUrl: string;
}

interface Target {
  readonly scheme: string;
  readonly path: string;
  readonly external: URL;
}

export class LinkMap {
  /** "host:port" (port always explicit) -> targets, longest internal path first. */
  readonly #byAuthority = new Map<string, Target[]>();

  constructor(mappings: readonly LinkMapping[]) {
    for (const m of mappings) {
      let internal: URL;
      let external: URL;
      try {
        internal = new URL(m.internalUrl);
        external = new URL(m.externalUrl);
      } catch {
        continue;
      }
      const key = authority(internal.protocol, internal.hostname, internal.port);
      const list = this.#byAuthority.get(key) ?? [];
      list.push({ scheme: internal.protocol, path: internal.pathname, external });
      list.sort((a, b) => b.path.length - a.path.length);
      this.#byAuthority.set(key, list);
    }
  }

  get empty(): boolean {
    return this.#byAuthority.size === 0;
  }

  /** The translated form of `url` when it points into a published app, else undefined. */
  translate(url: string): string | undefined {
    const m = ABSOLUTE_URL.exec(url);
    if (!m) return undefined;
    const scheme = m[1] ? `${m[1].toLowerCase()}:` : undefined; // undefined: protocol-relative
    const host = m[2]!.toLowerCase();
    const port = m[3] ?? "";
    const rest = url.slice(m[0].length) || "/";
    for (const s of scheme ? [scheme] : ["https:", "http:"]) {
      const targets = this.#byAuthority.get(authority(s, host, port));
      if (!targets) continue;
      for (const t of targets) {
        if (scheme && t.scheme !== scheme) continue;
        let tail: string;
        if (rest.startsWith(t.path)) tail = rest.slice(t.path.length); // under the published path
        else if (`${rest}/` === t.path) tail = ""; // the path without its trailing slash
        else if (t.path === "/" && (rest[0] === "?" || rest[0] === "#")) tail = rest; // "http://host?q"
        else continue;
        const base = scheme ? t.external.href : `//${t.external.host}${t.external.pathname}`;
        return base + tail;
      }
    }
    return undefined;
  }
}

/** scheme://host[:port] or //host[:port], host without userinfo; linear, anchored. */
export const ABSOLUTE_URL = /^(?:([a-zA-Z][a-zA-Z0-9+.-]*):)?\/\/([a-zA-Z0-9.-]+|\[[0-9a-fA-F:.]+\])(?::(\d{1,5}))?(?=[/?#]|$)/;

function authority(scheme: string, host: string, port: string): string {
  const p = port === "" || (scheme === "http:" && port === "80") || (scheme === "https:" && port === "443") ? (scheme === "https:" ? "443" : "80") : port;
  return `${host.toLowerCase()}:${p}`;
}
