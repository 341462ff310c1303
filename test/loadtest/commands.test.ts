/**
 * `postern loadtest` and `postern capacity` run for a few seconds against local rigs; their
 * report files must parse and their counts agree with what the backend served.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "../fixtures/control.js";
import { CLI, runCli } from "../fixtures/processes.js";

const BACKEND = new URL("../../dist/loadtest/backend.js", import.meta.url).pathname;

interface Run {
  label: string; offeredRate: number | null; requests: number; warmupRequests: number; requestsPerSecond: number;
  latencyMs: { p50: number; p99: number; p99_9: number; max: number };
  status: Record<"2xx" | "3xx" | "4xx" | "429" | "5xx", number>; errors: number; timeouts: number;
}

/** The load-test backend as a child process, with its request counter. */
async function startLoadBackend(): Promise<{ child: ChildProcess; port: number; count: () => Promise<number> }> {
  const child = spawn(process.execPath, [BACKEND, "512"], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve) => createInterface({ input: child.stdout! }).once("line", (l) => resolve((JSON.parse(l) as { port: number }).port)));
  return { child, port, count: async () => ((await (await fetch(`http://127.0.0.1:${port}/__count`)).json()) as { requests: number }).requests };
}

describe("postern loadtest --target", () => {
  let backend: Awaited<ReturnType<typeof startLoadBackend>>;
  beforeAll(async () => {
    backend = await startLoadBackend();
  });
  afterAll(() => {
    backend.child.kill("SIGTERM");
  });

  it("writes report.json, report.md and latency.svg whose counts match the backend's", async () => {
    const out = tempDir();
    const before = await backend.count();
    const res = await runCli(["loadtest", "--target", `http://127.0.0.1:${backend.port}/`, "--duration", "2", "--connections", "10", "--out", out, "--json"], {}, 60_000);
    expect(res.code, res.stderr).toBe(0);
    const served = (await backend.count()) - before;
    const stdout = JSON.parse(res.stdout) as { runs: Run[] };
    const report = JSON.parse(readFileSync(join(out, "report.json"), "utf8")) as { runs: Run[] };
    expect(report.runs).toEqual(stdout.runs);
    const [run] = report.runs as [Run];
    expect(run.requests).toBeGreaterThan(100);
    expect(run.status["2xx"]).toBe(run.requests);
    expect(run.errors).toBe(0);
    // The backend also served the requests in flight when the run stopped (at most one per connection).
    expect(served - run.requests).toBeGreaterThanOrEqual(0);
    expect(served - run.requests).toBeLessThanOrEqual(10);
    expect(run.latencyMs.p50).toBeLessThanOrEqual(run.latencyMs.p99);
    expect(run.latencyMs.p99).toBeLessThanOrEqual(run.latencyMs.max);
    const md = readFileSync(join(out, "report.md"), "utf8");
    expect(md).toContain(`| http://127.0.0.1:${backend.port}/ | max | ${run.requestsPerSecond} |`);
    const svg = readFileSync(join(out, "latency.svg"), "utf8");
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg).toContain("latency (ms)");
  }, 60_000);

  it("holds fixed offered rates, one step each, with warm-up requests sent but not reported", async () => {
    const out = tempDir();
    const before = await backend.count();
    const res = await runCli(["loadtest", "--target", `http://127.0.0.1:${backend.port}/`, "--rate", "100,300", "--duration", "2", "--warmup", "1", "--connections", "5", "--out", out, "--json"], {}, 60_000);
    expect(res.code, res.stderr).toBe(0);
    const served = (await backend.count()) - before;
    const { runs } = JSON.parse(res.stdout) as { runs: Run[] };
    expect(runs.map((r) => r.offeredRate)).toEqual([100, 300]);
    for (const r of runs) {
      // autocannon paces per second: a short run lands within a few tenths of the rate.
      expect(r.requestsPerSecond).toBeGreaterThan(r.offeredRate! * 0.7);
      expect(r.requestsPerSecond).toBeLessThan(r.offeredRate! * 1.3);
      expect(r.warmupRequests).toBeGreaterThan(0);
    }
    const sent = runs.reduce((n, r) => n + r.requests + r.warmupRequests, 0);
    expect(Math.abs(served - sent)).toBeLessThanOrEqual(4 * 5);
  }, 60_000);
});

