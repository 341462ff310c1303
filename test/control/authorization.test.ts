import { Ajv2020 } from "ajv/dist/2020.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ControlHandle } from "../../control/server.js";
import type { Role } from "../../control/store/types.js";
import { createKeyAndCsr } from "../../engine/identity/csr.js";
import { api, startTestControl } from "../fixtures/control.js";

type Who = Role | "no role";
const GA: Role = "Global Administrator";
const AA: Role = "Application Administrator";
const CAA: Role = "Cloud Application Administrator";
const SR: Role = "Security Reader";
const EVERYONE: readonly Who[] = [GA, AA, CAA, SR, "no role"];

interface Probe {
  readonly method: string;
  /** The route as written in the table; `path` fills its parameters. */
  readonly route: string;
  readonly allowed: readonly Who[];
  request(who: Who, n: number): Promise<{ path: string; body?: unknown }> | { path: string; body?: unknown };
}

const slug = (who: Who) => who.toLowerCase().replace(/[^a-z]/g, "");

// What each role may do: the expectation is written out here, not derived from the route table.
function probes(control: ControlHandle, adminToken: string): Probe[] {
  const app = (who: Who) => ({ name: `app-${slug(who)}`, internalUrl: `http://${slug(who)}.corp/`, externalUrl: `https://${slug(who)}.contoso.com/` });
  const seededConnector = async () => {
    const { csrPem } = await createKeyAndCsr("matrix");
    const res = await api(control.url, "POST", "/api/v1/connectors/register", adminToken, { csr: csrPem, hostName: "matrix", version: "1" });
    return res.body.id as string;
  };
  return [
    { method: "GET", route: "/api/v1/me", allowed: EVERYONE, request: () => ({ path: "/api/v1/me" }) },
    { method: "GET", route: "/api/v1/me/apps", allowed: EVERYONE, request: () => ({ path: "/api/v1/me/apps" }) },
    { method: "GET", route: "/api/v1/apps", allowed: [GA, AA, CAA], request: () => ({ path: "/api/v1/apps" }) },
    { method: "POST", route: "/api/v1/apps", allowed: [GA, AA], request: (who) => ({ path: "/api/v1/apps", body: app(who) }) },
    { method: "GET", route: "/api/v1/apps/{name}", allowed: [GA, AA, CAA], request: () => ({ path: "/api/v1/apps/Seed" }) },
    { method: "PATCH", route: "/api/v1/apps/{name}", allowed: [GA, AA], request: () => ({ path: "/api/v1/apps/Seed", body: { backendTimeout: "long" } }) },
    { method: "PATCH", route: "/api/v1/apps/{name}", allowed: [GA, AA, CAA], request: (who) => ({ path: "/api/v1/apps/Seed", body: { assignments: { users: [slug(who)] } } }) },
    { method: "PUT", route: "/api/v1/apps/{name}/certificate", allowed: [GA, AA], request: () => ({ path: "/api/v1/apps/Seed/certificate", body: { format: "pem", pem: "not a certificate" } }) },
    { method: "PUT", route: "/api/v1/apps/{name}/oidc-client-secret", allowed: [GA, AA], request: () => ({ path: "/api/v1/apps/Seed/oidc-client-secret", body: { secret: "s3cret" } }) },
    { method: "DELETE", route: "/api/v1/apps/{name}/oidc-client-secret", allowed: [GA, AA], request: () => ({ path: "/api/v1/apps/Seed/oidc-client-secret" }) },
    { method: "DELETE", route: "/api/v1/apps/{name}", allowed: [GA, AA], request: async (who) => {
      await api(control.url, "POST", "/api/v1/apps", adminToken, { ...app(who), name: `doomed-${slug(who)}`, internalUrl: `http://doomed-${slug(who)}.corp/`, externalUrl: `https://doomed-${slug(who)}.contoso.com/` });
      return { path: `/api/v1/apps/doomed-${slug(who)}` };
    } },
    { method: "POST", route: "/api/v1/apps/{name}/test", allowed: [GA, AA], request: () => ({ path: "/api/v1/apps/Seed/test?wait=0" }) },
    { method: "POST", route: "/api/v1/connectors/probes/{id}", allowed: [], request: () => ({ path: "/api/v1/connectors/probes/x", body: { report: {} } }) },
    { method: "GET", route: "/api/v1/connector-groups", allowed: [GA, AA], request: () => ({ path: "/api/v1/connector-groups" }) },
    { method: "POST", route: "/api/v1/connector-groups", allowed: [GA, AA], request: (who) => ({ path: "/api/v1/connector-groups", body: { name: `g-${slug(who)}` } }) },
    { method: "DELETE", route: "/api/v1/connector-groups/{name}", allowed: [GA, AA], request: async (who) => {
      await api(control.url, "POST", "/api/v1/connector-groups", adminToken, { name: `gone-${slug(who)}` });
      return { path: `/api/v1/connector-groups/gone-${slug(who)}` };
    } },
    { method: "GET", route: "/api/v1/connectors", allowed: [GA, AA], request: () => ({ path: "/api/v1/connectors" }) },
    { method: "GET", route: "/api/v1/connectors/{id}", allowed: [GA, AA], request: async () => ({ path: `/api/v1/connectors/${await seededConnector()}` }) },
    { method: "PATCH", route: "/api/v1/connectors/{id}", allowed: [GA, AA], request: async () => ({ path: `/api/v1/connectors/${await seededConnector()}`, body: { status: "disabled" } }) },
    { method: "DELETE", route: "/api/v1/connectors/{id}", allowed: [GA, AA], request: async () => ({ path: `/api/v1/connectors/${await seededConnector()}` }) },
    { method: "POST", route: "/api/v1/connectors/register", allowed: [GA, AA], request: async () => ({ path: "/api/v1/connectors/register", body: { csr: (await createKeyAndCsr("m")).csrPem, hostName: "m", version: "1" } }) },
    { method: "POST", route: "/api/v1/engines/register", allowed: [GA], request: async () => ({ path: "/api/v1/engines/register", body: { csr: (await createKeyAndCsr("e")).csrPem, tunnelUrl: "wss://engine.test:7700/tunnel" } }) },
    { method: "GET", route: "/api/v1/users", allowed: [GA], request: () => ({ path: "/api/v1/users" }) },
    { method: "POST", route: "/api/v1/users", allowed: [GA], request: (who) => ({ path: "/api/v1/users", body: { username: `u-${slug(who)}`, password: "long-enough-pw" } }) },
    { method: "PATCH", route: "/api/v1/users/{username}", allowed: [GA], request: async (who) => {
      await api(control.url, "POST", "/api/v1/users", adminToken, { username: `patched-${slug(who)}`, password: "long-enough-pw" });
      return { path: `/api/v1/users/patched-${slug(who)}`, body: { disabled: true } };
    } },
    { method: "GET", route: "/api/v1/groups", allowed: [GA], request: () => ({ path: "/api/v1/groups" }) },
    { method: "POST", route: "/api/v1/groups", allowed: [GA], request: (who) => ({ path: "/api/v1/groups", body: { name: `grp-${slug(who)}` } }) },
    { method: "DELETE", route: "/api/v1/groups/{name}", allowed: [GA], request: async (who) => {
      await api(control.url, "POST", "/api/v1/groups", adminToken, { name: `old-${slug(who)}` });
      return { path: `/api/v1/groups/old-${slug(who)}` };
    } },
    { method: "GET", route: "/api/v1/audit", allowed: [GA, SR], request: () => ({ path: "/api/v1/audit?outcome=success&action=app.add" }) },
    { method: "GET", route: "/api/v1/sign-ins", allowed: [GA, SR], request: () => ({ path: "/api/v1/sign-ins?username=nobody" }) },
    // Identity-proof endpoints: no admin token of any role opens them.
    { method: "POST", route: "/api/v1/connectors/renew", allowed: [], request: () => ({ path: "/api/v1/connectors/renew", body: { csr: "x" } }) },
    { method: "GET", route: "/api/v1/feed/connector", allowed: [], request: () => ({ path: "/api/v1/feed/connector" }) },
    { method: "GET", route: "/api/v1/feed/engine", allowed: [], request: () => ({ path: "/api/v1/feed/engine" }) },
    // Only an engine (identity proof) may say it is leaving; no user token may.
    { method: "DELETE", route: "/api/v1/engines/self", allowed: [], request: () => ({ path: "/api/v1/engines/self" }) },
    { method: "POST", route: "/api/v1/sign-ins", allowed: [], request: () => ({
      path: "/api/v1/sign-ins",
      body: { tenantId: "t", app: "a", username: "u", outcome: "success", reason: "r", clientIp: "127.0.0.1", transactionId: "x", at: new Date().toISOString() },
    }) },
  ];
}

