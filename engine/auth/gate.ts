/**
 * Pre-authentication at the edge, for apps set to `oidc`. Per request, in this order:
 *
 * - Postern's own paths under the app (`.postern/signin`, `.postern/callback`,
 *   `.postern/signout`, `.postern/jwks.json`).
 * - `Authorization: Bearer` (API and native clients): the access token is verified (issuer,
 *   audience = the app's API identifier, expiry, pinned algorithms, scope or role), never a
 *   redirect; 401 with WWW-Authenticate when it is missing or bad.
 * - The session cookie: an encrypted JWT (JWE, direct A256GCM) under a service-only key that
 *   control rotates (the previous key still opens cookies during the overlap), bound to the
 *   tenant and the app; a cache of opened cookies keeps the hot path off the worker pool.
 * - Policy on every request (assignment, address ranges, MFA, session lifetime).
 * - Otherwise a browser gets a small page that sends it to sign-in with the whole original URL,
 *   fragment included (a fragment never reaches a server, so only the page can carry it).
 *
 * Sign-in is the authorization code flow with PKCE, state and nonce; the transaction (state,
 * nonce, verifier, where to go back) travels in an encrypted cookie of its own, lives 10
 * minutes and is single-use. The way back is a path of the same app only: no open redirect.
 * Crypto (cookie sealing and opening, token signatures) runs on the worker pool.
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";
import type { Dispatcher } from "undici";
import { decodeProtectedHeader, type JWK } from "jose";
import { isPosternError, PosternError, type ErrorCode } from "../errors/catalogue.js";
import type { AuthResult, AuthTask, SessionKey } from "../workers/auth-task.js";
import type { TaskInput, WorkerPool } from "../workers/pool.js";
import type { EdgeApp, Route } from "../edge/routes.js";
import type { SignInReport } from "../../control/contract/feed.js";
import { BoundedMap } from "../limits/bounded.js";
import { fetchJson, Issuer, type IssuerMetadata } from "./issuer.js";
import { denial, type Denial, type Identity } from "./policy.js";
import { type Clock, systemClock } from "../config/clock.js";
import type { SharedState } from "../fleet/shared.js";
import type { Logger } from "pino";

export const RESERVED = ".postern/";

/** What engines get from control for pre-authentication (part of the engine feed). */
export interface AuthConfig {
  /** The built-in IdP's issuer URL (its discovery document is under it). */
  readonly builtInIssuer: string;
  /** Session cookie keys, newest first; cookies are sealed with the first, opened with any. */
  readonly sessionKeys: readonly SessionKey[];
  /** Private key (JWK, ES256) for identity assertions towards backends. */
  readonly assertionKey: JWK & { kid: string };
}

/** The per-app OIDC settings (control/apps.ts `oidc`). */
export interface AuthRequest {
  readonly requestId: string;
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly headers: readonly (readonly [string, string])[];
  readonly clientAddress: string;
  readonly scheme: "http" | "https";
}

/** Headers the gate sets towards the backend, and the client copies it drops. */
export interface IdentityHeaders {
  readonly drop: ReadonlySet<string>;
  readonly set: readonly (readonly [string, string])[];
}

/** What the gate answers with: a page that is no error (signed out, the hop to sign-in), or an error from the catalogue. */
export type AuthPage = "signed_out" | "to_signin" | AuthErrorCode;
export type AuthErrorCode = Extract<ErrorCode, "POSTERN_ACCESS_DENIED" | "POSTERN_SIGNIN_FAILED" | "POSTERN_AUTH_UNAVAILABLE" | "POSTERN_POOL_FULL">;

export type Verdict =
  | { readonly kind: "pass"; readonly identity: Identity; readonly headers: IdentityHeaders }
  | { readonly kind: "answer"; readonly status: number; readonly headers: readonly (readonly [string, string])[]; readonly body: string; readonly page?: AuthPage };

export interface GateOptions {
  /** The crypto worker pool (made on first use: apps without pre-authentication never start it). */
  readonly pool: () => WorkerPool<AuthTask, AuthResult>;
  /** For fetching from the built-in IdP (trusts control's CA); external issuers use the same. */
  readonly dispatcher?: Dispatcher;
  readonly now?: Clock;
  readonly signIns?: (record: SignInReport) => void;
  /** Pages for each outcome (engine/edge/pages.ts). */
  readonly page: (page: AuthPage, detail: { reason?: Denial | string; transactionId: string; signInUrl?: string }) => { status: number; body: string; headers: readonly [string, string][] };
  /** Revocations and single-use sign-in state shared with the other engines (engine/fleet). */
  readonly shared?: SharedState;
  readonly logger?: Logger;
}

