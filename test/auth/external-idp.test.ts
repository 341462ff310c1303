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

describe("pre-authentication with an external issuer (Entra-style claims)", () => {
  let rig: Rig;
  let backend: Backend;
  let idp: Server;
  let issuer: string;
  let hr: string;

  beforeAll(async () => {
    backend = await startBackend((req, res) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ headers: req.headers })));
    rig = await startRig();
    idp = createServer();
    await new Promise<void>((r) => idp.listen(0, "127.0.0.1", r));
    issuer = `http://127.0.0.1:${(idp.address() as AddressInfo).port}`;
    const { privateKey } = await generateKeyPair("RS256", { extractable: true });
    const provider = new Provider(issuer, {
      clients: [{
        client_id: "hr-portal", token_endpoint_auth_method: "none", grant_types: ["authorization_code"], response_types: ["code"],
        redirect_uris: ["http://hr.fabrikam.test/.postern/callback"],
      }],
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
    idp.on("request", provider.callback());
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
    idp.closeAllConnections();
    idp.close();
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
});
