/**
 * A connector on two worker processes (`postern connector run --workers 2`, a real child
 * process): both keep tunnels and carry requests to the backend (seen per worker in the
 * metrics their primary serves), a worker killed with -9 is replaced with the app still served,
 * and SIGTERM drains both.
 */
import { join } from "node:path";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { enroll } from "../../control/client/enroll.js";
import { freePort } from "../../loadtest/rig.js";
import { edgeRequest, startBackend, startRig, type Backend, type Rig } from "../fixtures/datapath.js";
import { until } from "../fixtures/lifecycle.js";
import { startService, type Service } from "../fixtures/processes.js";

describe("a connector on two worker processes", () => {
  let rig: Rig;
  let backend: Backend;
  let connector: Service;
  let id: string;
  let metricsPort: number;
  let pids: number[];

  /** Backend requests of app Wiki per connector worker, from the primary's /metrics. */
  const perWorker = async () => {
    const text = await (await request(`http://127.0.0.1:${metricsPort}/metrics`)).body.text();
    const family = parsePrometheusTextFormat(text).find((f) => f.name === "postern_connector_backend_requests_total");
    const counts = [0, 0];
    for (const m of family?.metrics ?? []) if (m.labels?.app === "Wiki") counts[Number(m.labels.worker)]! += Number(m.value);
    return counts;
  };

  beforeAll(async () => {
    backend = await startBackend((req, res) => {
      const ms = Number(new URL(req.url ?? "/", "http://x").searchParams.get("ms") ?? "0");
      setTimeout(() => res.writeHead(200, { "content-type": "text/plain" }).end("ok"), ms);
    });
    rig = await startRig({ connectors: 0 });
    const stateDir = join(rig.dir, "multi");
    id = (await enroll({ kind: "connector", controlUrl: rig.control.url, token: rig.admin, stateDir, fields: { version: "test" } })).id;
    metricsPort = await freePort();
    connector = startService(["connector", "run", "--workers", "2", "--connections", "2", "--state-dir", stateDir, "--metrics-port", String(metricsPort), "--json"]);
    const ready = await connector.ready;
    expect(ready.workers).toBe(2);
    pids = ready.pids as number[];
    await until(() => rig.engine.registry.connections(id).length === 4, 15_000, "two tunnels from each worker");
    await rig.publish({ name: "Wiki", internalUrl: `${backend.origin}/wiki/` });
  }, 60_000);
  afterAll(async () => {
    await connector?.kill("SIGKILL");
    await rig?.close();
    await backend?.close();
  });

  it("keeps tunnels from both workers, and both carry requests to the backend", async () => {
    // Concurrent requests: the engine picks the least busy connection, so both workers' tunnels serve.
    const statuses = await Promise.all(Array.from({ length: 40 }, (_, i) => edgeRequest(rig, "wiki.contoso.test", `/p${i}?ms=50`).then((r) => r.status)));
    expect(statuses.every((s) => s === 200)).toBe(true);
    const counts = await perWorker();
    expect(counts[0]! + counts[1]!).toBe(40);
    expect(counts.every((n) => n > 0), `by worker: ${counts.join(", ")}`).toBe(true);
  });

  it("replaces a worker killed with -9 and keeps serving; SIGTERM drains both workers", async () => {
    process.kill(pids[0]!, "SIGKILL");
    await connector.waitForLog((l) => l.msg === "connector worker replaced", 15_000);
    await until(() => rig.engine.registry.connections(id).length === 4, 15_000, "the new worker's tunnels");
    for (let i = 0; i < 10; i++) expect((await edgeRequest(rig, "wiki.contoso.test", `/after${i}`)).status).toBe(200);
    const inflight = Array.from({ length: 6 }, (_, i) => edgeRequest(rig, "wiki.contoso.test", `/drain${i}?ms=800`).then((r) => r.status));
    await new Promise((r) => setTimeout(r, 300));
    const code = await connector.kill("SIGTERM");
    expect(await Promise.all(inflight)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(code).toBe(0);
    await until(() => rig.engine.registry.connections(id).length === 0, 5_000, "tunnels closed");
  }, 60_000);
});
