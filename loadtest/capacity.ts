/**
 * Capacity measurement: a local rig of real processes (control, engine, a connector limited
 * to K CPUs with taskset and to a memory limit with a cgroup, a backend whose response size
 * and latency are set per request) and, per row, a sweep of offered load upward until the
 * P99 passes the SLO, errors pass 0.1%, or the achieved rate falls under 90% of the offered
 * one. The row's capacity is the highest offered load that passed.
 */
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmdirSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "undici";
import type { LabelledReport } from "./report.js";
import { freePort, publish, runCli, startBackend, startCli, treeCpuMicros } from "./rig.js";
import { runLoad, type LoadReport } from "./run.js";

export interface CapacityRow {
  readonly cores: number;
  /** Engine worker processes (postern engine --workers). */
  readonly engineWorkers: number;
  readonly memoryBytes: number;
  readonly responseBytes: number;
  readonly backendLatencyMs: number;
  readonly connections: number;
}

export interface SweepSettings {
  readonly sloMs: number;
  /** Largest error rate that still passes (0.001 = 0.1%). */
  readonly maxErrorRate: number;
  readonly startRate: number;
  readonly maxRate: number;
  readonly stepSeconds: number;
  readonly warmupSeconds: number;
  /** Bisection steps between the last pass and the first failure. */
  readonly refine: number;
}

/** CPU per request of the engine and of the connector (each with all its worker processes) during a step, µs. */
export interface StepCpu {
  readonly engineMicrosPerRequest: number;
  readonly connectorMicrosPerRequest: number;
}

export type Step = LoadReport & { passed: boolean } & Partial<StepCpu>;

export interface RowResult extends CapacityRow {
  /** Highest offered load within the SLO, req/s (0: even the first step failed). */
  readonly tps: number;
  readonly p99Ms: number | null;
  /** CPU per request at that load (the passing step), when measured. */
  readonly cpu?: StepCpu;
  readonly memoryLimited: boolean;
  readonly steps: Step[];
  /** Requests the backend saw during this row's sweep (warm-ups included), to check the load generator's counts against. */
  readonly backendRequests: number;
}

/** Whether a step stayed within the SLO. */
export function withinSlo(r: LoadReport, settings: SweepSettings): boolean {
  const offered = r.offeredRate ?? r.requestsPerSecond;
  return r.latencyMs.p99 <= settings.sloMs && r.errorRate <= settings.maxErrorRate && r.requestsPerSecond >= 0.9 * offered;
}

/** Sweeps one row: doubling from startRate until a step fails, then bisecting `refine` times. */
export async function sweep(url: string, host: string, path: string, connections: number, settings: SweepSettings, onStep?: (r: LoadReport, passed: boolean) => void,
  cpu?: () => { engine: number; connector: number }): Promise<{ tps: number; p99Ms: number | null; cpu: StepCpu | undefined; steps: Step[] }> {
  const steps: Step[] = [];
  const step = async (rate: number): Promise<boolean> => {
    const before = cpu?.();
    const r = await runLoad({
      // One thread, warm-up on the same connections: steady state, not the opening burst.
      url: `${url}${path}`, headers: { host }, connections, rate, durationS: settings.stepSeconds, warmupS: settings.warmupSeconds, workers: 0, timeoutS: 10,
    });
    const after = cpu?.();
    const passed = withinSlo(r, settings);
    // CPU is read around the warm-up and the measured seconds together.
    const served = Math.max(1, r.requests + r.warmupRequests);
    const used = before && after
      ? { engineMicrosPerRequest: Math.round((after.engine - before.engine) / served), connectorMicrosPerRequest: Math.round((after.connector - before.connector) / served) }
      : {};
    steps.push({ ...r, passed, ...used });
    onStep?.(r, passed);
    return passed;
  };
  let pass = 0;
  let fail = 0;
  for (let rate = settings.startRate; rate <= settings.maxRate; rate *= 2) {
    if (await step(rate)) pass = rate;
    else {
      fail = rate;
      break;
    }
  }
  for (let i = 0; i < settings.refine && fail > 0 && fail - pass > 1; i++) {
    const mid = Math.round((pass + fail) / 2);
    if (await step(mid)) pass = mid;
    else fail = mid;
  }
  const best = steps.filter((s) => s.passed && s.offeredRate === pass).at(-1);
  const bestCpu = best?.engineMicrosPerRequest !== undefined && best.connectorMicrosPerRequest !== undefined
    ? { engineMicrosPerRequest: best.engineMicrosPerRequest, connectorMicrosPerRequest: best.connectorMicrosPerRequest }
    : undefined;
  return { tps: pass, p99Ms: best?.latencyMs.p99 ?? null, cpu: bestCpu, steps };
}