describe("role x endpoint authorization", () => {
  let control: ControlHandle;
  let tokens: Record<Who, string>;
  let admin: string;

  beforeAll(async () => {
    control = await startTestControl();
    admin = await control.mintToken({ name: "seed", roles: [GA] });
    tokens = Object.fromEntries(await Promise.all(EVERYONE.map(async (who) => [who, await control.mintToken({ name: slug(who), roles: who === "no role" ? [] : [who] })]))) as Record<Who, string>;
    await api(control.url, "POST", "/api/v1/apps", admin, { name: "Seed", internalUrl: "http://seed.corp/", externalUrl: "https://seed.contoso.com/" });
  });
  afterAll(() => control.close());

  it("covers every route of the API", () => {
    const probed = new Set(probes(control, admin).map((p) => `${p.method} ${p.route}`));
    expect(control.routes.map((r) => `${r.method} ${r.path}`).filter((r) => !probed.has(r))).toEqual([]);
  });

  it("lets each role do exactly what it should", async () => {
    const outcomes: string[] = [];
    const expected: string[] = [];
    for (const probe of probes(control, admin)) {
      for (const who of EVERYONE) {
        const { path, body } = await probe.request(who, 0);
        const res = await api(control.url, probe.method, path, tokens[who], body);
        const verdict = res.status === 403 || res.status === 401 ? "denied" : res.status < 500 ? "allowed" : `error ${res.status}`;
        outcomes.push(`${probe.method} ${probe.route} ${JSON.stringify(body ?? {}).slice(0, 40)} as ${who}: ${verdict}`);
        expected.push(`${probe.method} ${probe.route} ${JSON.stringify(body ?? {}).slice(0, 40)} as ${who}: ${probe.allowed.includes(who) ? "allowed" : "denied"}`);
        if (res.status === 403) expect(res.body.error.code).toBe("POSTERN_FORBIDDEN");
      }
    }
    expect(outcomes).toEqual(expected);
  });

  it("audits mutations with actor and outcome, including refusals", async () => {
    const { body } = await api(control.url, "GET", "/api/v1/audit?limit=1000", tokens[SR]);
    const entries = body.entries as { actor: string; action: string; outcome: string }[];
    expect(entries).toContainEqual(expect.objectContaining({ actor: "globaladministrator", action: "app.add", outcome: "success" }));
    expect(entries).toContainEqual(expect.objectContaining({ actor: "securityreader", action: "app.add", outcome: "failure" }));
    expect(entries).toContainEqual(expect.objectContaining({ actor: "applicationadministrator", action: "connector.register", outcome: "success" }));
  });

  it("refuses a missing, malformed or foreign-audience token with 401", async () => {
    expect((await api(control.url, "GET", "/api/v1/apps")).body.error.code).toBe("POSTERN_AUTH_REQUIRED");
    expect((await api(control.url, "GET", "/api/v1/apps", "garbage")).body.error.code).toBe("POSTERN_TOKEN_INVALID");
    const tampered = admin.slice(0, -4) + (admin.endsWith("AAAA") ? "BBBB" : "AAAA");
    const res = await api(control.url, "GET", "/api/v1/apps", tampered);
    expect(res.status).toBe(401);
    expect(res.body.error.message).toMatch(/signature/);
  });
});

