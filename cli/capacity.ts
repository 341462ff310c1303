/**
 * `postern capacity`: measures a capacity table on this host (see loadtest/capacity.ts for
 * the rig and the sweep) and writes it as markdown with the method and the machine, a JSON
 * file, and a chart of latency over offered load.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, totalmem } from "node:os";
import { basename, dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { numberFlag, numberListFlag, sizeFlag } from "./flags.js";
import { connectorCpus, formatBytes, measureCapacity, rowLabel, type CapacityRow, type RowResult, type SweepSettings } from "../loadtest/capacity.js";
import { latencyChart, type LabelledReport } from "../loadtest/report.js";

const HELP = `Usage: postern capacity [options]

Builds a local rig (control, engine, a connector limited to K CPUs and a memory limit, a
backend with the response size and latency of each row), sweeps offered load upward per row
until P99 passes the SLO or errors pass 0.1%, and writes the highest sustainable TPS of each
row as a capacity table (markdown, JSON, and a chart of latency over offered load).

Options:
  --cores LIST          Connector CPU counts (default 1,2; capped at this host's CPUs); the connector
                        runs one worker per CPU
  --engine-workers LIST Engine worker processes per row (default 1)
  --memory SIZE         Connector memory limit, e.g. 2G, 512M (default 2G; needs root for cgroups)
  --sizes LIST          Response sizes in bytes (default 1024,65536,1048576)
  --latencies LIST      Backend latencies in ms (default 0,50)
  --connections LIST    Concurrent connections (default 50,1000)
  --slo-ms N            P99 latency objective (default 100)
  --start-rate N        First offered load of each sweep, req/s (default 100; doubled per step)
  --max-rate N          Highest offered load tried (default 64000)
  --step-seconds N      Measured seconds per step (default 3)
  --warmup N            Warm-up seconds before each step (default 1)
  --refine N            Bisection steps after the first failing step (default 2)
  --out FILE            Markdown table (default docs/capacity.md); JSON and SVG beside it
  --redraw              Write the table and chart again from the JSON beside --out (no measuring)
  --json                Print the results as JSON on stdout
  -h, --help            Show this help
`;


export async function runCapacity(args: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args,
    options: {
      cores: { type: "string" }, "engine-workers": { type: "string" }, memory: { type: "string" }, sizes: { type: "string" }, latencies: { type: "string" }, connections: { type: "string" },
      "slo-ms": { type: "string" }, "start-rate": { type: "string" }, "max-rate": { type: "string" }, "step-seconds": { type: "string" }, warmup: { type: "string" },
      refine: { type: "string" }, out: { type: "string" }, json: { type: "boolean", default: false }, help: { type: "boolean", short: "h", default: false },
      redraw: { type: "boolean", default: false },
    },
  });
  if (v.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const host = availableParallelism();
  const wanted = numberListFlag(v.cores, "cores", [1, 2]);
  const cores = [...new Set(wanted.map((c) => Math.min(Math.max(1, Math.round(c)), host)))];
  const memoryBytes = sizeFlag(v.memory, "memory", 2 * 1024 ** 3);
  const settings: SweepSettings = {
    sloMs: numberFlag(v["slo-ms"], "slo-ms", 100, { min: 1, integer: false }), maxErrorRate: 0.001, startRate: numberFlag(v["start-rate"], "start-rate", 100, { min: 1, integer: false }),
    maxRate: numberFlag(v["max-rate"], "max-rate", 64_000, { min: 1, integer: false }), stepSeconds: numberFlag(v["step-seconds"], "step-seconds", 3, { min: 1, integer: false }), warmupSeconds: numberFlag(v.warmup, "warmup", 1, { integer: false }),
    refine: numberFlag(v.refine, "refine", 2, { integer: false }),
  };
  const rows: CapacityRow[] = [];
  for (const engineWorkers of numberListFlag(v["engine-workers"], "engine-workers", [1]).map((w) => Math.max(1, Math.round(w)))) {
    for (const c of cores) {
      for (const responseBytes of numberListFlag(v.sizes, "sizes", [1024, 65_536, 1_048_576])) {
        for (const backendLatencyMs of numberListFlag(v.latencies, "latencies", [0, 50])) {
          for (const connections of numberListFlag(v.connections, "connections", [50, 1000])) rows.push({ engineWorkers, cores: c, memoryBytes, responseBytes, backendLatencyMs, connections });
        }
      }
    }
  }
  const out = v.out ?? join(process.cwd(), "docs", "capacity.md");
  if (v.redraw) {
    const saved = JSON.parse(readFileSync(capacityFiles(out).json, "utf8")) as { command: string; at: string; settings: SweepSettings; results: RowResult[] };
    const curves = saved.results.flatMap((r) => r.steps.map((s) => ({ ...s, label: rowLabel(r) })));
    const savedCores = [...new Set(saved.results.map((r) => r.cores))];
    await writeCapacity(out, saved.results, curves, saved.settings, saved.command, new Date(saved.at), savedCores, host);
    process.stdout.write(`Redrawn: ${Object.values(capacityFiles(out)).join(", ")}\n`);
    return 0;
  }
  const log = (line: string) => process.stderr.write(`${line}\n`);
  if (wanted.some((c) => c > host)) log(`this host has ${host} CPU(s): measuring ${cores.join(", ")}`);
  const started = new Date();
  const { results, curves } = await measureCapacity(rows, settings, log);
  await writeCapacity(out, results, curves, settings, `postern capacity ${args.join(" ")}`.trim(), started, cores, host);
  if (v.json) process.stdout.write(JSON.stringify({ results: results.map(({ steps: _steps, ...r }) => r), files: capacityFiles(out) }) + "\n");
  else process.stdout.write(`${table(results)}\nWritten: ${Object.values(capacityFiles(out)).join(", ")}\n`);
  return 0;
}

function capacityFiles(out: string): { markdown: string; json: string; chart: string } {
  const stem = join(dirname(out), basename(out).replace(/\.md$/, ""));
  return { markdown: out, json: `${stem}.json`, chart: `${stem}.svg` };
}

/** Writes the table, its JSON and the chart; also used to redraw them from a JSON file. */
export async function writeCapacity(out: string, results: readonly RowResult[], curves: readonly LabelledReport[], settings: SweepSettings, command: string, started: Date, cores: number[], host: number): Promise<void> {
  const files = capacityFiles(out);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(files.chart, await latencyChart(curves.filter((c) => c.latencyMs.p99 > 0), "P99 latency over offered load, per capacity row", ["p99"]));
  writeFileSync(files.json, JSON.stringify({ command, at: started.toISOString(), machine: machine(), settings, results }, null, 2) + "\n");
  writeFileSync(out, markdown(results, settings, command, started, basename(files.chart), cores, host));
}

