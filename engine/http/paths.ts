/**
 * Request-target normalisation, done once: the same canonical path is used for routing,
 * policy and the backend (Envoy CVE-2019-9901 and Pomerium CVE-2021-39206 came from parts of
 * a proxy disagreeing about a path). Dot segments are resolved, `//` collapsed, `%2e`
 * decoded; an encoded `/` or `\`, a backslash, a NUL or a path that climbs above the root is
 * refused.
 */

export type NormalisedPath = { ok: true; path: string } | { ok: false; reason: string };

const UNRESERVED_ESCAPE = /%(2[dDeE]|5[fF]|7[eE]|[46][1-9a-fA-F]|[57][0-9aA]|3[0-9])/g;

export function normalisePath(raw: string): NormalisedPath {
  if (!raw.startsWith("/")) return { ok: false, reason: "the request target must start with /" };
  if (/%2f|%5c/i.test(raw)) return { ok: false, reason: "encoded / or \\ in the path" };
  if (raw.includes("\\")) return { ok: false, reason: "backslash in the path" };
  if (/%00|[\0-\x1f\x7f]/.test(raw)) return { ok: false, reason: "control character in the path" };
  // Decode escapes of unreserved characters (RFC 3986 6.2.2.2) so %2e%2e is seen as "..".
  const decoded = raw.replace(UNRESERVED_ESCAPE, (m) => String.fromCharCode(parseInt(m.slice(1), 16)));
  if (/%(?![0-9a-fA-F]{2})/.test(decoded)) return { ok: false, reason: "malformed percent-encoding in the path" };
  const out: string[] = [];
  const segments = decoded.split("/");
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i]!.split(";")[0]!; // path parameters never select a route
    if (seg === "" && i < segments.length - 1) continue; // collapse "//"
    if (seg === ".") continue;
    if (seg === "..") {
      if (out.length === 0) return { ok: false, reason: "the path climbs above the root" };
      out.pop();
      continue;
    }
    out.push(seg);
  }
  const last = segments[segments.length - 1]!;
  const trailing = last === "" || last === "." || last === "..";
  let path = `/${out.join("/")}`;
  if (trailing && path !== "/") path += "/";
  return { ok: true, path };
}
