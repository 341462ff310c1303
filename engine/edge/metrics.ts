/**
 * The engine's metrics: user requests by app (count by status class, latency to the last
 * byte, bytes), in flight and queued, throttled, connector tunnels and their streams,
 * flow-control stalls, the worker pools' queues and task times, link translation bytes and
 * failures, and sign-ins by result. Gauges are read at scrape time from the state that
 * holds them, never kept twice.
 */
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { LATENCY_BUCKETS, NO_APP, RequestMetrics } from "../metrics/requests.js";
import type { ConnectorRegistry } from "../tunnel/registry.js";

export interface PoolView {
  readonly name: "translate" | "auth";
  readonly queueSize: number;
}

export interface EdgeMetricsSources {
  readonly inflight: () => number;
  readonly queued: () => number;
  readonly tunnels: ConnectorRegistry;
  /** The worker pools started so far (both start on first use). */
  readonly pools: () => readonly PoolView[];
}

export class EdgeMetrics {
  readonly #requests: RequestMetrics;
  readonly #throttled: Counter<"app">;
  readonly #signIns: Counter<"result">;
  readonly #translatedBytes: Counter;
  readonly #translationFailures: Counter;
  readonly #poolTasks: Histogram<"pool">;

  constructor(registry: Registry, sources: EdgeMetricsSources) {
    this.#requests = new RequestMetrics(registry, "postern_edge", "User requests at the edge", "time to the last byte");
    this.#throttled = new Counter({ name: "postern_edge_throttled_total", help: "Requests refused by the per-app or per-tenant rate limit (429), by app", labelNames: ["app"], registers: [registry] });
    this.#signIns = new Counter({ name: "postern_signins_total", help: "Sign-ins to published apps at this engine, by result", labelNames: ["result"], registers: [registry] });
    this.#translatedBytes = new Counter({ name: "postern_translation_bytes_total", help: "Response body bytes sent after link translation", registers: [registry] });
    this.#translationFailures = new Counter({ name: "postern_translation_failures_total", help: "Responses whose link translation failed (502 or cut)", registers: [registry] });
    this.#poolTasks = new Histogram({ name: "postern_worker_pool_task_seconds", help: "Worker pool tasks, from submission to result, by pool", labelNames: ["pool"], buckets: LATENCY_BUCKETS, registers: [registry] });
    new Gauge({ name: "postern_edge_requests_in_flight", help: "Requests proxied right now", registers: [registry], collect() { this.set(sources.inflight()); } });
    new Gauge({ name: "postern_edge_requests_queued", help: "Requests waiting for a free tunnel stream", registers: [registry], collect() { this.set(sources.queued()); } });
    new Gauge({
      name: "postern_worker_pool_queue_size", help: "Tasks waiting for a worker, by pool", labelNames: ["pool"], registers: [registry],
      collect() {
        this.reset();
        for (const pool of sources.pools()) this.labels(pool.name).set(pool.queueSize);
      },
    });
    const byConnector = (read: (streams: number) => number) => function (this: Gauge<"connector">) {
      this.reset();
      const totals = new Map<string, number>();
      for (const live of sources.tunnels.connections()) {
        totals.set(live.identity.id, (totals.get(live.identity.id) ?? 0) + read(live.session.activeStreams));
      }
      for (const [connector, n] of totals) this.labels(connector).set(n);
    };
    new Gauge({ name: "postern_tunnel_connections", help: "Live tunnel connections, by connector", labelNames: ["connector"], registers: [registry], collect: byConnector(() => 1) });
    new Gauge({ name: "postern_tunnel_active_streams", help: "Open streams over the tunnel connections, by connector", labelNames: ["connector"], registers: [registry], collect: byConnector((streams) => streams) });
    new Counter({
      name: "postern_tunnel_flow_control_stalls_total", help: "Tunnel writes that waited for flow-control credit or a full transport", registers: [registry],
      collect() {
        this.reset();
        this.inc(sources.tunnels.stalledWrites);
      },
    });
  }

  /** A request finished (or was refused) with `status`, `bytes` of body, after `seconds`. */
  request(app: string | undefined, status: number, bytes: number, seconds: number, translated: boolean): void {
    const name = app ?? NO_APP;
    this.#requests.count(name, status);
    this.#requests.latency(name, seconds);
    this.#requests.bytes(name, bytes);
    if (status === 429) this.#throttled.labels(name).inc();
    if (translated) this.#translatedBytes.inc(bytes);
  }

  translationFailed(): void {
    this.#translationFailures.inc();
  }

  signIn(result: "success" | "failure"): void {
    this.#signIns.labels(result).inc();
  }

  /** The observer a worker pool reports its task times to. */
  poolObserver(pool: PoolView["name"]): (seconds: number) => void {
    const child = this.#poolTasks.labels(pool);
    return (seconds) => child.observe(seconds);
  }
}
