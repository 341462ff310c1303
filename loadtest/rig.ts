/**
 * What every load scenario shares: child processes on 127.0.0.1 (the backend, and
 * `postern up --no-sample` with throttling off), apps published through the CLI, and
 * autocannon runs that also read each process's CPU time, so the report can say which hop
 * costs what.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { parseArgs } from "node:util";
import { runLoad } from "./run.js";

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
  /** Of that, the main thread's (the event loop's) share, µs; the rest is worker and libuv threads. */
  readonly mainThreadMicrosPerRequest: number[];
}

export interface Started {
  readonly child: ChildProcess;
  /** The first JSON line the process prints (uWS may print debug lines before it). */
  readonly ready: Promise<Record<string, unknown>>;
}

/**
 * Node flags for the rig's long-running children, from $POSTERN_RIG_NODE_FLAGS: profiling a
 * scenario (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") needs flags that NODE_OPTIONS refuses.
 */
const NODE_FLAGS = process.env.POSTERN_RIG_NODE_FLAGS?.split(/\s+/).filter(Boolean) ?? [];

/** The rig's processes still running: stopped with the command, however it ends. */
const rigChildren = new Set<ChildProcess>();

/**
 * Ties a child to this command's life: an interrupted sweep (Ctrl-C, SIGTERM, an error that
 * exits) must not leave a control, engine, connector or nginx running on the host.
 */
function tracked(child: ChildProcess): ChildProcess {
  if (!trackingInstalled) installTracking();
  rigChildren.add(child);
  child.once("exit", () => rigChildren.delete(child));
  return child;
}

let trackingInstalled = false;

function installTracking(): void {
  trackingInstalled = true;
  const stopAll = (): void => {
    for (const child of rigChildren) child.kill("SIGTERM");
  };
  process.once("exit", stopAll);
  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    process.once(signal, () => {
      stopAll();
      process.exit(code);
    });
  }
}

/** A Node script as a long-running child; `cpus`: pin it to these CPUs (taskset), e.g. "0" or "0-1". */
export function start(args: string[], cpus?: string): Started {
  const node = [process.execPath, ...NODE_FLAGS, ...args];
  const [command, argv] = cpus === undefined ? [node[0]!, node.slice(1)] : ["taskset", ["-c", cpus, ...node]];
  const child = tracked(spawn(command, argv, { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, POSTERN_LOG_LEVEL: "warn" } }));
  const ready = firstJsonLine(child.stdout!, new Promise((resolve) => child.once("exit", resolve)).then((code) => `${args.slice(0, 3).join(" ")} exited with ${code}`));
  return { child, ready };
}

/**
 * The first JSON line a process prints on `stdout` (this uWS build prints debug lines there
 * before it, when it adds SNI routes); rejects with the message `failed` resolves to first.
 */
export function firstJsonLine(stdout: Readable, failed: Promise<string>): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: stdout });
    lines.on("line", (line) => {
      if (!line.startsWith("{")) return;
      lines.removeAllListeners("line");
      resolve(JSON.parse(line) as Record<string, unknown>);
    });
    void failed.then((message) => reject(new Error(message)));
  });
}

/** A long-running `postern` command (control, engine, connector run, up). */
export function startCli(args: string[], cpus?: string): Started {
  return start([CLI, ...args], cpus);
}

/** A one-shot `postern` command; rejects unless it exits 0. */
export function runCli(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, POSTERN_LOG_LEVEL: "warn" } });
    child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`postern ${args.slice(0, 2).join(" ")} exited with ${code}`))));
  });
}

/** The load-test backend (loadtest/backend.ts) with its arguments. */
export function startBackend(args: string[], cpus?: string): Started {
  return start([join(here, "backend.js"), ...args], cpus);
}

/** The one-hop floor (loadtest/node-hop.ts): node:http in, undici out, to the backend on `backendPort`. */
export function startNodeHop(backendPort: number, cpus?: string): Started {
  return start([join(here, "node-hop.js"), String(backendPort)], cpus);
}

/** `postern up` on fresh state, throttling off: the scenarios measure the data path, not the per-app limit. */
export function startPostern(cpus?: string): Started & { dataDir: string } {
  const dataDir = mkdtempSync(join(tmpdir(), "postern-loadtest-"));
  const up = startCli(["up", "--json", "--no-sample", "--data-dir", dataDir, "--control-port", "0", "--tunnel-port", "0", "--http-port", "0", "--app-rate", "0", "--tenant-rate", "0"], cpus);
  return { ...up, dataDir };
}

