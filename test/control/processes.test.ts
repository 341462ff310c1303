import Database from "better-sqlite3";
import { X509Certificate, createPrivateKey, createPublicKey } from "node:crypto";
import { chmodSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BuiltInIdp } from "../../control/idp/provider.js";
import { loadMasterKey } from "../../control/secrets.js";
import { openSqliteStore } from "../../control/store/sqlite.js";
import { createKeyAndCsr } from "../../engine/identity/csr.js";
import { api, quietLogger, signIn, startTestControl, tempDir } from "../fixtures/control.js";
import { runCli, startService, type Service } from "../fixtures/processes.js";

interface ControlReady {
  control: string;
  caFile: string;
  credential: string;
}

describe("connector registration against a control process", () => {
  let dir: string;
  let control: Service;
  let ready: ControlReady;
  let admin: string;
  let ca: string;

  beforeAll(async () => {
    dir = tempDir();
    control = startService(["control", "--data-dir", join(dir, "control"), "--port", "0", "--json"]);
    ready = (await control.ready) as unknown as ControlReady;
    admin = (JSON.parse(readFileSync(ready.credential, "utf8")) as { token: string }).token;
    ca = readFileSync(ready.caFile, "utf8");
    expect(statSync(ready.credential).mode & 0o777).toBe(0o600);
  });
  afterAll(() => control.kill());

  const register = (token: string, stateDir: string, extra: string[] = []) =>
    runCli(["connector", "register", "--control", ready.control, "--token", token, "--ca-file", ready.caFile, "--state-dir", stateDir, "--json", ...extra]);

  it("registers with an admin token: key made and kept here (0600), certificate from the tenant CA", async () => {
    const stateDir = join(dir, "c1");
    const res = await register(admin, stateDir);
    expect(res.code, res.stderr).toBe(0);
    const { id } = JSON.parse(res.stdout) as { id: string };
    expect(statSync(join(stateDir, "connector.key")).mode & 0o777).toBe(0o600);
    const cert = new X509Certificate(readFileSync(join(stateDir, "connector.crt")));
    expect(cert.checkIssued(new X509Certificate(ca)) && cert.verify(new X509Certificate(ca).publicKey)).toBe(true);
    expect(cert.subject).toContain(`CN=${id}`);
    // The certificate is for the key that was generated on this host.
    const key = createPrivateKey(readFileSync(join(stateDir, "connector.key")));
    expect(createPublicKey(key).export({ type: "spki", format: "der" }).equals(cert.publicKey.export({ type: "spki", format: "der" }))).toBe(true);
    const listed = await api(ready.control, "GET", "/api/v1/connectors", admin, undefined, ca);
    expect(listed.body.connectors.map((c: { id: string }) => c.id)).toContain(id);
  });

  it("registers after an interactive device sign-in", async () => {
    const stateDir = join(dir, "c-interactive");
    const added = await runCli(["user", "add", "--username", "appadmin", "--password", "app-admin-pw", "--role", "Application Administrator", "--control", ready.control, "--token", admin, "--ca-file", ready.caFile]);
    expect(added.code, added.stderr).toBe(0);
    const child = startService(["connector", "register", "--control", ready.control, "--ca-file", ready.caFile, "--state-dir", stateDir, "--json"]);
    const prompt = await child.waitForLog((l) => /To sign in, open/.test(String(l.msg)));
    const url = /open (\S+) and confirm/.exec(String(prompt.msg))![1]!;
    await signIn(ready.control, "appadmin", "app-admin-pw", "", url, ca);
    const out = await child.ready;
    expect(out.id).toMatch(/^[0-9a-f-]{36}$/);
  }, 30_000);

  it("refuses a non-admin token, an expired token, a token from another issuer and a tampered CSR, each saying why", async () => {
    // A real Security Reader token from the IdP's own sign-in.
    await runCli(["user", "add", "--username", "reader", "--password", "reader-pw-1", "--role", "Security Reader", "--control", ready.control, "--token", admin, "--ca-file", ready.caFile]);
    const reader = await signIn(ready.control, "reader", "reader-pw-1", "", undefined, ca);
    const denied = await register(reader, join(dir, "c2"));
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/needs one of the roles: Global Administrator, Application Administrator.*\[POSTERN_FORBIDDEN\]/);

    // An expired token signed with this IdP's own key (opened beside the running process, as an operator could).
    const store = openSqliteStore(join(dir, "control", "control.db"));
    const sealer = loadMasterKey({ keyFile: join(dir, "control", "master.key") });
    const idp = await BuiltInIdp.create({ store, sealer, tenantId: "default", issuer: `${ready.control}/oidc` });
    const expired = await idp.mintToken({ sub: "x", name: "x", roles: ["Global Administrator"] }, -120);
    await store.close();
    const late = await register(expired, join(dir, "c3"));
    expect(late.code).toBe(1);
    expect(late.stderr).toMatch(/the token has expired \[POSTERN_TOKEN_INVALID\]/);

    const other = await startTestControl({ logger: quietLogger });
    const foreign = await other.mintToken({ name: "elsewhere", roles: ["Global Administrator"] });
    await other.close();
    const alien = await register(foreign, join(dir, "c4"));
    expect(alien.code).toBe(1);
    expect(alien.stderr).toMatch(/comes from another issuer.*\[POSTERN_TOKEN_INVALID\]/);

    const { csrPem } = await createKeyAndCsr("tampered");
    const der = Buffer.from(csrPem.replace(/-----[^-]+-----|\s/g, ""), "base64");
    const at = der.indexOf("tampered");
    expect(at).toBeGreaterThan(0);
    der[at] = "T".charCodeAt(0); // change the subject: the signature no longer matches
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString("base64")}\n-----END CERTIFICATE REQUEST-----\n`;
    const res = await api(ready.control, "POST", "/api/v1/connectors/register", admin, { csr: tampered, hostName: "h", version: "1" }, ca);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: "POSTERN_CSR_REJECTED", message: expect.stringMatching(/signature does not verify/) });
    for (const dirName of ["c2", "c3", "c4"]) expect(() => statSync(join(dir, dirName, "connector.key"))).toThrow();
  }, 30_000);
});

describe("engine and connector processes", () => {
  it("an engine process drops a disabled connector process within 5 s; a world-readable key stops a connector", async () => {
    const dir = tempDir();
    const dataDir = join(dir, "control");
    const control = startService(["control", "--data-dir", dataDir, "--port", "0", "--json"]);
    let engine: Service | undefined;
    try {
      await control.ready;
      engine = startService(["engine", "--workers", "1", "--data-dir", dataDir, "--tunnel-port", "0", "--http-port", "0", "--json"]);
      const { tunnelUrl } = await engine.ready;
      expect(String(tunnelUrl)).toMatch(/^wss:\/\/127\.0\.0\.1:\d+\/tunnel$/);
      const stateDir = join(dir, "connector");
      expect((await runCli(["connector", "register", "--data-dir", dataDir, "--state-dir", stateDir])).code).toBe(0);
      const connector = startService(["connector", "run", "--workers", "1", "--state-dir", stateDir, "--connections", "2", "--json"]);
      const { connector: id } = await connector.ready;
      await engine.waitForLog((l) => l.msg === "connector connected" && l.connector === id);

      const t0 = Date.now();
      const disabled = await runCli(["connector", "disable", String(id), "--data-dir", dataDir]);
      expect(disabled.code, disabled.stderr).toBe(0);
      await engine.waitForLog((l) => l.msg === "connector disconnected" && l.connector === id, 5000);
      expect(Date.now() - t0).toBeLessThan(5000);
      const refused = await engine.waitForLog((l) => l.msg === "tunnel refused", 10_000);
      expect(String(refused.err)).toMatch(/is disabled/);
      expect(await connector.kill("SIGTERM")).toBe(0); // drains and exits cleanly

      chmodSync(join(stateDir, "connector.key"), 0o644);
      const stopped = await runCli(["connector", "run", "--state-dir", stateDir]);
      expect(stopped.code).toBe(1);
      expect(stopped.stderr).toMatch(/other users can read .*chmod 600/);
    } finally {
      await engine?.kill();
      await control.kill();
    }
  }, 40_000);
});

describe("store durability", () => {
  it("keeps every acknowledged change after kill -9 mid-burst, with no corruption", async () => {
    const dataDir = join(tempDir(), "control");
    const first = startService(["control", "--data-dir", dataDir, "--port", "0", "--tls", "off", "--json"]);
    const { control: url, credential } = (await first.ready) as unknown as ControlReady;
    const token = (JSON.parse(readFileSync(credential, "utf8")) as { token: string }).token;
    const acknowledged: string[] = [];
    let n = 0;
    let killed = false;
    const writer = async () => {
      while (!killed && n < 5000) {
        const name = `burst-${n++}`;
        const res = await api(url, "POST", "/api/v1/apps", token, { name, internalUrl: `http://${name}.corp/`, externalUrl: `https://${name}.contoso.com/` }).catch(() => null);
        if (res?.status === 201) acknowledged.push(name);
      }
    };
    const writers = Array.from({ length: 8 }, writer);
    while (acknowledged.length < 150) await new Promise((r) => setTimeout(r, 10));
    await first.kill("SIGKILL");
    killed = true;
    await Promise.all(writers);

    const db = new Database(join(dataDir, "control.db"));
    expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
    db.close();
    const second = startService(["control", "--data-dir", dataDir, "--port", "0", "--tls", "off", "--json"]);
    try {
      const { control: url2, credential: credential2 } = (await second.ready) as unknown as ControlReady;
      const token2 = (JSON.parse(readFileSync(credential2, "utf8")) as { token: string }).token;
      const { body } = await api(url2, "GET", "/api/v1/apps", token2);
      const stored = new Set((body.apps as { name: string }[]).map((a) => a.name));
      expect(acknowledged.filter((name) => !stored.has(name))).toEqual([]);
      expect(stored.size).toBeGreaterThanOrEqual(acknowledged.length);
    } finally {
      await second.kill();
    }
  }, 40_000);
});
