/**
 * Prometheus /metrics of control, engine and connector, read over HTTP and parsed by a
 * Prometheus text-format parser, checked against the traffic this test sent: every count is
 * the number of responses the client saw, not a hard-coded figure.
 */
import { readFileSync } from "node:fs";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ConnectorAgent } from "../../connector/agent.js";
import { api, signIn } from "../fixtures/control.js";
import { edgeRequest, startBackend, startRig, type Backend, type Rig } from "../fixtures/datapath.js";

type Families = ReturnType<typeof parsePrometheusTextFormat> & { readonly text: string };

/** Scrapes and parses (the parser throws on any line that is not valid text format). */
async function scrape(port: number | undefined): Promise<Families> {
  expect(port).toBeGreaterThan(0);
  const res = await request(`http://127.0.0.1:${port}/metrics`);
  expect(res.statusCode).toBe(200);
  expect(String(res.headers["content-type"])).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = await res.body.text();
  return Object.assign(parsePrometheusTextFormat(text), { text });
}

/** The value of `name` whose labels include `labels` (0 when the series does not exist yet). */
function value(families: Families, name: string, labels: Record<string, string> = {}): number {
  const family = families.find((f) => f.name === name);
  if (!family) throw new Error(`no metric ${name}`);
  const sample = family.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  if (!sample) return 0;
  return Number(sample.value ?? sample.count);
}

/**
 * A labelled histogram's observation count, from its `_count` series (this parser folds
 * labelled histograms into one unlabelled sample, so the checked text is read directly).
 */
function histogramCount(families: Families, name: string, labels: Record<string, string>): number {
  expect(families.find((f) => f.name === name)?.type).toBe("HISTOGRAM");
  for (const line of families.text.split("\n")) {
    const m = new RegExp(`^${name}_count\\{([^}]*)\\} (\\S+)$`).exec(line);
    if (!m) continue;
    const have = Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[2]);
  }
  return 0;
}

