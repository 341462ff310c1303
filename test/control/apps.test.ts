import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseApp, type AppRuleContext } from "../../control/apps.js";
import type { AppSettings } from "../../control/contract/apps.js";
import type { ControlHandle } from "../../control/server.js";
import { makeCa, makeLeaf } from "../fixtures/domain-certs.js";
import { api, startTestControl } from "../fixtures/control.js";

const existing = parseApp({ name: "Wiki", internalUrl: "http://wiki.corp/", externalUrl: "https://wiki.contoso.com/" }, { tenantApps: [], allApps: [], connectorGroups: ["Default"] });
if (!existing.ok) throw new Error("fixture app must be valid");
const context: AppRuleContext = { tenantApps: [existing.value], allApps: [existing.value], connectorGroups: ["Default", "Europe"] };
const base = { name: "Sales", internalUrl: "http://sales.corp/", externalUrl: "https://sales.contoso.com/" };

describe("app settings rules", () => {
  it("fills every documented default", () => {
    const parsed = parseApp(base, context);
    expect(parsed.ok && parsed.value).toEqual({
      ...base, preAuthentication: "oidc", connectorGroup: "Default", backendTimeout: "default", maintenanceMode: false,
      cookie: { httpOnly: true, secure: true, persistent: false, sameSite: "lax" }, translateHeaders: true, translateBody: false, validateBackendTls: true,
      assignments: { users: [], groups: [] }, policy: { allowedIpRanges: [], requireMfa: false, sessionLifetimeMinutes: 480 }, ssoHeaders: {},
      oidc: { claims: { username: "preferred_username", groups: "groups", roles: "roles", amr: "amr" }, apiScopes: [], apiRoles: [], identityAssertion: false },
    } satisfies AppSettings);
  });

  it.each([
    ["duplicate internal URL", { internalUrl: "http://WIKI.corp/" }, "internalUrl", /already the internal URL of app "Wiki"/],
    ["duplicate external URL", { externalUrl: "https://wiki.contoso.com/" }, "externalUrl", /already the external URL of app "Wiki"/],
    ["duplicate name", { name: "wiki" }, "name", /already exists/],
    ["external issuer without a client id", { oidc: { discoveryUrl: "https://login.example.com/.well-known/openid-configuration" } }, "oidc.clientId", /needs the app's client id/],
    ["external issuer over plain http", { oidc: { discoveryUrl: "http://login.example.com/.well-known/openid-configuration", clientId: "x" } }, "oidc.discoveryUrl", /must use https/],
    ["internal URL not http/https", { internalUrl: "ftp://sales.corp/" }, "internalUrl", /must start with http:\/\/ or https:\/\//],
    ["external URL not http/https", { externalUrl: "ws://sales.contoso.com/" }, "externalUrl", /must start with http/],
    ["internal URL without trailing slash", { internalUrl: "http://sales.corp/app" }, "internalUrl", /must end with "\/"/],
    ["external URL without trailing slash", { externalUrl: "https://sales.contoso.com/app" }, "externalUrl", /must end with "\/"/],
    ["IPv4 address instead of a domain", { internalUrl: "http://10.1.2.3/" }, "internalUrl", /IP address 10\.1\.2\.3; use a domain name/],
    ["IPv6 address instead of a domain", { externalUrl: "https://[2001:db8::1]/" }, "externalUrl", /IP address 2001:db8::1/],
    ["not a URL at all", { internalUrl: "sales" }, "internalUrl", /is not a URL/],
    ["custom home page outside the external URL", { customHomePage: "https://evil.example/" }, "customHomePage", /not under the external URL/],
    ["unknown connector group", { connectorGroup: "Asia" }, "connectorGroup", /no connector group named "Asia"/],
    ["bad IP range", { policy: { allowedIpRanges: ["10.0.0.0/33"] } }, "policy.allowedIpRanges.0", /not an address range/],
    ["unknown setting", { colour: "blue" }, "colour", /unknown setting "colour"/],
    ["wrong pre-authentication", { preAuthentication: "kerberos" }, "preAuthentication", /oidc|passthrough/],
    ["bad SSO header name", { ssoHeaders: { "X User": "email" } }, "ssoHeaders.X User", /header name/],
  ])("refuses %s, naming the field", (_name, change, field, message) => {
    const parsed = parseApp({ ...base, ...change }, context);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.problems).toContainEqual({ field, message: expect.stringMatching(message) });
  });

  it("accepts a custom home page under the external URL and a short internal host name", () => {
    expect(parseApp({ ...base, internalUrl: "http://sales/", customHomePage: "https://sales.contoso.com/start/page.aspx" }, context).ok).toBe(true);
  });

  it("lets an app keep its own URLs when it is updated", () => {
    expect(parseApp({ name: "Wiki", internalUrl: "http://wiki.corp/", externalUrl: "https://wiki.contoso.com/", maintenanceMode: true }, context, "Wiki").ok).toBe(true);
  });
});

describe("apps through the API", () => {
  let control: ControlHandle & { dataDir: string };
  let admin: string;
  beforeAll(async () => {
    control = await startTestControl({ tenant: { name: "contoso", domainSuffix: "postern.test" }, edge: { scheme: "https" } });
    admin = await control.mintToken({ name: "root", roles: ["Global Administrator"] });
  });
  afterAll(() => control.close());

  it("publishes with the default external URL, refuses duplicates with 422 naming the field, and updates only what is sent", async () => {
    const created = await api(control.url, "POST", "/api/v1/apps", admin, { name: "Payroll", internalUrl: "http://payroll.corp/" });
    expect(created.status).toBe(201);
    expect(created.body.externalUrl).toBe("https://payroll.contoso.postern.test/");
    const dup = await api(control.url, "POST", "/api/v1/apps", admin, { name: "Payroll 2", internalUrl: "http://payroll.corp/" });
    expect(dup.status).toBe(422);
    expect(dup.body.error).toMatchObject({ code: "POSTERN_VALIDATION", problems: [{ field: "internalUrl" }] });
    expect((await api(control.url, "PATCH", "/api/v1/apps/Payroll", admin, { maintenanceMode: true, cookie: { secure: false } })).status).toBe(200);
    const patched = await api(control.url, "PATCH", "/api/v1/apps/Payroll", admin, { backendTimeout: "long", cookie: { httpOnly: true } });
    expect(patched.status).toBe(200);
    // Fields the change does not name keep their values, nested ones too.
    expect(patched.body).toMatchObject({ backendTimeout: "long", maintenanceMode: true, cookie: { httpOnly: true, secure: false }, internalUrl: "http://payroll.corp/" });
    const bad = await api(control.url, "POST", "/api/v1/apps", admin, "{not json");
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe("POSTERN_BAD_REQUEST");
    expect((await api(control.url, "GET", "/api/v1/apps/Nope", admin)).status).toBe(404);
  });

  it("keeps an external issuer's client secret sealed and write-only: set, never shown, removed with the app", async () => {
    const secret = "s3cret:with/odd=chars";
    await api(control.url, "POST", "/api/v1/apps", admin, { name: "Builtin", internalUrl: "http://builtin.corp/" });
    const refused = await api(control.url, "PUT", "/api/v1/apps/Builtin/oidc-client-secret", admin, { secret });
    expect(refused.status).toBe(422);
    expect(refused.body.error.problems[0].field).toBe("oidcClientSecret");
    const created = await api(control.url, "POST", "/api/v1/apps", admin, {
      name: "Ext", internalUrl: "http://ext.corp/", oidc: { discoveryUrl: "https://login.fabrikam.com/.well-known/openid-configuration", clientId: "ext" },
    });
    expect(created.body.oidcClientSecretSet).toBe(false);
    // Only a Global or Application Administrator sets it.
    const cloud = await control.mintToken({ name: "cloud", roles: ["Cloud Application Administrator"] });
    expect((await api(control.url, "PUT", "/api/v1/apps/Ext/oidc-client-secret", cloud, { secret })).status).toBe(403);
    const set = await api(control.url, "PUT", "/api/v1/apps/Ext/oidc-client-secret", admin, { secret });
    expect(set.status).toBe(200);
    expect(set.body.oidcClientSecretSet).toBe(true);
    const listed = await api(control.url, "GET", "/api/v1/apps", admin);
    const audit = await api(control.url, "GET", "/api/v1/audit", admin);
    for (const seen of [set, listed, audit, await api(control.url, "GET", "/api/v1/apps/Ext", admin)]) expect(JSON.stringify(seen.body)).not.toContain("s3cret");
    expect((listed.body.apps as { name: string; oidcClientSecretSet: boolean }[]).find((a) => a.name === "Ext")?.oidcClientSecretSet).toBe(true);
    // Sealed at rest: the store's file never holds it in the clear.
    const files = readdirSync(control.dataDir, { recursive: true }).map(String).filter((f) => statSync(join(control.dataDir, f)).isFile());
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) expect(readFileSync(join(control.dataDir, f)).includes(secret)).toBe(false);
    expect((await api(control.url, "DELETE", "/api/v1/apps/Ext/oidc-client-secret", admin)).body.oidcClientSecretSet).toBe(false);
    await api(control.url, "PUT", "/api/v1/apps/Ext/oidc-client-secret", admin, { secret });
    expect((await api(control.url, "DELETE", "/api/v1/apps/Ext", admin)).status).toBe(204);
    // A new app of the same name starts without one.
    const again = await api(control.url, "POST", "/api/v1/apps", admin, {
      name: "Ext", internalUrl: "http://ext.corp/", oidc: { discoveryUrl: "https://login.fabrikam.com/.well-known/openid-configuration", clientId: "ext" },
    });
    expect(again.body.oidcClientSecretSet).toBe(false);
  });

  it("stores a custom-domain certificate only when it covers the external host", async () => {
    const ca = await makeCa();
    await api(control.url, "POST", "/api/v1/apps", admin, { name: "Shop", internalUrl: "http://shop.corp/", externalUrl: "https://shop.contoso.com/" });
    const wrong = await makeLeaf({ ca, dnsNames: ["*.fabrikam.com"] });
    const refused = await api(control.url, "PUT", "/api/v1/apps/Shop/certificate", admin, { format: "pem", pem: wrong.certPem + wrong.keyPem });
    expect(refused.status).toBe(422);
    expect(refused.body.error.message).toMatch(/covers \*\.fabrikam\.com, not shop\.contoso\.com/);
    const right = await makeLeaf({ ca, dnsNames: ["*.contoso.com"] });
    const stored = await api(control.url, "PUT", "/api/v1/apps/Shop/certificate", admin, { format: "pem", pem: right.certPem + right.keyPem });
    expect(stored.status).toBe(200);
    expect(stored.body.certificate.dnsNames).toEqual(["*.contoso.com"]);
    const moved = await api(control.url, "PATCH", "/api/v1/apps/Shop", admin, { externalUrl: "https://shop.fabrikam.com/" });
    expect(moved.status).toBe(422);
    expect(moved.body.error.problems[0].field).toBe("externalUrl");
  });
});