describe("request mix and status codes", () => {
  let server: Server;
  let port: number;
  const seen: { method: string; url: string; auth: string | undefined; body: string }[] = [];
  const answered = { 429: 0, 503: 0, 200: 0 };
  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString()));
      req.on("end", () => {
        seen.push({ method: req.method!, url: req.url!, auth: req.headers.authorization, body });
        const status = req.url === "/throttled" ? 429 : req.url === "/broken" ? 503 : 200;
        answered[status]++;
        res.writeHead(status).end("x");
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => server.close());

  it("sends every request of the mix file with its headers, and counts 429 and 5xx apart", async () => {
    const dir = tempDir();
    const mix = join(dir, "mix.json");
    writeFileSync(mix, JSON.stringify([
      { method: "POST", path: "/orders", body: '{"item":1}', headers: { "content-type": "application/json" } },
      { method: "GET", path: "/throttled" },
      { method: "GET", path: "/broken" },
    ]));
    const res = await runCli(["loadtest", "--target", `http://127.0.0.1:${port}/`, "--requests", mix, "--header", "Authorization: Bearer t0ken", "--amount", "300", "--connections", "3", "--out", dir, "--json"], {}, 60_000);
    expect(res.code, res.stderr).toBe(0);
    const [run] = (JSON.parse(res.stdout) as { runs: Run[] }).runs as [Run];
    expect(seen.some((s) => s.method === "POST" && s.url === "/orders" && s.body === '{"item":1}')).toBe(true);
    expect(seen.every((s) => s.auth === "Bearer t0ken")).toBe(true);
    expect(run.status["429"]).toBe(answered[429]);
    expect(run.status["5xx"]).toBe(answered[503]);
    expect(run.status["2xx"]).toBe(answered[200]);
    expect(run.status["4xx"]).toBe(0);
    expect(run.requests).toBe(seen.length);
  }, 60_000);

  it("refuses a bad mix file or target with a message that names the problem", async () => {
    const dir = tempDir();
    const bad = join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify([{ method: "GET", path: "no-slash" }]));
    const res = await runCli(["loadtest", "--target", `http://127.0.0.1:${port}/`, "--requests", bad, "--duration", "1"]);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`--requests ${bad}: entry 0: path must start with "/"`);
    const target = await runCli(["loadtest", "--target", "ftp://x/"]);
    expect(target.code).toBe(2);
    expect(target.stderr).toMatch(/--target must be an http:\/\/ or https:\/\/ URL/);
    const none = await runCli(["loadtest"]);
    expect(none.code).toBe(2);
  });
});

describe("postern loadtest --compare", () => {
  it("says how to install nginx when it is missing", async () => {
    const res = await runCli(["loadtest", "--compare", "--duration", "1"], { POSTERN_NGINX: "/nonexistent/nginx" });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/nginx is not installed: on Debian or Ubuntu, apt-get install nginx-light/);
  });

  it("measures direct, the nginx two-hop chain, Postern and the one-hop floor in one run, with ratios", async () => {
    const out = tempDir();
    const res = await runCli(["loadtest", "--compare", "--duration", "2", "--warmup", "1", "--connections", "10", "--out", out, "--json"], {}, 120_000);
    expect(res.code, res.stderr).toBe(0);
    const report = JSON.parse(res.stdout) as { runs: Run[]; ratios: string[]; cpus: string; generator: string; cpuMicrosPerRequest: Record<string, number>[] };
    expect(report.generator).toBe("wrk"); // Debian's wrk (npm test installs it): half autocannon's CPU per request
    expect(report.runs.map((r) => r.label)).toEqual(["direct", "nginx two-hop", "postern", "node:http+undici hop"]);
    for (const r of report.runs) {
      expect(r.status["2xx"], r.label).toBeGreaterThan(100);
      expect(r.errors + r.status["5xx"], r.label).toBe(0);
    }
    expect(report.ratios[0]).toMatch(/^max rate: postern \d+\.\d\dx direct, \d+\.\d\dx nginx two-hop req\/s; p99 [\d.]+ ms .*CPU per request on the path: postern \d+ µs.*one node:http \+ undici hop alone -?\d+ µs beyond the backend$/);
    // CPU per request of the servers on each path, from /proc: a proxy costs more than the backend alone.
    const [direct, chain, ours, floor] = report.cpuMicrosPerRequest.map((c) => Object.values(c)[0]!);
    expect(direct).toBeGreaterThan(0);
    expect(chain!).toBeGreaterThan(direct!);
    expect(ours!).toBeGreaterThan(direct!);
    expect(floor!).toBeGreaterThan(direct!);
    expect(report.cpus).toMatch(/CPU/);
    expect(JSON.parse(readFileSync(join(out, "report.json"), "utf8")).runs).toHaveLength(4);
  }, 120_000);
});