function machine() {
  return { cpus: availableParallelism(), cpuModel: cpus()[0]?.model ?? "unknown", memoryBytes: totalmem(), node: process.version, platform: `${process.platform} ${process.arch}` };
}

function table(results: readonly RowResult[]): string {
  const head = "| engine workers | connector CPUs | memory limit | response | backend latency | connections | max TPS within SLO | P99 at that load (ms) | engine CPU µs/request | connector CPU µs/request |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  return head + results.map((r) =>
    `| ${r.engineWorkers ?? 1} | ${r.cores} | ${formatBytes(r.memoryBytes)}${r.memoryLimited ? "" : " (not applied)"} | ${formatBytes(r.responseBytes)} | ${r.backendLatencyMs} ms | ${r.connections} | ${r.tps.toLocaleString("en-US")} | ${r.p99Ms ?? "-"} | ${r.cpu?.engineMicrosPerRequest ?? "-"} | ${r.cpu?.connectorMicrosPerRequest ?? "-"} |`).join("\n") + "\n";
}

export function scaling(results: readonly RowResult[]): string {
  const measured = results.filter((r) => r.cpu && r.tps > 0);
  const sizes = [...new Set(measured.map((r) => r.responseBytes))].sort((a, b) => a - b);
  if (sizes.length === 0) return "";
  const lines = sizes.map((size) => {
    const busiest = measured.filter((r) => r.responseBytes === size)
      .sort((a, b) => b.tps - a.tps || a.cpu!.connectorMicrosPerRequest - b.cpu!.connectorMicrosPerRequest)[0]!;
    const connector = busiest.cpu!.connectorMicrosPerRequest;
    const engine = busiest.cpu!.engineMicrosPerRequest;
    const perCore = (us: number) => (us > 0 ? Math.round(1_000_000 / us).toLocaleString("en-US") : "-");
    return `| ${formatBytes(size)} | ${connector} | ${perCore(connector)} | ${engine} | ${perCore(engine)} |`;
  });
  return `## Scaling to bigger hosts

CPU per request in the row of each response size that carried the most (every worker process
of the engine and of the connector counted; at lower rates a request costs more, as fewer
share each event-loop turn), and what one core therefore carries. Both run one worker per
core and their workers share nothing on the request path, so a connector host with K cores
carries about K times the per-core figure, and an engine host likewise, until the network or
the backends are the limit. Backend latency costs no CPU: it needs connections (the rows with
1000), not cores.

| response | connector µs/request | connector req/s per core | engine µs/request | engine req/s per core |
|---|---:|---:|---:|---:|
${lines.join("\n")}

On this host every process shares the same CPUs, so rows with more workers cannot show the
gain; the per-core figures are what carries over.

`;
}

