/**
 * What the edge reads from a client's request, over HTTP/1.1 (llhttp, strict) or HTTP/2
 * (nghttp2), after the parser has accepted its framing: the limits Postern counts itself
 * (header count and bytes, target length), one Host, a Transfer-Encoding that is exactly
 * `chunked`, a path that is safe to forward as sent (engine/http/paths.ts), and the client's
 * address (the TCP peer, or the client a trusted proxy in front of the engine names).
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { inRanges } from "../auth/policy.js";
import type { ErrorCode } from "../errors/catalogue.js";
import { isValidField, TOKEN } from "../http/headers.js";
import { canonicalPath } from "../http/paths.js";
import type { EdgeLimits } from "../limits/config.js";

export type EdgeIncoming = IncomingMessage | Http2ServerRequest;

/** A checked request: everything the edge decides on, and what it forwards as sent. */
export interface EdgeRequest {
  readonly requestId: string;
  /** Upper-case method as sent. */
  readonly method: string;
  /** The path exactly as sent (forwarded, after the prefix mapping). */
  readonly rawPath: string;
  /** The canonical path decisions are made on (routing, policy, the gate's own paths). */
  readonly path: string;
  /** The query as sent, without "?"; undefined when the target had no "?". */
  readonly rawQuery: string | undefined;
  /** The query for decisions ("" when none). */
  readonly query: string;
  readonly host: string;
  /** Header names lower-case, in order: for decisions. */
  readonly headers: [string, string][];
  /** The headers as sent (spelling and order), pseudo-headers left out: for forwarding. */
  readonly rawHeaders: readonly string[];
  /** The address decisions use: the peer, or the client a trusted proxy names in X-Forwarded-For. */
  readonly clientAddress: string;
  /** The TCP peer. */
  readonly peerAddress: string;
  readonly scheme: "http" | "https";
  readonly httpVersion: string;
  readonly contentLength: number | undefined;
  /** A body follows (a Content-Length above 0, chunked, or an HTTP/2 stream left open). */
  readonly hasBody: boolean;
  /** performance.now() when the head was read. */
  readonly startedAt: number;
}

