/** /api/v1/apps: publish, inspect, change and remove apps, and upload custom-domain certificates. */
import { randomUUID } from "node:crypto";
import { z } from "zod";
import { clientSecretName, defaultExternalUrl, parseApp, usesExternalIssuer } from "../apps.js";
import { appPatchSchema, appSettingsSchema, type AppSettings } from "../contract/apps.js";
import type { ControlContext } from "../context.js";
import { checkDomainCertificate, nameCovers, pfxToPem, type CertificateUpload } from "../domain-certs.js";
import { StoreConflict, type App, type Role, type StoredDomainCertificate } from "../store/types.js";
import { ApiError, route, type Route } from "./router.js";

/** Publishing, URLs, connector group and the app proxy knobs. */
const PROXY_ADMINS: readonly Role[] = ["Global Administrator", "Application Administrator"];
/** Who may read apps and change who gets in (assignments, policy, SSO headers, home page). */
const APP_ADMINS: readonly Role[] = [...PROXY_ADMINS, "Cloud Application Administrator"];
/** How long `POST /apps/{name}/test` waits for a connector's report, ms. */
const PROBE_WAIT_MS = 30_000;
const ACCESS_FIELDS = new Set(["assignments", "policy", "ssoHeaders", "customHomePage"]);

const certificateUpload = z.discriminatedUnion("format", [
  z.object({ format: z.literal("pem"), pem: z.string().min(1).max(512 * 1024) }).strict(),
  z.object({ format: z.literal("pfx"), pfxBase64: z.string().min(1).max(700 * 1024), password: z.string().max(1024) }).strict(),
]);

const createBody = appSettingsSchema.partial({ externalUrl: true }).extend({ certificate: certificateUpload.optional() }).strict();
const patchBody = appPatchSchema as z.ZodType<Partial<AppSettings> & { cookie?: Partial<AppSettings["cookie"]>; policy?: Partial<AppSettings["policy"]>; assignments?: Partial<AppSettings["assignments"]> }>;

/** An app's client secret at its external issuer: written, never read back. */
const clientSecretBody = z.object({ secret: z.string().min(1).max(1024) }).strict();