/**
 * Puts `pid` under a memory limit: a cgroup v2 group (memory.max) or a v1 memory group
 * (memory.limit_in_bytes). Needs root; returns a cleanup, or undefined when not possible.
 */
export function limitMemory(pid: number, bytes: number): (() => void) | undefined {
  const name = `postern-capacity-${process.pid}-${pid}`;
  const candidates: [string, string][] = [
    [join("/sys/fs/cgroup", name), "memory.max"], // v2 (unified)
    [join("/sys/fs/cgroup/memory", name), "memory.limit_in_bytes"], // v1
  ];
  for (const [dir, file] of candidates) {
    const parent = join(dir, "..");
    if (!existsSync(join(parent, "cgroup.procs"))) continue;
    if (file === "memory.max" && !existsSync(join(parent, "cgroup.controllers"))) continue;
    try {
      mkdirSync(dir);
      writeFileSync(join(dir, file), String(bytes));
      writeFileSync(join(dir, "cgroup.procs"), String(pid));
      return () => {
        try {
          rmdirSync(dir);
        } catch {
          // still has a process: the kernel removes nothing; try again is pointless here
        }
      };
    } catch {
      try {
        rmdirSync(dir);
      } catch {
        // not created
      }
    }
  }
  return undefined;
}

/** The CPUs a K-core connector gets: the last K of the host. */
export function connectorCpus(cores: number): string {
  const n = availableParallelism();
  const first = Math.max(0, n - cores);
  return first === n - 1 ? String(first) : `${first}-${n - 1}`;
}

export interface CapacityRig {
  readonly engineUrl: string;
  readonly host: string;
  readonly backendPort: number;
  /** Starts (or restarts) the connector limited to `cores` CPUs and `memoryBytes`. */
  connector(cores: number, memoryBytes: number): Promise<{ memoryLimited: boolean }>;
  /** Restarts the engine on `workers` worker processes (same ports; the connector follows). */
  engine(workers: number): Promise<void>;
  /** Requests the backend has served so far. */
  backendCount(): Promise<number>;
  /** CPU the engine and the connector (with their workers) have used so far, µs. */
  cpu(): { engine: number; connector: number };
  close(): Promise<void>;
}

export async function startCapacityRig(): Promise<CapacityRig> {
  const dir = mkdtempSync(join(tmpdir(), "postern-capacity-"));
  const dataDir = join(dir, "control");
  const children: ChildProcess[] = [];
  const control = startCli(["control", "--data-dir", dataDir, "--port", "0", "--json"]);
  children.push(control.child);
  let connector: { child: ChildProcess; release: (() => void) | undefined } | undefined;
  try {
    await control.ready;
    // Fixed ports: a restarted engine (another worker count) is where the connector and the load expect it.
    const [tunnelPort, httpPort] = [await freePort(), await freePort()];
    let engine: ChildProcess | undefined;
    const startEngine = async (workers: number) => {
      if (engine) {
        const exited = new Promise((r) => engine!.once("exit", r));
        engine.kill("SIGTERM");
        await exited;
      }
      const started = startCli(["engine", "--workers", String(workers), "--data-dir", dataDir, "--state-dir", join(dir, "engine"), "--tunnel-port", String(tunnelPort),
        "--http-port", String(httpPort), "--app-rate", "0", "--tenant-rate", "0", "--json"]);
      engine = started.child;
      await started.ready;
    };
    await startEngine(1);
    const backend = startBackend(["1024"]);
    children.push(backend.child);
    const { port: backendPort } = (await backend.ready) as { port: number };
    const stateDir = join(dir, "connector");
    await runCli(["connector", "register", "--data-dir", dataDir, "--state-dir", stateDir]);
    const host = "capacity.default.localhost";
    await publish(dataDir, "Capacity", `http://localhost:${backendPort}/`, `http://${host}/`);
    /** Until the engine routes the app through the connector, requests would get 503. */
    const waitServed = async () => {
      const deadline = Date.now() + 15_000;
      for (let served = 0; served < 4;) {
        // undici's request, not fetch: fetch drops a Host header.
        const res = await request(`http://127.0.0.1:${httpPort}/?bytes=1`, { headers: { host } }).catch(() => undefined);
        await res?.body.dump();
        if (res?.statusCode === 200) served++; // a few in a row: every engine worker has its tunnels
        else if (Date.now() > deadline) throw new Error("the capacity rig did not start serving within 15 s");
        else await new Promise((r) => setTimeout(r, 200));
      }
    };
    const stopConnector = async () => {
      if (!connector) return;
      const { child, release } = connector;
      connector = undefined;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
      release?.();
    };
    return {
      engineUrl: `http://127.0.0.1:${httpPort}`, host, backendPort,
      async engine(workers) {
        await startEngine(workers);
        if (connector) await waitServed(); // with no connector yet, the next connector() waits
      },
      async connector(cores, memoryBytes) {
        await stopConnector();
        // One connector worker per CPU it is given: a bigger connector host carries more.
        const started = startCli(["connector", "run", "--workers", String(cores), "--state-dir", stateDir, "--json", "--grace-ms", "1000"], connectorCpus(cores));
        const release = limitMemory(started.child.pid!, memoryBytes);
        connector = { child: started.child, release };
        await started.ready;
        await waitServed();
        return { memoryLimited: release !== undefined };
      },
      cpu: () => ({ engine: engine ? treeCpuMicros(engine.pid!) : 0, connector: connector ? treeCpuMicros(connector.child.pid!) : 0 }),
      async backendCount() {
        const res = await fetch(`http://127.0.0.1:${backendPort}/__count`);
        return ((await res.json()) as { requests: number }).requests;
      },
      async close() {
        await stopConnector();
        engine?.kill("SIGTERM");
        for (const c of children.reverse()) c.kill("SIGTERM");
      },
    };
  } catch (err) {
    for (const c of children) c.kill("SIGTERM");
    connector?.child.kill("SIGTERM");
    throw err;
  }
}

