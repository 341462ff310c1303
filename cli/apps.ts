/**
 * `postern app add|list|show|update|remove` and `postern group add|list|remove` (connector
 * groups). Every app setting is a flag; `update` sends only the flags given.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { ADMIN_HELP, ADMIN_OPTIONS, UsageError, adminCall, resolveAdmin, table } from "./admin.js";

type App = Record<string, unknown> & { name: string; externalUrl: string; internalUrl: string; preAuthentication: string; connectorGroup: string };

const APP_OPTIONS = {
  ...ADMIN_OPTIONS,
  name: { type: "string" },
  "internal-url": { type: "string" },
  "external-url": { type: "string" },
  preauth: { type: "string" },
  group: { type: "string" },
  "backend-timeout": { type: "string" },
  "home-page": { type: "string" },
  "translate-body": { type: "boolean" },
  "no-translate-body": { type: "boolean" },
  "translate-headers": { type: "boolean" },
  "no-translate-headers": { type: "boolean" },
  "validate-backend-tls": { type: "boolean" },
  "no-validate-backend-tls": { type: "boolean" },
  maintenance: { type: "boolean" },
  "no-maintenance": { type: "boolean" },
  "cookie-http-only": { type: "boolean" },
  "no-cookie-http-only": { type: "boolean" },
  "cookie-secure": { type: "boolean" },
  "no-cookie-secure": { type: "boolean" },
  "cookie-persistent": { type: "boolean" },
  "no-cookie-persistent": { type: "boolean" },
  "require-mfa": { type: "boolean" },
  "no-require-mfa": { type: "boolean" },
  "allow-ip": { type: "string", multiple: true },
  "assign-user": { type: "string", multiple: true },
  "assign-group": { type: "string", multiple: true },
  "sso-header": { type: "string", multiple: true },
  "cookie-same-site": { type: "string" },
  "session-lifetime": { type: "string" },
  "oidc-discovery": { type: "string" },
  "oidc-client-id": { type: "string" },
  "oidc-client-secret-file": { type: "string" },
  "no-oidc-client-secret": { type: "boolean" },
  "claim-username": { type: "string" },
  "claim-groups": { type: "string" },
  "claim-roles": { type: "string" },
  "claim-amr": { type: "string" },
  "api-audience": { type: "string" },
  "api-scope": { type: "string", multiple: true },
  "api-role": { type: "string", multiple: true },
  "identity-assertion": { type: "boolean" },
  "no-identity-assertion": { type: "boolean" },
  "cert-file": { type: "string" },
  "cert-password": { type: "string" },
} as const;

const APP_HELP = `Usage: postern app <add|list|show|update|remove|test> [NAME] [options]

  add      Publish an app (--name and --internal-url are required)
  list     List apps
  show     Show one app's settings
  update   Change the settings given as flags
  remove   Remove an app
  test     Have a connector probe the app's internal URL (DNS, TCP, TLS, HTTP) and say what to fix

App settings:
  --name NAME                      Display name (unique in the tenant)
  --internal-url URL               Where the connector reaches the app (http/https, ends with "/")
  --external-url URL               Public URL (default <name>.<tenant>.<suffix>)
  --preauth oidc|passthrough       Pre-authentication (default oidc)
  --group NAME                     Connector group (default "Default")
  --backend-timeout default|long   No response head within 85 s (default) or 180 s (long) -> 504
  --home-page URL                  Custom home page under the external URL
  --[no-]translate-headers         Map internal URLs in Location, Set-Cookie, ... (default on)
  --[no-]translate-body            Rewrite internal links in HTML/CSS (default off)
  --[no-]validate-backend-tls      Check the backend's certificate (default on)
  --[no-]maintenance               Answer 503 with a maintenance page (default off)
  --[no-]cookie-http-only          Session cookie HttpOnly (default off)
  --[no-]cookie-secure             Session cookie Secure (default on)
  --[no-]cookie-persistent         Persistent session cookie (default off)
  --[no-]require-mfa               Require mfa in the token's amr claim (default off)
  --allow-ip CIDR                  Allowed client range (repeat; default any)
  --assign-user NAME               Assign a user (repeat)
  --assign-group NAME              Assign a group (repeat)
  --sso-header NAME=CLAIM          Header set towards the backend from a claim (repeat); client copies are dropped
  --cookie-same-site lax|strict|none  SameSite of the session cookie (default lax)
  --session-lifetime MINUTES       Longest a sign-in lasts, whatever the token says (default 480)
  --oidc-discovery URL             Sign in with this issuer instead of the built-in IdP (its discovery document)
  --oidc-client-id ID              The app's client id at that issuer (a public client with PKCE, unless it has a secret)
  --oidc-client-secret-file FILE   Its client secret there, for a confidential client (the file's
                                   first line; sealed at rest, never shown); --no-oidc-client-secret removes it
  --claim-username|--claim-groups|--claim-roles|--claim-amr C   Claim names at that issuer
  --api-audience A                 Audience of bearer tokens for the app's API (default the external URL)
  --api-scope S, --api-role R      A bearer token needs one of these scopes or roles (repeat)
  --[no-]identity-assertion        Send a signed identity JWT in X-Postern-Identity (default off)
  --cert-file FILE                 Custom-domain certificate: PEM (chain + key) or .pfx/.p12
  --cert-password P                Password of the PFX file

${ADMIN_HELP}`;

type AppValues = ReturnType<typeof parseAppArgs>["values"];

function parseAppArgs(args: string[]) {
  return parseArgs({ args, options: APP_OPTIONS, strict: true, allowPositionals: true });
}

/** Turns flags into a settings body; for `update` only the flags present. */
function settingsFrom(v: AppValues): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const set = (key: string, value: unknown) => {
    if (value !== undefined) out[key] = value;
  };
  const pair = (on: boolean | undefined, off: boolean | undefined, flag: string): boolean | undefined => {
    if (on && off) throw new UsageError(`--${flag} and --no-${flag} contradict each other`);
    return on ? true : off ? false : undefined;
  };
  set("name", v.name);
  set("internalUrl", v["internal-url"]);
  set("externalUrl", v["external-url"]);
  set("preAuthentication", v.preauth);
  set("connectorGroup", v.group);
  set("backendTimeout", v["backend-timeout"]);
  set("customHomePage", v["home-page"]);
  set("translateHeaders", pair(v["translate-headers"], v["no-translate-headers"], "translate-headers"));
  set("translateBody", pair(v["translate-body"], v["no-translate-body"], "translate-body"));
  set("validateBackendTls", pair(v["validate-backend-tls"], v["no-validate-backend-tls"], "validate-backend-tls"));
  set("maintenanceMode", pair(v.maintenance, v["no-maintenance"], "maintenance"));
  const cookie: Record<string, boolean> = {};
  for (const [flag, key] of [["cookie-http-only", "httpOnly"], ["cookie-secure", "secure"], ["cookie-persistent", "persistent"]] as const) {
    const value = pair(v[flag], v[`no-${flag}`], flag);
    if (value !== undefined) cookie[key] = value;
  }
  if (v["cookie-same-site"] !== undefined) (cookie as Record<string, unknown>).sameSite = v["cookie-same-site"];
  if (Object.keys(cookie).length > 0) out.cookie = cookie;
  const policy: Record<string, unknown> = {};
  if (v["allow-ip"]) policy.allowedIpRanges = v["allow-ip"];
  const mfa = pair(v["require-mfa"], v["no-require-mfa"], "require-mfa");
  if (mfa !== undefined) policy.requireMfa = mfa;
  if (v["session-lifetime"] !== undefined) {
    const minutes = Number(v["session-lifetime"]);
    if (!Number.isInteger(minutes) || minutes < 1) throw new UsageError(`--session-lifetime must be a whole number of minutes, got "${v["session-lifetime"]}"`);
    policy.sessionLifetimeMinutes = minutes;
  }
  if (Object.keys(policy).length > 0) out.policy = policy;
  const assignments: Record<string, unknown> = {};
  if (v["assign-user"]) assignments.users = v["assign-user"];
  if (v["assign-group"]) assignments.groups = v["assign-group"];
  if (Object.keys(assignments).length > 0) out.assignments = assignments;
  if (v["sso-header"]) {
    out.ssoHeaders = Object.fromEntries(v["sso-header"].map((h) => {
      const eq = h.indexOf("=");
      if (eq <= 0) throw new UsageError(`--sso-header "${h}": expected NAME=CLAIM`);
      return [h.slice(0, eq), h.slice(eq + 1)];
    }));
  }
  const oidc: Record<string, unknown> = {};
  if (v["oidc-discovery"] !== undefined) oidc.discoveryUrl = v["oidc-discovery"];
  if (v["oidc-client-id"] !== undefined) oidc.clientId = v["oidc-client-id"];
  const claims: Record<string, string> = {};
  for (const c of ["username", "groups", "roles", "amr"] as const) if (v[`claim-${c}`] !== undefined) claims[c] = v[`claim-${c}`]!;
  if (Object.keys(claims).length > 0) oidc.claims = claims;
  if (v["api-audience"] !== undefined) oidc.apiAudience = v["api-audience"];
  if (v["api-scope"]) oidc.apiScopes = v["api-scope"];
  if (v["api-role"]) oidc.apiRoles = v["api-role"];
  const assertion = pair(v["identity-assertion"], v["no-identity-assertion"], "identity-assertion");
  if (assertion !== undefined) oidc.identityAssertion = assertion;
  if (Object.keys(oidc).length > 0) out.oidc = oidc;
  return out;
}

