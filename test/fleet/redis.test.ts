/**
 * The state engines share through a real Redis (started here): rate buckets counted across
 * engines, revocations told to every engine, single use across engines, and what each does
 * while Redis is down.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pino from "pino";
import { connectRedisState } from "../../engine/fleet/redis.js";
import type { SharedState } from "../../engine/fleet/shared.js";
import { Throttle } from "../../engine/limits/throttle.js";
import { resolveLimits } from "../../engine/limits/config.js";
import { startRedis, type Redis } from "../../loadtest/servers.js";
import { until } from "../fixtures/lifecycle.js";

const logger = pino({ level: "silent" });
let redis: Redis;
const opened: SharedState[] = [];
const connect = async () => {
  const state = await connectRedisState({ url: redis.url, logger });
  opened.push(state);
  return state;
};

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await Promise.all(opened.map((s) => s.close()));
  await redis?.close();
});

/**
 * Offers `perEngine` requests/s on each throttle (spread over two apps of tenant `tenant`) for
 * `seconds` of real time; returns admitted requests per second beyond the initial burst.
 */
async function offer(throttles: Throttle[], tenant: string, perEngine: number, seconds: number): Promise<number> {
  let admitted = 0;
  const pending: Promise<void>[] = [];
  const tickMs = 10;
  const start = Date.now();
  let sent = 0;
  while (Date.now() - start < seconds * 1000) {
    const due = Math.floor(((Date.now() - start) / 1000) * perEngine);
    for (; sent < due; sent++) {
      throttles.forEach((throttle, i) => {
        const wait = throttle.admit(tenant, `${tenant}/app${(sent + i) % 2}`);
        if (typeof wait === "number") admitted += wait === 0 ? 1 : 0;
        else pending.push(wait.then((w) => void (admitted += w === 0 ? 1 : 0)));
      });
    }
    await new Promise((r) => setTimeout(r, tickMs));
  }
  await Promise.all(pending);
  return admitted;
}

describe("shared state on Redis", () => {
  it("holds a tenant's 750/s across three engines within 5%", async () => {
    const limits = resolveLimits({ appRatePerSecond: 500, tenantRatePerSecond: 750 });
    const engines = await Promise.all([connect(), connect(), connect()]);
    const throttles = engines.map((s) => new Throttle(limits, Date.now, s));
    const seconds = 4;
    // 1200/s offered in all (400 per engine), so the tenant's limit is what binds.
    const admitted = await offer(throttles, "tenant-a", 400, seconds);
    const burst = 750 * limits.burstFraction;
    const rate = (admitted - burst) / seconds;
    expect(rate).toBeGreaterThan(750 * 0.95);
    expect(rate).toBeLessThan(750 * 1.05);
  }, 20_000);

  it("tells every engine about a sign-out within a second, replays it to an engine that connects later, and uses a sign-in once", async () => {
    const [a, b] = await Promise.all([connect(), connect()]);
    const seen: string[] = [];
    b.onRevoked((sid) => seen.push(sid));
    const exp = Math.floor(Date.now() / 1000) + 600;
    const started = Date.now();
    await a.revoke("sid-1", exp);
    await until(() => seen.includes("sid-1"), 1000, "revocation reached the other engine");
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await b.isRevoked("sid-1")).toBe(true);
    expect(await b.isRevoked("sid-2")).toBe(false);

    const late = await connect();
    const replayed: string[] = [];
    late.onRevoked((sid) => replayed.push(sid));
    await until(() => replayed.includes("sid-1"), 2000, "replay to a late engine");

    expect(await a.useOnce("state-1", 60_000)).toBe(true);
    expect(await b.useOnce("state-1", 60_000)).toBe(false);
    expect(await late.useOnce("state-1", 60_000)).toBe(false);
  });

  it("with Redis down: limits fall back to each engine's share, checks reject at once, and all resumes when it is back", async () => {
    const limits = resolveLimits({ appRatePerSecond: 500, tenantRatePerSecond: 750 });
    const engines = await Promise.all([connect(), connect(), connect()]);
    const throttles = engines.map((s) => new Throttle(limits, Date.now, s));
    for (const t of throttles) t.setFleetSize(3);
    const reconnected: number[] = [];
    engines[0]!.onReconnect(() => reconnected.push(Date.now()));
    await redis.stop();
    try {
      await until(() => engines.every((s) => !s.available), 5000, "engines see Redis down");
      const started = Date.now();
      await expect(engines[0]!.isRevoked("x")).rejects.toThrow();
      await expect(engines[1]!.useOnce("y", 1000)).rejects.toThrow();
      expect(Date.now() - started).toBeLessThan(500); // no queueing behind a dead store
      // Each engine holds 250/s: the fleet still holds 750/s.
      const seconds = 3;
      const admitted = await offer(throttles, "tenant-b", 400, seconds);
      const rate = (admitted - 750 * limits.burstFraction) / seconds;
      expect(rate).toBeGreaterThan(750 * 0.95);
      expect(rate).toBeLessThan(750 * 1.05);
    } finally {
      await redis.start();
    }
    await until(() => engines.every((s) => s.available), 10_000, "engines reconnect");
    await until(() => reconnected.length > 0, 5000, "reconnect told");
    expect(await engines[2]!.useOnce("after-outage", 1000)).toBe(true);
  }, 40_000);

  it("names the setting in a bad Redis URL, and an unreachable server", async () => {
    await expect(connectRedisState({ url: "http://x", logger })).rejects.toThrow(/redis: http: is not a Redis URL/);
    await expect(connectRedisState({ url: "redis://:pw@127.0.0.1:1", logger })).rejects.toThrow(/redis redis:\/\/:\*\*\*@127\.0\.0\.1:1/);
  });
});
