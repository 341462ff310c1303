/**
 * Issuer independence: a second, independent OpenID provider (oidc-provider with Entra ID's
 * v2.0 claim names: oid, upn, preferred_username, groups as ids, roles, amr; RS256 keys)
 * drives the same sign-in, configured on the app by discovery URL and client id, with the
 * username and authentication-method claims renamed.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair } from "jose";
import Provider from "oidc-provider";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api } from "../fixtures/control.js";
import { ScriptedBrowser, signIn } from "../fixtures/browser.js";
import { startBackend, startRig, type Backend, type Rig } from "../fixtures/datapath.js";
import { until } from "../fixtures/lifecycle.js";

/** An oidc-provider with Entra ID's v2.0 claim names, PKCE required, on 127.0.0.1. */
async function startIssuer(options: { clientAuthMethods: string[]; clients: Record<string, unknown>[] }): Promise<{ server: Server; issuer: string }> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const { privateKey } = await generateKeyPair("RS256", { extractable: true });
  const provider = new Provider(issuer, {
    clients: options.clients.map((c) => ({ grant_types: ["authorization_code"], response_types: ["code"], ...c })) as never,
    clientAuthMethods: options.clientAuthMethods as never,
    jwks: { keys: [{ ...(await exportJWK(privateKey)), kid: "entra-like", alg: "RS256", use: "sig" }] },
    pkce: { required: () => true, methods: ["S256"] },
    features: { devInteractions: { enabled: true } },
    claims: { openid: ["sub", "oid", "upn", "groups", "roles", "authn_methods"], profile: ["name", "preferred_username"] },
    conformIdTokenClaims: false,
    findAccount: async (_ctx, id) => ({
      accountId: id,
      claims: async () => ({
        sub: `pairwise-${id}`, oid: "7f1c0a3e-0000-4000-8000-000000000001", upn: `${id}@fabrikam.test`, preferred_username: `${id}.display@fabrikam.test`,
        // The MFA evidence under a claim name of this issuer's own (the app maps it).
        name: id, groups: ["1b2e-sales-guid"], roles: ["HR.User"], authn_methods: ["pwd", "mfa"],
      }),
    }),
  });
  server.on("request", provider.callback());
  return { server, issuer };
}

