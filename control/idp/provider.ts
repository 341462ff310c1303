/**
 * The built-in identity provider of the embedded deployment: oidc-provider mounted at
 * `<control>/oidc`, with local users (scrypt passwords, optional TOTP second factor) from the
 * control Store. Tokens carry the standard claims plus `groups`, `roles`, `amr` (`pwd`, and
 * `mfa` + `otp` after a TOTP code) and `tid`. The `postern` CLI signs in with the device flow
 * and gets a JWT access token for the control API. Postern works just as well with any
 * external OIDC issuer; this one is only the default.
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from "jose";
import Provider, { type AdapterPayload, type Configuration } from "oidc-provider";
import * as OTPAuth from "otpauth";
import { loadOrCreateSecret, type Sealer } from "../secrets.js";
import type { Store, User } from "../store/types.js";
import { storeAdapter } from "./adapter.js";
import { CLI_CLIENT_ID, CONSOLE_CALLBACK_PATH, CONSOLE_CLIENT_ID, CONTROL_API_AUDIENCE } from "./constants.js";
import { loginPage, page } from "./pages.js";
import { verifyPassword } from "./passwords.js";
import { PosternError } from "../../engine/errors/catalogue.js";
import { type Clock } from "../../engine/config/clock.js";

/** Largest sign-in form body read. */
const MAX_FORM_BYTES = 16 * 1024;
/** Failed sign-ins per username within the window before further attempts are refused. */
const MAX_FAILURES = 10;
const FAILURE_WINDOW_MS = 5 * 60_000;

export interface IdpOptions {
  readonly store: Store;
  readonly sealer: Sealer;
  readonly tenantId: string;
  /** Public URL of the mount point, e.g. `https://control.example.com/oidc`. */
  readonly issuer: string;
  /** The control plane's clock, for tokens it mints itself. */
  readonly now?: Clock;
  /** Told of every password sign-in's result (metrics). */
  readonly onSignIn?: (result: "success" | "failure") => void;
}

export class BuiltInIdp {
  readonly issuer: string;
  readonly #provider: Provider;
  readonly #callback: (req: IncomingMessage, res: ServerResponse) => void;
  readonly #signingKey: JWK;
  readonly #publicJwks: { keys: JWK[] };
  readonly #options: IdpOptions;
  readonly #failures = new Map<string, { count: number; since: number }>();

  private constructor(options: IdpOptions, provider: Provider, signingKey: JWK, publicJwks: { keys: JWK[] }) {
    this.issuer = options.issuer;
    this.#options = options;
    this.#provider = provider;
    this.#callback = provider.callback() as (req: IncomingMessage, res: ServerResponse) => void;
    this.#signingKey = signingKey;
    this.#publicJwks = publicJwks;
  }

