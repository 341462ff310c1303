import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { request } from "undici";
import { describe, expect, it } from "vitest";
import { tempDir } from "../fixtures/control.js";
import { runCli, startService } from "../fixtures/processes.js";

describe("postern CLI (built, as child processes)", () => {
  it("`up --once --json` brings up control, engine, connector and the sample app and prints one ready line", async () => {
    const dir = tempDir();
    const ports = ["--control-port", "0", "--tunnel-port", "0", "--http-port", "0"];
    const res = await runCli(["up", "--once", "--json", "--data-dir", dir, ...ports]);
    expect(res.code, res.stderr).toBe(0);
    const ready = JSON.parse(res.stdout) as { control: string; engine: string; apps: { name: string; externalUrl: string }[]; users: { username: string; password: string; roles: string[] }[] };
    expect(ready.control).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(ready.engine).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(ready.apps).toEqual(expect.arrayContaining([{
      name: "Sample", externalUrl: `http://sample.default.localhost:${new URL(ready.engine).port}/`,
      internalUrl: expect.stringMatching(/^http:\/\/localhost:\d+\/$/), preAuthentication: "passthrough",
    }, {
      name: "Private", externalUrl: `http://private.default.localhost:${new URL(ready.engine).port}/`,
      internalUrl: expect.stringMatching(/^http:\/\/localhost:\d+\/$/), preAuthentication: "oidc",
    }]));
    expect(ready.apps).toHaveLength(2);
    expect(ready.users).toEqual([{ username: "admin", password: expect.stringMatching(/^\S{8,}$/), roles: ["Global Administrator"] }]);
    // A second start reuses identities, the demo user and the app, re-pointed to the new ports.
    const again = await runCli(["up", "--once", "--json", "--data-dir", dir, ...ports]);
    expect(again.code, again.stderr).toBe(0);
    const second = JSON.parse(again.stdout) as typeof ready;
    expect(second.users).toEqual(ready.users);
    expect(second.apps.map((a) => a.externalUrl).sort()).toEqual([
      `http://private.default.localhost:${new URL(second.engine).port}/`, `http://sample.default.localhost:${new URL(second.engine).port}/`,
    ]);
    const bare = await runCli(["up", "--once", "--json", "--no-sample", "--data-dir", tempDir(), ...ports]);
    expect(JSON.parse(bare.stdout).apps).toEqual([]);
  }, 60_000);

  it("admin commands find a local deployment's credential in --data-dir", async () => {
    const dir = tempDir();
    const up = startService(["up", "--json", "--data-dir", dir, "--control-port", "0", "--tunnel-port", "0", "--http-port", "0"]);
    try {
      const ready = (await up.ready) as { engine: string; apps: { name: string; externalUrl: string }[] };
      const sample = ready.apps.find((a) => a.name === "Sample")!;
      // The sample app answers through the engine, with its internal links and headers.
      const host = new URL(sample.externalUrl).host;
      const page = await request(`${ready.engine}/`, { headers: { host } });
      expect(page.statusCode).toBe(200);
      const text = await page.body.text();
      expect(text).toMatch(/Postern sample app/);
      // Published with link translation on: its hard-coded internal links come out external.
      expect(text).toContain(`<a href="${sample.externalUrl}docs/">`);
      expect(text).not.toMatch(/href="http:\/\/localhost:\d+\//);
      const css = await request(`${ready.engine}/static/site.css`, { headers: { host } });
      expect(await css.body.text()).toContain(`url(${sample.externalUrl}static/bg.svg)`);
      // The private copy asks for a sign-in first (an API client gets a 401, a browser the sign-in page).
      const privateApp = ready.apps.find((a) => a.name === "Private")!;
      const api = await request(`${ready.engine}/api/echo`, { headers: { host: new URL(privateApp.externalUrl).host, accept: "application/json" } });
      expect(api.statusCode).toBe(401);
      await api.body.dump();
      const browse = await request(`${ready.engine}/`, { headers: { host: new URL(privateApp.externalUrl).host, accept: "text/html" } });
      expect(await browse.body.text()).toContain("Signing in");
      const echo = await request(`${ready.engine}/api/echo`, { headers: { host, "x-forwarded-for": "10.9.8.7" } });
      expect(((await echo.body.json()) as { headers: Record<string, string> }).headers["x-forwarded-for"]).toBe("10.9.8.7, 127.0.0.1");
      const probe = await runCli(["app", "test", "Sample", "--data-dir", dir]);
      expect(probe.code, probe.stderr).toBe(0);
      expect(probe.stdout).toMatch(/ok {3}DNS[\s\S]*ok {3}TCP[\s\S]*ok {3}HTTP[\s\S]*Reachable\./);
      const add = await runCli(["app", "add", "--name", "Wiki", "--internal-url", "http://wiki.corp/", "--preauth", "passthrough", "--backend-timeout", "long",
        "--no-translate-headers", "--translate-body", "--no-validate-backend-tls", "--maintenance", "--cookie-http-only", "--no-cookie-secure", "--cookie-persistent",
        "--allow-ip", "10.0.0.0/8", "--require-mfa", "--assign-user", "alice", "--assign-group", "Sales", "--sso-header", "X-User=preferred_username",
        "--external-url", "https://wiki.contoso.com/", "--home-page", "https://wiki.contoso.com/start", "--cookie-same-site", "strict", "--session-lifetime", "60",
        "--oidc-discovery", "https://login.example.com/t/v2.0/.well-known/openid-configuration", "--oidc-client-id", "wiki-client", "--claim-username", "upn",
        "--claim-groups", "grp", "--api-audience", "api://wiki", "--api-scope", "wiki.read", "--api-role", "Wiki.Admin", "--identity-assertion", "--data-dir", dir, "--json"]);
      expect(add.code, add.stderr).toBe(0);
      expect(JSON.parse(add.stdout)).toMatchObject({
        name: "Wiki", preAuthentication: "passthrough", backendTimeout: "long", translateHeaders: false, translateBody: true, validateBackendTls: false,
        maintenanceMode: true, cookie: { httpOnly: true, secure: false, persistent: true, sameSite: "strict" }, policy: { allowedIpRanges: ["10.0.0.0/8"], requireMfa: true, sessionLifetimeMinutes: 60 },
        oidc: {
          discoveryUrl: "https://login.example.com/t/v2.0/.well-known/openid-configuration", clientId: "wiki-client", claims: { username: "upn", groups: "grp", roles: "roles", amr: "amr" },
          apiAudience: "api://wiki", apiScopes: ["wiki.read"], apiRoles: ["Wiki.Admin"], identityAssertion: true,
        },
        assignments: { users: ["alice"], groups: ["Sales"] }, ssoHeaders: { "X-User": "preferred_username" }, customHomePage: "https://wiki.contoso.com/start",
      });
      const update = await runCli(["app", "update", "Wiki", "--no-maintenance", "--group", "Default", "--data-dir", dir, "--json"]);
      expect(JSON.parse(update.stdout)).toMatchObject({ maintenanceMode: false, backendTimeout: "long" });
      // A confidential client at an external issuer: the secret comes from a file and is never printed.
      const secretFile = join(dir, "client-secret.txt");
      writeFileSync(secretFile, "cli-s3cret\n", { mode: 0o600 });
      const ext = ["--oidc-discovery", "https://login.example.com/t/v2.0/.well-known/openid-configuration", "--oidc-client-id", "ext"];
      const confidential = await runCli(["app", "add", "--name", "Ext", "--internal-url", "http://ext.corp/", ...ext, "--oidc-client-secret-file", secretFile, "--data-dir", dir, "--json"]);
      expect(confidential.code, confidential.stderr).toBe(0);
      expect(JSON.parse(confidential.stdout)).toMatchObject({ name: "Ext", oidcClientSecretSet: true });
      expect(confidential.stdout).not.toContain("cli-s3cret");
      const both = await runCli(["app", "update", "Ext", "--no-oidc-client-secret", "--oidc-client-secret-file", secretFile, "--data-dir", dir]);
      expect(both.code).toBe(2);
      expect(both.stderr).toMatch(/--oidc-client-secret-file and --no-oidc-client-secret contradict each other/);
      const cleared = await runCli(["app", "update", "Ext", "--no-oidc-client-secret", "--data-dir", dir, "--json"]);
      expect(JSON.parse(cleared.stdout)).toMatchObject({ oidcClientSecretSet: false });
      const list = await runCli(["app", "list", "--data-dir", dir]);
      expect(list.stdout).toMatch(/^NAME\s+EXTERNALURL/);
      expect(list.stdout).toMatch(/Wiki\s+https:\/\/wiki\.contoso\.com\/\s+http:\/\/wiki\.corp\//);
      const dup = await runCli(["app", "add", "--name", "Wiki2", "--internal-url", "http://wiki.corp/", "--data-dir", dir]);
      expect(dup.code).toBe(1);
      expect(dup.stderr).toMatch(/internalUrl: http:\/\/wiki\.corp\/ is already the internal URL of app "Wiki" \[POSTERN_VALIDATION\]/);
      expect((await runCli(["group", "add", "Europe", "--data-dir", dir])).code).toBe(0);
      expect((await runCli(["group", "list", "--data-dir", dir, "--json"])).stdout).toMatch(/"name": "Europe"/);
      const connectors = JSON.parse((await runCli(["connector", "list", "--data-dir", dir, "--json"])).stdout) as { status: string }[];
      expect(connectors).toHaveLength(1);
      expect(connectors[0]!.status).toBe("active");
      expect((await runCli(["app", "remove", "Wiki", "--data-dir", dir])).code).toBe(0);
      expect((await runCli(["app", "show", "Wiki", "--data-dir", dir])).stderr).toMatch(/no app named "Wiki" \[POSTERN_NOT_FOUND\]/);
    } finally {
      expect(await up.kill("SIGTERM")).toBe(0);
    }
  }, 60_000);

  it("every command has --help; mistakes name the option and exit 2", async () => {
    for (const command of [[], ["up"], ["control"], ["engine"], ["connector"], ["app"], ["group"], ["user"], ["login"]]) {
      const res = await runCli([...command, "--help"]);
      expect(res.code, command.join(" ")).toBe(0);
      expect(res.stdout).toMatch(/Usage|postern/);
    }
    const bad = await runCli(["up", "--control-port", "99999"]);
    expect(bad).toMatchObject({ code: 2 });
    expect(bad.stderr).toMatch(/--control-port must be an integer in 0\.\.65535, got "99999"/);
    expect((await runCli(["frobnicate"])).code).toBe(2);
    const flag = await runCli(["app", "list", "--frobnicate"]);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/--frobnicate/);
    const missing = await runCli(["app", "list", "--data-dir", join(tempDir(), "nothing")]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/no local credential/);
  }, 60_000);
});