describe("pre-authentication with an external issuer (Entra-style claims)", () => {
  let rig: Rig;
  let backend: Backend;
  let idp: Server;
  let issuer: string;
  let hr: string;
  let postOnly: Server;
  let postIssuer: string;
  const SECRET = "s3cret: with spaces & symbols+";

  beforeAll(async () => {
    backend = await startBackend((req, res) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ headers: req.headers })));
    rig = await startRig();
    ({ server: idp, issuer } = await startIssuer({
      clientAuthMethods: ["none", "client_secret_basic", "client_secret_post"],
      clients: [
        { client_id: "hr-portal", token_endpoint_auth_method: "none", redirect_uris: ["http://hr.fabrikam.test/.postern/callback"] },
        { client_id: "hr:confidential", client_secret: SECRET, token_endpoint_auth_method: "client_secret_basic", redirect_uris: ["http://hrc.fabrikam.test/.postern/callback"] },
      ],
    }));
    // An issuer that takes a client's secret only in the token request's form.
    ({ server: postOnly, issuer: postIssuer } = await startIssuer({
      clientAuthMethods: ["client_secret_post"],
      clients: [{ client_id: "payroll", client_secret: SECRET, token_endpoint_auth_method: "client_secret_post", redirect_uris: ["http://payroll.fabrikam.test/.postern/callback"] }],
    }));
    ({ host: hr } = await rig.publish({
      name: "HR", internalUrl: `${backend.origin}/hr/`, externalUrl: "http://hr.fabrikam.test/", preAuthentication: "oidc",
      assignments: { groups: ["1b2e-sales-guid"] }, policy: { requireMfa: true },
      ssoHeaders: { "X-Remote-User": "upn", "X-Remote-Oid": "oid", "X-Remote-Roles": "roles" },
      oidc: { discoveryUrl: `${issuer}/.well-known/openid-configuration`, clientId: "hr-portal", claims: { username: "upn", amr: "authn_methods" } },
    }));
  }, 30_000);
  afterAll(async () => {
    await rig.close();
    await backend.close();
    for (const server of [idp, postOnly]) {
      server.closeAllConnections();
      server.close();
    }
  });

  it("signs in at the other issuer and maps its claims by the app's claim names", async () => {
    const browser = new ScriptedBrowser(rig.edge, new Set([hr]));
    const back = await signIn(browser, `http://${hr}/benefits?year=2026#plans`, { login: "ada", password: "anything" });
    expect(back.status, back.text.slice(0, 300)).toBe(302);
    expect(back.headers.location).toBe("/benefits?year=2026#plans");
    expect(browser.visited.some((u) => u.startsWith(issuer))).toBe(true);
    expect(browser.visited.some((u) => u.includes("/oidc/"))).toBe(false); // the built-in IdP played no part
    const page = await browser.fetch(`http://${hr}/benefits`);
    expect(page.status).toBe(200);
    const seen = (JSON.parse(page.text) as { headers: Record<string, string> }).headers;
    expect(seen["x-remote-user"]).toBe("ada@fabrikam.test"); // upn, the configured username claim
    expect(seen["x-remote-oid"]).toBe("7f1c0a3e-0000-4000-8000-000000000001");
    expect(seen["x-remote-roles"]).toBe("HR.User");
    const reader = await rig.control.mintToken({ name: "auditor", roles: ["Security Reader"] });
    const log = await api(rig.control.url, "GET", "/api/v1/sign-ins", reader);
    expect((log.body.entries as Record<string, string>[]).some((e) => e.app === "HR" && e.username === "ada@fabrikam.test" && e.outcome === "success")).toBe(true);
  });

  /** Publishes an app that signs in at `discovery` as confidential client `clientId`, with `secret` set through the API. */
  async function publishConfidential(name: string, discovery: string, clientId: string, secret: string): Promise<string> {
    const { host } = await rig.publish({
      name, internalUrl: `${backend.origin}/${name.toLowerCase()}/`, externalUrl: `http://${name.toLowerCase()}.fabrikam.test/`, preAuthentication: "oidc",
      ssoHeaders: { "X-Remote-User": "upn" }, oidc: { discoveryUrl: `${discovery}/.well-known/openid-configuration`, clientId, claims: { username: "upn" } },
    });
    await setSecret(name, secret);
    return host;
  }

  async function setSecret(name: string, secret: string): Promise<void> {
    const set = await api(rig.control.url, "PUT", `/api/v1/apps/${name}/oidc-client-secret`, rig.admin, { secret });
    expect(set.status).toBe(200);
    // The engine has it once it applies a snapshot with it.
    await until(() => rig.engine.config?.apps.some((a) => a.name === name && a.oidcClientSecret === secret) === true, 5000, "the engine applies the new secret");
  }

  it.each([
    ["client_secret_basic", "HRC", () => issuer, "hr:confidential"],
    ["client_secret_post", "Payroll", () => postIssuer, "payroll"],
  ])("signs in as a confidential client (%s); a wrong secret fails the sign-in with the reason", async (_method, name, discovery, clientId) => {
    const host = await publishConfidential(name, discovery(), clientId, SECRET);
    const back = await signIn(new ScriptedBrowser(rig.edge, new Set([host])), `http://${host}/start`, { login: "grace", password: "anything" });
    expect(back.status, back.text.slice(0, 300)).toBe(302);
    expect(back.headers.location).toBe("/start");
    await setSecret(name, "not-the-secret");
    const refused = await signIn(new ScriptedBrowser(rig.edge, new Set([host])), `http://${host}/start`, { login: "grace", password: "anything" });
    expect(refused.status).not.toBe(302);
    expect(refused.text).toContain("did not issue an ID token (HTTP 401)");
  });
});