describe("postern capacity", () => {
  it("sweeps a row on a real rig and writes the table, whose counts match the backend's", async () => {
    const out = join(tempDir(), "capacity.md");
    // Two engine workers: the rig restarts its engine for the row, and the connector follows.
    const res = await runCli(["capacity", "--cores", "1", "--engine-workers", "2", "--sizes", "2048", "--latencies", "5", "--connections", "10", "--step-seconds", "1", "--warmup", "0",
      "--start-rate", "100", "--max-rate", "400", "--refine", "0", "--memory", "512M", "--out", out, "--json"], {}, 120_000);
    expect(res.code, res.stderr).toBe(0);
    const { results } = JSON.parse(res.stdout) as { results: { tps: number; cores: number; engineWorkers: number; memoryLimited: boolean; backendRequests: number; cpu: { engineMicrosPerRequest: number; connectorMicrosPerRequest: number } }[] };
    expect(results).toHaveLength(1);
    expect(results[0]!.engineWorkers).toBe(2);
    // CPU per request of every engine and connector process, read from /proc around the passing step.
    expect(results[0]!.cpu.engineMicrosPerRequest).toBeGreaterThan(0);
    expect(results[0]!.cpu.connectorMicrosPerRequest).toBeGreaterThan(0);
    const full = JSON.parse(readFileSync(out.replace(/\.md$/, ".json"), "utf8")) as { results: { tps: number; backendRequests: number; steps: (Run & { passed: boolean })[] }[] };
    const [row] = full.results as [(typeof full.results)[0]];
    // 100, 200, 400 req/s offered: a 1-CPU connector passes all three at 2 KiB with 5 ms of backend latency.
    expect(row.steps.map((s) => s.offeredRate)).toEqual([100, 200, 400]);
    expect(row.tps).toBe(400);
    const sent = row.steps.reduce((n, s) => n + s.requests + s.warmupRequests, 0);
    expect(Math.abs(row.backendRequests - sent)).toBeLessThanOrEqual(3 * 10);
    const md = readFileSync(out, "utf8");
    expect(md).toContain("Produced by `postern capacity --cores 1");
    expect(md).toMatch(/\| 2 \| 1 \| 512 MiB( \(not applied\))? \| 2 KiB \| 5 ms \| 10 \| 400 \| \d+ \| \d+ \| \d+ \|/);
    // How the row scales: one core's share from the CPU per request just measured.
    const perCore = Math.round(1_000_000 / results[0]!.cpu.connectorMicrosPerRequest).toLocaleString("en-US");
    expect(md).toContain("## Scaling to bigger hosts");
    expect(md).toContain(`| 2 KiB | ${results[0]!.cpu.connectorMicrosPerRequest} | ${perCore} |`);
    expect(readFileSync(out.replace(/\.md$/, ".svg"), "utf8").startsWith("<svg")).toBe(true);
  }, 120_000);

  it("stops its whole rig when it is interrupted", async () => {
    // The rig's state lives under this TMPDIR, so its processes can be found by their arguments.
    const tmp = join(tempDir(), "rig-tmp");
    mkdirSync(tmp);
    const rigProcesses = (): string[] => {
      try {
        return execFileSync("pgrep", ["-f", tmp], { encoding: "utf8" }).split("\n").filter(Boolean);
      } catch {
        return []; // pgrep exits 1 when nothing matches
      }
    };
    const child = spawn(process.execPath, [CLI, "capacity", "--cores", "1", "--sizes", "1024", "--latencies", "0", "--connections", "10", "--step-seconds", "30",
      "--memory", "512M", "--out", join(tmp, "capacity.md")], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, TMPDIR: tmp } });
    await new Promise<void>((resolve, reject) => {
      child.once("exit", (code) => reject(new Error(`capacity exited with ${code} before sweeping`)));
      createInterface({ input: child.stderr! }).on("line", (line) => line.includes("sweeping") && resolve());
    });
    expect(rigProcesses().length).toBeGreaterThanOrEqual(3); // control, engine, connector (and the backend)
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code, signal) => resolve(code ?? (signal === null ? null : -1))));
    child.kill("SIGTERM");
    expect(await exited).toBe(143);
    const until = Date.now() + 10_000;
    while (rigProcesses().length > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    expect(rigProcesses()).toEqual([]);
  }, 60_000);
});
