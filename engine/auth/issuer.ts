/**
 * An OpenID Connect issuer as the engine sees it: its discovery document (cached an hour) and
 * its signing keys (cached; fetched again for a key id it does not know, at most once per
 * 30 s, so a flood of tokens with made-up key ids costs one fetch, not one per token). Every
 * fetch has a timeout and a size limit.
 */
import { request, type Dispatcher } from "undici";
import type { JWK } from "jose";
import { PosternError } from "../errors/catalogue.js";
import { type Clock, systemClock } from "../config/clock.js";

export interface IssuerMetadata {
  readonly issuer: string;
  readonly authorization_endpoint: string;
  readonly token_endpoint: string;
  /** How a confidential client may authenticate at the token endpoint; absent: client_secret_basic (OpenID Connect Discovery 1.0). */
  readonly token_endpoint_auth_methods_supported?: readonly string[];
  readonly jwks_uri: string;
  readonly end_session_endpoint?: string;
}

const METADATA_TTL_MS = 3_600_000;
/** Shortest time between two key fetches for an unknown key id. */
export const JWKS_REFRESH_MS = 30_000;
const FETCH_TIMEOUT_MS = 5_000;
const MAX_DOCUMENT_BYTES = 256 * 1024;

export async function fetchJson(url: string, dispatcher: Dispatcher | undefined, init: { method?: "GET" | "POST"; body?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; body: unknown }> {
  const res = await request(url, {
    method: init.method ?? "GET",
    headers: { accept: "application/json", ...init.headers },
    ...(init.body !== undefined ? { body: init.body } : {}),
    ...(dispatcher ? { dispatcher } : {}),
    headersTimeout: FETCH_TIMEOUT_MS,
    bodyTimeout: FETCH_TIMEOUT_MS,
    signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
  });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += (chunk as Buffer).length;
    if (size > MAX_DOCUMENT_BYTES) throw new PosternError("POSTERN_AUTH_UNAVAILABLE", `${url}: answer larger than ${MAX_DOCUMENT_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  try {
    return { status: res.statusCode, body: JSON.parse(text) as unknown };
  } catch {
    throw new PosternError("POSTERN_AUTH_UNAVAILABLE", `${url}: HTTP ${res.statusCode}, not JSON`);
  }
}

export class Issuer {
  #metadata: { value: IssuerMetadata; at: number } | undefined;
  #keys: { value: JWK[]; at: number } | undefined;
  #lastKeyFetch = -Infinity;
  /** How many times the keys were fetched (tests count them under a flood). */
  keyFetches = 0;

  constructor(readonly discoveryUrl: string, private readonly dispatcher: Dispatcher | undefined, private readonly now: Clock = systemClock) {}

  async metadata(): Promise<IssuerMetadata> {
    if (this.#metadata && this.now() - this.#metadata.at < METADATA_TTL_MS) return this.#metadata.value;
    let doc: Record<string, unknown>;
    try {
      const res = await fetchJson(this.discoveryUrl, this.dispatcher);
      if (res.status !== 200) throw new PosternError("POSTERN_AUTH_UNAVAILABLE", `HTTP ${res.status}`);
      doc = res.body as Record<string, unknown>;
    } catch (err) {
      throw new PosternError("POSTERN_AUTH_UNAVAILABLE", `the identity provider's discovery document ${this.discoveryUrl} could not be read: ${(err as Error).message}`, { cause: err });
    }
    const text = (field: string): string => {
      const v = doc[field];
      if (typeof v !== "string") throw new PosternError("POSTERN_AUTH_UNAVAILABLE", `${this.discoveryUrl}: the discovery document has no ${field}`);
      return v;
    };
    const methods = doc.token_endpoint_auth_methods_supported;
    const value: IssuerMetadata = {
      issuer: text("issuer"),
      authorization_endpoint: text("authorization_endpoint"),
      token_endpoint: text("token_endpoint"),
      jwks_uri: text("jwks_uri"),
      ...(Array.isArray(methods) ? { token_endpoint_auth_methods_supported: methods.filter((m): m is string => typeof m === "string") } : {}),
      ...(typeof doc.end_session_endpoint === "string" ? { end_session_endpoint: doc.end_session_endpoint } : {}),
    };
    this.#metadata = { value, at: this.now() };
    return value;
  }

  /**
   * The issuer's keys; `kid` names one the caller needs: when it is missing from the cached
   * set, the set is fetched again unless that happened within the last 30 s.
   */
  async keys(kid?: string): Promise<JWK[]> {
    const cached = this.#keys;
    const known = cached !== undefined && (kid === undefined || cached.value.some((k) => k.kid === kid));
    if (cached && (known || this.now() - this.#lastKeyFetch < JWKS_REFRESH_MS) && this.now() - cached.at < METADATA_TTL_MS) return cached.value;
    if (!cached || this.now() - this.#lastKeyFetch >= JWKS_REFRESH_MS) {
      this.#lastKeyFetch = this.now();
      this.keyFetches++;
      const { jwks_uri } = await this.metadata();
      try {
        const res = await fetchJson(jwks_uri, this.dispatcher);
        const keys = (res.body as { keys?: unknown }).keys;
        if (res.status !== 200 || !Array.isArray(keys)) throw new PosternError("POSTERN_AUTH_UNAVAILABLE", `HTTP ${res.status}, no keys`);
        this.#keys = { value: keys as JWK[], at: this.now() };
      } catch (err) {
        if (!cached) throw new PosternError("POSTERN_AUTH_UNAVAILABLE", `the identity provider's keys ${jwks_uri} could not be read: ${(err as Error).message}`, { cause: err });
      }
    }
    return this.#keys?.value ?? [];
  }
}