const CLOCK_SKEW_S = 60;
const TRANSACTION_TTL_S = 600;
const MAX_CACHE = 10_000;
const MAX_REVOKED = 100_000;
/** Cookies stay well under browsers' 4 KiB per cookie. */
const MAX_COOKIE_BYTES = 3_800;
const MAX_LISTED = 50;

interface CachedSession {
  readonly identity: Identity;
  readonly sid: string;
  readonly app: string;
  readonly tid: string;
}

/** Per app object (a new one comes with each config snapshot): computed once, not per request. */
const cookieIds = new WeakMap<EdgeApp, string>();
const passthrough = new WeakMap<EdgeApp, IdentityHeaders>();

function cookieId(app: EdgeApp): string {
  let id = cookieIds.get(app);
  if (id === undefined) cookieIds.set(app, (id = createHash("sha256").update(app.id ?? `${app.tenantId}/${app.name}`).digest("hex").slice(0, 12)));
  return id;
}

function clientIdOf(app: EdgeApp): string {
  return app.oidc.clientId ?? `postern-app-${app.id ?? app.name}`;
}

/**
 * How the app authenticates at the token endpoint: not at all as a public client (PKCE alone);
 * with its secret as a confidential one, in the Authorization header (client_secret_basic,
 * RFC 6749 2.3.1) unless the issuer takes it only in the form (client_secret_post, then added
 * to `form`). Returns the headers to send.
 */
function clientAuthentication(app: EdgeApp, meta: IssuerMetadata, form: URLSearchParams): Record<string, string> {
  const secret = app.oidcClientSecret;
  if (secret === undefined) return {};
  const methods = meta.token_endpoint_auth_methods_supported;
  if (methods !== undefined && !methods.includes("client_secret_basic") && methods.includes("client_secret_post")) {
    form.set("client_secret", secret);
    return {};
  }
  // Both halves form-encoded before joining, as RFC 6749 asks (a ":" in the id must not split it).
  const encode = (s: string) => new URLSearchParams([["", s]]).toString().slice(1);
  return { authorization: `Basic ${Buffer.from(`${encode(clientIdOf(app))}:${encode(secret)}`).toString("base64")}` };
}

function readCookie(headers: readonly (readonly [string, string])[], name: string): string | undefined {
  for (const [k, v] of headers) {
    if (k !== "cookie") continue;
    for (const part of v.split(";")) {
      const at = part.indexOf("=");
      if (at > 0 && part.slice(0, at).trim() === name) return part.slice(at + 1).trim();
    }
  }
  return undefined;
}

function header(headers: readonly (readonly [string, string])[], name: string): string | undefined {
  for (const [k, v] of headers) if (k === name) return v;
  return undefined;
}

function strings(value: unknown): string[] {
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === "string");
  return typeof value === "string" && value !== "" ? value.split(" ") : [];
}

/**
 * The way back after sign-in: a path of this app, nothing else. Refuses anything a browser
 * could read as another origin: "//host", "/\\host", control characters or spaces anywhere
 * (browsers drop tabs and newlines, so "/\t/host" would become "//host"), and schemes.
 */
export function safeReturn(value: string | null, route: Route): string | undefined {
  if (value === null || value === "" || value.length > 4096) return undefined;
  if (!value.startsWith(route.prefix) || value.startsWith("//") || /[\\\x00-\x20\x7f]/.test(value)) return undefined;
  let url: URL;
  try {
    url = new URL(value, route.external.origin);
  } catch {
    return undefined;
  }
  if (url.origin !== route.external.origin || !url.pathname.startsWith(route.prefix)) return undefined;
  return value;
}

export class AuthGate {
  #config: AuthConfig | undefined;
  readonly #issuers = new Map<string, Issuer>();
  readonly #sessions = new BoundedMap<string, CachedSession>(MAX_CACHE);
  readonly #bearers = new BoundedMap<string, { identity: Identity; app: string } | { error: string; until: number }>(MAX_CACHE);
  readonly #assertions = new BoundedMap<string, { token: string; until: number }>(MAX_CACHE);
  readonly #revoked = new BoundedMap<string, number>(MAX_REVOKED);
  readonly #usedStates = new BoundedMap<string, number>(MAX_CACHE);
  /** Cookies signed out of (whether or not this engine had opened them): never accepted again here. */
  readonly #revokedCookies = new BoundedMap<string, number>(MAX_REVOKED);
  readonly #now: Clock;