const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::\d{1,5})?$/;
const ABSOLUTE_FORM = /^https?:\/\/([^/?#\s]+)([^#\s]*)$/i;

/** The request's checked form, "asterisk" for `OPTIONS *`, or the error to answer with. */
export function readRequest(limits: EdgeLimits, trustedProxies: readonly string[], req: EdgeIncoming, scheme: "http" | "https"): EdgeRequest | "asterisk" | ErrorCode {
  // The stack the request came through decides, never the version it claims: an HTTP/1.1
  // request line may say "HTTP/2.0" (or nothing, HTTP/0.9); only 1.x is valid there.
  const h2 = isHttp2(req);
  if (!h2 && req.httpVersionMajor !== 1) return "POSTERN_BAD_REQUEST";
  const raw = h2 ? withoutPseudo(req.rawHeaders) : req.rawHeaders;
  if (raw.length / 2 > limits.maxHeaderCount) return "POSTERN_HEADERS_TOO_LARGE";
  let bytes = 0;
  const headers: [string, string][] = [];
  let hosts = 0;
  let host = "";
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    // llhttp has checked HTTP/1.1 fields; HTTP/2 fields come from HPACK as any bytes at all.
    if (h2 && !isValidField(raw[i]!, value)) return "POSTERN_BAD_REQUEST";
    bytes += name.length + value.length + 4;
    headers.push([name, value]);
    if (name === "host") {
      hosts++;
      host = value;
    }
  }
  if (bytes > limits.maxHeaderBytes) return "POSTERN_HEADERS_TOO_LARGE";
  const method = req.method ?? "";
  if (!TOKEN.test(method)) return "POSTERN_BAD_REQUEST";
  let target = req.url ?? "";
  if (h2) {
    const authority = req.headers[":authority"];
    if (typeof authority === "string" && authority !== "") {
      if (hosts > 0 && authority.toLowerCase() !== host.toLowerCase()) return "POSTERN_BAD_REQUEST";
      host = authority;
      hosts = 1;
    }
  } else if (!target.startsWith("/")) {
    if (target === "*" && method === "OPTIONS") return "asterisk";
    // Absolute form (RFC 9112 §3.2.2): the target's authority is the host; Host is ignored.
    const m = ABSOLUTE_FORM.exec(target);
    if (!m) return "POSTERN_BAD_REQUEST";
    host = m[1]!;
    hosts = 1;
    target = m[2] === "" ? "/" : m[2]!;
    if (!target.startsWith("/") && !target.startsWith("?")) return "POSTERN_BAD_REQUEST";
    if (target.startsWith("?")) target = `/${target}`;
  }
  if (target.length > limits.maxUrlBytes) return "POSTERN_URI_TOO_LONG";
  if (hosts !== 1 || !HOST.test(host)) return "POSTERN_BAD_REQUEST";
  const te = req.headers["transfer-encoding"];
  if (te !== undefined && (typeof te !== "string" || te.trim().toLowerCase() !== "chunked")) return "POSTERN_BAD_REQUEST";
  // RFC 9112 §6.1: Transfer-Encoding on HTTP/1.0 means faulty framing.
  if (te !== undefined && req.httpVersion === "1.0") return "POSTERN_BAD_REQUEST";
  const q = target.indexOf("?");
  const rawPath = q < 0 ? target : target.slice(0, q);
  const rawQuery = q < 0 ? undefined : target.slice(q + 1);
  const path = canonicalPath(rawPath);
  if (!path.ok) return "POSTERN_BAD_REQUEST";
  const length = req.headers["content-length"];
  const contentLength = typeof length === "string" ? Number(length) : undefined;
  if (contentLength !== undefined && !Number.isSafeInteger(contentLength)) return "POSTERN_BAD_REQUEST";
  const hasBody = h2 ? !req.stream.endAfterHeaders && contentLength !== 0 : (contentLength ?? 0) > 0 || te !== undefined;
  const peerAddress = plainAddress(req.socket?.remoteAddress);
  return {
    requestId: randomUUID(),
    method,
    rawPath,
    path: path.path,
    rawQuery,
    query: rawQuery ?? "",
    host,
    headers,
    rawHeaders: raw,
    clientAddress: trustedProxies.length > 0 && inRanges(peerAddress, trustedProxies) ? forwardedClient(headers, peerAddress, trustedProxies) : peerAddress,
    peerAddress,
    scheme,
    httpVersion: req.httpVersion,
    contentLength,
    hasBody,
    startedAt: performance.now(),
  };
}

/** Whether the request came over HTTP/2 (node:http2's compatibility API). */
export function isHttp2(req: EdgeIncoming): req is Http2ServerRequest {
  return "stream" in req;
}

function withoutPseudo(raw: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.charCodeAt(0) !== 58) out.push(raw[i]!, raw[i + 1]!);
  return out;
}

/** IPv4-mapped IPv6 as IPv4; unknown when the socket is gone. */
export function plainAddress(address: string | undefined): string {
  if (address === undefined) return "unknown";
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}

/**
 * The client a chain of trusted proxies names: X-Forwarded-For read from the right, skipping
 * the trusted hops; the first untrusted entry is the client. Only trusted peers get here.
 */
function forwardedClient(headers: readonly (readonly [string, string])[], peer: string, trusted: readonly string[]): string {
  const chain: string[] = [];
  for (const [name, value] of headers) if (name === "x-forwarded-for") for (const part of value.split(",")) chain.push(part.trim());
  let client = peer;
  for (let i = chain.length - 1; i >= 0; i--) {
    const hop = plainAddress(chain[i]);
    client = hop;
    if (!inRanges(hop, trusted)) break;
  }
  return client === "" ? peer : client;
}
