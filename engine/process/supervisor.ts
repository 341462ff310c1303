/**
 * A process on W worker processes (node:cluster), each a full data plane: the engine (its
 * public listeners shared by the cluster, its tunnel port bound by every worker) and the
 * connector (its tunnels and backend pools) both run this way. The primary holds no data path:
 * it forks the workers, replaces one that dies (only that worker's in-flight requests fail),
 * serves their summed metrics, and on SIGTERM drains every worker; the caller adds what its
 * workers share (the engine's state without Redis, engine/fleet/cluster.ts).
 */
import cluster, { type Worker } from "node:cluster";
import type { Logger } from "pino";
import { AggregatorRegistry } from "prom-client";
import { Backoff } from "../../control/client/backoff.js";
import { serveMetrics, type MetricsListener } from "../metrics/registry.js";

/** A worker's place among its siblings. */
export interface WorkerPlace {
  readonly index: number;
  readonly count: number;
}

/** Environment a worker learns its place from. */
const INDEX_ENV = "POSTERN_WORKER";
const COUNT_ENV = "POSTERN_WORKERS";
const READY = "postern-worker-ready";
/** A worker gets this long to drain on SIGTERM before it is killed, ms. */
const DRAIN_MS = 40_000;
/** A worker up this long resets the restart backoff, ms. */
const STABLE_MS = 30_000;

/** This process's place when it is a worker; undefined in the primary or a single-process one. */
export function workerPlace(): WorkerPlace | undefined {
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

export interface SuperviseOptions {
  readonly workers: number;
  /** What the workers are, in log lines ("engine worker exited"). */
  readonly what: string;
  readonly logger: Logger;
  readonly metrics?: { host: string; port: number };
  /** Told of every worker forked (first ones and replacements). */
  readonly onFork?: (worker: Worker) => void;
}

export async function supervise(options: SuperviseOptions): Promise<Supervisor> {
  const log = options.logger;
  const workers = new Map<number, { worker: Worker; startedAt: number; backoff: Backoff }>();
  let stopping = false;
  const waiting = new Map<number, (details: Record<string, unknown>) => void>();
  /** Until every first worker is ready, one that exits fails the start (a bad setting must not loop). */
  let starting = true;

  const fork = (index: number, backoff = new Backoff({ initialMs: 100, maxMs: 5_000 })): Promise<Record<string, unknown>> => {
    const worker = cluster.fork({ [INDEX_ENV]: String(index), [COUNT_ENV]: String(options.workers) });
    options.onFork?.(worker);
    workers.set(index, { worker, startedAt: Date.now(), backoff });
    const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
      waiting.set(index, resolve);
      worker.once("exit", (code) => starting && reject(new Error(`${options.what} worker ${index} exited with ${code} while starting (its log says why)`)));
    });
    worker.on("message", (message: unknown) => {
      const m = message as { channel?: string; details?: Record<string, unknown> };
      if (m?.channel === READY) waiting.get(index)?.(m.details ?? {});
    });
    worker.once("exit", (code, signal) => {
      if (workers.get(index)?.worker !== worker) return;
      if (stopping || starting) return void workers.delete(index);
      const lived = Date.now() - workers.get(index)!.startedAt;
      if (lived > STABLE_MS) backoff.reset();
      const delay = backoff.next();
      log.error({ worker: index, pid: worker.process.pid, code, signal, restartInMs: delay }, `${options.what} worker exited; replacing it`);
      setTimeout(() => {
        if (stopping) return;
        void fork(index, backoff).then(() => log.info({ worker: index, pid: workers.get(index)?.worker.process.pid }, `${options.what} worker replaced`));
      }, delay).unref();
    });
    log.info({ worker: index, pid: worker.process.pid }, `${options.what} worker started`);
    return ready;
  };

  let reports: Record<string, unknown>[];
  try {
    reports = await Promise.all(Array.from({ length: options.workers }, (_, i) => fork(i)));
  } catch (err) {
    stopping = true;
    for (const { worker } of workers.values()) worker.process.kill("SIGKILL");
    throw err;
  }
  starting = false;
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
