/**
 * One load run with autocannon (programmatic, on its worker threads), reduced to the figures
 * Postern reports everywhere: req/s, latency percentiles, throughput, status codes with 429
 * and 5xx apart, errors and timeouts. Closed loop (max rate) by default; `rate` makes it open
 * loop at a fixed offered load.
 */
import autocannon from "autocannon";
import { readFileSync } from "node:fs";
import { PosternError } from "../engine/protocol/errors.js";

/** One request of a mix file: `[{ "method": "POST", "path": "/api", "body": "...", "headers": {...} }]`. */
export interface MixRequest {
  readonly method?: string;
  readonly path?: string;
  readonly body?: string;
  readonly headers?: Record<string, string>;
}

export interface LoadOptions {
  readonly url: string;
  readonly connections: number;
  readonly pipelining?: number;
  /** Seconds; ignored when `amount` is set. */
  readonly durationS?: number;
  /** Requests in all, instead of a duration. */
  readonly amount?: number;
  /** Offered load, req/s (open loop); unset: as fast as the target answers. */
  readonly rate?: number;
  readonly headers?: Record<string, string>;
  readonly requests?: readonly MixRequest[];
  /** Seconds of load before measuring (same settings, not reported). */
  readonly warmupS?: number;
  /** autocannon worker threads (0: run in this thread). */
  readonly workers?: number;
  /** Seconds to wait for a response before counting a timeout. */
  readonly timeoutS?: number;
  /** Live progress on this stream (a TTY). */
  readonly progress?: NodeJS.WriteStream;
}

export interface LoadReport {
  readonly offeredRate: number | null;
  readonly connections: number;
  readonly durationS: number;
  /** Responses counted in the measured run. */
  readonly requests: number;
  /** Responses during the warm-up (sent, not reported). */
  readonly warmupRequests: number;
  readonly requestsPerSecond: number;
  readonly latencyMs: { readonly p50: number; readonly p90: number; readonly p99: number; readonly p99_9: number; readonly max: number; readonly mean: number };
  readonly throughputBytesPerSecond: number;
  readonly status: { readonly "2xx": number; readonly "3xx": number; readonly "4xx": number; readonly "429": number; readonly "5xx": number };
  readonly errors: number;
  readonly timeouts: number;
  /** Errors and timeouts plus 5xx, over all requests sent. */
  readonly errorRate: number;
}

/** Reads and checks a request mix file; a bad one names the entry and the field. */
export function readMix(file: string): MixRequest[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new PosternError("POSTERN_CONFIG", `--requests ${file}: not readable JSON (${(err as Error).message})`);
  }
  if (!Array.isArray(parsed) || parsed.length === 0) throw new PosternError("POSTERN_CONFIG", `--requests ${file}: expected a non-empty JSON array of requests`);
  return parsed.map((entry: unknown, i) => {
    if (typeof entry !== "object" || entry === null) throw new PosternError("POSTERN_CONFIG", `--requests ${file}: entry ${i} is not an object`);
    const r = entry as Record<string, unknown>;
    for (const field of ["method", "path", "body"] as const) {
      if (r[field] !== undefined && typeof r[field] !== "string") throw new PosternError("POSTERN_CONFIG", `--requests ${file}: entry ${i}: ${field} must be a string`);
    }
    if (r.path !== undefined && !(r.path as string).startsWith("/")) throw new PosternError("POSTERN_CONFIG", `--requests ${file}: entry ${i}: path must start with "/"`);
    if (r.headers !== undefined && (typeof r.headers !== "object" || r.headers === null || Object.values(r.headers).some((v) => typeof v !== "string"))) {
      throw new PosternError("POSTERN_CONFIG", `--requests ${file}: entry ${i}: headers must map names to strings`);
    }
    return r as MixRequest;
  });
}

function cannon(options: LoadOptions, durationS: number, amount: number | undefined, progress: NodeJS.WriteStream | undefined): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    const instance = autocannon({
      url: options.url,
      connections: options.connections,
      pipelining: options.pipelining ?? 1,
      ...(amount !== undefined ? { amount } : { duration: durationS }),
      ...(options.rate !== undefined ? { overallRate: options.rate } : {}),
      ...(options.headers ? { headers: options.headers } : {}),
      ...(options.requests ? { requests: options.requests.map((r) => ({ ...r })) as autocannon.Request[] } : {}),
      ...(options.workers ? { workers: options.workers } : {}),
      timeout: options.timeoutS ?? 10,
    }, (err, result) => (err ? reject(err) : resolve(result)));
    if (progress) autocannon.track(instance, { outputStream: progress, renderResultsTable: false, renderLatencyTable: false });
  });
}

export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  const warmup = options.warmupS ? await cannon(options, options.warmupS, undefined, undefined) : undefined;
  const r = await cannon(options, options.durationS ?? 10, options.amount, options.progress);
  const codes = r.statusCodeStats ?? {};
  const count = (pred: (code: number) => boolean) => Object.entries(codes).reduce((n, [code, s]) => n + (pred(Number(code)) ? (s.count ?? 0) : 0), 0);
  const status = {
    "2xx": count((c) => c >= 200 && c < 300),
    "3xx": count((c) => c >= 300 && c < 400),
    "4xx": count((c) => c >= 400 && c < 500 && c !== 429),
    "429": count((c) => c === 429),
    "5xx": count((c) => c >= 500),
  };
  const answered = status["2xx"] + status["3xx"] + status["4xx"] + status["429"] + status["5xx"];
  const failed = r.errors + status["5xx"];
  return {
    offeredRate: options.rate ?? null,
    connections: options.connections,
    durationS: r.duration,
    requests: answered,
    warmupRequests: warmup ? warmup.requests.total : 0,
    requestsPerSecond: Math.round(answered / Math.max(r.duration, 0.001)),
    latencyMs: { p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, p99_9: r.latency.p99_9, max: r.latency.max, mean: r.latency.mean },
    throughputBytesPerSecond: Math.round(r.throughput.average),
    status,
    errors: r.errors,
    timeouts: r.timeouts,
    errorRate: answered + r.errors > 0 ? failed / (answered + r.errors) : 0,
  };
}