const appView = appSettingsSchema.extend({
  certificate: z.object({ dnsNames: z.array(z.string()), notAfter: z.string(), fingerprintSha256: z.string() }).nullable(),
  /** Whether a client secret is set (PUT /apps/{name}/oidc-client-secret); the secret is never shown. */
  oidcClientSecretSet: z.boolean(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

export interface EdgeDefaults {
  /** Scheme and port of the engine's public listener, for default external URLs. */
  readonly scheme: "http" | "https";
  readonly port?: number;
}

export function appRoutes(ctx: ControlContext, edge: EdgeDefaults): Route[] {
  const { store, tenant } = ctx;

  const ruleContext = async () => {
    const tenantApps = await store.listApps(tenant.id);
    return {
      tenantApps: tenantApps.map((a) => a.settings),
      allApps: (await store.listApps()).map((a) => a.settings),
      connectorGroups: (await store.listConnectorGroups(tenant.id)).map((g) => g.name),
    };
  };

  const mustGet = async (name: string): Promise<App> => {
    const app = await store.getApp(tenant.id, name);
    if (!app) throw new ApiError("POSTERN_NOT_FOUND", `no app named "${name}"`);
    return app;
  };

  const checkCertificate = (upload: CertificateUpload, externalUrl: string): StoredDomainCertificate => {
    const checked = checkDomainCertificate(upload, new URL(externalUrl).hostname, new Date(ctx.now()));
    if (!checked.ok) throw new ApiError("POSTERN_VALIDATION", checked.problems.map((p) => p.message).join("; "), checked.problems);
    // Kept as PEM whatever the upload's format: that is what engines serve.
    let raw: string;
    try {
      raw = upload.format === "pem" ? upload.pem : pfxToPem(upload.pfxBase64, upload.password);
    } catch (err) {
      throw new ApiError("POSTERN_VALIDATION", (err as Error).message, [{ field: "certificate", message: (err as Error).message }]);
    }
    return {
      sealed: ctx.sealer.seal(raw, `domain-cert:${externalUrl}`),
      format: upload.format,
      dnsNames: checked.value.dnsNames,
      notAfter: checked.value.notAfter.toISOString(),
      fingerprintSha256: checked.value.fingerprintSha256,
    };
  };

  const view = async (app: App): Promise<z.infer<typeof appView>> => viewOf(app, (await store.getSecret(clientSecretName(app.id))) !== null);

  const save = async (settings: unknown, certificate: StoredDomainCertificate | null, replacing?: string): Promise<App> => {
    const parsed = parseApp(settings, await ruleContext(), replacing);
    if (!parsed.ok) throw new ApiError("POSTERN_VALIDATION", parsed.problems.map((p) => `${p.field}: ${p.message}`).join("; "), parsed.problems);
    try {
      return await store.putApp(tenant.id, parsed.value, certificate, replacing);
    } catch (err) {
      if (err instanceof StoreConflict) throw new ApiError("POSTERN_CONFLICT", `${err.field}: ${err.message}`, [{ field: err.field, message: err.message }]);
      throw err;
    }
  };

  return [
    route({
      method: "GET", path: "/api/v1/apps", summary: "List the tenant's apps", auth: { roles: APP_ADMINS },
      response: z.object({ apps: z.array(appView) }),
      handler: async () => ({ status: 200, body: { apps: await Promise.all((await store.listApps(tenant.id)).map(view)) } }),
    }),
    route({
      method: "POST", path: "/api/v1/apps", summary: "Publish an app", auth: { roles: PROXY_ADMINS }, body: createBody, status: 201,
      response: appView, action: "app.add",
      handler: async (call) => {
        const { certificate, ...input } = call.body;
        const settings = { ...input, externalUrl: input.externalUrl ?? defaultExternalUrl(input.name, tenant.name, tenant.domainSuffix, edge.scheme, edge.port) };
        call.auditDetail.app = settings.name;
        const stored = certificate ? checkCertificate(certificate, settings.externalUrl) : null;
        return { status: 201, body: await view(await save(settings, stored)) };
      },
    }),
    route({
      method: "GET", path: "/api/v1/apps/{name}", summary: "Show one app", auth: { roles: APP_ADMINS }, response: appView,
      handler: async (call) => ({ status: 200, body: await view(await mustGet(call.params.name!)) }),
    }),
    route({
      method: "PATCH", path: "/api/v1/apps/{name}", summary: "Change an app's settings (only the fields given)", auth: { roles: APP_ADMINS },
      body: patchBody, response: appView, action: "app.update",
      handler: async (call) => {
        const changed = Object.keys(call.body);
        if (changed.some((field) => !ACCESS_FIELDS.has(field))) {
          call.requireRole(PROXY_ADMINS, `changing ${changed.filter((f) => !ACCESS_FIELDS.has(f)).join(", ")}`);
        }
        call.auditDetail.fields = changed;
        const existing = await mustGet(call.params.name!);
        const s = existing.settings;
        const b = call.body;
        const merged = {
          ...s, ...b,
          cookie: { ...s.cookie, ...b.cookie }, policy: { ...s.policy, ...b.policy }, assignments: { ...s.assignments, ...b.assignments },
        };
        if (existing.certificate && b.externalUrl !== undefined) {
          const host = safeHost(b.externalUrl);
          if (host !== undefined && !existing.certificate.dnsNames.some((n) => nameCovers(n, host))) {
            throw new ApiError("POSTERN_VALIDATION", `externalUrl: the app's certificate covers ${existing.certificate.dnsNames.join(", ")}, not ${host}; upload a certificate for the new host first`,
              [{ field: "externalUrl", message: `the app's certificate does not cover ${host}` }]);
          }
        }
        return { status: 200, body: await view(await save(merged, existing.certificate, existing.settings.name)) };
      },
    }),
    route({
      method: "PUT", path: "/api/v1/apps/{name}/certificate", summary: "Upload the custom-domain certificate (PEM or PFX)", auth: { roles: PROXY_ADMINS },
      body: certificateUpload, response: appView, action: "app.certificate",
      handler: async (call) => {
        const existing = await mustGet(call.params.name!);
        const stored = checkCertificate(call.body, existing.settings.externalUrl);
        call.auditDetail.fingerprint = stored.fingerprintSha256;
        return { status: 200, body: await view(await save(existing.settings, stored, existing.settings.name)) };
      },
    }),
    route({
      method: "PUT", path: "/api/v1/apps/{name}/oidc-client-secret",
      summary: "Set the app's client secret at its external issuer (a confidential client there); it is sealed at rest and never shown",
      auth: { roles: PROXY_ADMINS }, body: clientSecretBody, response: appView, action: "app.oidcClientSecret",
      handler: async (call) => {
        const existing = await mustGet(call.params.name!);
        if (!usesExternalIssuer(existing.settings)) {
          const message = "only an app that signs in at an external issuer (oidc.discoveryUrl) has a client secret: the built-in IdP's app clients are public, with PKCE";
          throw new ApiError("POSTERN_VALIDATION", `oidcClientSecret: ${message}`, [{ field: "oidcClientSecret", message }]);
        }
        const name = clientSecretName(existing.id);
        await store.putSecret(name, ctx.sealer.seal(call.body.secret, name), { feedChange: true });
        return { status: 200, body: viewOf(existing, true) };
      },
    }),
    route({
      method: "DELETE", path: "/api/v1/apps/{name}/oidc-client-secret", summary: "Remove the app's client secret (it is a public client at its issuer again)",
      auth: { roles: PROXY_ADMINS }, response: appView, action: "app.oidcClientSecret.remove",
      handler: async (call) => {
        const existing = await mustGet(call.params.name!);
        await store.deleteSecret(clientSecretName(existing.id), { feedChange: true });
        return { status: 200, body: viewOf(existing, false) };
      },
    }),
    route({
      method: "POST", path: "/api/v1/apps/{name}/test", summary: "Have a connector of the app's group probe its internal URL (DNS, TCP, TLS, HTTP)",
      auth: { roles: PROXY_ADMINS }, action: "app.test",
      query: z.object({ wait: z.coerce.number().int().min(0).max(PROBE_WAIT_MS / 1000).default(PROBE_WAIT_MS / 1000) }).strict(),
      response: z.object({ connector: z.string().nullable(), report: z.record(z.string(), z.unknown()).nullable(), message: z.string() }),
      handler: async (call) => {
        const app = await mustGet(call.params.name!);
        const id = randomUUID();
        await store.addProbe({ id, tenantId: tenant.id, app: app.settings.name, group: app.settings.connectorGroup, createdAt: new Date().toISOString() });
        const deadline = Date.now() + call.query.wait * 1000;
        for (;;) {
          const probe = await store.getProbe(id);
          if (probe?.result) return { status: 200, body: { connector: probe.connectorId, report: probe.result as Record<string, unknown>, message: "probed" } };
          if (Date.now() >= deadline) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        return { status: 200, body: { connector: null, report: null, message: `no connector of group "${app.settings.connectorGroup}" answered within ${call.query.wait} s: is one running?` } };
      },
    }),
    route({
      method: "DELETE", path: "/api/v1/apps/{name}", summary: "Remove an app", auth: { roles: PROXY_ADMINS }, action: "app.remove",
      handler: async (call) => {
        const existing = await mustGet(call.params.name!);
        if (!(await store.deleteApp(tenant.id, existing.settings.name))) throw new ApiError("POSTERN_NOT_FOUND", `no app named "${call.params.name}"`);
        await store.deleteSecret(clientSecretName(existing.id));
        return { status: 204 };
      },
    }),
  ];
}

function safeHost(url: string): string | undefined {
  try {
    return new URL(url).hostname;
  } catch {
    return undefined;
  }
}

function viewOf(app: App, oidcClientSecretSet: boolean): z.infer<typeof appView> {
  const settings: AppSettings = app.settings;
  return {
    ...settings,
    certificate: app.certificate === null ? null : { dnsNames: [...app.certificate.dnsNames], notAfter: app.certificate.notAfter, fingerprintSha256: app.certificate.fingerprintSha256 },
    oidcClientSecretSet,
    createdAt: app.createdAt,
    updatedAt: app.updatedAt,
  } as z.infer<typeof appView>;
}
