/**
 * HTTP header rules both hops apply: the engine when it takes a client's request and a
 * backend's response from the tunnel, the connector when it writes to and reads from the
 * backend, and the tunnel codec when it decodes heads. Written once so the two sides cannot
 * disagree about what is a valid name, value or hop-by-hop header (RFC 9110 §5, §7.6.1).
 */

/** RFC 9110 token: a field name or a method. */
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** A field value as RFC 9110 allows it: visible ASCII, SP, HTAB and obs-text; never CR, LF or NUL. */
export const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * Headers that describe one connection, never forwarded across a hop: each side writes its own
 * framing (RFC 9110 §7.6.1, plus the non-standard ones proxies are known to honour).
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
  "proxy-authorization", "proxy-authenticate",
]);

/** Framing headers a hop recomputes from the body it writes (never copied across). */
export const FRAMING: ReadonlySet<string> = new Set(["content-length", "transfer-encoding"]);

/** Names listed in Connection headers: hop-by-hop for this message too. */
export function connectionTokens(values: Iterable<string>): Set<string> {
  const named = new Set<string>();
  for (const value of values) {
    for (const token of value.split(",")) {
      const t = token.trim().toLowerCase();
      if (t !== "") named.add(t);
    }
  }
  return named;
}

/** Whether a header may cross a hop: not hop-by-hop, not framing, not named by Connection. */
export function isEndToEnd(lowerName: string, named?: ReadonlySet<string>): boolean {
  return !HOP_BY_HOP.has(lowerName) && !FRAMING.has(lowerName) && !(named?.has(lowerName) ?? false);
}

/** Whether a name/value pair is valid HTTP: a bad one fails that one message, never the process. */
export function isValidField(name: string, value: string): boolean {
  return TOKEN.test(name) && FIELD_VALUE.test(value);
}
