import { execFile } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { enroll } from "../../control/client/enroll.js";
import { until } from "../fixtures/lifecycle.js";
import { edgeRequest, startBackend, startRig, type Backend, type Rig } from "../fixtures/datapath.js";
import { startService, type Service } from "../fixtures/processes.js";

const LOADGEN = new URL("../../dist/test/fixtures/loadgen.js", import.meta.url).pathname;

describe("two connector processes under load", () => {
  let rig: Rig;
  let backend: Backend;
  let host: string;
  const connectors: Service[] = [];
  const ids: string[] = [];

  beforeAll(async () => {
    backend = await startBackend((req, res) => {
      const delay = Number(new URL(req.url!, "http://x").searchParams.get("delay") ?? "0");
      setTimeout(() => res.writeHead(200, { "content-type": "text/plain" }).end("ok"), delay);
    });
    // Rate limits off: this test is about capacity and failover, throttling has its own.
    rig = await startRig({ connectors: 0, engine: { limits: { appRatePerSecond: 0, tenantRatePerSecond: 0 } } });
    for (const name of ["east", "west"]) {
      const stateDir = join(rig.dir, name);
      const identity = await enroll({ kind: "connector", controlUrl: rig.control.url, token: rig.admin, stateDir, fields: { version: "test" } });
      ids.push(identity.id);
      const service = startService(["connector", "run", "--workers", "1", "--state-dir", stateDir, "--connections", "2", "--json"], { POSTERN_LOG_LEVEL: "warn" });
      connectors.push(service);
      await service.ready;
    }
    await until(() => ids.every((id) => rig.engine.registry.connections(id).length === 2), 10_000, "both connectors' tunnels");
    ({ host } = await rig.publish({ name: "Busy", internalUrl: `${backend.origin}/`, externalUrl: "http://busy.contoso.test/" }));
  }, 30_000);
  afterAll(async () => {
    for (const c of connectors) await c.kill("SIGKILL");
    await rig.close();
    await backend.close();
  });

  it("completes 10,000 concurrent requests", async () => {
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, [LOADGEN, `${rig.edge}/?delay=200`, host, "10000"], { timeout: 120_000, maxBuffer: 1 << 20 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
    });
    const result = JSON.parse(out) as { statuses: Record<string, number>; elapsedMs: number };
    expect(result.statuses).toEqual({ 200: 10_000 });
  }, 150_000);

  it("answers 502 for what a killed connector had in flight and serves everything started after from the other", async () => {
    type Outcome = { start: number; status: number };
    const outcomes: Outcome[] = [];
    let running = true;
    const worker = async () => {
      while (running) {
        const start = Date.now();
        const res = await edgeRequest(rig, host, "/?delay=300").catch(() => ({ status: 0 }));
        outcomes.push({ start, status: res.status });
      }
    };
    const workers = Array.from({ length: 100 }, worker);
    await new Promise((r) => setTimeout(r, 1000));
    const killedAt = Date.now();
    await connectors[0]!.kill("SIGKILL");
    await until(() => rig.engine.registry.connections(ids[0]).length === 0, 5000, "the engine noticing the dead connector");
    const noticedAt = Date.now();
    await new Promise((r) => setTimeout(r, 1500));
    running = false;
    await Promise.all(workers);

    const before = outcomes.filter((o) => o.start < killedAt);
    const after = outcomes.filter((o) => o.start > noticedAt);
    expect(before.filter((o) => o.status === 502).length).toBeGreaterThan(0); // the killed connector's in-flight requests
    expect(new Set(before.map((o) => o.status))).toEqual(new Set([200, 502]));
    expect(after.length).toBeGreaterThan(100);
    expect(after.filter((o) => o.status !== 200)).toEqual([]);
    expect(noticedAt - killedAt).toBeLessThan(2000);
  }, 30_000);
});
