/**
 * What every load scenario shares: child processes on 127.0.0.1 (the backend, and
 * `postern up --no-sample` with throttling off), apps published through the CLI, and
 * autocannon runs that also read each process's CPU time, so the report can say which hop
 * costs what.
 */
import autocannon from "autocannon";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const here = new URL(".", import.meta.url).pathname;
const CLI = join(here, "../cli/postern.js");

export interface Figures {
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
  readonly non2xx: number;
  /** CPU per request of each watched process, µs. */
  readonly cpuMicrosPerRequest: number[];
}

export interface Started {
  readonly child: ChildProcess;
  /** The first line the process prints, as JSON. */
  readonly ready: Promise<Record<string, unknown>>;
}

export function start(args: string[]): Started {
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, POSTERN_LOG_LEVEL: "warn" } });
  const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once("line", (line) => resolve(JSON.parse(line) as Record<string, unknown>));
    child.once("exit", (code) => reject(new Error(`${args.join(" ")} exited with ${code}`)));
  });
  return { child, ready };
}

/** The load-test backend (loadtest/backend.ts) with its arguments. */
export function startBackend(args: string[]): Started {
  return start([join(here, "backend.js"), ...args]);
}

/** `postern up` on fresh state, throttling off: the scenarios measure the data path, not the per-app limit. */
export function startPostern(): Started & { dataDir: string } {
  const dataDir = mkdtempSync(join(tmpdir(), "postern-loadtest-"));
  const up = start([CLI, "up", "--json", "--no-sample", "--data-dir", dataDir, "--control-port", "0", "--tunnel-port", "0", "--http-port", "0", "--app-rate", "0", "--tenant-rate", "0"]);
  return { ...up, dataDir };
}

/** Publishes a passthrough app through the CLI, with extra `postern app add` flags. */
export async function publish(dataDir: string, name: string, internalUrl: string, externalUrl: string, flags: string[] = []): Promise<void> {
  const add = spawn(process.execPath, [CLI, "app", "add", "--name", name, "--internal-url", internalUrl, "--external-url", externalUrl, "--preauth", "passthrough", "--data-dir", dataDir, ...flags], { stdio: "inherit" });
  if ((await new Promise<number | null>((r) => add.once("exit", r))) !== 0) throw new Error(`publishing ${name} failed`);
}

/** CPU time (user + system) a process has used, in µs, from /proc (clock ticks of 10 ms). */
function cpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

export async function measure(url: string, host: string | undefined, seconds: number, connections: number, pids: number[]): Promise<Figures> {
  const before = pids.map(cpuMicros);
  const result = await autocannon({ url, connections, duration: seconds, pipelining: 1, ...(host ? { headers: { host } } : {}) });
  const total = result.requests.total || 1;
  return {
    requestsPerSecond: Math.round(result.requests.average),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
    cpuMicrosPerRequest: pids.map((pid, i) => Math.round((cpuMicros(pid) - before[i]!) / total)),
  };
}

export function cpuCount(): number {
  return readFileSync("/proc/cpuinfo", "utf8").match(/^processor/gm)?.length ?? 0;
}

/** One line of a req/s, p50, p99 table. */
export function row(name: string, f: Figures): string {
  return `${name.padEnd(22)} ${String(f.requestsPerSecond).padStart(9)} ${String(f.p50Ms).padStart(8)} ${String(f.p99Ms).padStart(8)} ${String(f.errors + f.non2xx).padStart(7)}`;
}

export const TABLE_HEAD = `${"".padEnd(22)} ${"req/s".padStart(9)} ${"p50 ms".padStart(8)} ${"p99 ms".padStart(8)} ${"errors".padStart(7)}`;
