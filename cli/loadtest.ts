/**
 * `postern loadtest`: load against any deployment (`--target`), or the peer comparison
 * (`--compare`): the same backend directly, through an nginx two-hop chain and through
 * Postern, same load generator and settings, in one run.
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { numberFlag, UsageError } from "./flags.js";
import { writeReports, textTable, type LabelledReport } from "../loadtest/report.js";
import { cpuMicros, cpuSplit, findNginx, NGINX_MISSING, pinSelf, publish, settle, startBackend, startNginxChain, startNodeHop, startPostern } from "../loadtest/rig.js";
import { findWrk, runWrk, WRK_MISSING } from "../loadtest/wrk.js";
import { readMix, runLoad, type LoadOptions } from "../loadtest/run.js";

const HELP = `Usage: postern loadtest --target URL [options]
       postern loadtest --compare [options]

Runs autocannon (on its worker threads) against a deployment and reports req/s, latency
p50/p90/p99/p99.9/max, throughput, status codes (429 and 5xx apart), errors and timeouts: a
table on stdout, and report.json, report.md and latency.svg (latency over offered load) in --out.

Options:
  --target URL          What to load (an app's external URL, or any HTTP URL)
  --host H              Host header (e.g. an app's external host when --target is an engine address)
  --header "K: V"       Extra request header (repeatable), e.g. "authorization: Bearer ..."
  --requests FILE       Request mix: JSON array of {method, path, body, headers}, sent in turn
  --duration S          Seconds per run (default 10)
  --amount N            Requests per run instead of a duration
  --connections N       Concurrent connections (default 50)
  --pipelining N        Requests in flight per connection (default 1)
  --rate R[,R...]       Fixed offered load in req/s (open loop); a list runs one step per rate.
                        Without it: max-rate (closed loop)
  --warmup S            Seconds of load before each measured run (default 0; 2 with --compare)
  --workers N           autocannon worker threads (default 1)
  --timeout S           Seconds before a request counts as timed out (default 10)
  --out DIR             Report directory (default ./postern-loadtest-<time>)
  --compare             Peer comparison on this host: backend direct, nginx two-hop chain
                        (edge proxy -> proxy -> backend, one worker each, keep-alive upstreams)
                        and Postern (engine -> connector -> backend), and one bare node:http +
                        undici hop (the floor of Postern's stack); servers pinned to the same
                        CPUs, the load generator to the others; reports each server's CPU per
                        request. Needs nginx (apt-get install nginx-light)
  --generator G         wrk (default with --compare when installed: half autocannon's CPU per
                        request) or autocannon
  --bytes N             Backend response size for --compare (default 1024)
  --json                Print the report as JSON on stdout instead of the table
  -h, --help            Show this help
`;


export async function runLoadtest(args: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args,
    options: {
      target: { type: "string" }, host: { type: "string" }, header: { type: "string", multiple: true }, requests: { type: "string" },
      duration: { type: "string" }, amount: { type: "string" }, connections: { type: "string" }, pipelining: { type: "string" },
      rate: { type: "string" }, warmup: { type: "string" }, workers: { type: "string" }, timeout: { type: "string" }, out: { type: "string" },
      compare: { type: "boolean", default: false }, bytes: { type: "string" }, generator: { type: "string" }, json: { type: "boolean", default: false }, help: { type: "boolean", short: "h", default: false },
    },
  });
  if (v.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (!v.compare && v.target === undefined) throw new UsageError("loadtest needs --target URL (or --compare); see postern loadtest --help");
  if (v.target !== undefined && !/^https?:\/\//.test(v.target)) throw new UsageError(`--target must be an http:// or https:// URL, got "${v.target}"`);
  const headers: Record<string, string> = {};
  for (const h of v.header ?? []) {
    const at = h.indexOf(":");
    if (at <= 0) throw new UsageError(`--header must look like "Name: value", got "${h}"`);
    headers[h.slice(0, at).trim().toLowerCase()] = h.slice(at + 1).trim();
  }
  if (v.host !== undefined) headers.host = v.host;
  const rates = v.rate === undefined ? [undefined] : v.rate.split(",").map((r) => numberFlag(r, "rate", undefined, { min: 1, integer: false }));
  const base: Omit<LoadOptions, "url"> = {
    connections: numberFlag(v.connections, "connections", 50, { min: 1, integer: false }),
    pipelining: numberFlag(v.pipelining, "pipelining", 1, { min: 1, integer: false }),
    durationS: numberFlag(v.duration, "duration", 10, { min: 1, integer: false }),
    ...(v.amount !== undefined ? { amount: numberFlag(v.amount, "amount", undefined, { min: 1, integer: false }) } : {}),
    ...(v.requests !== undefined ? { requests: readMix(v.requests) } : {}),
    warmupS: numberFlag(v.warmup, "warmup", v.compare ? 2 : 0, { integer: false }),
    workers: numberFlag(v.workers, "workers", 1, { integer: false }),
    timeoutS: numberFlag(v.timeout, "timeout", 10, { min: 1, integer: false }),
  };
  const out = v.out ?? join(process.cwd(), `postern-loadtest-${new Date().toISOString().replace(/[:.]/g, "-")}`);
  const progress = !v.json && process.stderr.isTTY ? process.stderr : undefined;

  let reports: LabelledReport[];
  let extra: Record<string, unknown> = {};
  let title: string;
  if (v.generator !== undefined && v.generator !== "wrk" && v.generator !== "autocannon") throw new UsageError(`--generator must be wrk or autocannon, got "${v.generator}"`);
  if (v.compare) {
    const generator = v.generator ?? (findWrk() ? "wrk" : "autocannon");
    if (generator === "wrk" && !findWrk()) throw new UsageError(WRK_MISSING);
    ({ reports, extra } = await compare(base, headers, rates, numberFlag(v.bytes, "bytes", 1024, { integer: false }), progress, generator));
    title = "Peer comparison: direct, nginx two-hop chain, Postern, one node:http + undici hop";
  } else {
    reports = [];
    for (const rate of rates) {
      const r = await runLoad({ ...base, url: v.target!, ...(Object.keys(headers).length ? { headers } : {}), ...(rate !== undefined ? { rate } : {}), ...(progress ? { progress } : {}) });
      reports.push({ ...r, label: v.target! });
    }
    title = `Load test of ${v.target}`;
  }
  const files = await writeReports(out, title, reports, extra);
  if (v.json) process.stdout.write(JSON.stringify({ title, ...extra, runs: reports, files }) + "\n");
  else {
    process.stdout.write(`${title}\n\n${textTable(reports)}`);
    if (extra.ratios) process.stdout.write(`\n${(extra.ratios as string[]).join("\n")}\n`);
    process.stdout.write(`\nReports: ${files.json}, ${files.markdown}, ${files.chart}\n`);
  }
  return 0;
}

const FLOOR = "node:http+undici hop";

/** The peer comparison: four targets, same backend, same load. */
async function compare(base: Omit<LoadOptions, "url">, headers: Record<string, string>, rates: (number | undefined)[], bytes: number, progress: NodeJS.WriteStream | undefined, generator: "wrk" | "autocannon") {
  if (!findNginx()) throw new Error(NGINX_MISSING);
  const split = cpuSplit();
  const backend = startBackend([String(bytes)], split.servers);
  const postern = startPostern(split.servers);
  let nginx: { port: number; pids: number[]; stop: () => void } | undefined;
  let floor: ReturnType<typeof startNodeHop> | undefined;
  try {
    const { port } = (await backend.ready) as { port: number };
    const { engine } = (await postern.ready) as { engine: string };
    nginx = await startNginxChain(port, split.servers);
    floor = startNodeHop(port, split.servers);
    const floorPort = ((await floor.ready) as { port: number }).port;
    const host = "loadtest.default.localhost";
    await publish(postern.dataDir, "Loadtest", `http://localhost:${port}/`, `http://${host}/`);
    await settle();
    if (generator === "autocannon") pinSelf(split.loadgen);
    const backendPid = backend.child.pid!;
    // The processes each target's requests go through (beyond the load generator).
    const targets: [string, string, Record<string, string>, number[]][] = [
      ["direct", `http://127.0.0.1:${port}/`, headers, [backendPid]],
      ["nginx two-hop", `http://127.0.0.1:${nginx.port}/`, headers, [...nginx.pids, backendPid]],
      ["postern", `${engine}/`, { ...headers, host }, [postern.child.pid!, backendPid]],
      // What one hop of node:http + undici costs with nothing else: the floor under Postern's two.
      [FLOOR, `http://127.0.0.1:${floorPort}/`, headers, [floor.child.pid!, backendPid]],
    ];
    const run = (url: string, h: Record<string, string>, rate: number | undefined) => generator === "wrk"
      ? runWrk({ url, headers: h, connections: base.connections, durationS: base.durationS ?? 10, ...(rate !== undefined ? { rate } : {}), ...(split.loadgen ? { cpus: split.loadgen } : {}), ...(base.timeoutS ? { timeoutS: base.timeoutS } : {}) })
      : runLoad({ ...base, url, headers: h, ...(rate !== undefined ? { rate } : {}), ...(progress ? { progress } : {}) });
    const reports: LabelledReport[] = [];
    const cpu: Record<string, number>[] = [];
    for (const rate of rates) {
      for (const [label, url, h, pids] of targets) {
        if (generator === "wrk" && (base.warmupS ?? 0) > 0) await runWrk({ url, headers: h, connections: base.connections, durationS: base.warmupS!, ...(split.loadgen ? { cpus: split.loadgen } : {}) });
        const before = pids.map((pid) => cpuMicros(pid));
        const r = await run(url, h, rate);
        // CPU per request of the servers on the path (the backend's included), µs.
        cpu.push({ [label]: Math.round(pids.reduce((sum, pid, i) => sum + cpuMicros(pid) - before[i]!, 0) / Math.max(1, r.requests)) });
        reports.push({ ...r, label });
      }
    }
    const ratios: string[] = [];
    for (let i = 0; i < reports.length; i += targets.length) {
      const [direct, chain, ours] = reports.slice(i, i + 3) as [LabelledReport, LabelledReport, LabelledReport];
      const [cd, cc, co, cf] = [cpu[i]!.direct!, cpu[i + 1]!["nginx two-hop"]!, cpu[i + 2]!.postern!, cpu[i + 3]![FLOOR]!];
      const at = direct.offeredRate === null ? "max rate" : `${direct.offeredRate}/s offered`;
      ratios.push(`${at}: postern ${(ours.requestsPerSecond / direct.requestsPerSecond).toFixed(2)}x direct, ${(ours.requestsPerSecond / chain.requestsPerSecond).toFixed(2)}x nginx two-hop req/s; p99 ${ours.latencyMs.p99} ms (nginx ${chain.latencyMs.p99} ms, direct ${direct.latencyMs.p99} ms); `
        + `CPU per request on the path: postern ${co} µs (${co - cd} µs beyond the backend), nginx two-hop ${cc} µs (${cc - cd} beyond), direct ${cd} µs; `
        + `one node:http + undici hop alone ${cf - cd} µs beyond the backend`);
    }
    return { reports, extra: { bytes, cpus: split.note, generator, cpuMicrosPerRequest: cpu, ratios } };
  } finally {
    nginx?.stop();
    floor?.child.kill("SIGTERM");
    backend.child.kill("SIGTERM");
    postern.child.kill("SIGTERM");
  }
}
