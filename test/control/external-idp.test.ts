import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ControlHandle } from "../../control/server.js";
import { loadMasterKey } from "../../control/secrets.js";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { api, signIn, startTestControl, tempDir } from "../fixtures/control.js";

describe("an external OIDC issuer instead of the built-in IdP", () => {
  // The "external" IdP is another Postern control's built-in one: a real OIDC issuer with
  // discovery, a JWKS endpoint and device-flow sign-in, reached over loopback.
  let issuer: ControlHandle;
  let control: ControlHandle;

  beforeAll(async () => {
    issuer = await startTestControl();
    const root = await issuer.mintToken({ name: "root", roles: ["Global Administrator"] });
    await api(issuer.url, "POST", "/api/v1/users", root, { username: "carol", password: "carol-password", roles: ["Application Administrator"] });
    control = await startTestControl({
      externalIdp: { discoveryUrl: `${issuer.url}/oidc/.well-known/openid-configuration`, audience: "urn:postern:control" },
    });
  });
  afterAll(async () => {
    await control.close();
    await issuer.close();
  });

  it("accepts the issuer's tokens (found through discovery and its JWKS) and applies their roles", async () => {
    const token = await signIn(issuer.url, "carol", "carol-password");
    const me = await api(control.url, "GET", "/api/v1/me", token);
    expect(me.body).toMatchObject({ name: "carol", roles: ["Application Administrator"] });
    expect((await api(control.url, "POST", "/api/v1/apps", token, { name: "Ext", internalUrl: "http://ext.corp/", externalUrl: "https://ext.contoso.com/" })).status).toBe(201);
    expect((await api(control.url, "GET", "/api/v1/users", token)).status).toBe(403);
  });

  it("has no built-in IdP of its own to sign in at, and cannot mint tokens", async () => {
    expect((await api(control.url, "GET", "/oidc/.well-known/openid-configuration")).status).toBe(404);
    await expect(control.mintToken({ name: "x", roles: [] })).rejects.toThrow(/built-in IdP/);
  });
});

describe("master key", () => {
  it("seals secrets so only the same key opens them, bound to their purpose", () => {
    const dir = tempDir();
    const a = loadMasterKey({ keyFile: join(dir, "a.key") });
    const again = loadMasterKey({ keyFile: join(dir, "a.key") });
    const b = loadMasterKey({ keyFile: join(dir, "b.key") });
    const sealed = a.seal("ca private key", "ca-key:default");
    expect(again.open(sealed, "ca-key:default").toString()).toBe("ca private key");
    expect(() => b.open(sealed, "ca-key:default")).toThrow(/wrong key or corrupted/);
    expect(() => a.open(sealed, "totp:someone")).toThrow(/wrong key or corrupted/);
    const flipped = Buffer.from(sealed);
    flipped[flipped.length - 1]! ^= 1;
    expect(() => a.open(flipped, "ca-key:default")).toThrow(/wrong key or corrupted/);
  });

  it("refuses a key file other users can read, and a malformed environment key", () => {
    const dir = tempDir();
    const file = join(dir, "master.key");
    writeFileSync(file, Buffer.alloc(32, 7).toString("base64"));
    chmodSync(file, 0o644);
    expect(() => loadMasterKey({ keyFile: file })).toThrow(/lets other users read it; chmod 600/);
    expect(() => loadMasterKey({ keyFile: file, envValue: "c2hvcnQ=" })).toThrow(/POSTERN_MASTER_KEY: expected 32 bytes/);
    expect(loadMasterKey({ keyFile: file, envValue: Buffer.alloc(32, 1).toString("base64") }).seal("x", "y").length).toBeGreaterThan(28);
  });
});