/** The client secret from --oidc-client-secret-file (its first line: files often end in a newline). */
function clientSecretFrom(v: AppValues): string | undefined {
  const file = v["oidc-client-secret-file"];
  if (file === undefined) return undefined;
  const secret = readFileSync(file, "utf8").split(/\r?\n/, 1)[0]!;
  if (secret === "") throw new UsageError(`--oidc-client-secret-file ${file}: the first line is empty`);
  return secret;
}

/** Sets the app's client secret, or removes it (null); the app as it is after. */
function putClientSecret(target: Parameters<typeof adminCall>[0], name: string, secret: string | null): Promise<App> {
  const path = `/api/v1/apps/${encodeURIComponent(name)}/oidc-client-secret`;
  return secret === null ? adminCall<App>(target, "DELETE", path) : adminCall<App>(target, "PUT", path, { secret });
}

function certificateFrom(v: AppValues): Record<string, unknown> | undefined {
  const file = v["cert-file"];
  if (file === undefined) return undefined;
  const data = readFileSync(file);
  if (/\.(pfx|p12)$/i.test(file)) return { format: "pfx", pfxBase64: data.toString("base64"), password: v["cert-password"] ?? "" };
  return { format: "pem", pem: data.toString("utf8") };
}

function print(v: { json?: boolean | undefined }, data: unknown, text: () => string): void {
  process.stdout.write(v.json ? JSON.stringify(data, null, 2) + "\n" : text());
}

