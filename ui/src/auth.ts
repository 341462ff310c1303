/**
 * Signing in to the console: OpenID Connect authorization code with PKCE (S256) at control's
 * built-in IdP, as a public client. The access token (audience: the control API) lives in
 * sessionStorage, so it ends with the tab; nothing is kept in cookies the API would trust.
 */
export interface ConsoleConfig {
  /** The IdP's issuer (control's public URL + /oidc). */
  readonly issuer: string;
  readonly clientId: string;
  /** Resource indicator of the control API. */
  readonly resource: string;
  /** Where the IdP sends the browser back (registered with the client). */
  readonly redirectUri: string;
}

interface Discovery {
  readonly authorization_endpoint: string;
  readonly token_endpoint: string;
  readonly end_session_endpoint?: string;
}

interface Session {
  readonly accessToken: string;
  readonly idToken: string;
  readonly expiresAt: number;
}

const SESSION = "postern.session";
const PENDING = "postern.signin";

let config: Promise<ConsoleConfig> | undefined;
let discovery: Promise<Discovery> | undefined;

export function consoleConfig(): Promise<ConsoleConfig> {
  config ??= fetch("/ui/config.json").then((r) => {
    if (!r.ok) throw new Error(`the console's settings could not be loaded (HTTP ${r.status})`);
    return r.json() as Promise<ConsoleConfig>;
  });
  return config;
}

async function endpoints(): Promise<Discovery> {
  discovery ??= consoleConfig().then(async (c) => {
    const r = await fetch(`${c.issuer}/.well-known/openid-configuration`);
    if (!r.ok) throw new Error(`the identity provider is not answering (HTTP ${r.status})`);
    return r.json() as Promise<Discovery>;
  });
  return discovery;
}

function base64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function random(bytes = 32): string {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

/** The current access token, or undefined when signed out or expired. */
export function accessToken(): string | undefined {
  const raw = sessionStorage.getItem(SESSION);
  if (!raw) return undefined;
  const session = JSON.parse(raw) as Session;
  if (session.expiresAt <= Date.now() + 30_000) {
    sessionStorage.removeItem(SESSION);
    return undefined;
  }
  return session.accessToken;
}

/** Sends the browser to the IdP; it comes back to /ui/callback, then to `returnTo`. */
export async function signIn(returnTo: string): Promise<void> {
  const [c, d] = await Promise.all([consoleConfig(), endpoints()]);
  const verifier = random();
  const challenge = base64url(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier))));
  const state = random(16);
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, returnTo }));
  const url = new URL(d.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: "code", client_id: c.clientId, redirect_uri: c.redirectUri, scope: "openid profile email groups roles",
    state, code_challenge: challenge, code_challenge_method: "S256", resource: c.resource,
  }).toString();
  location.assign(url.href);
}

/** Finishes a sign-in at /ui/callback; returns where to go next. */
export async function completeSignIn(search: string): Promise<string> {
  const params = new URLSearchParams(search);
  const pending = JSON.parse(sessionStorage.getItem(PENDING) ?? "null") as { verifier: string; state: string; returnTo: string } | null;
  sessionStorage.removeItem(PENDING);
  if (params.get("error")) throw new Error(`the identity provider refused: ${params.get("error_description") ?? params.get("error")}`);
  if (!pending || params.get("state") !== pending.state) throw new Error("this sign-in was not started here, or was already used: start again");
  const [c, d] = await Promise.all([consoleConfig(), endpoints()]);
  const r = await fetch(d.token_endpoint, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code", code: params.get("code") ?? "", redirect_uri: c.redirectUri, client_id: c.clientId,
      code_verifier: pending.verifier, resource: c.resource,
    }).toString(),
  });
  const body = await r.json() as { access_token?: string; id_token?: string; expires_in?: number; error_description?: string; error?: string };
  if (!r.ok || !body.access_token) throw new Error(`sign-in failed: ${body.error_description ?? body.error ?? `HTTP ${r.status}`}`);
  const session: Session = { accessToken: body.access_token, idToken: body.id_token ?? "", expiresAt: Date.now() + (body.expires_in ?? 3600) * 1000 };
  sessionStorage.setItem(SESSION, JSON.stringify(session));
  return pending.returnTo.startsWith("/") && !pending.returnTo.startsWith("//") ? pending.returnTo : "/admin/";
}

/** Forgets the token here and ends the IdP session, coming back to `returnTo`. */
export async function signOut(returnTo: string): Promise<void> {
  const raw = sessionStorage.getItem(SESSION);
  sessionStorage.removeItem(SESSION);
  const [c, d] = await Promise.all([consoleConfig(), endpoints()]);
  if (!d.end_session_endpoint) return location.assign(returnTo);
  const url = new URL(d.end_session_endpoint);
  const idToken = raw ? (JSON.parse(raw) as Session).idToken : "";
  url.search = new URLSearchParams({ client_id: c.clientId, post_logout_redirect_uri: new URL(returnTo, location.origin).href, ...(idToken ? { id_token_hint: idToken } : {}) }).toString();
  location.assign(url.href);
}
