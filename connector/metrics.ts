/**
 * The connector's metrics: requests to backends by app (count by status class, or "error"
 * when none came; latency to the response head; bytes), its tunnels and their streams per
 * engine, flow-control stalls, the feed and its certificate. Gauges are read at scrape time.
 */
import { Counter, Gauge, type Registry } from "prom-client";
import { RequestMetrics } from "../engine/metrics/requests.js";
import type { TunnelPool } from "./tunnels.js";

export function connectorMetrics(registry: Registry, tunnels: () => TunnelPool): RequestMetrics {
  const perEngine = (read: (streams: number) => number) => function (this: Gauge<"engine">) {
    this.reset();
    for (const [engine, sessions] of tunnels().byEngine()) this.labels(engine).set(sessions.reduce((n, s) => n + read(s.activeStreams), 0));
  };
  new Gauge({ name: "postern_tunnel_connections", help: "Live tunnel connections, by engine", labelNames: ["engine"], registers: [registry], collect: perEngine(() => 1) });
  new Gauge({ name: "postern_tunnel_active_streams", help: "Open streams over the tunnel connections, by engine", labelNames: ["engine"], registers: [registry], collect: perEngine((streams) => streams) });
  new Counter({
    name: "postern_tunnel_flow_control_stalls_total", help: "Tunnel writes that waited for flow-control credit or a full transport", registers: [registry],
    collect() {
      this.reset();
      this.inc(tunnels().stalledWrites);
    },
  });
  return new RequestMetrics(registry, "postern_connector_backend", "Requests to backends", "time to the response head");
}
