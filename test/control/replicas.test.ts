/**
 * Control replicas on one PostgreSQL store (started here): they start together on an empty
 * store and agree on one CA and one IdP; a replica with another master key, or none, stops at
 * start saying why; engines that went silent are dropped from the connectors' feed.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sweepSilentEngines } from "../../control/api/connectors.js";
import { startPostgres, type Postgres } from "../../loadtest/servers.js";
import { api, startTestControl, tempDir } from "../fixtures/control.js";
import { until } from "../fixtures/lifecycle.js";

let server: Postgres;
beforeAll(async () => {
  server = await startPostgres();
}, 60_000);
afterAll(() => server?.stop());

describe("control replicas on PostgreSQL", () => {
  it("start together on an empty store with one CA and one IdP: a token from one is honoured by the other", async () => {
    const store = await server.createDatabase();
    const masterKey = randomBytes(32).toString("base64");
    const [a, b] = await Promise.all([
      startTestControl({ store, masterKey, publicUrl: "http://127.0.0.1:1" }),
      startTestControl({ store, masterKey, publicUrl: "http://127.0.0.1:1" }),
    ]);
    try {
      expect(a.caCertPem).toBe(b.caCertPem);
      // One IdP signing key: a token minted by replica A is honoured by replica B.
      const token = await a.mintToken({ name: "root", roles: ["Global Administrator"] });
      const listed = await api(b.address, "GET", "/api/v1/connector-groups", token);
      expect(listed.status, JSON.stringify(listed.body)).toBe(200);
      // The default group was made once, not once per replica.
      expect(listed.body.groups.map((g: { name: string }) => g.name)).toEqual(["Default"]);
      // A change on A is seen by B's feed: B's store listeners hear A's commit.
      const seen: number[] = [];
      b.context.store.onChange((v) => seen.push(v));
      const made = await api(a.address, "POST", "/api/v1/connector-groups", token, { name: "Branch" });
      expect(made.status, JSON.stringify(made.body)).toBe(201);
      await until(() => seen.length > 0, 2000, "replica B hears replica A's change");
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it("refuses a replica without the shared master key, or with another one, naming the setting", async () => {
    const store = await server.createDatabase();
    const first = await startTestControl({ store, masterKey: randomBytes(32).toString("base64") });
    try {
      await expect(startTestControl({ store, masterKey: randomBytes(32).toString("base64") })).rejects.toThrow(/master key: differs from the key this store's secrets are sealed with/);
      const saved = process.env.POSTERN_MASTER_KEY;
      delete process.env.POSTERN_MASTER_KEY;
      try {
        await expect(startTestControl({ store, dataDir: tempDir() })).rejects.toThrow(/master key: a shared store needs the same key on every replica; set POSTERN_MASTER_KEY/);
      } finally {
        if (saved !== undefined) process.env.POSTERN_MASTER_KEY = saved;
      }
      await expect(startTestControl({ store: "mysql://db/x", masterKey: randomBytes(32).toString("base64") })).rejects.toThrow(/store: mysql: is not a store scheme/);
    } finally {
      await first.close();
    }
  });
});

describe("engines that went silent", () => {
  it("are dropped after the silence limit, which is a feed change; heartbeats keep the others", async () => {
    const control = await startTestControl();
    try {
      const { store } = control.context;
      const now = Date.now();
      await store.upsertEngine({ id: "quiet", tunnelUrl: "wss://quiet:1/tunnel", lastSeen: new Date(now - 120_000).toISOString() });
      await store.upsertEngine({ id: "alive", tunnelUrl: "wss://alive:1/tunnel", lastSeen: new Date(now - 5_000).toISOString() });
      const version = await store.configVersion();
      expect(await sweepSilentEngines(control.context, 60_000)).toEqual(["quiet"]);
      expect(await store.configVersion()).toBe(version + 1);
      expect((await store.listEngines()).map((e) => e.id)).toEqual(["alive"]);
      expect(await sweepSilentEngines(control.context, 60_000)).toEqual([]);
      const health = await api(control.url, "GET", "/healthz");
      expect(health.status).toBe(200);
    } finally {
      await control.close();
    }
  });
});
