/**
 * An engine on W worker processes (node:cluster), each a full data plane: its own public
 * listeners (the cluster shares the public ports), tunnel listener (uWS binds the tunnel port
 * in every worker with SO_REUSEPORT, so the kernel spreads connectors over them), mux sessions,
 * routes and caches, its own feed from control. The primary holds no data path: it forks the
 * workers, replaces one that dies (only that worker's in-flight requests fail), hosts the state
 * the workers share when there is no Redis (engine/fleet/cluster.ts), serves their summed
 * metrics, and on SIGTERM drains every worker before it leaves control.
 */
import cluster, { type Worker } from "node:cluster";
import type { Logger } from "pino";
import { AggregatorRegistry } from "prom-client";
import { Backoff } from "../control/client/backoff.js";
import { ClusterStateHost } from "./fleet/cluster.js";
import type { EngineWorker } from "./identity/proof.js";
import { serveMetrics, type MetricsListener } from "./metrics/registry.js";

/** Environment a worker learns its place from. */
const INDEX_ENV = "POSTERN_ENGINE_WORKER";
const COUNT_ENV = "POSTERN_ENGINE_WORKERS";
const READY = "postern-worker-ready";
/** A worker gets this long to drain on SIGTERM before it is killed, ms. */
const DRAIN_MS = 40_000;
/** A worker up this long resets the restart backoff, ms. */
const STABLE_MS = 30_000;

/** This process's place when it is an engine worker; undefined in the primary or a single-process engine. */
export function engineWorker(): EngineWorker | undefined {
  if (!cluster.isWorker) return undefined;
  const index = Number(process.env[INDEX_ENV]);
  const count = Number(process.env[COUNT_ENV]);
  return Number.isInteger(index) && Number.isInteger(count) && count > 0 ? { index, count } : undefined;
}

/** A worker tells its primary it serves (what it listens on). */
export function reportReady(details: Record<string, unknown>): void {
  process.send?.({ channel: READY, details });
}

export interface Supervisor {
  /** What the first worker reported when every worker was ready. */
  readonly ready: Record<string, unknown>;
  readonly metricsPort: number | undefined;
  /** Workers by index: their process ids now. */
  pids(): number[];
  /** SIGTERM to every worker; resolves when all have drained and exited. */
  stop(): Promise<void>;
}

export async function superviseEngine(options: { workers: number; logger: Logger; metrics?: { host: string; port: number } }): Promise<Supervisor> {
  const log = options.logger;
  const state = new ClusterStateHost();
  const workers = new Map<number, { worker: Worker; startedAt: number; backoff: Backoff }>();
  let stopping = false;
  const waiting = new Map<number, (details: Record<string, unknown>) => void>();

  const fork = (index: number, backoff = new Backoff({ initialMs: 100, maxMs: 5_000 })): Promise<Record<string, unknown>> => {
    const worker = cluster.fork({ [INDEX_ENV]: String(index), [COUNT_ENV]: String(options.workers) });
    state.attach(worker);
    workers.set(index, { worker, startedAt: Date.now(), backoff });
    const ready = new Promise<Record<string, unknown>>((resolve) => waiting.set(index, resolve));
    worker.on("message", (message: unknown) => {
      const m = message as { channel?: string; details?: Record<string, unknown> };
      if (m?.channel === READY) waiting.get(index)?.(m.details ?? {});
    });
    worker.once("exit", (code, signal) => {
      if (workers.get(index)?.worker !== worker) return;
      if (stopping) return void workers.delete(index);
      const lived = Date.now() - workers.get(index)!.startedAt;
      if (lived > STABLE_MS) backoff.reset();
      const delay = backoff.next();
      log.error({ worker: index, pid: worker.process.pid, code, signal, restartInMs: delay }, "engine worker exited; replacing it");
      setTimeout(() => {
        if (stopping) return;
        void fork(index, backoff).then(() => log.info({ worker: index, pid: workers.get(index)?.worker.process.pid }, "engine worker replaced"));
      }, delay).unref();
    });
    log.info({ worker: index, pid: worker.process.pid }, "engine worker started");
    return ready;
  };

  const reports = await Promise.all(Array.from({ length: options.workers }, (_, i) => fork(i)));
  let metricsListener: MetricsListener | undefined;
  if (options.metrics) {
    const aggregate = new AggregatorRegistry();
    metricsListener = await serveMetrics({ metrics: () => aggregate.clusterMetrics(), contentType: aggregate.contentType }, options.metrics.host, options.metrics.port);
  }
  return {
    ready: reports[0]!,
    metricsPort: metricsListener?.port,
    pids: () => [...workers.entries()].sort(([a], [b]) => a - b).map(([, w]) => w.worker.process.pid!),
    async stop() {
      stopping = true;
      await metricsListener?.close();
      await Promise.all([...workers.values()].map(({ worker }) => new Promise<void>((resolve) => {
        if (worker.isDead()) return resolve();
        const kill = setTimeout(() => worker.process.kill("SIGKILL"), DRAIN_MS);
        worker.once("exit", () => {
          clearTimeout(kill);
          resolve();
        });
        worker.process.kill("SIGTERM");
      })));
    },
  };
}
