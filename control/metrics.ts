/**
 * Control's metrics: API requests by route and status class with their latency, sign-ins by
 * client and result (the built-in IdP's own, and those engines report), feed waiters and the
 * configuration version, connectors by status with each one's last contact and certificate
 * days left. Store-backed gauges are read at scrape time.
 */
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { LATENCY_BUCKETS } from "../engine/metrics/requests.js";
import { statusClass } from "../engine/metrics/registry.js";
import type { FeedHub } from "./feed.js";
import type { Store } from "./store/types.js";

export class ControlMetrics {
  readonly #requests: Counter<"route" | "status_class">;
  readonly #duration: Histogram<"route">;
  readonly #signIns: Counter<"client" | "result">;

  constructor(registry: Registry, store: Store, feed: FeedHub) {
    this.#requests = new Counter({ name: "postern_control_api_requests_total", help: "Admin API and feed requests, by route and status class", labelNames: ["route", "status_class"], registers: [registry] });
    this.#duration = new Histogram({ name: "postern_control_api_request_duration_seconds", help: "Admin API and feed requests (long polls included), by route", labelNames: ["route"], buckets: LATENCY_BUCKETS, registers: [registry] });
    this.#signIns = new Counter({ name: "postern_control_signins_total", help: "Sign-ins recorded: at the built-in IdP (client idp) and at engines (client engine), by result", labelNames: ["client", "result"], registers: [registry] });
    new Gauge({ name: "postern_control_feed_waiters", help: "Engine and connector long polls waiting for a change", registers: [registry], collect() { this.set(feed.waiting); } });
    new Gauge({ name: "postern_config_version", help: "The store's configuration version", registers: [registry], async collect() { this.set(await store.configVersion()); } });
    const connectors = async () => store.listConnectors();
    new Gauge({
      name: "postern_connectors", help: "Connectors by status", labelNames: ["status"], registers: [registry],
      async collect() {
        const counts = { active: 0, inactive: 0, disabled: 0 };
        for (const c of await connectors()) counts[c.status]++;
        for (const [status, n] of Object.entries(counts)) this.labels(status).set(n);
      },
    });
    new Gauge({
      name: "postern_connector_last_seen_seconds", help: "Seconds since each connector last reached control", labelNames: ["connector"], registers: [registry],
      async collect() {
        this.reset();
        for (const c of await connectors()) this.labels(c.id).set(Math.max(0, (Date.now() - Date.parse(c.lastSeen)) / 1000));
      },
    });
    new Gauge({
      name: "postern_connector_certificate_expiry_days", help: "Days until each connector's newest certificate expires", labelNames: ["connector"], registers: [registry],
      async collect() {
        this.reset();
        for (const c of await connectors()) this.labels(c.id).set(Math.floor((Date.parse(c.certNotAfter) - Date.now()) / 86_400_000));
      },
    });
  }

  /** One API request answered; `route` is the route's template ("GET /api/v1/apps/{name}"), never the path. */
  answered(route: string, status: number, seconds: number): void {
    this.#requests.labels(route, statusClass(status)).inc();
    this.#duration.labels(route).observe(seconds);
  }

  signIn(client: "idp" | "engine", result: "success" | "failure"): void {
    this.#signIns.labels(client, result).inc();
  }
}
