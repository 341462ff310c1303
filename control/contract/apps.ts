/**
 * App settings: the one schema (with every default of DESIGN.md "App settings"). Control
 * validates with it (control/apps.ts adds the rules that need more than a shape check); the
 * feed types engines and connectors use (./feed.ts) are derived from it, so a renamed field
 * fails to compile on every side.
 */
import { z } from "zod";

/** Backend response-head timeouts for `backendTimeout` (Entra's figures). */
export const BACKEND_TIMEOUT_MS = { default: 85_000, long: 180_000 } as const;

const appName = z.string().trim().min(1).max(64).regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]*$/, "letters, digits, space, '.', '_' or '-', starting with a letter or digit");
const headerName = z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, "an HTTP header name (token characters only)");

export const cookieSettings = z.object({
  /** HttpOnly on the session cookie: scripts cannot read it. Turn off only for apps whose scripts need it. */
  httpOnly: z.boolean().default(true),
  /** Secure flag (and the __Host- prefix at the root): the cookie only travels over HTTPS. Applies to https external URLs only. */
  secure: z.boolean().default(true),
  /** Persistent cookie that survives a browser restart (until the token expires). */
  persistent: z.boolean().default(false),
  /** SameSite on the session cookie; lax lets the IdP's redirect back carry it. */
  sameSite: z.enum(["lax", "strict", "none"]).default("lax"),
}).strict();

export const policySettings = z.object({
  /** Client address ranges (CIDR) allowed in; empty means any address. */
  allowedIpRanges: z.array(z.string()).max(256).default([]),
  /** Require `mfa` in the token's `amr` claim. */
  requireMfa: z.boolean().default(false),
  /** Longest a sign-in is good for, whatever the token says, minutes. */
  sessionLifetimeMinutes: z.number().int().min(1).max(43_200).default(480),
}).strict();

const claimName = z.string().min(1).max(64);

/**
 * Pre-authentication against an OpenID Connect issuer: the built-in IdP unless
 * `discoveryUrl` names another (Entra ID, Keycloak, ...), where the app is registered with
 * redirect URI <externalUrl>.postern/callback, as a public client (PKCE) or as a confidential
 * one whose client secret is set apart from the settings (see clientSecretName).
 */
export const oidcSettings = z.object({
  /** The issuer's discovery document, e.g. https://login.microsoftonline.com/TENANT/v2.0/.well-known/openid-configuration. */
  discoveryUrl: z.string().max(2048).optional(),
  /** The app's client id at that issuer (the built-in IdP registers one by itself). */
  clientId: z.string().min(1).max(256).optional(),
  /** Claim names, for issuers that name them otherwise. */
  claims: z.object({
    username: claimName.default("preferred_username"),
    groups: claimName.default("groups"),
    roles: claimName.default("roles"),
    amr: claimName.default("amr"),
  }).strict().prefault({}),
  /** Audience of bearer access tokens for this app's API (default: its external URL). */
  apiAudience: z.string().min(1).max(2048).optional(),
  /** A bearer token must carry one of these scopes (scp or scope) or one of apiRoles; both empty: any. */
  apiScopes: z.array(z.string().min(1).max(128)).max(64).default([]),
  apiRoles: z.array(z.string().min(1).max(128)).max(64).default([]),
  /** Send a signed identity assertion (JWT, keys at <externalUrl>.postern/jwks.json) in X-Postern-Identity. */
  identityAssertion: z.boolean().default(false),
}).strict();

export const assignmentSettings = z.object({
  users: z.array(z.string().min(1)).max(10_000).default([]),
  groups: z.array(z.string().min(1)).max(10_000).default([]),
}).strict();

export const appSettingsSchema = z.object({
  name: appName,
  internalUrl: z.string().max(2048),
  externalUrl: z.string().max(2048),
  preAuthentication: z.enum(["oidc", "passthrough"]).default("oidc"),
  connectorGroup: z.string().min(1).max(64).default("Default"),
  backendTimeout: z.enum(["default", "long"]).default("default"),
  maintenanceMode: z.boolean().default(false),
  cookie: cookieSettings.prefault({}),
  translateHeaders: z.boolean().default(true),
  translateBody: z.boolean().default(false),
  validateBackendTls: z.boolean().default(true),
  /** Where users land from the portal; must sit under externalUrl. Unset: externalUrl. */
  customHomePage: z.string().max(2048).optional(),
  assignments: assignmentSettings.prefault({}),
  policy: policySettings.prefault({}),
  /** Header name -> claim name, set towards the backend for header-based SSO (client copies are dropped). */
  ssoHeaders: z.record(headerName, z.string().min(1).max(128)).default({}),
  oidc: oidcSettings.prefault({}),
}).strict();

/**
 * The schema of a change: every field optional and no defaults filled in, nested objects
 * included, so a PATCH names only what it changes (a default would silently reset a field).
 */
export const appPatchSchema = partialWithoutDefaults(appSettingsSchema);

function partialWithoutDefaults<T extends z.ZodRawShape>(schema: z.ZodObject<T>): z.ZodObject {
  const shape: Record<string, z.ZodType> = {};
  for (const [key, field] of Object.entries(schema.shape)) {
    let inner = field as z.ZodType;
    while (inner instanceof z.ZodDefault || inner instanceof z.ZodPrefault || inner instanceof z.ZodOptional) {
      inner = inner.unwrap() as z.ZodType;
    }
    shape[key] = (inner instanceof z.ZodObject ? partialWithoutDefaults(inner) : inner).optional();
  }
  return z.object(shape).strict();
}

export type AppInput = z.input<typeof appSettingsSchema>;
export type AppSettings = Readonly<z.output<typeof appSettingsSchema>>;