/** Runs every row on one rig (the connector restarted per core count). */
export async function measureCapacity(rows: readonly CapacityRow[], settings: SweepSettings, log: (line: string) => void): Promise<{ results: RowResult[]; curves: LabelledReport[] }> {
  const rig = await startCapacityRig();
  try {
    const results: RowResult[] = [];
    const curves: LabelledReport[] = [];
    let current: { cores: number; memoryBytes: number; memoryLimited: boolean } | undefined;
    let engineWorkers = 1;
    for (const row of rows) {
      if (row.engineWorkers !== engineWorkers) {
        await rig.engine(row.engineWorkers);
        engineWorkers = row.engineWorkers;
      }
      if (!current || current.cores !== row.cores || current.memoryBytes !== row.memoryBytes) {
        const { memoryLimited } = await rig.connector(row.cores, row.memoryBytes);
        current = { cores: row.cores, memoryBytes: row.memoryBytes, memoryLimited };
      }
      const label = rowLabel(row);
      log(`${label}: sweeping`);
      const path = `/?bytes=${row.responseBytes}&delay=${row.backendLatencyMs}`;
      const before = await rig.backendCount();
      const result = await sweep(rig.engineUrl, rig.host, path, row.connections, settings, (r, passed) =>
        log(`  ${r.offeredRate}/s offered: ${r.requestsPerSecond} req/s, p99 ${r.latencyMs.p99} ms, errors ${(r.errorRate * 100).toFixed(2)}% ${passed ? "ok" : "over"}`), () => rig.cpu());
      const backendRequests = (await rig.backendCount()) - before;
      results.push({ ...row, tps: result.tps, p99Ms: result.p99Ms, ...(result.cpu ? { cpu: result.cpu } : {}), memoryLimited: current.memoryLimited, steps: result.steps, backendRequests });
      curves.push(...result.steps.map((s) => ({ ...s, label })));
      log(`${label}: ${result.tps} TPS within the SLO`);
    }
    return { results, curves };
  } finally {
    await rig.close();
  }
}

export function rowLabel(row: CapacityRow): string {
  const workers = row.engineWorkers ?? 1; // JSON written before engine workers were a row setting
  return `${workers} engine worker${workers > 1 ? "s" : ""}, ${row.cores} connector CPU, ${formatBytes(row.responseBytes)}, ${row.backendLatencyMs} ms, ${row.connections} conn`;
}

export function formatBytes(n: number): string {
  if (n >= 1024 ** 3 && n % 1024 ** 3 === 0) return `${n / 1024 ** 3} GiB`;
  if (n >= 1024 * 1024 && n % (1024 * 1024) === 0) return `${n / (1024 * 1024)} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} B`;
}