describe("Prometheus metrics on every process", () => {
  let rig: Rig;
  let backend: Backend;
  let connector: ConnectorAgent;
  const statuses = { wiki: new Map<number, number>(), tight: new Map<number, number>(), none: new Map<number, number>() };
  const bytes = { wiki: 0 };
  const tally = (map: Map<number, number>, status: number) => map.set(status, (map.get(status) ?? 0) + 1);

  beforeAll(async () => {
    backend = await startBackend((req, res) => {
      if (req.url?.startsWith("/wiki/missing")) return void res.writeHead(404, { "content-type": "text/plain" }).end("not here");
      res.writeHead(200, { "content-type": "text/plain" }).end("x".repeat(100));
    });
    rig = await startRig({
      connectors: 0,
      // 40 requests/s per app with a 20-request burst: the burst test below meets the limit.
      engine: { metricsPort: 0, limits: { appRatePerSecond: 40, tenantRatePerSecond: 0, burstFraction: 0.5 } },
      control: { metricsPort: 0 },
    });
    connector = await rig.addConnector("metered", { metricsPort: 0 });
    await rig.publish({ name: "Wiki", internalUrl: `${backend.origin}/wiki/` });
    await rig.publish({ name: "Tight", internalUrl: `${backend.origin}/tight/` });
    for (let i = 0; i < 7; i++) {
      const res = await edgeRequest(rig, "wiki.contoso.test", `/page${i}`);
      tally(statuses.wiki, res.status);
      bytes.wiki += Buffer.byteLength(res.text);
    }
    for (let i = 0; i < 3; i++) {
      const res = await edgeRequest(rig, "wiki.contoso.test", "/missing");
      tally(statuses.wiki, res.status);
      bytes.wiki += Buffer.byteLength(res.text);
    }
    for (let i = 0; i < 2; i++) tally(statuses.none, (await edgeRequest(rig, "nobody.contoso.test", "/")).status);
    const burst = await Promise.all(Array.from({ length: 40 }, () => edgeRequest(rig, "tight.contoso.test", "/")));
    for (const res of burst) tally(statuses.tight, res.status);
  }, 60_000);
  afterAll(async () => {
    await rig?.close();
    await backend?.close();
  });

  it("engine: requests by app and status class, latency, bytes, throttling, tunnels, feed and certificate", async () => {
    expect(statuses.wiki.get(200)).toBe(7);
    expect(statuses.wiki.get(404)).toBe(3);
    expect(statuses.tight.get(429) ?? 0).toBeGreaterThan(0); // the burst met the limit
    const m = await scrape(rig.engine.metricsPort);
    expect(value(m, "postern_edge_requests_total", { app: "Wiki", status_class: "2xx" })).toBe(7);
    expect(value(m, "postern_edge_requests_total", { app: "Wiki", status_class: "4xx" })).toBe(3);
    expect(value(m, "postern_edge_requests_total", { app: "(none)", status_class: "4xx" })).toBe(2);
    expect(value(m, "postern_edge_requests_total", { app: "Tight", status_class: "2xx" })).toBe(statuses.tight.get(200));
    expect(value(m, "postern_edge_requests_total", { app: "Tight", status_class: "4xx" })).toBe(statuses.tight.get(429));
    expect(value(m, "postern_edge_throttled_total", { app: "Tight" })).toBe(statuses.tight.get(429));
    expect(histogramCount(m, "postern_edge_request_duration_seconds", { app: "Wiki" })).toBe(10);
    expect(value(m, "postern_edge_response_bytes_total", { app: "Wiki" })).toBe(bytes.wiki);
    expect(value(m, "postern_edge_requests_in_flight")).toBe(0);
    expect(value(m, "postern_edge_requests_queued")).toBe(0);
    expect(value(m, "postern_tunnel_connections", { connector: connector.id })).toBe(2);
    expect(value(m, "postern_config_version")).toBe(await rig.control.context.store.configVersion());
    expect(value(m, "postern_config_age_seconds")).toBeLessThan(60);
    expect(value(m, "postern_certificate_expiry_days")).toBeGreaterThan(300);
    expect(value(m, "process_cpu_seconds_total", { process: "engine" })).toBeGreaterThan(0);
    // Names and units by convention; no label carries a path or a user.
    for (const family of m) {
      if (family.type === "COUNTER") expect(family.name, family.name).toMatch(/_total$/);
      for (const sample of family.metrics) expect(Object.values(sample.labels ?? {}).join(" ")).not.toMatch(/\/page|\/missing/);
    }
  });

  it("connector: requests to backends by app and status class, latency to the head, bytes, tunnels per engine", async () => {
    const m = await scrape(connector.metricsPort);
    expect(value(m, "postern_connector_backend_requests_total", { app: "Wiki", status_class: "2xx" })).toBe(7);
    expect(value(m, "postern_connector_backend_requests_total", { app: "Wiki", status_class: "4xx" })).toBe(3);
    expect(value(m, "postern_connector_backend_requests_total", { app: "Tight", status_class: "2xx" })).toBe(statuses.tight.get(200));
    expect(histogramCount(m, "postern_connector_backend_request_duration_seconds", { app: "Wiki" })).toBe(10);
    expect(value(m, "postern_connector_backend_response_bytes_total", { app: "Wiki" })).toBe(bytes.wiki);
    expect(value(m, "postern_tunnel_connections", { engine: rig.engine.tunnelUrl })).toBe(2);
    expect(value(m, "postern_config_version")).toBe(await rig.control.context.store.configVersion());
    expect(value(m, "postern_certificate_expiry_days")).toBeGreaterThan(300);
  });

  it("control: API requests by route, sign-ins by result, connectors with last contact and certificate days, feed", async () => {
    await signIn(rig.control.url, "nobody", "wrong-password").catch(() => undefined);
    await api(rig.control.url, "POST", "/api/v1/users", rig.admin, { username: "mia", password: "mia-passw0rd" });
    await signIn(rig.control.url, "mia", "mia-passw0rd");
    const m = await scrape(rig.control.metricsPort);
    expect(value(m, "postern_control_api_requests_total", { route: "POST /api/v1/apps", status_class: "2xx" })).toBe(2);
    expect(value(m, "postern_control_api_requests_total", { route: "POST /api/v1/users", status_class: "2xx" })).toBe(1);
    expect(value(m, "postern_control_signins_total", { client: "idp", result: "success" })).toBe(1);
    expect(value(m, "postern_control_signins_total", { client: "idp", result: "failure" })).toBeGreaterThanOrEqual(1);
    expect(value(m, "postern_connectors", { status: "active" })).toBe(1);
    expect(value(m, "postern_connector_last_seen_seconds", { connector: connector.id })).toBeLessThan(60);
    expect(value(m, "postern_connector_certificate_expiry_days", { connector: connector.id })).toBeGreaterThan(300);
    expect(value(m, "postern_control_feed_waiters")).toBeGreaterThanOrEqual(2); // the engine's and the connector's long polls
    expect(value(m, "postern_config_version")).toBe(await rig.control.context.store.configVersion());
    // Control learns each connector's tunnels per engine from its feed requests.
    const listed = await api(rig.control.url, "GET", "/api/v1/connectors", rig.admin);
    expect(listed.body.connectors[0].tunnels).toEqual({ [rig.engine.tunnelUrl]: 2 });
  });

  it("the Grafana dashboard in docs/ uses only metrics the processes expose", async () => {
    const dashboard = JSON.parse(readFileSync(new URL("../../docs/grafana-dashboard.json", import.meta.url), "utf8")) as { panels: { targets?: { expr: string }[] }[] };
    const exprs = dashboard.panels.flatMap((p) => p.targets ?? []).map((t) => t.expr);
    expect(exprs.length).toBeGreaterThan(20);
    const used = new Set(exprs.flatMap((e) => [...e.matchAll(/\b(postern_[a-z_]+?)(?:_bucket|_count|_sum)?\b(?=[{[\s)])/g)].map((m) => m[1]!)));
    expect(used.size).toBeGreaterThan(15);
    const scrapes = await Promise.all([rig.engine.metricsPort, connector.metricsPort, rig.control.metricsPort].map(scrape));
    const exposed = new Set(scrapes.flat().map((f) => f.name));
    expect([...used].filter((name) => !exposed.has(name))).toEqual([]);
  });
});
