/**
 * One load run with wrk (Debian's wrk 4), the load generator of the peer comparison: it spends
 * about half of autocannon's CPU per request, so on a small host it is not what limits the
 * figures. A Lua script sets the headers, paces requests for a fixed offered rate (each
 * connection waits connections/rate between its requests: closed loop with think time, as
 * wrk 4 has no open-loop mode), and prints the summary as JSON, reduced to the same LoadReport
 * as the autocannon runs. wrk counts non-2xx/3xx answers together: they are reported under
 * 5xx (the comparison's targets answer 200; anything else is a failure there).
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LoadReport } from "./run.js";

const WRK = "/usr/bin/wrk";
export const WRK_MISSING = "wrk is not installed: on Debian or Ubuntu, apt-get install wrk";

export function findWrk(): string | undefined {
  return existsSync(WRK) ? WRK : undefined;
}

export interface WrkOptions {
  readonly url: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly connections: number;
  readonly durationS: number;
  /** Offered load, req/s; unset: as fast as the target answers. */
  readonly rate?: number;
  readonly threads?: number;
  /** Pin wrk to these CPUs (taskset), e.g. "1". */
  readonly cpus?: string;
  readonly timeoutS?: number;
}

const SCRIPT = `
local headers = os.getenv("POSTERN_WRK_HEADERS") or ""
for line in string.gmatch(headers, "[^\\n]+") do
  local name, value = string.match(line, "^([^:]+):%s*(.*)$")
  -- wrk sets "Host" itself: the same key replaces it (a second Host header would be refused).
  if name and string.lower(name) == "host" then name = "Host" end
  if name then wrk.headers[name] = value end
end
local pause = tonumber(os.getenv("POSTERN_WRK_PAUSE_MS") or "0")
if pause > 0 then
  function delay() return pause end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests":%d,"durationUs":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%f}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
`;

interface WrkSummary {
  readonly requests: number;
  readonly durationUs: number;
  readonly bytes: number;
  readonly connect: number;
  readonly read: number;
  readonly write: number;
  readonly status: number;
  readonly timeout: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly mean: number;
}

export async function runWrk(options: WrkOptions): Promise<LoadReport> {
  const wrk = findWrk();
  if (!wrk) throw new Error(WRK_MISSING);
  const dir = mkdtempSync(join(tmpdir(), "postern-wrk-"));
  const script = join(dir, "report.lua");
  writeFileSync(script, SCRIPT);
  const threads = Math.max(1, Math.min(options.threads ?? 1, options.connections));
  const args = ["-t", String(threads), "-c", String(options.connections), "-d", `${options.durationS}s`, "--timeout", `${options.timeoutS ?? 10}s`, "-s", script, options.url];
  const [command, argv] = options.cpus === undefined ? [wrk, args] : ["taskset", ["-c", options.cpus, wrk, ...args]];
  const env = {
    ...process.env,
    POSTERN_WRK_HEADERS: Object.entries(options.headers ?? {}).map(([k, v]) => `${k}: ${v}`).join("\n"),
    POSTERN_WRK_PAUSE_MS: options.rate === undefined ? "0" : String(Math.max(1, Math.round((options.connections * 1000) / options.rate))),
  };
  try {
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(command, argv, { env, timeout: (options.durationS + 60) * 1000, maxBuffer: 1024 * 1024 }, (err, out, errOut) => {
        if (err) reject(new Error(`wrk failed: ${errOut || err.message}`));
        else resolve(out);
      });
    });
    const line = stdout.split("\n").find((l) => l.startsWith("{\"requests\""));
    if (!line) throw new Error(`wrk printed no summary:\n${stdout.slice(0, 500)}`);
    return toReport(JSON.parse(line) as WrkSummary, options);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function toReport(s: WrkSummary, options: WrkOptions): LoadReport {
  const seconds = s.durationUs / 1e6;
  const ms = (us: number) => Math.round(us / 10) / 100;
  const errors = s.connect + s.read + s.write;
  return {
    offeredRate: options.rate ?? null,
    connections: options.connections,
    durationS: Math.round(seconds * 100) / 100,
    requests: s.requests,
    warmupRequests: 0,
    requestsPerSecond: Math.round(s.requests / seconds),
    latencyMs: { p50: ms(s.p50), p90: ms(s.p90), p99: ms(s.p99), p99_9: ms(s.p999), max: ms(s.max), mean: ms(s.mean) },
    throughputBytesPerSecond: Math.round(s.bytes / seconds),
    status: { "2xx": s.requests - s.status, "3xx": 0, "4xx": 0, "429": 0, "5xx": s.status },
    errors,
    timeouts: s.timeout,
    errorRate: s.requests + errors === 0 ? 0 : (errors + s.timeout + s.status) / (s.requests + errors),
  };
}
