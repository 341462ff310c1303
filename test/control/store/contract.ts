/**
 * What every Store implementation must do (control/store/types.ts), as one suite that each
 * implementation runs with its own factory (hono's router common.case.test.ts): SQLite now,
 * PostgreSQL with the scale-out work.
 */
import { afterEach, describe, expect, it } from "vitest";
import { appSettingsSchema } from "../../../control/contract/apps.js";
import { StoreConflict, type Connector, type Store } from "../../../control/store/types.js";

/** A new empty database; `open` gives a store on it, as many times as asked (replicas). */
export interface StoreDatabase {
  open(): Promise<Store>;
}

export function runStoreContract(name: string, create: () => Promise<StoreDatabase>): void {
  describe(`store contract: ${name}`, () => {
    const open: Store[] = [];
    const replicas = async (n: number) => {
      const db = await create();
      const stores = await Promise.all(Array.from({ length: n }, () => db.open()));
      open.push(...stores);
      await stores[0]!.ensureTenant({ id: "t1", name: "contoso", domainSuffix: "example.test" });
      return stores;
    };
    const fresh = async () => (await replicas(1))[0]!;
    afterEach(async () => {
      await Promise.all(open.splice(0).map((s) => s.close()));
    });
    const app = (name: string, internalUrl: string, externalUrl: string) => appSettingsSchema.parse({ name, internalUrl, externalUrl });
    const connector = (id: string, group = "Default"): Connector => ({
      id, tenantId: "t1", group, hostName: "h", version: "1", certSerial: `s-${id}`, certFingerprint: "f", certNotBefore: "2026-01-01T00:00:00.000Z",
      certNotAfter: "2027-01-01T00:00:00.000Z", lastSeen: "2026-01-01T00:00:00.000Z", status: "active", createdAt: "2026-01-01T00:00:00.000Z",
    });

    it("bumps the configuration version on every change, tells listeners after commit, and not for heartbeats", async () => {
      const store = await fresh();
      const seen: number[] = [];
      const off = store.onChange((v) => seen.push(v));
      const v0 = await store.configVersion();
      await store.addConnectorGroup("t1", "Default");
      await store.putApp("t1", app("Wiki", "http://wiki.corp/", "https://wiki.example.test/"), null);
      expect(await store.configVersion()).toBe(v0 + 2);
      expect(seen).toEqual([v0 + 1, v0 + 2]);
      await store.addConnector(connector("c1"));
      const v = await store.configVersion();
      await store.touchConnector("c1", "2026-02-01T00:00:00.000Z", "2");
      expect(await store.configVersion()).toBe(v);
      expect((await store.getConnector("c1"))).toMatchObject({ lastSeen: "2026-02-01T00:00:00.000Z", version: "2" });
      off();
      await store.addConnectorGroup("t1", "Other");
      expect(seen.at(-1)).toBe(v);
    });

    it("keeps app settings whole, replaces by name, and refuses a duplicate external URL with StoreConflict", async () => {
      const store = await fresh();
      const wiki = app("Wiki", "http://wiki.corp/", "https://wiki.example.test/");
      const put = await store.putApp("t1", wiki, null);
      expect(put.settings).toEqual(wiki);
      expect((await store.getApp("t1", "Wiki"))?.settings).toEqual(wiki);
      const renamed = { ...wiki, name: "Docs", translateBody: true };
      await store.putApp("t1", renamed, null, "Wiki");
      expect(await store.getApp("t1", "Wiki")).toBeNull();
      expect((await store.getApp("t1", "Docs"))?.id).toBe(put.id);
      const clash = store.putApp("t1", app("Other", "http://other.corp/", "https://wiki.example.test/"), null);
      await expect(clash).rejects.toBeInstanceOf(StoreConflict);
      await expect(clash).rejects.toMatchObject({ code: "POSTERN_CONFLICT" });
      expect((await store.listApps("t1")).map((a) => a.settings.name)).toEqual(["Docs"]);
      expect(await store.deleteApp("t1", "Docs")).toBe(true);
      expect(await store.deleteApp("t1", "Docs")).toBe(false);
    });

    it("revokes every certificate of a subject once, and lists them", async () => {
      const store = await fresh();
      for (const serial of ["a", "b"]) {
        await store.recordCertificate({ serial, kind: "connector", subjectId: "c1", fingerprint: serial, notBefore: "2026-01-01T00:00:00.000Z", notAfter: "2027-01-01T00:00:00.000Z", revokedAt: null });
      }
      expect(await store.revokeCertificates("c1", "2026-03-01T00:00:00.000Z")).toBe(2);
      expect(await store.revokeCertificates("c1", "2026-03-02T00:00:00.000Z")).toBe(0);
      expect((await store.getCertificate("a"))?.revokedAt).toBe("2026-03-01T00:00:00.000Z");
      expect((await store.listCertificates("c1")).length).toBe(2);
    });

    it("stores secrets as given, and only feed secrets bump the version", async () => {
      const store = await fresh();
      const v = await store.configVersion();
      await store.putSecret("plain", Buffer.from([1, 2, 3]));
      expect(await store.configVersion()).toBe(v);
      await store.putSecret("session-key", Buffer.from([4]), { feedChange: true });
      expect(await store.configVersion()).toBe(v + 1);
      expect(await store.getSecret("plain")).toEqual(Buffer.from([1, 2, 3]));
      expect(await store.deleteSecret("plain")).toBe(true);
      expect(await store.getSecret("plain")).toBeNull();
    });

    it("filters the audit and sign-in logs, and pages within a filter", async () => {
      const store = await fresh();
      for (let i = 0; i < 6; i++) {
        await store.appendAudit({ tenantId: "t1", at: "2026-01-01T00:00:00.000Z", actor: i % 2 ? "alice" : "bob", action: i < 3 ? "app.add" : "app.remove", target: `x${i}`, outcome: i === 5 ? "failure" : "success", detail: {} });
        await store.appendSignIn({ tenantId: "t1", at: "2026-01-01T00:00:00.000Z", username: i % 2 ? "Alice" : "bob", outcome: i === 4 ? "failure" : "success", reason: "ok", client: "engine", app: i < 2 ? "Wiki" : "Docs" });
      }
      expect((await store.listAudit({ tenantId: "t1", limit: 10, action: "app.add" })).map((e) => e.target)).toEqual(["x2", "x1", "x0"]);
      expect((await store.listAudit({ tenantId: "t1", limit: 10, action: "app.remove", actor: "alice" })).map((e) => e.target)).toEqual(["x5", "x3"]);
      expect((await store.listAudit({ tenantId: "t1", limit: 10, outcome: "failure" })).map((e) => e.target)).toEqual(["x5"]);
      const page1 = await store.listAudit({ tenantId: "t1", limit: 2, actor: "bob" });
      expect(page1.map((e) => e.target)).toEqual(["x4", "x2"]);
      expect((await store.listAudit({ tenantId: "t1", limit: 2, actor: "bob", beforeId: page1.at(-1)!.id })).map((e) => e.target)).toEqual(["x0"]);
      expect(await store.listSignIns({ tenantId: "t1", limit: 10, username: "alice" })).toHaveLength(3); // whatever the case
      expect((await store.listSignIns({ tenantId: "t1", limit: 10, app: "Wiki", username: "ALICE" })).map((e) => e.username)).toEqual(["Alice"]);
      expect(await store.listSignIns({ tenantId: "t1", limit: 10, outcome: "failure" })).toHaveLength(1);
      // A filter value is data, never SQL.
      expect(await store.listSignIns({ tenantId: "t1", limit: 10, username: "x' OR '1'='1" })).toEqual([]);
    });

    it("pages the audit and sign-in logs newest first", async () => {
      const store = await fresh();
      for (let i = 0; i < 5; i++) {
        await store.appendAudit({ tenantId: "t1", at: `2026-01-0${i + 1}T00:00:00.000Z`, actor: "admin", action: `a${i}`, target: "x", outcome: "success", detail: { i } });
        await store.appendSignIn({ tenantId: "t1", at: `2026-01-0${i + 1}T00:00:00.000Z`, username: `u${i}`, outcome: "success", reason: "ok", client: "engine" });
      }
      const first = await store.listAudit({ tenantId: "t1", limit: 2 });
      expect(first.map((e) => e.action)).toEqual(["a4", "a3"]);
      const next = await store.listAudit({ tenantId: "t1", limit: 2, beforeId: first.at(-1)!.id });
      expect(next.map((e) => e.action)).toEqual(["a2", "a1"]);
      expect(next[0]!.detail).toEqual({ i: 2 });
      expect((await store.listSignIns({ tenantId: "t1", limit: 10 })).map((s) => s.username)).toEqual(["u4", "u3", "u2", "u1", "u0"]);
    });

    it("finds IdP records by id, uid and user code until they expire, and consumes and revokes them", async () => {
      const store = await fresh();
      const now = 1_800_000_000_000;
      await store.oidcUpsert("Session", "s1", { payload: { a: 1 }, expiresAt: now + 60_000 }, { uid: "u1", grantId: "g1" });
      await store.oidcUpsert("DeviceCode", "d1", { payload: { b: 2 }, expiresAt: now + 60_000 }, { userCode: "ABCD", grantId: "g1" });
      expect((await store.oidcFind("Session", "id", "s1", now))?.payload).toEqual({ a: 1 });
      expect((await store.oidcFind("Session", "uid", "u1", now))?.payload).toEqual({ a: 1 });
      expect((await store.oidcFind("DeviceCode", "userCode", "ABCD", now))?.payload).toEqual({ b: 2 });
      expect(await store.oidcFind("Session", "id", "s1", now + 120_000)).toBeNull();
      await store.oidcConsume("DeviceCode", "d1", now);
      expect((await store.oidcFind("DeviceCode", "id", "d1", now))?.payload).toMatchObject({ b: 2, consumed: expect.any(Number) });
      await store.oidcRevokeByGrantId("g1");
      expect(await store.oidcFind("Session", "id", "s1", now)).toBeNull();
      expect(await store.oidcFind("DeviceCode", "id", "d1", now)).toBeNull();
    });

    it("settles races between replicas: one app per external URL, one CA, one secret created, one rotation", async () => {
      const stores = await replicas(3);
      const results = await Promise.allSettled(stores.map((s, i) => s.putApp("t1", app(`App${i}`, `http://app${i}.corp/`, "https://same.example.test/"), null)));
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      for (const r of results) if (r.status === "rejected") expect(r.reason).toMatchObject({ code: "POSTERN_CONFLICT", field: "externalUrl" });
      // Names are unique whatever their case, as the API promises.
      await expect(stores[1]!.putApp("t1", app("APP0", "http://other.corp/", "https://other.example.test/"), null).then(() => stores[1]!.putApp("t1", app("app0", "http://third.corp/", "https://third.example.test/"), null)))
        .rejects.toMatchObject({ field: "name" });

      const cas = await Promise.all(stores.map((s, i) => s.putCa("t1", `cert-${i}`, Buffer.from([i]))));
      expect(new Set(cas.map((c) => c.certPem)).size).toBe(1);
      expect((await stores[2]!.getCa("t1"))?.certPem).toBe(cas[0]!.certPem);

      const created = await Promise.all(stores.map((s, i) => s.swapSecret("k", null, Buffer.from([i]))));
      expect(new Set(created.map((b) => b.toString("hex"))).size).toBe(1);
      const v = await stores[0]!.configVersion();
      const rotated = await Promise.all(stores.map((s, i) => s.swapSecret("k", created[0]!, Buffer.from([10 + i]), { feedChange: true })));
      expect(new Set(rotated.map((b) => b.toString("hex"))).size).toBe(1);
      expect(rotated[0]!.equals(created[0]!)).toBe(false);
      expect(await stores[0]!.configVersion()).toBe(v + 1); // only the swap that happened bumped
      // A stale compare does not overwrite.
      expect((await stores[1]!.swapSecret("k", created[0]!, Buffer.from([99]))).equals(rotated[0]!)).toBe(true);
    });

    it("lists engines until one is removed, which is a feed change", async () => {
      const store = await fresh();
      await store.upsertEngine({ id: "e1", tunnelUrl: "wss://a:1/tunnel", lastSeen: "2026-01-01T00:00:00.000Z" });
      await store.upsertEngine({ id: "e2", tunnelUrl: "wss://b:1/tunnel", lastSeen: "2026-01-01T00:00:00.000Z" });
      const v = await store.configVersion();
      await store.upsertEngine({ id: "e1", tunnelUrl: "wss://a:1/tunnel", lastSeen: "2026-01-02T00:00:00.000Z" });
      expect(await store.configVersion()).toBe(v); // a heartbeat
      expect(await store.removeEngine("e2")).toBe(true);
      expect(await store.removeEngine("e2")).toBe(false);
      expect(await store.configVersion()).toBe(v + 1);
      expect(await store.listEngines()).toEqual([{ id: "e1", tunnelUrl: "wss://a:1/tunnel", lastSeen: "2026-01-02T00:00:00.000Z" }]);
    });
  });
}
