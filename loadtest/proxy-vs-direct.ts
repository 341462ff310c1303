/**
 * Scenario: the same backend, measured directly and through Postern (engine + connector),
 * in the same run, each with autocannon for a fixed time. Prints req/s, p50 and p99 latency
 * for both and the ratios, as a table and (with --json) as one JSON line.
 *
 *   npm run loadtest -- [--seconds 10] [--connections 50] [--bytes 1024] [--json]
 *
 * Everything runs on 127.0.0.1 in child processes: the backend, and `postern up --no-sample`
 * (control, engine, connector in one process); autocannon runs here.
 */
import autocannon from "autocannon";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";

const here = new URL(".", import.meta.url).pathname;
const CLI = join(here, "../cli/postern.js");

interface Figures {
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
  readonly non2xx: number;
  /** CPU per request of [backend, postern], µs. */
  readonly cpuMicrosPerRequest: number[];
}

function start(args: string[]): { child: ChildProcess; ready: Promise<Record<string, unknown>> } {
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, POSTERN_LOG_LEVEL: "warn" } });
  const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once("line", (line) => resolve(JSON.parse(line) as Record<string, unknown>));
    child.once("exit", (code) => reject(new Error(`${args.join(" ")} exited with ${code}`)));
  });
  return { child, ready };
}

/** CPU time (user + system) a process has used, in µs, from /proc (clock ticks of 10 ms). */
function cpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

async function measure(url: string, host: string | undefined, seconds: number, connections: number, pids: number[]): Promise<Figures> {
  const before = pids.map(cpuMicros);
  const result = await autocannon({ url, connections, duration: seconds, pipelining: 1, ...(host ? { headers: { host } } : {}) });
  const total = result.requests.total || 1;
  return {
    requestsPerSecond: Math.round(result.requests.average),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
    // Which hop costs what: CPU per request of each process (backend, then Postern).
    cpuMicrosPerRequest: pids.map((pid, i) => Math.round((cpuMicros(pid) - before[i]!) / total)),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { seconds: { type: "string", default: "10" }, connections: { type: "string", default: "50" }, bytes: { type: "string", default: "1024" }, json: { type: "boolean", default: false } },
  });
  const seconds = Number(values.seconds);
  const connections = Number(values.connections);
  const dataDir = mkdtempSync(join(tmpdir(), "postern-loadtest-"));
  const backend = start([join(here, "backend.js"), values.bytes]);
  // Throttling off: this scenario measures the data path, not the per-app limit.
  const postern = start([CLI, "up", "--json", "--no-sample", "--data-dir", dataDir, "--control-port", "0", "--tunnel-port", "0", "--http-port", "0", "--app-rate", "0", "--tenant-rate", "0"]);
  try {
    const { port } = (await backend.ready) as { port: number };
    const { engine } = (await postern.ready) as { engine: string };
    const host = "bench.default.localhost";
    const add = spawn(process.execPath, [CLI, "app", "add", "--name", "Bench", "--internal-url", `http://localhost:${port}/`, "--external-url", `http://${host}/`, "--preauth", "passthrough", "--data-dir", dataDir], { stdio: "inherit" });
    if ((await new Promise<number | null>((r) => add.once("exit", r))) !== 0) throw new Error("publishing the benchmark app failed");
    await new Promise((r) => setTimeout(r, 1000)); // the engine and connector pick the app up from the feed
    const pids = [backend.child.pid!, postern.child.pid!];
    await measure(`http://127.0.0.1:${port}/`, undefined, 2, connections, pids); // warm-up
    const direct = await measure(`http://127.0.0.1:${port}/`, undefined, seconds, connections, pids);
    await measure(`${engine}/`, host, 2, connections, pids);
    const proxied = await measure(`${engine}/`, host, seconds, connections, pids);
    const report = {
      scenario: "proxy-vs-direct", seconds, connections, bodyBytes: Number(values.bytes), direct, postern: proxied,
      ratio: { requestsPerSecond: +(proxied.requestsPerSecond / direct.requestsPerSecond).toFixed(2), p50: +(proxied.p50Ms / Math.max(direct.p50Ms, 0.01)).toFixed(2), p99: +(proxied.p99Ms / Math.max(direct.p99Ms, 0.01)).toFixed(2) },
      node: process.version,
      cpus: readFileSync("/proc/cpuinfo", "utf8").match(/^processor/gm)?.length ?? 0,
    };
    if (values.json) {
      process.stdout.write(JSON.stringify(report) + "\n");
    } else {
      const row = (name: string, f: Figures) => `${name.padEnd(16)} ${String(f.requestsPerSecond).padStart(9)} ${String(f.p50Ms).padStart(8)} ${String(f.p99Ms).padStart(8)} ${String(f.errors + f.non2xx).padStart(7)}`;
      process.stdout.write(`proxy-vs-direct: ${connections} connections, ${seconds} s each, ${values.bytes}-byte responses\n`);
      process.stdout.write(`${"".padEnd(16)} ${"req/s".padStart(9)} ${"p50 ms".padStart(8)} ${"p99 ms".padStart(8)} ${"errors".padStart(7)}\n`);
      process.stdout.write(`${row("direct", direct)}\n${row("through Postern", proxied)}\n`);
      process.stdout.write(`ratio: ${report.ratio.requestsPerSecond}x req/s, ${report.ratio.p50}x p50, ${report.ratio.p99}x p99\n`);
      process.stdout.write(`CPU per request through Postern: backend ${proxied.cpuMicrosPerRequest[0]} µs, postern (engine + connector) ${proxied.cpuMicrosPerRequest[1]} µs\n`);
    }
  } finally {
    backend.child.kill("SIGTERM");
    postern.child.kill("SIGTERM");
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`loadtest: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
