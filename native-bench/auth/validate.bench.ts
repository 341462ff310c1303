/**
 * Token and cookie validation: on the event loop, offloaded to the worker pool, and from the
 * gate's cache, in one run. Each mode keeps 64 validations in flight for a fixed time and
 * reports validations/s and the event loop's delay (p99, from monitorEventLoopDelay): what a
 * request that arrives meanwhile waits before the engine even looks at it.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { availableParallelism } from "node:os";
import { CompactEncrypt, compactDecrypt, createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify, SignJWT } from "jose";
import type { AuthResult, AuthTask } from "../../engine/workers/auth-task.js";
import { TOKEN_ALGORITHMS } from "../../engine/workers/auth-task.js";
import { taskFile, WorkerPool } from "../../engine/workers/pool.js";
import { printTable, type Row } from "../report.js";

const SECONDS = 2;
const IN_FLIGHT = 64;
const ISSUER = "https://idp.example.com";
const AUDIENCE = "https://app.example.com/";

async function measure(run: (i: number) => Promise<unknown>): Promise<{ perSecond: number; p99Ms: number }> {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  const until = performance.now() + SECONDS * 1000;
  let done = 0;
  let i = 0;
  const lane = async () => {
    while (performance.now() < until) {
      await run(i++);
      done++;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
  const elapsed = (performance.now() - started) / 1000;
  histogram.disable();
  return { perSecond: done / elapsed, p99Ms: histogram.percentile(99) / 1e6 };
}

export async function runValidateBench(): Promise<string> {
  const { privateKey, publicKey } = await generateKeyPair("ES256");
  const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256" };
  const keySet = createLocalJWKSet({ keys: [jwk] });
  const now = Math.floor(Date.now() / 1000);
  const tokens = await Promise.all(Array.from({ length: 512 }, (_, i) =>
    new SignJWT({ sub: `user-${i}`, preferred_username: `user${i}@example.com`, groups: ["Sales"], amr: ["pwd"] })
      .setProtectedHeader({ alg: "ES256", kid: "k1" }).setIssuer(ISSUER).setAudience(AUDIENCE).setIssuedAt(now).setExpirationTime(now + 3600).sign(privateKey)));
  const sessionKey = { kid: "s1", k: Buffer.alloc(32, 7).toString("base64url") };
  const cookies = await Promise.all(tokens.map((t, i) => new CompactEncrypt(Buffer.from(JSON.stringify({ sub: `user-${i}`, token: t.slice(0, 200) })))
    .setProtectedHeader({ alg: "dir", enc: "A256GCM", kid: "s1" }).encrypt(Buffer.from(sessionKey.k, "base64url"))));
  const pool = new WorkerPool<AuthTask, AuthResult>({ threads: Math.max(1, availableParallelism() - 1), maxQueue: 4096, taskTimeoutMs: 5000 }, taskFile("auth-task"), "POSTERN_AUTH_UNAVAILABLE", "token validation");
  const cache = new Map(tokens.map((t, i) => [t, { sub: `user-${i}` }]));
  await measure((i) => pool.run({ op: "verify", token: tokens[i % tokens.length]!, jwks: [jwk], issuer: ISSUER, audience: AUDIENCE, nowS: now, skewS: 60 })); // warm the workers
  const verifyInline = await measure((i) => jwtVerify(tokens[i % tokens.length]!, keySet, { issuer: ISSUER, audience: AUDIENCE, algorithms: TOKEN_ALGORITHMS }));
  const verifyPool = await measure(async (i) => {
    const r = await pool.run({ op: "verify", token: tokens[i % tokens.length]!, jwks: [jwk], issuer: ISSUER, audience: AUDIENCE, nowS: now, skewS: 60 });
    if (!r.ok) throw new Error(r.reason);
  });
  const key = Buffer.from(sessionKey.k, "base64url");
  const openInline = await measure((i) => compactDecrypt(cookies[i % cookies.length]!, key));
  const openPool = await measure(async (i) => {
    const r = await pool.run({ op: "open", token: cookies[i % cookies.length]!, keys: [sessionKey] });
    if (!r.ok) throw new Error(r.reason);
  });
  const cached = await measure(async (i) => {
    if (!cache.get(tokens[i % tokens.length]!)) throw new Error("cache miss");
  });
  await pool.close();
  const rows: Row[] = [
    { name: "ID/access token (ES256) on the event loop", value: verifyInline.perSecond, unit: "validations/s" },
    { name: "  event-loop delay p99", value: verifyInline.p99Ms, unit: "ms" },
    { name: "ID/access token (ES256) on the pool", value: verifyPool.perSecond, unit: "validations/s", baseline: "ID/access token (ES256) on the event loop" },
    { name: "  event-loop delay p99 ", value: verifyPool.p99Ms, unit: "ms" },
    { name: "session cookie (JWE A256GCM) on the event loop", value: openInline.perSecond, unit: "opens/s" },
    { name: "  event-loop delay p99  ", value: openInline.p99Ms, unit: "ms" },
    { name: "session cookie (JWE A256GCM) on the pool", value: openPool.perSecond, unit: "opens/s", baseline: "session cookie (JWE A256GCM) on the event loop" },
    { name: "  event-loop delay p99   ", value: openPool.p99Ms, unit: "ms" },
    { name: "cached session (the hot path)", value: cached.perSecond, unit: "lookups/s", baseline: "ID/access token (ES256) on the event loop" },
    { name: "  event-loop delay p99    ", value: cached.p99Ms, unit: "ms" },
  ];
  return printTable(`Token and cookie validation (${IN_FLIGHT} in flight, ${SECONDS} s per mode, pool of ${Math.max(1, availableParallelism() - 1)} thread(s))`, rows);
}