  /** Sign-outs the shared store did not take (it was unreachable): published once it is back. */
  readonly #unpublished = new BoundedMap<string, number>(MAX_CACHE);

  constructor(private readonly options: GateOptions) {
    this.#now = options.now ?? systemClock;
    options.shared?.onRevoked((sid, exp) => this.#revoked.set(sid, exp));
    options.shared?.onReconnect(() => this.#publishPending());
  }

  /** Sign-outs made while the shared store was away, published now that it answers again. */
  #publishPending(): void {
    const shared = this.options.shared;
    if (!shared?.available || this.#unpublished.size === 0) return;
    for (const [sid, exp] of [...this.#unpublished.entries()]) {
      this.#unpublished.delete(sid);
      shared.revoke(sid, exp).catch(() => this.#unpublished.set(sid, exp));
    }
  }

  apply(config: AuthConfig | undefined): void {
    this.#config = config;
  }

  /** The issuer an app signs in with (built-in unless it names another). */
  issuerFor(app: EdgeApp): Issuer | undefined {
    // Without a built-in IdP (control trusts an external one), an app must name its issuer.
    const builtIn = this.#config?.builtInIssuer ? `${this.#config.builtInIssuer}/.well-known/openid-configuration` : undefined;
    const discovery = app.oidc.discoveryUrl ?? builtIn;
    if (discovery === undefined) return undefined;
    let issuer = this.#issuers.get(discovery);
    if (!issuer) {
      issuer = new Issuer(discovery, this.options.dispatcher, this.#now);
      this.#issuers.set(discovery, issuer);
    }
    return issuer;
  }

  #nowS(): number {
    return Math.floor(this.#now() / 1000);
  }

  #cookieName(route: Route): string {
    return secureCookie(route) && route.prefix === "/" ? `__Host-postern_s_${cookieId(route.app)}` : `postern_s_${cookieId(route.app)}`;
  }

  #txCookieName(route: Route): string {
    return `postern_t_${cookieId(route.app)}`;
  }

  /** Cookie attributes from the app's settings (`override` for the transaction cookie). */
  #cookieAttributes(route: Route, path: string, maxAgeS: number | undefined, override: Partial<EdgeApp["cookie"]> = {}): string {
    const c = { ...route.app.cookie, ...override };
    const secure = secureCookie(route);
    // SameSite=None needs Secure, which a plain-http origin cannot set: Lax there.
    const sameSite = c.sameSite === "none" && secure ? "None" : c.sameSite === "strict" ? "Strict" : "Lax";
    return `Path=${path}${maxAgeS !== undefined ? `; Max-Age=${maxAgeS}` : ""}${c.httpOnly ? "; HttpOnly" : ""}${secure ? "; Secure" : ""}; SameSite=${sameSite}`;
  }

  #answer(page: AuthPage, status: number | undefined, detail: { reason?: Denial | string; transactionId: string; signInUrl?: string }, headers: [string, string][] = []): Verdict {
    const p = this.options.page(page, detail);
    return { kind: "answer", status: status ?? p.status, headers: [...p.headers, ...headers], body: p.body, page };
  }

  #signInUrl(route: Route, back: string): string {
    return `${route.prefix}${RESERVED}signin?return=${encodeURIComponent(back)}`;
  }

