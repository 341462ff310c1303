/**
 * Prometheus metrics every process shares (prom-client): one registry per process with the
 * standard process and Node.js metrics, the configuration feed's version and age, the
 * process certificate's days left, and the `/metrics` listener. Names and units follow
 * Prometheus conventions (`_total` counters, `_seconds`, `_bytes`); labels are bounded: app
 * names, connector ids, status classes, never paths or user names.
 */
import { X509Certificate } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { AggregatorRegistry, collectDefaultMetrics, Gauge, Registry } from "prom-client";

export type ProcessKind = "control" | "engine" | "connector";

/**
 * A registry with process and Node.js metrics, every series labelled with the process kind
 * (and, in a process with several workers, the worker: their primary serves every worker's series).
 */
export function processRegistry(kind: ProcessKind, worker?: number): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ process: kind, ...(worker !== undefined ? { worker: String(worker) } : {}) });
  collectDefaultMetrics({ register: registry });
  return registry;
}

/** A status code's class as a label value: 2xx, 3xx, 4xx, 5xx (anything else: "other"). */
export function statusClass(status: number): string {
  return status >= 200 && status < 600 ? `${Math.floor(status / 100)}xx` : "other";
}

/** The feed's applied version and how long ago it was applied (control's changes reach us through it). */
export function feedMetrics(registry: Registry, read: () => { version: number; appliedAt: number } | null): void {
  new Gauge({
    name: "postern_config_version", help: "Configuration version applied from control's feed", registers: [registry],
    collect() {
      const r = read();
      if (r) this.set(r.version);
    },
  });
  new Gauge({
    name: "postern_config_age_seconds", help: "Seconds since the configuration was last applied", registers: [registry],
    collect() {
      const r = read();
      if (r) this.set((Date.now() - r.appliedAt) / 1000);
    },
  });
}

/** Days until this process's certificate expires (read at each scrape: a renewal shows at once). */
export function certificateMetric(registry: Registry, certPem: () => string | undefined): void {
  new Gauge({
    name: "postern_certificate_expiry_days", help: "Days until this process's certificate expires", registers: [registry],
    collect() {
      const pem = certPem();
      if (pem) this.set(daysLeft(pem));
    },
  });
}

export function daysLeft(certPem: string, now = Date.now()): number {
  return Math.floor((Date.parse(new X509Certificate(certPem).validTo) - now) / 86_400_000);
}

export interface MetricsListener {
  readonly port: number;
  close(): Promise<void>;
}

/** What /metrics serves: a registry, or the sum of a multi-process engine's workers. */
export interface MetricsSource {
  metrics(): Promise<string>;
  readonly contentType: string;
}

/** Serves GET /metrics (Prometheus text format) on its own listener, apart from user traffic. */
export async function serveMetrics(registry: MetricsSource, host: string, port: number): Promise<MetricsListener> {
  const server: Server = createServer((req, res) => {
    if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("GET /metrics\n");
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
      (err: Error) => res.writeHead(500, { "content-type": "text/plain" }).end(`metrics failed: ${err.message}\n`),
    );
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/**
 * In a worker process: answer the primary's requests for this registry (it serves every
 * worker's series on its own /metrics). prom-client installs the worker's answering listener
 * when an AggregatorRegistry is made, hence the instance nobody else uses.
 */
export function serveToPrimary(registry: Registry): void {
  AggregatorRegistry.setRegistries([registry]);
  new AggregatorRegistry();
}
