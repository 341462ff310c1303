/**
 * An engine on two worker processes (`postern engine --workers 2`, a real child process with
 * its cluster): requests spread over the workers and each serves every connector group,
 * connectors keep two tunnels to every worker, a worker killed with -9 is replaced with only
 * its in-flight requests failing and the connectors cover the new one, and SIGTERM drains
 * every worker before the engine leaves control.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { Client } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConnectorAgent } from "../../connector/agent.js";
import { enroll } from "../../control/client/enroll.js";
import type { ControlHandle } from "../../control/server.js";
import { engineWorkerOf } from "../../engine/identity/proof.js";
import { freePort } from "../../loadtest/rig.js";
import { api, quietLogger, startTestControl, tempDir } from "../fixtures/control.js";
import { until } from "../fixtures/lifecycle.js";
import { startService, type Service } from "../fixtures/processes.js";

describe("an engine on two worker processes", () => {
  let dir: string;
  let control: ControlHandle;
  let admin: string;
  let backend: Server;
  let backendOrigin: string;
  let engine: Service;
  let edge: string;
  let pids: number[];
  let metricsPort: number;
  const agents: ConnectorAgent[] = [];
  /** One request on a connection of its own, so the cluster spreads them over the workers. */
  const get = async (host: string, path = "/") => {
    const client = new Client(edge, { headersTimeout: 20_000, bodyTimeout: 20_000 });
    try {
      const res = await client.request({ path, method: "GET", headers: { host } });
      return { status: res.statusCode, text: await res.body.text() };
    } finally {
      await client.close().catch(() => undefined);
    }
  };
  /** Tunnels of `agent` per engine worker index. */
  const coverage = (agent: ConnectorAgent) => {
    const counts = [0, 0];
    for (const s of agent.tunnels.sessions()) {
      const w = engineWorkerOf(s.peerHello?.ext);
      if (w) counts[w.index]!++;
    }
    return counts;
  };
  /** Access-log lines of app `app` by worker index. */
  const servedBy = (app: string, path?: string) => {
    const counts = [0, 0];
    for (const line of engine.logs) if (line.msg === "request" && line.app === app && (path === undefined || line.path === path)) counts[Number(line.worker)]!++;
    return counts;
  };

  beforeAll(async () => {
    dir = tempDir("postern-workers-");
    control = await startTestControl({ dataDir: join(dir, "control") });
    admin = await control.mintToken({ name: "root", roles: ["Global Administrator"] }, 3600);
    backend = createServer((req, res) => {
      const ms = Number(new URL(req.url ?? "/", "http://x").searchParams.get("ms") ?? "0");
      setTimeout(() => res.writeHead(200, { "content-type": "text/plain" }).end(`ok ${req.url}`), ms);
    });
    await new Promise<void>((resolve) => backend.listen(0, "127.0.0.1", resolve));
    backendOrigin = `http://localhost:${(backend.address() as AddressInfo).port}`;
    expect((await api(control.url, "POST", "/api/v1/connector-groups", admin, { name: "Branch" })).status).toBe(201);
    for (const [name, group] of [["Wiki", "Default"], ["Shop", "Branch"]]) {
      const res = await api(control.url, "POST", "/api/v1/apps", admin, { name, internalUrl: `${backendOrigin}/${name.toLowerCase()}/`, externalUrl: `http://${name.toLowerCase()}.contoso.test/`, preAuthentication: "passthrough", connectorGroup: group });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
    }
    const [tunnelPort, httpPort] = [await freePort(), await freePort()];
    metricsPort = await freePort();
    engine = startService(["engine", "--workers", "2", "--control", control.url, "--token", admin, "--state-dir", join(dir, "engine"),
      "--tunnel-port", String(tunnelPort), "--http-port", String(httpPort), "--metrics-port", String(metricsPort), "--json"]);
    const ready = await engine.ready;
    expect(ready.workers).toBe(2);
    pids = ready.pids as number[];
    expect(pids).toHaveLength(2);
    edge = `http://127.0.0.1:${httpPort}`;
    for (const [name, group] of [["default-1", "Default"], ["branch-1", "Branch"]] as const) {
      const stateDir = join(dir, name);
      await enroll({ kind: "connector", controlUrl: control.url, token: admin, stateDir, fields: { version: "test", group } });
      const agent = new ConnectorAgent({ stateDir, version: "test", connectionsPerEngine: 4, logger: quietLogger, reconnectInitialMs: 50, reconnectMaxMs: 500 });
      agents.push(agent);
      await agent.start();
    }
    for (const agent of agents) await until(() => coverage(agent).every((n) => n >= 2), 15_000, "two tunnels to every worker");
  }, 60_000);
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop(100)));
    await engine?.kill("SIGKILL");
    await control?.close();
    backend?.close();
  });

  it("spreads requests over the workers, and every worker serves every connector group", async () => {
    for (const agent of agents) expect(coverage(agent).every((n) => n >= 2)).toBe(true);
    // One app after the other: alternating them would pair each app with one worker under round robin.
    for (const app of ["wiki", "shop"]) {
      for (let i = 0; i < 30; i++) expect((await get(`${app}.contoso.test`, `/spread${i}`)).text).toBe(`ok /${app}/spread${i}`);
    }
    await until(() => servedBy("Wiki").reduce((a, b) => a + b) >= 30 && servedBy("Shop").reduce((a, b) => a + b) >= 30, 5_000, "access log lines");
    for (const app of ["Wiki", "Shop"]) expect(servedBy(app).every((n) => n > 0), `${app} by worker: ${servedBy(app).join(", ")}`).toBe(true);
    // The primary serves every worker's metrics, each series labelled with its worker.
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const wiki = [0, 1].map((w) => Number(new RegExp(`^postern_edge_requests_total\\{[^}]*app="Wiki"[^}]*worker="${w}"[^}]*\\} (\\d+)`, "m").exec(text)?.[1] ?? 0));
    expect(wiki).toEqual(servedBy("Wiki"));
  });

  it("replaces a worker killed with -9: only its in-flight requests fail, and connectors cover the new one", async () => {
    const inflight = Array.from({ length: 10 }, (_, i) => get("wiki.contoso.test", `/slow${i}?ms=1500`).then((r) => r.status, () => "failed" as const));
    await new Promise((r) => setTimeout(r, 700)); // every request is at the backend now
    const [victim] = pids;
    process.kill(victim!, "SIGKILL");
    const outcomes = await Promise.all(inflight);
    const failed = outcomes.filter((o) => o !== 200).length;
    // The survivor finished everything it held; the victim's requests, and only those, failed.
    await until(() => servedBy("Wiki").reduce((a, b) => a + b) >= 30 + (10 - failed), 5_000, "survivor's access log");
    const survivorServed = engine.logs.filter((l) => l.msg === "request" && String(l.path).startsWith("/slow") && l.status === 200).length;
    expect(survivorServed).toBe(10 - failed);
    expect(failed).toBeGreaterThan(0);
    expect(failed).toBeLessThan(10);
    const replaced = await engine.waitForLog((l) => l.msg === "engine worker replaced", 15_000);
    expect(Number(replaced.pid)).not.toBe(victim);
    for (let i = 0; i < 10; i++) expect((await get("shop.contoso.test", `/after${i}`)).status).toBe(200);
    for (const agent of agents) await until(() => coverage(agent).every((n) => n >= 2), 20_000, "two tunnels to the new worker too");
  }, 60_000);

  it("drains every worker on SIGTERM, then leaves control", async () => {
    expect((await control.context.store.listEngines()).length).toBe(1);
    const inflight = Array.from({ length: 6 }, (_, i) => get(i % 2 ? "wiki.contoso.test" : "shop.contoso.test", `/drain${i}?ms=1000`).then((r) => r.status, (e: Error) => e.message));
    await new Promise((r) => setTimeout(r, 400));
    const code = await engine.kill("SIGTERM");
    expect(await Promise.all(inflight)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(code).toBe(0);
    expect(await control.context.store.listEngines()).toEqual([]);
  }, 60_000);
});
