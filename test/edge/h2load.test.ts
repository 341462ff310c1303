/**
 * h2load (Debian nghttp2-client) against the HTTPS edge: many streams multiplexed on a few
 * connections all succeed, and no client gets more concurrent streams than the edge announces.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBackend, startRig, type Backend, type Rig } from "../fixtures/datapath.js";

const H2LOAD = "/usr/bin/h2load";

describe("h2load against the HTTPS edge", () => {
  let rig: Rig;
  let backend: Backend;
  let peak = 0;
  let open = 0;

  beforeAll(async () => {
    if (!existsSync(H2LOAD)) throw new Error(`${H2LOAD} is missing: npm test installs nghttp2-client (.ci/system-packages.sh)`);
    backend = await startBackend((_req, res) => {
      open++;
      peak = Math.max(peak, open);
      // Slow enough that streams overlap: the stream limit is what bounds them.
      setTimeout(() => {
        open--;
        res.end("x".repeat(1024));
      }, 5);
    });
    rig = await startRig({ engine: { httpsPort: 0, limits: { h2MaxConcurrentStreams: 32, appRatePerSecond: 0, tenantRatePerSecond: 0 } } });
  }, 60_000);
  afterAll(async () => {
    await rig?.close();
    await backend?.close();
  });

  it("multiplexes 4000 requests over 4 connections with every stream answered, and refuses streams past the announced limit", async () => {
    const { host } = await rig.publish({ name: "H2", internalUrl: `${backend.origin}/h2/`, externalUrl: `https://h2.contoso.test/` });
    const url = `https://127.0.0.1:${rig.engine.edge.httpsPort}/load`;
    const run = async (streams: number) => (await promisify(execFile)(H2LOAD, ["-n", "4000", "-c", "4", "-m", String(streams), "-H", `:authority: ${host}`, url], { timeout: 60_000 })).stdout;
    const within = await run(32);
    expect(within).toMatch(/Application protocol: h2/);
    expect(within).toMatch(/requests: 4000 total, 4000 started, 4000 done, 4000 succeeded, 0 failed, 0 errored/);
    expect(within).toMatch(/status codes: 4000 2xx/);
    expect(peak).toBeGreaterThan(32); // the four connections overlapped
    expect(peak).toBeLessThanOrEqual(4 * 32);
    // Asking for 100 streams at once: those past the 32 the edge announced are refused
    // (REFUSED_STREAM) before the client has seen the SETTINGS, never served.
    peak = 0;
    const beyond = await run(100);
    const m = /requests: 4000 total, 4000 started, 4000 done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(beyond);
    expect(m).not.toBeNull();
    expect(Number(m![1]) + Number(m![3])).toBe(4000);
    expect(Number(m![3])).toBeLessThanOrEqual(4 * (100 - 32));
    expect(peak).toBeLessThanOrEqual(4 * 32);
  }, 90_000);
});
