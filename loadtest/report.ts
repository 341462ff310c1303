/**
 * Load reports as a table on stdout, JSON and markdown files, and a chart of latency
 * percentiles over offered load drawn by vega-lite (SVG, no browser needed).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import type { LoadReport } from "./run.js";

/** A run with its label (the target, or the path a request took). */
export interface LabelledReport extends LoadReport {
  readonly label: string;
}

const COLUMNS = ["", "offered/s", "req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "MB/s", "2xx", "429", "5xx", "4xx", "errors", "timeouts"];

function cells(r: LabelledReport): string[] {
  return [
    r.label, r.offeredRate === null ? "max" : String(r.offeredRate), String(r.requestsPerSecond), String(r.latencyMs.p50), String(r.latencyMs.p90),
    String(r.latencyMs.p99), String(r.latencyMs.p99_9), String(r.latencyMs.max), (r.throughputBytesPerSecond / 1e6).toFixed(2),
    String(r.status["2xx"]), String(r.status["429"]), String(r.status["5xx"]), String(r.status["4xx"]), String(r.errors), String(r.timeouts),
  ];
}

export function textTable(reports: readonly LabelledReport[]): string {
  const rows = [COLUMNS, ...reports.map(cells)];
  const widths = COLUMNS.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ")).join("\n") + "\n";
}

export function markdownTable(reports: readonly LabelledReport[]): string {
  const head = `| ${COLUMNS.map((c) => c || "run").join(" | ")} |\n|${COLUMNS.map((_, i) => (i === 0 ? "---" : "---:")).join("|")}|\n`;
  return head + reports.map((r) => `| ${cells(r).join(" | ")} |`).join("\n") + "\n";
}

/** Latency percentiles (y, log scale) over offered load (x), one line per percentile and label. */
export async function latencyChart(reports: readonly LabelledReport[], title: string, percentiles: readonly ("p50" | "p90" | "p99" | "p99_9")[] = ["p50", "p90", "p99", "p99_9"]): Promise<string> {
  const values = reports.flatMap((r) => {
    const x = r.offeredRate ?? r.requestsPerSecond;
    return percentiles.map((p) => ({ series: `${r.label} ${p.replace("_", ".")}`, load: x, ms: Math.max(r.latencyMs[p], 0.1) }));
  });
  const spec: TopLevelSpec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title,
    width: 720,
    height: 420,
    background: "white",
    data: { values },
    mark: { type: "line", point: true },
    encoding: {
      x: { field: "load", type: "quantitative", title: "offered load (req/s; achieved req/s for max-rate runs)", scale: { type: "log" } },
      y: { field: "ms", type: "quantitative", title: "latency (ms)", scale: { type: "log" } },
      color: { field: "series", type: "nominal", title: "run and percentile", legend: { labelLimit: 320 } },
    },
  };
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  return view.toSVG();
}

/** Writes report.json, report.md and latency.svg into `dir`; returns their paths. */
export async function writeReports(dir: string, title: string, reports: readonly LabelledReport[], extra: Record<string, unknown> = {}): Promise<{ json: string; markdown: string; chart: string }> {
  mkdirSync(dir, { recursive: true });
  const paths = { json: join(dir, "report.json"), markdown: join(dir, "report.md"), chart: join(dir, "latency.svg") };
  writeFileSync(paths.json, JSON.stringify({ title, at: new Date().toISOString(), ...extra, runs: reports }, null, 2) + "\n");
  writeFileSync(paths.markdown, `# ${title}\n\n${markdownTable(reports)}\n![latency over offered load](latency.svg)\n`);
  writeFileSync(paths.chart, await latencyChart(reports, title));
  return paths;
}