interface ProbeReport {
  internalUrl: string;
  ok: boolean;
  steps: { step: string; ok: boolean; ms: number; detail: string }[];
  likelyFix: string;
}

function describeProbe(name: string, result: { connector: string | null; report: ProbeReport | null; message: string }): string {
  if (!result.report) return `${name}: ${result.message}\n`;
  const r = result.report;
  const lines = [`${name}: ${r.internalUrl} from connector ${result.connector}`];
  for (const s of r.steps) lines.push(`  ${s.ok ? "ok  " : "FAIL"} ${s.step.toUpperCase().padEnd(5)} ${String(s.ms).padStart(5)} ms  ${s.detail}`);
  lines.push(r.ok ? "  Reachable." : `  Likely fix: ${r.likelyFix}`);
  return lines.join("\n") + "\n";
}

function describeApp(app: App): string {
  const lines = Object.entries(app).map(([k, value]) => `${k.padEnd(20)} ${typeof value === "object" && value !== null ? JSON.stringify(value) : String(value)}`);
  return lines.join("\n") + "\n";
}

export async function runApp(args: string[]): Promise<number> {
  const { values: v, positionals } = parseAppArgs(args);
  const [verb, name] = positionals;
  if (v.help || verb === undefined) {
    process.stdout.write(APP_HELP);
    return v.help ? 0 : 2;
  }
  const target = resolveAdmin(v);
  const enc = (n: string) => encodeURIComponent(n);
  const needName = () => {
    if (!name) throw new UsageError(`postern app ${verb} needs the app's name`);
    return name;
  };
  switch (verb) {
    case "add": {
      const body = settingsFrom(v);
      if (body.name === undefined && name) body.name = name;
      if (body.name === undefined || body.internalUrl === undefined) throw new UsageError("postern app add needs --name and --internal-url");
      const cert = certificateFrom(v);
      if (cert) body.certificate = cert;
      const secret = clientSecretFrom(v); // read before publishing: a bad file publishes nothing
      let app = await adminCall<App>(target, "POST", "/api/v1/apps", body);
      if (secret !== undefined) app = await putClientSecret(target, app.name, secret);
      print(v, app, () => `Published "${app.name}": ${app.externalUrl} -> ${app.internalUrl} (${app.preAuthentication}, group ${app.connectorGroup})\n`);
      return 0;
    }
    case "list": {
      const { apps } = await adminCall<{ apps: App[] }>(target, "GET", "/api/v1/apps");
      print(v, apps, () => table(apps, ["name", "externalUrl", "internalUrl", "preAuthentication", "connectorGroup"]));
      return 0;
    }
    case "show": {
      const app = await adminCall<App>(target, "GET", `/api/v1/apps/${enc(needName())}`);
      print(v, app, () => describeApp(app));
      return 0;
    }
    case "update": {
      const app0 = needName();
      const body = settingsFrom(v);
      const cert = certificateFrom(v);
      if (v["no-oidc-client-secret"] && v["oidc-client-secret-file"] !== undefined) throw new UsageError("--oidc-client-secret-file and --no-oidc-client-secret contradict each other");
      const secret = v["no-oidc-client-secret"] ? null : clientSecretFrom(v);
      let app: App | undefined;
      if (Object.keys(body).length > 0) app = await adminCall<App>(target, "PATCH", `/api/v1/apps/${enc(app0)}`, body);
      if (cert) app = await adminCall<App>(target, "PUT", `/api/v1/apps/${enc(app?.name ?? app0)}/certificate`, cert);
      if (secret !== undefined) app = await putClientSecret(target, app?.name ?? app0, secret);
      if (!app) throw new UsageError("postern app update: give at least one setting to change");
      print(v, app, () => `Updated "${app.name}".\n`);
      return 0;
    }
    case "test": {
      const result = await adminCall<{ connector: string | null; report: ProbeReport | null; message: string }>(target, "POST", `/api/v1/apps/${enc(needName())}/test`);
      print(v, result, () => describeProbe(name!, result));
      return result.report?.ok ? 0 : 1;
    }
    case "remove": {
      await adminCall(target, "DELETE", `/api/v1/apps/${enc(needName())}`);
      print(v, { removed: name }, () => `Removed "${name}".\n`);
      return 0;
    }
    default:
      throw new UsageError(`unknown app command "${verb}"; see postern app --help`);
  }
}