  static async create(options: IdpOptions): Promise<BuiltInIdp> {
    const { store, sealer } = options;
    const signingKey = await loadOrCreateSecret(store, sealer, "idp-signing-key", async () => {
      const { privateKey } = await generateKeyPair("ES256", { extractable: true });
      return { ...(await exportJWK(privateKey)), kid: randomUUID(), alg: "ES256", use: "sig" };
    });
    const cookieKeys = await loadOrCreateSecret(store, sealer, "idp-cookie-keys", async () => [randomBytes(32).toString("base64url")]);
    const { d: _private, ...publicKey } = signingKey;
    const publicJwks = { keys: [publicKey] };
    const claimsOf = async (accountId: string) => accountClaims(store, options.tenantId, accountId);

    // Control's public URL: the issuer is mounted at <public URL>/oidc.
    const consoleBase = options.issuer.replace(/\/oidc\/?$/, "");
    const configuration: Configuration = {
      adapter: withAppClients(storeAdapter(store), store, options.tenantId),
      clients: [{
        client_id: CLI_CLIENT_ID,
        client_name: "Postern command line",
        token_endpoint_auth_method: "none",
        grant_types: ["urn:ietf:params:oauth:grant-type:device_code"],
        response_types: [],
        redirect_uris: [],
      }, {
        client_id: CONSOLE_CLIENT_ID,
        client_name: "Postern console",
        token_endpoint_auth_method: "none",
        grant_types: ["authorization_code"],
        response_types: ["code"],
        redirect_uris: [`${consoleBase}${CONSOLE_CALLBACK_PATH}`],
        post_logout_redirect_uris: [`${consoleBase}/admin/`, `${consoleBase}/myapps/`],
      }],
      jwks: { keys: [signingKey] },
      // The one signing key is P-256: every client's tokens are ES256.
      clientDefaults: { id_token_signed_response_alg: "ES256", grant_types: ["authorization_code"], response_types: ["code"] },
      cookies: { keys: cookieKeys },
      claims: {
        openid: ["sub", "amr", "tid"],
        profile: ["name", "preferred_username"],
        email: ["email"],
        groups: ["groups"],
        roles: ["roles"],
      },
      conformIdTokenClaims: false,
      // Only the console, served by control itself, calls the token endpoint from a browser.
      clientBasedCORS: (_ctx, origin, client) => client.clientId === CONSOLE_CLIENT_ID && origin === new URL(consoleBase).origin,
      pkce: { required: () => true, methods: ["S256"] },
      findAccount: async (_ctx, sub) => {
        const claims = await claimsOf(sub);
        return claims === null ? undefined : { accountId: sub, claims: () => claims };
      },
      extraTokenClaims: async (ctx, token) => {
        if (token.kind !== "AccessToken" || !("accountId" in token) || typeof token.accountId !== "string") return undefined;
        const claims = await claimsOf(token.accountId);
        if (claims === null) return undefined;
        const entities = ctx.oidc.entities as Record<string, { amr?: string[] } | undefined>;
        const amr = entities.DeviceCode?.amr ?? entities.AuthorizationCode?.amr ?? entities.RefreshToken?.amr ?? [];
        return { roles: claims.roles, groups: claims.groups, preferred_username: claims.preferred_username, tid: claims.tid, amr };
      },
      features: {
        devInteractions: { enabled: false },
        deviceFlow: {
          enabled: true,
          charset: "base-20",
          userCodeInputSource: async (ctx, form, _out, err) => {
            ctx.body = page("Sign in a device", `${err ? '<p class="error">That code is not valid; try again.</p>' : "<p>Enter the code shown by the postern command.</p>"}${form}<button type="submit" form="op.deviceInputForm">Continue</button>`);
          },
          userCodeConfirmSource: async (ctx, form, client, _info, userCode) => {
            ctx.body = page("Confirm the device", `<p>${client.clientName ?? client.clientId} shows the code <strong>${userCode}</strong>. Continue only if it matches.</p>${form}<button type="submit" form="op.deviceConfirmForm">Continue</button>`);
          },
          successSource: async (ctx) => {
            ctx.body = page("Signed in", "<p>You can close this window and return to the command line.</p>");
          },
        },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => CONTROL_API_AUDIENCE,
          useGrantedResource: () => true,
          getResourceServerInfo: async (_ctx, indicator) => {
            if (indicator === CONTROL_API_AUDIENCE) {
              return { scope: "admin", audience: CONTROL_API_AUDIENCE, accessTokenTTL: 3600, accessTokenFormat: "jwt", jwt: { sign: { alg: "ES256" } } };
            }
            // A published app's API: its identifier (apiAudience, else its external URL).
            const app = (await store.listApps(options.tenantId)).find((a) => (a.settings.oidc.apiAudience ?? a.settings.externalUrl) === indicator);
            if (!app) throw new PosternError("POSTERN_NOT_FOUND", `unknown resource ${indicator}`);
            return { scope: "access", audience: indicator, accessTokenTTL: 3600, accessTokenFormat: "jwt", jwt: { sign: { alg: "ES256" } } };
          },
        },
        revocation: { enabled: true },
        // Signing out of the console or My Apps ends the IdP session too, after one confirmation.
        rpInitiatedLogout: {
          enabled: true,
          logoutSource: async (ctx, form) => {
            ctx.body = page("Sign out", `<p>Sign out of Postern on this browser?</p>${form}<button type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button type="submit" form="op.logoutForm">No, stay signed in</button>`);
          },
          postLogoutSuccessSource: async (ctx) => {
            ctx.body = page("Signed out", "<p>You are signed out. You can close this window.</p>");
          },
        },
      },
      interactions: { url: (_ctx, interaction) => `${new URL(options.issuer).pathname}/interaction/${interaction.uid}` },
      ttl: { AccessToken: 3600, DeviceCode: 600, Interaction: 3600, Session: 86_400, Grant: 86_400, IdToken: 3600 },
      renderError: (ctx, out) => {
        ctx.type = "html";
        ctx.body = page("Sign-in error", `<p class="error">${String(out.error_description ?? out.error).replace(/[<>&]/g, "")}</p>`);
      },
    };
    const provider = new Provider(options.issuer, configuration);
    provider.proxy = true;
    return new BuiltInIdp(options, provider, signingKey, publicJwks);
  }

  /** The public signing keys, for verifying this IdP's tokens without a network round trip. */
  get publicJwks(): { keys: JWK[] } {
    return this.#publicJwks;
  }

  /** Handles a request under the mount path (`/oidc/...`). */
  handle(req: IncomingMessage, res: ServerResponse, mountPath: string): void {
    const url = req.url ?? "/";
    const rest = url.slice(mountPath.length) || "/";
    if (rest.startsWith("/interaction/")) {
      this.#interaction(req, res, rest).catch((err: unknown) => {
        if (!res.headersSent) {
          res.writeHead(400, { "content-type": "text/html; charset=utf-8" });
          res.end(page("Sign-in error", `<p class="error">This sign-in request is no longer valid (${err instanceof Error ? err.name : "error"}). Start again from the application.</p>`));
        }
      });
      return;
    }
    (req as IncomingMessage & { originalUrl?: string }).originalUrl = url;
    req.url = rest;
    this.#callback(req, res);
  }

  /**
   * Mints an access token without an interactive sign-in: for the control API (the local admin
   * credential), or for an app's API (`audience`), as the IdP would issue it.
   */
  async mintToken(claims: { sub: string; roles: readonly string[]; name: string; groups?: readonly string[]; amr?: readonly string[]; scope?: string }, ttlSeconds: number, audience = CONTROL_API_AUDIENCE): Promise<string> {
    const key = await importJWK(this.#signingKey, "ES256");
    const now = Math.floor((this.#options.now?.() ?? Date.now()) / 1000);
    return new SignJWT({
      roles: claims.roles, preferred_username: claims.name, tid: this.#options.tenantId, amr: claims.amr ?? ["pwd"],
      ...(claims.groups ? { groups: claims.groups } : {}), ...(claims.scope ? { scope: claims.scope } : {}),
    })
      .setProtectedHeader({ alg: "ES256", kid: this.#signingKey.kid!, typ: "at+jwt" })
      .setIssuer(this.issuer)
      .setAudience(audience)
      .setSubject(claims.sub)
      .setIssuedAt(now)
      .setJti(randomUUID())
      .setExpirationTime(now + ttlSeconds)
      .sign(key);
  }

  async #interaction(req: IncomingMessage, res: ServerResponse, rest: string): Promise<void> {
    const details = await this.#provider.interactionDetails(req, res);
    const action = `${new URL(this.issuer).pathname}/interaction/${details.uid}/login`;
    const clientId = String(details.params.client_id ?? "application");
    // Published apps show their name on the sign-in page, not their client id.
    const clientName = (await this.#provider.Client.find(clientId).catch(() => undefined))?.clientName ?? clientId;
    if (req.method === "GET" && details.prompt.name === "login") {
      sendHtml(res, 200, loginPage(action, clientName));
      return;
    }
    if (req.method === "GET" && details.prompt.name === "consent") {
      // Every client of the built-in IdP is first-party (Postern's CLI and published apps): grant what it asked for.
      const accountId = details.session?.accountId;
      if (accountId === undefined) throw new PosternError("POSTERN_AUTH_REQUIRED", "consent without a session");
      const grant = details.grantId ? await this.#provider.Grant.find(details.grantId) : new this.#provider.Grant({ accountId, clientId });
      if (!grant) throw new PosternError("POSTERN_NOT_FOUND", "grant not found");
      const missing = details.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(" "));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(" "));
      const grantId = await grant.save();
      await this.#provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
      return;
    }
    if (req.method === "POST" && rest.endsWith("/login") && details.prompt.name === "login") {
      const form = await readForm(req);
      const username = (form.get("username") ?? "").trim();
      const outcome = await this.#checkCredentials(username, form.get("password") ?? "", form.get("otp") ?? "");
      this.#options.onSignIn?.(outcome.ok ? "success" : "failure");
      await this.#options.store.appendSignIn({
        at: new Date().toISOString(), tenantId: this.#options.tenantId, username, outcome: outcome.ok ? "success" : "failure",
        reason: outcome.ok ? outcome.amr.join(" ") : outcome.reason, client: clientId,
      });
      if (!outcome.ok) {
        sendHtml(res, 401, loginPage(action, clientName, outcome.message, username));
        return;
      }
      await this.#provider.interactionFinished(req, res, { login: { accountId: outcome.user.id, amr: outcome.amr } }, { mergeWithLastSubmission: false });
      return;
    }
    sendHtml(res, 405, page("Sign in", "<p class=\"error\">Unexpected request.</p>"));
  }

  async #checkCredentials(username: string, password: string, otp: string):
    Promise<{ ok: true; user: User; amr: string[] } | { ok: false; reason: string; message: string }> {
    const key = username.toLowerCase();
    const now = Date.now();
    const failures = this.#failures.get(key);
    if (failures && now - failures.since < FAILURE_WINDOW_MS && failures.count >= MAX_FAILURES) {
      return { ok: false, reason: "locked", message: "Too many failed attempts; wait a few minutes and try again." };
    }
    const fail = (reason: string, message: string) => {
      const entry = failures && now - failures.since < FAILURE_WINDOW_MS ? failures : { count: 0, since: now };
      entry.count++;
      this.#failures.set(key, entry);
      if (this.#failures.size > 100_000) this.#failures.delete(this.#failures.keys().next().value!);
      return { ok: false as const, reason, message };
    };
    const user = await this.#options.store.findUser(this.#options.tenantId, username);
    if (!user || !(await verifyPassword(password, user.passwordHash))) return fail("bad_credentials", "Wrong username or password.");
    if (user.disabled) return fail("disabled", "This account is disabled.");
    const amr = ["pwd"];
    if (user.totpSealed) {
      if (otp === "") return fail("mfa_required", "Enter the one-time code from your authenticator app.");
      const secret = this.#options.sealer.open(user.totpSealed, `totp:${user.id}`).toString();
      if (!totpValid(secret, otp)) return fail("mfa_failed", "The one-time code is wrong or expired.");
      amr.push("otp", "mfa");
    }
    this.#failures.delete(key);
    return { ok: true, user, amr };
  }
}

/** A new TOTP seed (base32) and its otpauth:// URI for an authenticator app. */
export function newTotp(username: string): { secret: string; uri: string } {
  const secret = new OTPAuth.Secret({ size: 20 }).base32;
  const totp = new OTPAuth.TOTP({ issuer: "Postern", label: username, secret, algorithm: "SHA1", digits: 6, period: 30 });
  return { secret, uri: totp.toString() };
}

export function totpValid(secret: string, code: string, timestamp = Date.now()): boolean {
  if (!/^\d{6}$/.test(code)) return false;
  return new OTPAuth.TOTP({ secret, algorithm: "SHA1", digits: 6, period: 30 }).validate({ token: code, window: 1, timestamp }) !== null;
}

async function accountClaims(store: Store, tenantId: string, accountId: string) {
  const user = await store.getUser(accountId);
  if (!user || user.disabled || user.tenantId !== tenantId) return null;
  const groups = (await store.listGroups(tenantId)).filter((g) => g.members.some((m) => m.toLowerCase() === user.username.toLowerCase())).map((g) => g.name);
  return {
    sub: user.id, tid: tenantId, name: user.displayName, preferred_username: user.username, email: user.email,
    groups, roles: [...user.roles],
  };
}


function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_FORM_BYTES) {
        reject(new Error("form too large"));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(new URLSearchParams(Buffer.concat(chunks).toString("utf8"))));
    req.on("error", reject);
  });
}

