/**
 * Session keys: control rotates them weekly and keeps the previous one for the overlap, so a
 * cookie sealed before a rotation still opens after it, and stops opening once its key is
 * retired. Cookies are sealed and opened by the real worker task.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { sessionKeys } from "../../control/auth-keys.js";
import { loadMasterKey } from "../../control/secrets.js";
import { openSqliteStore } from "../../control/store/sqlite.js";
import authTask from "../../engine/workers/auth-task.js";
import { tempDir } from "../fixtures/control.js";

const DAY = 86_400_000;

describe("session key rotation", () => {
  it("rotates every 7 days, keeps the previous key for the overlap, retires it after 14", async () => {
    const dir = tempDir();
    const store = openSqliteStore(join(dir, "store.db"));
    const sealer = loadMasterKey({ keyFile: join(dir, "master.key") });
    const t0 = Date.parse("2026-01-01T00:00:00Z");
    const v0 = await store.configVersion();
    const day0 = await sessionKeys(store, sealer, new Date(t0));
    expect(day0).toHaveLength(1);
    expect(await store.configVersion()).toBeGreaterThan(v0); // engines are told
    expect(await sessionKeys(store, sealer, new Date(t0 + 3 * DAY))).toEqual(day0); // nothing due

    const sealed = await authTask({ op: "seal", key: day0[0]!, payload: { sub: "alice" }, slot: 0 });
    expect(sealed.ok && sealed.token).toBeTruthy();
    const token = (sealed as { token: string }).token;

    const day8 = await sessionKeys(store, sealer, new Date(t0 + 8 * DAY));
    expect(day8.map((k) => k.kid)).toEqual([expect.any(String), day0[0]!.kid]);
    const opened = await authTask({ op: "open", token, keys: day8, slot: 0 });
    expect(opened).toMatchObject({ ok: true, payload: { sub: "alice" } }); // sealed before the rotation, still opens

    const day16 = await sessionKeys(store, sealer, new Date(t0 + 16 * DAY));
    expect(day16.map((k) => k.kid)).not.toContain(day0[0]!.kid);
    const refused = await authTask({ op: "open", token, keys: day16, slot: 0 });
    expect(refused).toEqual({ ok: false, reason: "the session cookie does not decrypt" });
    store.close?.();
  });
});
