import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "vitest";
import { openSqliteStore } from "../../../control/store/sqlite.js";
import { runStoreContract } from "./contract.js";

const dir = mkdtempSync(join(tmpdir(), "postern-store-"));
let n = 0;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

runStoreContract("SQLite", async () => {
  const file = join(dir, `store-${++n}.db`);
  return { open: async () => openSqliteStore(file) };
});