  /** Decides what happens to `request` on an oidc app; synchronous when everything it needs is cached. */
  check(request: AuthRequest, route: Route): Verdict | Promise<Verdict> {
    const sub = request.path.startsWith(route.prefix) ? request.path.slice(route.prefix.length) : "";
    if (sub.startsWith(RESERVED)) return this.#reserved(sub.slice(RESERVED.length), request, route);
    const authorization = header(request.headers, "authorization");
    if (authorization !== undefined && /^bearer\s/i.test(authorization)) return this.#bearer(authorization.slice(7).trim(), request, route);
    const cookie = readCookie(request.headers, this.#cookieName(route));
    if (cookie !== undefined) {
      if (this.#revokedCookies.has(cookie)) return this.#notSignedIn(request, route, true);
      const cached = this.#sessions.get(cookie);
      if (cached) return this.#admitSession(cached, request, route);
      return this.#openSession(cookie, request, route);
    }
    return this.#notSignedIn(request, route, false);
  }

  #unauthorized(route: Route, request: AuthRequest, why: "missing" | "invalid" | "insufficient_scope", description?: string): Verdict {
    const error = why === "missing" ? "" : `, error="${why === "invalid" ? "invalid_token" : "insufficient_scope"}"${description ? `, error_description="${description.replace(/["\\]/g, "")}"` : ""}`;
    const status = why === "insufficient_scope" ? 403 : 401;
    return {
      kind: "answer", status,
      headers: [["www-authenticate", `Bearer realm="${route.external.origin}${route.prefix}"${error}`], ["content-type", "application/json"], ["cache-control", "no-store"]],
      body: JSON.stringify({ error: why === "missing" ? "unauthorized" : why === "invalid" ? "invalid_token" : "insufficient_scope", message: description ?? "sign in or send Authorization: Bearer <access token>", requestId: request.requestId }),
    };
  }

  async #run(task: TaskInput<AuthTask>): Promise<AuthResult> {
    const pool = this.options.pool();
    if (pool.saturated) throw new PosternError("POSTERN_AUTH_UNAVAILABLE", "the token validation queue is full");
    return pool.run(task);
  }

  #identity(payload: Record<string, unknown>, app: EdgeApp): Identity {
    const claims = app.oidc.claims;
    const authTime = typeof payload.auth_time === "number" ? payload.auth_time : typeof payload.iat === "number" ? payload.iat : this.#nowS();
    return {
      sub: String(payload.oid ?? payload.sub ?? ""),
      username: String(payload[claims.username] ?? payload.preferred_username ?? payload.upn ?? payload.email ?? payload.sub ?? ""),
      groups: strings(payload[claims.groups]),
      roles: strings(payload[claims.roles]),
      amr: strings(payload[claims.amr]),
      ...(typeof payload.email === "string" ? { email: payload.email } : {}),
      ...(typeof payload.name === "string" ? { name: payload.name } : {}),
      authTime,
      exp: typeof payload.exp === "number" ? payload.exp : this.#nowS(),
    };
  }

  // --- bearer tokens ---

  #bearer(token: string, request: AuthRequest, route: Route): Verdict | Promise<Verdict> {
    const cached = this.#bearers.get(token);
    if (cached) {
      if ("error" in cached) {
        if (cached.until > this.#now()) return this.#unauthorized(route, request, "invalid", cached.error);
      } else if (cached.app === route.app.name + route.app.tenantId) {
        return this.#admitBearer(cached.identity, request, route);
      }
    }
    return this.#verifyBearer(token, request, route);
  }

  async #verifyBearer(token: string, request: AuthRequest, route: Route): Promise<Verdict> {
    const app = route.app;
    const issuer = this.issuerFor(app);
    if (!issuer) return this.#answer("POSTERN_AUTH_UNAVAILABLE", 503, { transactionId: request.requestId });
    let kid: string | undefined;
    try {
      const h = decodeProtectedHeader(token);
      kid = typeof h.kid === "string" ? h.kid : undefined;
    } catch {
      return this.#unauthorized(route, request, "invalid", "the token is malformed");
    }
    try {
      const meta = await issuer.metadata();
      const jwks = await issuer.keys(kid);
      const audience = app.oidc.apiAudience ?? app.externalUrl;
      const result = await this.#run({ op: "verify", token, jwks, issuer: meta.issuer, audience, nowS: this.#nowS(), skewS: CLOCK_SKEW_S });
      if (!result.ok) {
        this.#bearers.set(token, { error: result.reason, until: this.#now() + 10_000 });
        return this.#unauthorized(route, request, "invalid", result.reason);
      }
      const identity = this.#identity(result.payload, app);
      const { apiScopes, apiRoles } = app.oidc;
      if (apiScopes.length > 0 || apiRoles.length > 0) {
        const scopes = [...strings(result.payload.scp), ...strings(result.payload.scope)];
        if (!apiScopes.some((s) => scopes.includes(s)) && !apiRoles.some((r) => identity.roles.includes(r))) {
          return this.#unauthorized(route, request, "insufficient_scope", `the token needs one of the scopes ${apiScopes.join(", ") || "-"} or roles ${apiRoles.join(", ") || "-"}`);
        }
      }
      this.#bearers.set(token, { identity, app: app.name + app.tenantId });
      return await this.#admitBearer(identity, request, route);
    } catch (err) {
      return this.#answer(unavailable(err), 503, { transactionId: request.requestId, reason: (err as Error).message });
    }
  }

  #admitBearer(identity: Identity, request: AuthRequest, route: Route): Verdict | Promise<Verdict> {
    if (identity.exp <= this.#nowS()) return this.#unauthorized(route, request, "invalid", "the token has expired");
    const why = denial(identity, route.app, request.clientAddress, this.#nowS());
    if (why) return this.#answer("POSTERN_ACCESS_DENIED", 403, { reason: why, transactionId: request.requestId });
    return this.#pass(identity, `bearer:${identity.sub}:${identity.exp}`, route);
  }

  // --- session cookies ---

  async #openSession(cookie: string, request: AuthRequest, route: Route): Promise<Verdict> {
    const keys = this.#config?.sessionKeys ?? [];
    let result: AuthResult;
    try {
      result = await this.#run({ op: "open", token: cookie, keys });
    } catch (err) {
      return this.#answer(unavailable(err), 503, { transactionId: request.requestId });
    }
    if (!result.ok) return this.#notSignedIn(request, route, true); // tampered, foreign or from a retired key: as if absent
    const p = result.payload;
    const shared = this.options.shared;
    if (shared && typeof p.sid === "string") {
      // A session this engine has not seen may have been signed out on another: ask, and refuse
      // it if nobody can answer (fail closed).
      try {
        if (await shared.isRevoked(p.sid)) {
          this.#revoked.set(p.sid, Number(p.exp ?? 0));
          return this.#notSignedIn(request, route, true);
        }
      } catch {
        return this.#answer("POSTERN_AUTH_UNAVAILABLE", 503, { transactionId: request.requestId, reason: "sessions cannot be checked against sign-outs right now" });
      }
    }
    const session: CachedSession = {
      sid: String(p.sid ?? ""), app: String(p.app ?? ""), tid: String(p.tid ?? ""),
      identity: {
        sub: String(p.sub ?? ""), username: String(p.usr ?? ""), groups: strings(p.grp), roles: strings(p.rol), amr: strings(p.amr),
        ...(typeof p.eml === "string" ? { email: p.eml } : {}), ...(typeof p.nam === "string" ? { name: p.nam } : {}),
        authTime: Number(p.at ?? 0), exp: Number(p.exp ?? 0),
      },
    };
    if (session.identity.exp > this.#nowS()) this.#sessions.set(cookie, session);
    return this.#admitSession(session, request, route);
  }

  /**
   * No valid session: a page navigation goes to sign-in (dropping a worthless cookie on the
   * way); anything else is an API client and gets a 401, never a redirect.
   */
  #notSignedIn(request: AuthRequest, route: Route, clearCookie: boolean): Verdict {
    if (!wantsPage(request)) return this.#unauthorized(route, request, "missing");
    return this.#answer("to_signin", 200, { transactionId: request.requestId, signInUrl: this.#signInUrl(route, requested(request)) },
      clearCookie ? [["set-cookie", `${this.#cookieName(route)}=; ${this.#cookieAttributes(route, route.prefix, 0)}`]] : []);
  }

  #admitSession(session: CachedSession, request: AuthRequest, route: Route): Verdict | Promise<Verdict> {
    const app = route.app;
    // Bound to this tenant and this app: a cookie of app A is worthless at app B.
    if (session.app !== appKey(app) || session.tid !== app.tenantId || this.#revoked.has(session.sid)) return this.#notSignedIn(request, route, true);
    const why = denial(session.identity, app, request.clientAddress, this.#nowS());
    if (why) {
      return this.#answer("POSTERN_ACCESS_DENIED", 403, { reason: why, transactionId: request.requestId, signInUrl: this.#signInUrl(route, requested(request)) });
    }
    return this.#pass(session.identity, session.sid, route);
  }

  /** Identity headers towards the backend: SSO headers, and the signed assertion if the app wants it. */
  #pass(identity: Identity, cacheKey: string, route: Route): Verdict | Promise<Verdict> {
    const app = route.app;
    const mapping = app.ssoHeaders;
    const set: [string, string][] = [];
    for (const [name, claim] of Object.entries(mapping)) {
      const value = claimValue(identity, claim);
      if (value !== undefined) set.push([name.toLowerCase(), value]);
    }
    const { drop } = noIdentity(app);
    if (!app.oidc.identityAssertion || !this.#config) return { kind: "pass", identity, headers: { drop, set } };
    const key = `${cacheKey}|${app.tenantId}/${app.name}`;
    const cached = this.#assertions.get(key);
    if (cached && cached.until > this.#now()) return { kind: "pass", identity, headers: { drop, set: [...set, ["x-postern-identity", cached.token]] } };
    return this.#sign(identity, route, key).then((token) => ({ kind: "pass" as const, identity, headers: { drop, set: [...set, ["x-postern-identity", token]] } }));
  }

  async #sign(identity: Identity, route: Route, key: string): Promise<string> {
    const now = this.#nowS();
    const result = await this.#run({
      op: "sign", key: this.#config!.assertionKey, payload: {
        iss: "postern", aud: route.external.origin + route.prefix, sub: identity.sub, preferred_username: identity.username, groups: identity.groups,
        roles: identity.roles, amr: identity.amr, iat: now, exp: now + 60, jti: randomUUID(),
      },
    });
    if (!result.ok || !result.token) throw new PosternError("POSTERN_AUTH_UNAVAILABLE", "the identity assertion could not be signed");
    this.#assertions.set(key, { token: result.token, until: this.#now() + 30_000 });
    return result.token;
  }

  // --- Postern's own paths ---

  #reserved(what: string, request: AuthRequest, route: Route): Verdict | Promise<Verdict> {
    const params = new URLSearchParams(request.query);
    if (what === "signin" && request.method === "GET") return this.#signIn(params.get("return"), request, route);
    if (what === "callback" && request.method === "GET") return this.#callback(params, request, route);
    if (what === "signout") return this.#signOut(request, route);
    if (what === "jwks.json" && request.method === "GET") {
      const key = this.#config?.assertionKey;
      const pub = key ? (({ d: _d, ...rest }) => rest)(key as JWK & { d?: string }) : undefined;
      return { kind: "answer", status: 200, headers: [["content-type", "application/json"], ["cache-control", "max-age=300"]], body: JSON.stringify({ keys: pub ? [{ ...pub, use: "sig", alg: "ES256" }] : [] }) };
    }
    return { kind: "answer", status: 404, headers: [["content-type", "text/plain"]], body: "Not found\n" };
  }

  async #signIn(back: string | null, request: AuthRequest, route: Route): Promise<Verdict> {
    const target = safeReturn(back, route) ?? route.prefix;
    const issuer = this.issuerFor(route.app);
    if (!issuer || !this.#config) return this.#answer("POSTERN_AUTH_UNAVAILABLE", 503, { transactionId: request.requestId });
    try {
      const meta = await issuer.metadata();
      const state = randomBytes(16).toString("base64url");
      const nonce = randomBytes(16).toString("base64url");
      const verifier = randomBytes(32).toString("base64url");
      const challenge = createHash("sha256").update(verifier).digest("base64url");
      const exp = this.#nowS() + TRANSACTION_TTL_S;
      const sealed = await this.#run({ op: "seal", key: this.#config.sessionKeys[0]!, payload: { typ: "tx", state, nonce, verifier, back: target, app: appKey(route.app), exp } });
      if (!sealed.ok || !sealed.token) throw new PosternError("POSTERN_AUTH_UNAVAILABLE", "the sign-in transaction could not be sealed");
      const oidc = route.app.oidc;
      const authorize = new URL(meta.authorization_endpoint);
      authorize.search = new URLSearchParams({
        response_type: "code", client_id: clientIdOf(route.app), redirect_uri: this.#redirectUri(route),
        scope: oidc.discoveryUrl ? "openid profile email" : "openid profile email groups roles", state, nonce, code_challenge: challenge, code_challenge_method: "S256",
      }).toString();
      return {
        kind: "answer", status: 302,
        headers: [["location", authorize.href], ["cache-control", "no-store"],
          ["set-cookie", `${this.#txCookieName(route)}=${sealed.token}; ${this.#cookieAttributes(route, `${route.prefix}${RESERVED}`, TRANSACTION_TTL_S, { httpOnly: true, sameSite: "lax" })}`]],
        body: "",
      };
    } catch (err) {
      return this.#answer(unavailable(err), 503, { transactionId: request.requestId, reason: (err as Error).message });
    }
  }

  #redirectUri(route: Route): string {
    return `${route.external.origin}${route.prefix}${RESERVED}callback`;
  }

  async #callback(params: URLSearchParams, request: AuthRequest, route: Route): Promise<Verdict> {
    const app = route.app;
    const fail = (reason: string, username = ""): Verdict => {
      this.#record(route, request, username, "failure", reason);
      return this.#answer("POSTERN_SIGNIN_FAILED", 400, { reason, transactionId: request.requestId, signInUrl: this.#signInUrl(route, route.prefix) });
    };
    const txCookie = readCookie(request.headers, this.#txCookieName(route));
    const clearTx: [string, string] = ["set-cookie", `${this.#txCookieName(route)}=; ${this.#cookieAttributes(route, `${route.prefix}${RESERVED}`, 0)}`];
    if (params.get("error")) return fail(`the identity provider refused: ${params.get("error_description") ?? params.get("error")}`);
    const code = params.get("code");
    const state = params.get("state");
    if (!txCookie || !code || !state) return fail("the sign-in was not started here, or took longer than 10 minutes");
    const issuer = this.issuerFor(app);
    if (!issuer || !this.#config) return this.#answer("POSTERN_AUTH_UNAVAILABLE", 503, { transactionId: request.requestId });
    try {
      const opened = await this.#run({ op: "open", token: txCookie, keys: this.#config.sessionKeys });
      const tx = opened.ok ? opened.payload : undefined;
      if (!tx || tx.typ !== "tx" || tx.state !== state || tx.app !== appKey(app) || Number(tx.exp) < this.#nowS()) return fail("the sign-in state does not match (stale, replayed or forged)");
      if (this.#usedStates.has(state)) return fail("the sign-in state was already used");
      this.#usedStates.set(state, Number(tx.exp));
      if (this.options.shared) {
        // Single use across engines: the callback may be replayed to another one.
        let first: boolean;
        try {
          first = await this.options.shared.useOnce(`signin:${state}`, (Number(tx.exp) - this.#nowS() + CLOCK_SKEW_S) * 1000);
        } catch {
          return this.#answer("POSTERN_AUTH_UNAVAILABLE", 503, { transactionId: request.requestId, reason: "sign-in cannot be completed right now; try again in a moment" });
        }
        if (!first) return fail("the sign-in state was already used");
      }
      const meta = await issuer.metadata();
      const form = new URLSearchParams({ grant_type: "authorization_code", code, redirect_uri: this.#redirectUri(route), client_id: clientIdOf(app), code_verifier: String(tx.verifier) });
      const exchange = await fetchJson(meta.token_endpoint, this.options.dispatcher, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", ...clientAuthentication(app, meta, form) },
        body: form.toString(),
      });
      const idToken = (exchange.body as { id_token?: unknown }).id_token;
      if (exchange.status !== 200 || typeof idToken !== "string") return fail(`the identity provider did not issue an ID token (HTTP ${exchange.status})`);
      let kid: string | undefined;
      try {
        const h = decodeProtectedHeader(idToken);
        kid = typeof h.kid === "string" ? h.kid : undefined;
      } catch {
        return fail("the ID token is malformed");
      }
      const verified = await this.#run({ op: "verify", token: idToken, jwks: await issuer.keys(kid), issuer: meta.issuer, audience: clientIdOf(app), nowS: this.#nowS(), skewS: CLOCK_SKEW_S });
      if (!verified.ok) return fail(verified.reason);
      if (verified.payload.nonce !== tx.nonce) return fail("the ID token's nonce does not match this sign-in");
      const identity = this.#identity(verified.payload, app);
      const why = denial(identity, app, request.clientAddress, this.#nowS());
      if (why) {
        this.#record(route, request, identity.username, "failure", why);
        return this.#answer("POSTERN_ACCESS_DENIED", 403, { reason: why, transactionId: request.requestId, signInUrl: this.#signInUrl(route, route.prefix) }, [clearTx]);
      }
      const cookie = await this.#sealSession(identity, app);
      this.#record(route, request, identity.username, "success", identity.amr.join(" ") || "signed in");
      const persistent = app.cookie.persistent ? Math.max(0, identity.exp - this.#nowS()) : undefined;
      return {
        kind: "answer", status: 302,
        headers: [["location", String(tx.back)], ["cache-control", "no-store"], clearTx, ["set-cookie", `${this.#cookieName(route)}=${cookie}; ${this.#cookieAttributes(route, route.prefix, persistent)}`]],
        body: "",
      };
    } catch (err) {
      this.#record(route, request, "", "failure", (err as Error).message);
      return this.#answer(unavailable(err), 503, { transactionId: request.requestId, reason: (err as Error).message });
    }
  }

  async #sealSession(identity: Identity, app: EdgeApp): Promise<string> {
    // Only the groups this app's assignments name: a long group list never goes into the cookie.
    const wanted = new Set(app.assignments.groups.map((g) => g.toLowerCase()));
    const payload: Record<string, unknown> = {
      v: 1, sid: randomUUID(), sub: identity.sub, usr: identity.username, grp: identity.groups.filter((g) => wanted.has(g.toLowerCase())).slice(0, MAX_LISTED),
      rol: identity.roles.slice(0, MAX_LISTED), amr: identity.amr.slice(0, 8), tid: app.tenantId, app: appKey(app), at: identity.authTime, exp: identity.exp,
      ...(identity.email ? { eml: identity.email } : {}), ...(identity.name ? { nam: identity.name } : {}),
    };
    let sealed = await this.#run({ op: "seal", key: this.#config!.sessionKeys[0]!, payload });
    if (sealed.ok && sealed.token && sealed.token.length > MAX_COOKIE_BYTES) {
      sealed = await this.#run({ op: "seal", key: this.#config!.sessionKeys[0]!, payload: { ...payload, rol: [], nam: undefined, eml: undefined } });
    }
    if (!sealed.ok || !sealed.token) throw new PosternError("POSTERN_AUTH_UNAVAILABLE", "the session could not be sealed");
    return sealed.token;
  }

  async #signOut(request: AuthRequest, route: Route): Promise<Verdict> {
    const cookie = readCookie(request.headers, this.#cookieName(route));
    if (cookie) {
      const cached = this.#sessions.get(cookie);
      let revoke = cached ? { sid: cached.sid, exp: cached.identity.exp } : undefined;
      if (!revoke && this.options.shared && this.#config) {
        // Not opened here: open it to learn the session id every engine must refuse.
        const opened = await this.#run({ op: "open", token: cookie, keys: this.#config.sessionKeys }).catch(() => undefined);
        if (opened?.ok && typeof opened.payload.sid === "string") revoke = { sid: opened.payload.sid, exp: Number(opened.payload.exp ?? 0) };
      }
      // Whatever the cookie is, it is never accepted again on this engine.
      if (revoke) {
        this.#revoked.set(revoke.sid, revoke.exp);
        this.#shareRevocation(revoke.sid, revoke.exp);
      }
      this.#sessions.delete(cookie);
      this.#revokedCookies.set(cookie, this.#now());
    }
    return this.#answer("signed_out", 200, { transactionId: request.requestId, signInUrl: this.#signInUrl(route, route.prefix) },
      [["set-cookie", `${this.#cookieName(route)}=; ${this.#cookieAttributes(route, route.prefix, 0)}`]]);
  }

  /** Tells every engine; if the shared store is away, the cookie is still cleared here and the revocation waits for it. */
  #shareRevocation(sid: string, exp: number): void {
    const shared = this.options.shared;
    if (!shared) return;
    shared.revoke(sid, exp).catch((err: Error) => {
      this.#unpublished.set(sid, exp);
      this.options.logger?.warn({ err: err.message }, "sign-out not yet published to the other engines: the shared store is unreachable; retried when it is back");
    });
  }

  #record(route: Route, request: AuthRequest, username: string, outcome: "success" | "failure", reason: string): void {
    this.options.signIns?.({
      tenantId: route.app.tenantId, app: route.app.name, username, outcome, reason, clientIp: request.clientAddress, transactionId: request.requestId,
      at: new Date(this.#now()).toISOString(),
    });
  }
}

/** A browser navigating to a page, rather than a script or an API client. */
function wantsPage(request: AuthRequest): boolean {
  if (request.method !== "GET" || header(request.headers, "authorization") !== undefined) return false;
  return header(request.headers, "sec-fetch-mode") === "navigate" || (header(request.headers, "accept") ?? "").includes("text/html");
}

/** The path and query the user asked for. */
function requested(request: AuthRequest): string {
  return request.query ? `${request.path}?${request.query}` : request.path;
}

function appKey(app: EdgeApp): string {
  return app.id ?? app.name;
}

/** Why a sign-in check could not run: the crypto pool is full, or the IdP is unusable. */
function unavailable(err: unknown): AuthErrorCode {
  return isPosternError(err, "POSTERN_POOL_FULL") ? "POSTERN_POOL_FULL" : "POSTERN_AUTH_UNAVAILABLE";
}

/**
 * No identity to set, only client copies of the app's SSO headers to drop (they never reach
 * the backend): the headers of apps without pre-authentication, made once per app.
 */
/**
 * Whether the session cookie is Secure (and may take the __Host- prefix): the app asks for it
 * and its external URL is https. A browser drops Secure cookies set over plain http.
 */
function secureCookie(route: Route): boolean {
  return route.app.cookie.secure && route.external.protocol === "https:";
}

export function noIdentity(app: EdgeApp): IdentityHeaders {
  let headers = passthrough.get(app);
  if (!headers) passthrough.set(app, (headers = { drop: new Set(Object.keys(app.ssoHeaders ?? {}).map((n) => n.toLowerCase())), set: [] }));
  return headers;
}

function claimValue(identity: Identity, claim: string): string | undefined {
  switch (claim) {
    case "sub": case "oid": return identity.sub;
    case "preferred_username": case "username": case "upn": return identity.username;
    case "groups": return identity.groups.join(",");
    case "roles": return identity.roles.join(",");
    case "amr": return identity.amr.join(",");
    case "email": return identity.email;
    case "name": return identity.name;
    default: return undefined;
  }
}