function markdown(results: readonly RowResult[], s: SweepSettings, command: string, at: Date, chart: string, cores: number[], host: number): string {
  const m = machine();
  return `# Capacity

Produced by \`${command}\` on ${at.toISOString().slice(0, 10)}; regenerate with the same command.

## Method

- A rig of real processes on 127.0.0.1: \`postern control\`, \`postern engine\` (throttling off),
  the load-test backend (its response size and latency set per request), and \`postern connector
  run\` pinned with taskset to ${cores.map((c) => `${c} CPU${c > 1 ? "s" : ""} (CPU ${connectorCpus(c)})`).join(" and ")}, one connector worker
  per CPU, and held to its memory limit by a cgroup. Engine, backend and the load generator share the host's CPUs.
- Each row sweeps offered load (autocannon, fixed rate, open loop at the row's connection count)
  from ${s.startRate} req/s, doubling, then bisecting ${s.refine} times between the last passing and the first
  failing step; ${s.stepSeconds} s measured per step after ${s.warmupSeconds} s of warm-up.
- A step passes when P99 <= ${s.sloMs} ms, errors (failed requests and 5xx) <= ${(s.maxErrorRate * 100).toFixed(1)}%, and the achieved
  rate is at least 90% of the offered one. The row's figure is the highest passing offered load.
- Each step reads the CPU time of the engine and of the connector, every worker process
  included, from /proc; the table gives it per request at the row's passing load.
- The method scales to bigger hosts unchanged: \`--cores\` takes any list up to the host's CPUs.

## Machine

${m.cpus} x ${m.cpuModel}, ${formatBytes(Math.round(m.memoryBytes / 1024 ** 2) * 1024 ** 2)} RAM, Node ${m.node}, ${m.platform}.${host <= 2 ? ` With ${host} CPUs the
connector rows share their CPUs with the engine, the backend and the load generator, so the
figures are a floor for a connector host of that size, not its ceiling.` : ""}

## Table

${table(results)}
For comparison, the published table of Microsoft Entra application proxy's connector (its
own method, its hardware): 2 cores / 8 GB: 586 TPS at P99 325 ms; 4 / 16: 1150 at 320;
8 / 32: 1190 at 270; 16 / 64: 1200 at 245.

${scaling(results)}![latency over offered load](${chart})
`;
}
