/**
 * Which absolute URLs to translate: the internal URL of every published app of a tenant maps
 * to its external URL. Hosts compare case-insensitively, an explicit default port equals none,
 * and protocol-relative links (`//host/...`) match on host and port alone.
 *
 * Runs for every absolute URL of every translated page, so it parses nothing it does not have
 * to: the origin part of the URL (up to the first "/", "?" or "#" after "//") is read in place,
 * lower-casing and hashing as it goes, and looked up among the spellings of every published
 * origin, built once. A URL to any other host costs one pass over its origin and one map
 * lookup, with no string made.
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

/** One spelling of a published origin ("http://host", "http://host:80", "//host", ...), lower case. */
interface Origin {
  readonly spelling: string;
  /** Longest path first. */
  readonly targets: Target[];
}

const DEFAULT_PORT: Record<string, string> = { "http:": "80", "https:": "443" };

const SLASH = 0x2f, COLON = 0x3a, QUESTION = 0x3f, HASH = 0x23;

/** The lower-case form of an ASCII character code (other codes unchanged). */
function lower(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
}

/** A hash of a lower-cased origin spelling, computed while it is read (see LinkMap.translateAt). */
function hashStep(h: number, c: number): number {
  return (Math.imul(h, 31) + c) | 0;
}

export class LinkMap {
  /** Origins by the hash of their spelling: a URL to any other host is rejected without making a string. */
  readonly #byHash = new Map<number, Origin[]>();

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
    for (const list of this.#byHash.values()) for (const o of list) o.targets.sort((a, b) => b.path.length - a.path.length);
  }

  /** The first target for an origin and path stays (https before http). */
  #add(spelling: string, target: Target): void {
    let h = 0;
    for (let i = 0; i < spelling.length; i++) h = hashStep(h, spelling.charCodeAt(i));
    const list = this.#byHash.get(h) ?? [];
    let origin = list.find((o) => o.spelling === spelling);
    if (!origin) list.push((origin = { spelling, targets: [] }));
    if (!origin.targets.some((t) => t.path === target.path)) origin.targets.push(target);
    this.#byHash.set(h, list);
  }

  get empty(): boolean {
    return this.#byHash.size === 0;
  }

  /** The translated form of `url` when it points into a published app, else undefined. */
  translate(url: string): string | undefined {
    return this.translateAt(url, 0, url.length);
  }

  /**
   * translate() of the URL s[start, stop), read in place: a page's scanner passes its own text
   * and the bounds of an attribute value, and nothing is allocated unless the URL translates.
   */
  translateAt(s: string, start: number, stop: number): string | undefined {
    // "//host" or "scheme://host", the scheme being letters only (http, https, HTTP...).
    let i = start;
    let h = 0;
    while (i < stop && i - start <= 10) {
      const c = lower(s.charCodeAt(i));
      if (c < 0x61 || c > 0x7a) break;
      h = hashStep(h, c);
      i++;
    }
    if (i > start) {
      if (i >= stop || s.charCodeAt(i) !== COLON) return undefined;
      h = hashStep(h, COLON);
      i++;
    }
    if (i + 1 >= stop || s.charCodeAt(i) !== SLASH || s.charCodeAt(i + 1) !== SLASH) return undefined;
    h = hashStep(hashStep(h, SLASH), SLASH);
    i += 2;
    for (; i < stop; i++) {
      const c = s.charCodeAt(i);
      if (c === SLASH || c === QUESTION || c === HASH) break;
      h = hashStep(h, lower(c));
    }
    const candidates = this.#byHash.get(h);
    if (candidates === undefined) return undefined;
    const end = i;
    const origin = candidates.find((o) => sameLowerCase(s, start, end, o.spelling));
    if (origin === undefined) return undefined;
    for (const t of origin.targets) {
      const pathEnd = end + t.path.length;
      if (end === stop) {
        if (t.path === "/") return t.replacement; // "http://host"
      } else if (pathEnd <= stop && s.startsWith(t.path, end)) {
        return t.replacement + s.slice(pathEnd, stop); // under the published path
      } else if (pathEnd - 1 === stop && s.startsWith(t.path.slice(0, -1), end)) {
        return t.replacement; // the path without its trailing slash
      } else if (t.path === "/" && (s.charCodeAt(end) === QUESTION || s.charCodeAt(end) === HASH)) {
        return t.replacement + s.slice(end, stop); // "http://host?q"
      }
    }
    return undefined;
  }
}

/** Whether s[start, end) lower-cased is `lowerCase`. */
function sameLowerCase(s: string, start: number, end: number, lowerCase: string): boolean {
  if (end - start !== lowerCase.length) return false;
  for (let k = 0; k < lowerCase.length; k++) if (lower(s.charCodeAt(start + k)) !== lowerCase.charCodeAt(k)) return false;
  return true;
}