describe("OpenAPI document", () => {
  let control: ControlHandle;
  let admin: string;
  let doc: { paths: Record<string, Record<string, { security: unknown[]; responses: Record<string, { content?: { "application/json": { schema: object } } }> }>>; components: { schemas: object } };

  beforeAll(async () => {
    control = await startTestControl();
    admin = await control.mintToken({ name: "root", roles: [GA] });
    doc = (await api(control.url, "GET", "/api/v1/openapi.json")).body;
    await api(control.url, "POST", "/api/v1/apps", admin, { name: "Doc", internalUrl: "http://doc.corp/", externalUrl: "https://doc.contoso.com/" });
  });
  afterAll(() => control.close());

  it("lists exactly the routes the server answers", async () => {
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`)).sort();
    expect(documented).toEqual(control.routes.map((r) => `${r.method} ${r.path}`).sort());
    for (const entry of documented) {
      const [method, path] = entry.split(" ");
      const res = await api(control.url, method!, path!.replace(/\{\w+\}/g, "x"));
      expect(res.status, entry).toBe(401); // routed and protected: never 404
    }
    expect((await api(control.url, "GET", "/api/v1/nothing-here", admin)).status).toBe(404);
  });

  it("describes the bodies the server really sends", async () => {
    const ajv = new Ajv2020({ strict: false });
    for (const [path, params] of [["/api/v1/apps", {}], ["/api/v1/apps/{name}", { name: "Doc" }], ["/api/v1/connector-groups", {}], ["/api/v1/me", {}], ["/api/v1/audit", {}], ["/api/v1/users", {}]] as const) {
      const schema = doc.paths[path]!.get!.responses["200"]!.content!["application/json"].schema;
      const url = path.replace(/\{(\w+)\}/g, (_m, k: string) => (params as Record<string, string>)[k]!);
      const res = await api(control.url, "GET", url, admin);
      expect(res.status).toBe(200);
      const validate = ajv.compile(schema);
      expect(validate(res.body), `${path}: ${JSON.stringify(validate.errors)}`).toBe(true);
    }
    const error = await api(control.url, "GET", "/api/v1/apps/missing", admin);
    expect(ajv.compile(doc.components.schemas)).toBeDefined();
    expect(ajv.validate({ ...(doc.components.schemas as Record<string, object>).Error }, error.body)).toBe(true);
  });
});