function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store", "x-frame-options": "DENY" });
  res.end(html);
}


/**
 * The adapter, with every published app that signs in here (preAuthentication oidc, no other
 * issuer) as a public client using PKCE: client id "postern-app-<app id>", redirect URI
 * <externalUrl>.postern/callback. Read from the store on each lookup, so publishing,
 * changing or removing an app changes its client at once.
 */
function withAppClients(base: ReturnType<typeof storeAdapter>, store: Store, tenantId: string): ReturnType<typeof storeAdapter> {
  return class AppClientsAdapter extends base {
    override async find(id: string): Promise<AdapterPayload | undefined> {
      if (this.model !== "Client" || !id.startsWith(APP_CLIENT_PREFIX)) return super.find(id);
      const app = (await store.listApps(tenantId)).find((a) => `${APP_CLIENT_PREFIX}${a.id}` === id);
      if (!app || app.settings.preAuthentication !== "oidc" || app.settings.oidc.discoveryUrl !== undefined) return undefined;
      return {
        client_id: id, client_name: app.settings.name, token_endpoint_auth_method: "none", grant_types: ["authorization_code"], response_types: ["code"],
        redirect_uris: [`${app.settings.externalUrl}.postern/callback`], id_token_signed_response_alg: "ES256",
      } as AdapterPayload;
    }
  };
}

const APP_CLIENT_PREFIX = "postern-app-";
