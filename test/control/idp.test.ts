import { decodeJwt } from "jose";
import * as OTPAuth from "otpauth";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ControlHandle } from "../../control/server.js";
import { addUser, api, signIn, startTestControl } from "../fixtures/control.js";

describe("built-in IdP", () => {
  let control: ControlHandle;
  let admin: string;

  beforeAll(async () => {
    control = await startTestControl();
    admin = await control.mintToken({ name: "root", roles: ["Global Administrator"] });
    await addUser(control, admin, { username: "alice", password: "alice-password-1", roles: ["Application Administrator"] });
    await api(control.url, "POST", "/api/v1/groups", admin, { name: "Engineering", members: ["alice"] });
  });
  afterAll(() => control.close());

  it("signs a user in with the device flow and issues a JWT access token with roles, groups and amr", async () => {
    const token = await signIn(control.url, "alice", "alice-password-1");
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({
      iss: `${control.url}/oidc`, aud: "urn:postern:control", preferred_username: "alice",
      roles: ["Application Administrator"], groups: ["Engineering"], amr: ["pwd"], tid: "default",
    });
    const me = await api(control.url, "GET", "/api/v1/me", token);
    expect(me.body).toMatchObject({ name: "alice", roles: ["Application Administrator"] });
  });

  it("requires the TOTP code of an enrolled user and then reports mfa in amr", async () => {
    const { totp } = await addUser(control, admin, { username: "bob", password: "bob-password-1", roles: ["Security Reader"], totp: true });
    await expect(signIn(control.url, "bob", "bob-password-1")).rejects.toThrow(/one-time code/);
    await expect(signIn(control.url, "bob", "bob-password-1", "000000")).rejects.toThrow(/wrong or expired/);
    const code = new OTPAuth.TOTP({ secret: totp!.secret }).generate();
    const claims = decodeJwt(await signIn(control.url, "bob", "bob-password-1", code));
    expect(claims.amr).toEqual(["pwd", "otp", "mfa"]);
  });

  it("refuses a wrong password and records every sign-in for Security Readers", async () => {
    await expect(signIn(control.url, "alice", "not-her-password")).rejects.toThrow(/Wrong username or password/);
    const reader = await control.mintToken({ name: "auditor", roles: ["Security Reader"] });
    const log = await api(control.url, "GET", "/api/v1/sign-ins?limit=50", reader);
    expect(log.status).toBe(200);
    const outcomes = log.body.entries.map((e: { username: string; outcome: string; reason: string }) => `${e.username}:${e.outcome}:${e.reason}`);
    expect(outcomes).toContain("alice:failure:bad_credentials");
    expect(outcomes).toContain("alice:success:pwd");
    expect(outcomes).toContain("bob:failure:mfa_required");
  });

  it("publishes discovery with the device endpoint and PKCE S256", async () => {
    const res = await fetch(`${control.url}/oidc/.well-known/openid-configuration`);
    const doc = (await res.json()) as Record<string, unknown>;
    expect(doc.device_authorization_endpoint).toBe(`${control.url}/oidc/device/auth`);
    expect(doc.code_challenge_methods_supported).toEqual(["S256"]);
    expect(doc.claims_supported).toEqual(expect.arrayContaining(["groups", "roles", "amr"]));
  });
});