/** A free TCP port on 127.0.0.1 (for servers that cannot report the one they picked). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

const NGINX_PATHS = ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"];

/** The nginx binary ($POSTERN_NGINX, else the usual places), or undefined. */
export function findNginx(): string | undefined {
  const wanted = process.env.POSTERN_NGINX;
  return (wanted !== undefined ? [wanted] : NGINX_PATHS).find((p) => existsSync(p));
}

export const NGINX_MISSING = "nginx is not installed: on Debian or Ubuntu, apt-get install nginx-light (or nginx); elsewhere install nginx and make sure it is in /usr/sbin";

/**
 * The peer: an nginx two-hop chain, edge proxy -> proxy -> backend, each hop its own nginx
 * with one worker and keep-alive upstreams (the shape of a reverse proxy in front of a
 * tunnel endpoint). Returns the edge's port and a stop function.
 */
export async function startNginxChain(backendPort: number, cpus?: string): Promise<{ port: number; pids: number[]; stop: () => void }> {
  const nginx = findNginx();
  if (!nginx) throw new Error(NGINX_MISSING);
  const dir = mkdtempSync(join(tmpdir(), "postern-nginx-"));
  const inner = await freePort();
  const edge = await freePort();
  const children: ChildProcess[] = [];
  for (const [name, listen, upstream] of [["inner", inner, backendPort], ["edge", edge, inner]] as const) {
    const conf = join(dir, `${name}.conf`);
    writeFileSync(conf, `worker_processes 1;
daemon off;
master_process off;
pid ${dir}/${name}.pid;
error_log ${dir}/${name}.error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${dir}/${name}-body;
  proxy_temp_path ${dir}/${name}-proxy;
  fastcgi_temp_path ${dir}/${name}-fastcgi;
  uwsgi_temp_path ${dir}/${name}-uwsgi;
  scgi_temp_path ${dir}/${name}-scgi;
  keepalive_requests 1000000;
  upstream next { server 127.0.0.1:${upstream}; keepalive 256; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:${listen} reuseport;
    location / { proxy_pass http://next; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering on; }
  }
}
`);
    const [command, argv] = cpus === undefined ? [nginx, ["-c", conf, "-p", dir]] : ["taskset", ["-c", cpus, nginx, "-c", conf, "-p", dir]];
    children.push(tracked(spawn(command, argv, { stdio: ["ignore", "ignore", "inherit"] })));
  }
  await waitForPort(edge);
  await waitForPort(inner);
  return { port: edge, pids: children.map((c) => c.pid!), stop: () => children.forEach((c) => c.kill("SIGTERM")) };
}

async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const { connect } = await import("node:net");
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * How servers and the load generator share the CPUs: with two or more, servers on the first
 * half and this process (autocannon and its workers) on the rest; with one, no pinning.
 */
export function cpuSplit(): { servers: string | undefined; loadgen: string | undefined; note: string } {
  const n = availableParallelism();
  if (n < 2 || !existsSync("/usr/bin/taskset")) return { servers: undefined, loadgen: undefined, note: `${n} CPU(s), no pinning` };
  const half = Math.floor(n / 2);
  const servers = half === 1 ? "0" : `0-${half - 1}`;
  const loadgen = half === n - 1 ? String(half) : `${half}-${n - 1}`;
  return { servers, loadgen, note: `servers pinned to CPU ${servers}, load generator to CPU ${loadgen} (of ${n})` };
}

/** Pins this process, every thread of it (autocannon's workers too), to `cpus`. */
export function pinSelf(cpus: string | undefined): void {
  if (cpus !== undefined) pin(process.pid, cpus);
}

/** Pins every thread of a process to `cpus`. */
export function pin(pid: number, cpus: string): void {
  execFileSync("taskset", ["-a", "-p", "-c", cpus, String(pid)], { stdio: "ignore" });
}

/** Pins one thread (a Linux thread id of some process) to `cpus`. */
export function pinThread(tid: number, cpus: string): void {
  execFileSync("taskset", ["-p", "-c", cpus, String(tid)], { stdio: "ignore" });
}

/** The thread of `pid`, other than its main thread, that used the most CPU while `work` ran. */
export async function busiestThread(pid: number, work: () => Promise<unknown>): Promise<number> {
  const threads = () => readdirSync(`/proc/${pid}/task`).map(Number).filter((t) => t !== pid);
  const before = new Map(threads().map((t) => [t, cpuMicros(pid, t)]));
  await work();
  const gains = threads().map((t) => [t, cpuMicros(pid, t) - (before.get(t) ?? 0)] as const).sort((a, b) => b[1] - a[1]);
  if (gains.length === 0) throw new Error(`process ${pid} has no thread besides its main one`);
  return gains[0]![0];
}

