/**
 * Request-target rules, applied once and the same way on both hops. The edge decides on a
 * canonical path (routing, policy) but forwards the path exactly as the client sent it; the
 * two can only disagree in ways this module refuses. Dot segments (plain or %2e-encoded),
 * encoded `/` or `\`, backslashes, NUL and other controls are refused outright: browsers never
 * send them, and proxies that resolved them differently from their backends were bypassed
 * (Envoy CVE-2019-9901, CVE-2021-29492; Pomerium CVE-2021-39206, CVE-2023-33189). The
 * connector applies the same check to every target it is asked to reach.
 */

export type CheckedPath = { ok: true; path: string } | { ok: false; reason: string };

const UNRESERVED_ESCAPE = /%(2[dDeE]|5[fF]|7[eE]|[46][1-9a-fA-F]|[57][0-9aA]|3[0-9])/g;
const DOT_SEGMENT = /(?:^|\/)(?:\.|%2e){1,2}(?:[/;?]|$)/i;
const CONTROL_OR_SPACE = /[\x00-\x20\x7f]/;

/** Why a raw path (no query) is refused on either hop, or undefined when it is safe to forward as is. */
export function unsafePath(raw: string): string | undefined {
  if (!raw.startsWith("/")) return "the request target must start with /";
  if (/%2f|%5c/i.test(raw)) return "encoded / or \\ in the path";
  if (raw.includes("\\")) return "backslash in the path";
  if (/%00/.test(raw) || CONTROL_OR_SPACE.test(raw)) return "control character or space in the path";
  if (raw.includes("#")) return "fragment in the request target";
  if (DOT_SEGMENT.test(raw)) return "dot segment in the path";
  if (/%(?![0-9a-fA-F]{2})/.test(raw)) return "malformed percent-encoding in the path";
  return undefined;
}

/**
 * The canonical path the edge decides on: escapes of unreserved characters decoded (RFC 3986
 * §6.2.2.2), `//` collapsed, `;` parameters dropped from every segment (they never select a
 * route). The backend still receives the raw path.
 */
export function canonicalPath(raw: string): CheckedPath {
  const why = unsafePath(raw);
  if (why !== undefined) return { ok: false, reason: why };
  const decoded = raw.replace(UNRESERVED_ESCAPE, (m) => String.fromCharCode(parseInt(m.slice(1), 16)));
  const segments = decoded.split("/");
  const out: string[] = [];
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i]!.split(";")[0]!;
    if (seg === "" && i < segments.length - 1) continue;
    out.push(seg);
  }
  return { ok: true, path: `/${out.join("/")}` };
}

/** Whether an origin-form target (path and query) stays under `prefix` however a backend resolves it. */
export function staysUnder(target: string, prefix: string): boolean {
  const q = target.indexOf("?");
  const path = q < 0 ? target : target.slice(0, q);
  if (CONTROL_OR_SPACE.test(target) || target.includes("#")) return false;
  return path.startsWith(prefix) && !path.startsWith("//") && unsafePath(path) === undefined;
}