const GROUP_HELP = `Usage: postern group <add|list|remove> [NAME] [options]

Connector groups: an app is served by the connectors of its group. "Default" always exists.

${ADMIN_HELP}`;

export async function runGroup(args: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({ args, options: ADMIN_OPTIONS, strict: true, allowPositionals: true });
  const [verb, name] = positionals;
  if (v.help || verb === undefined) {
    process.stdout.write(GROUP_HELP);
    return v.help ? 0 : 2;
  }
  const target = resolveAdmin(v);
  if (verb === "list") {
    const { groups } = await adminCall<{ groups: Record<string, unknown>[] }>(target, "GET", "/api/v1/connector-groups");
    print(v, groups, () => table(groups, ["name", "connectors", "apps"]));
    return 0;
  }
  if (!name) throw new UsageError(`postern group ${verb} needs the group's name`);
  if (verb === "add") {
    const group = await adminCall(target, "POST", "/api/v1/connector-groups", { name });
    print(v, group, () => `Added connector group "${name}".\n`);
    return 0;
  }
  if (verb === "remove") {
    await adminCall(target, "DELETE", `/api/v1/connector-groups/${encodeURIComponent(name)}`);
    print(v, { removed: name }, () => `Removed connector group "${name}".\n`);
    return 0;
  }
  throw new UsageError(`unknown group command "${verb}"; see postern group --help`);
}
