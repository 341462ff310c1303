import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openPostgresStore } from "../../../control/store/postgres.js";
import { startPostgres, type Postgres } from "../../../loadtest/servers.js";
import { runStoreContract } from "./contract.js";

let server: Postgres;
beforeAll(async () => {
  server = await startPostgres();
}, 60_000);
afterAll(() => server?.stop());

runStoreContract("PostgreSQL", async () => {
  const url = await server.createDatabase();
  return { open: () => openPostgresStore({ url }) };
});

describe("PostgreSQL store: what only a shared store does", () => {
  it("tells a replica's listeners about another replica's commit (LISTEN/NOTIFY), once per version", async () => {
    const url = await server.createDatabase();
    const [a, b] = await Promise.all([openPostgresStore({ url }), openPostgresStore({ url })]);
    try {
      const seen: number[] = [];
      b.onChange((v) => seen.push(v));
      const before = await a.configVersion();
      await a.ensureTenant({ id: "t1", name: "contoso", domainSuffix: "example.test" });
      await a.addConnectorGroup("t1", "Default");
      const deadline = Date.now() + 2000;
      while (seen.at(-1) !== before + 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(seen).toEqual([before + 1, before + 2]);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it("names the setting in a bad store URL, and an unreachable server in its error", async () => {
    await expect(openPostgresStore({ url: "mysql://x/y" })).rejects.toThrow(/store: mysql: is not a store scheme/);
    await expect(openPostgresStore({ url: "not a url" })).rejects.toThrow(/store: not a URL/);
    await expect(openPostgresStore({ url: "postgres://postern:secret@127.0.0.1:1/none" })).rejects.toThrow(/store postgres:\/\/postern:\*\*\*@127\.0\.0\.1:1\/none/);
  });
});