/** Publishes a passthrough app through the CLI, with extra `postern app add` flags. */
export function publish(dataDir: string, name: string, internalUrl: string, externalUrl: string, flags: string[] = []): Promise<void> {
  return runCli(["app", "add", "--name", name, "--internal-url", internalUrl, "--external-url", externalUrl, "--preauth", "passthrough", "--data-dir", dataDir, ...flags]);
}

/** CPU time (user + system) a process or one of its threads has used, in µs, from /proc (clock ticks of 10 ms). */
export function cpuMicros(pid: number, thread?: number): number {
  const fields = readFileSync(thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

/** CPU time of a process and every process under it (a cluster primary and its workers), µs. */
export function treeCpuMicros(pid: number): number {
  let total = 0;
  try {
    total = cpuMicros(pid);
    for (const thread of readdirSync(`/proc/${pid}/task`)) {
      const children = readFileSync(`/proc/${pid}/task/${thread}/children`, "utf8").trim();
      for (const child of children ? children.split(" ") : []) total += treeCpuMicros(Number(child));
    }
  } catch {
    // the process (or a thread) ended while being read: what it used is gone with it
  }
  return total;
}

/** A closed-loop run (runLoad) that also reads each watched process's CPU time. */
export async function measure(url: string, host: string | undefined, seconds: number, connections: number, pids: number[]): Promise<Figures> {
  const before = pids.map((pid) => cpuMicros(pid));
  const beforeMain = pids.map((pid) => cpuMicros(pid, pid));
  const r = await runLoad({ url, connections, durationS: seconds, ...(host ? { headers: { host } } : {}) });
  const total = r.requests || 1;
  return {
    requestsPerSecond: r.requestsPerSecond,
    p50Ms: r.latencyMs.p50,
    p99Ms: r.latencyMs.p99,
    errors: r.errors,
    non2xx: r.requests - r.status["2xx"],
    cpuMicrosPerRequest: pids.map((pid, i) => Math.round((cpuMicros(pid) - before[i]!) / total)),
    mainThreadMicrosPerRequest: pids.map((pid, i) => Math.round((cpuMicros(pid, pid) - beforeMain[i]!) / total)),
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

/** What a scenario gets: its options, and the backend and `postern up` running and ready. */
export interface ScenarioRig {
  /** The scenario's own on/off flags, by name. */
  readonly flags: Readonly<Record<string, boolean>>;
  readonly seconds: number;
  readonly connections: number;
  readonly bytes: string;
  readonly json: boolean;
  /** How many times to repeat the comparison (a noisy host needs the median of several). */
  readonly rounds: number;
  readonly backendPort: number;
  readonly engine: string;
  readonly dataDir: string;
  /** Backend, then Postern: the processes whose CPU per request the reports give. */
  readonly pids: number[];
}

/**
 * Runs a closed-loop scenario script: parses --seconds, --connections, --bytes, --rounds, --json
 * and the scenario's own boolean `flagNames`, starts the backend (`backendArgs(bytes)`) and
 * `postern up`, runs `body`, stops both, and exits 1 with the error's message if anything fails.
 */
export function scenario(defaultBytes: string, backendArgs: (bytes: string) => string[], body: (rig: ScenarioRig) => Promise<void>, flagNames: readonly string[] = []): void {
  const run = async () => {
    const { values } = parseArgs({
      options: {
        seconds: { type: "string", default: "10" }, connections: { type: "string", default: "50" }, bytes: { type: "string", default: defaultBytes }, json: { type: "boolean", default: false }, rounds: { type: "string", default: "1" },
        ...Object.fromEntries(flagNames.map((name) => [name, { type: "boolean", default: false } as const])),
      },
    });
    const flags = Object.fromEntries(flagNames.map((name) => [name, (values as Record<string, unknown>)[name] === true]));
    const backend = startBackend(backendArgs(values.bytes));
    const postern = startPostern();
    try {
      const { port } = (await backend.ready) as { port: number };
      const { engine } = (await postern.ready) as { engine: string };
      await body({
        flags,
        seconds: Number(values.seconds), connections: Number(values.connections), bytes: values.bytes, json: values.json, rounds: Math.max(1, Number(values.rounds) || 1),
        backendPort: port, engine, dataDir: postern.dataDir, pids: [backend.child.pid!, postern.child.pid!],
      });
    } finally {
      backend.child.kill("SIGTERM");
      postern.child.kill("SIGTERM");
    }
  };
  run().catch((err: unknown) => {
    process.stderr.write(`loadtest: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}

/** Lets the engine and connector pick newly published apps up from the feed. */
export function settle(): Promise<void> {
  return new Promise((r) => setTimeout(r, 1000));
}
