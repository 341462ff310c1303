/**
 * Request metrics by app, as the edge and the connector both count them: requests by status
 * class, a latency histogram and response bytes. The labelled children are looked up once per
 * app and kept, so a request costs a few additions, not prom-client's label hashing.
 */
import { Counter, Histogram, type Registry } from "prom-client";
import { statusClass } from "./registry.js";

/** Seconds: from a cached page (~1 ms) to the long backend timeout (180 s). */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 85, 180];

interface AppSeries {
  readonly label: string;
  readonly byClass: Map<string, ReturnType<Counter<"app" | "status_class">["labels"]>>;
  readonly duration: ReturnType<Histogram<"app">["labels"]>;
  readonly bytes: ReturnType<Counter<"app">["labels"]>;
}

/** Apps outside the published set (no route) count under this label. */
export const NO_APP = "(none)";
/** Kept children are bounded: apps beyond this count under "(other)". */
const MAX_APPS = 10_000;

export class RequestMetrics {
  readonly #requests: Counter<"app" | "status_class">;
  readonly #duration: Histogram<"app">;
  readonly #bytes: Counter<"app">;
  readonly #apps = new Map<string, AppSeries>();

  /**
   * `prefix`: postern_edge (user requests, latency to the last byte) or postern_connector_backend
   * (requests to backends, latency to the response head).
   */
  constructor(registry: Registry, prefix: string, what: string, latency: string) {
    this.#requests = new Counter({ name: `${prefix}_requests_total`, help: `${what} by app and status class`, labelNames: ["app", "status_class"], registers: [registry] });
    this.#duration = new Histogram({ name: `${prefix}_request_duration_seconds`, help: `${what}: ${latency}, by app`, labelNames: ["app"], buckets: LATENCY_BUCKETS, registers: [registry] });
    this.#bytes = new Counter({ name: `${prefix}_response_bytes_total`, help: `${what}: response body bytes, by app`, labelNames: ["app"], registers: [registry] });
  }

  #series(app: string): AppSeries {
    let series = this.#apps.get(app);
    if (series === undefined) {
      const label = this.#apps.size < MAX_APPS ? app : "(other)";
      series = { label, byClass: new Map(), duration: this.#duration.labels(label), bytes: this.#bytes.labels(label) };
      this.#apps.set(app, series);
    }
    return series;
  }

  /** One request answered with `status` (0 or a word such as "error": it failed before a status). */
  count(app: string, status: number | string): void {
    const series = this.#series(app);
    const cls = typeof status === "number" && status > 0 ? statusClass(status) : String(status || "error");
    let child = series.byClass.get(cls);
    if (child === undefined) series.byClass.set(cls, (child = this.#requests.labels(series.label, cls)));
    child.inc();
  }

  latency(app: string, seconds: number): void {
    this.#series(app).duration.observe(seconds);
  }

  bytes(app: string, n: number): void {
    if (n > 0) this.#series(app).bytes.inc(n);
  }
}
