/**
 * One load run with autocannon (programmatic, on its worker threads), reduced to the figures
 * Postern reports everywhere: req/s, latency percentiles, throughput, status codes with 429
 * and 5xx apart, errors and timeouts. Closed loop (max rate) by default; `rate` makes it open
 * loop at a fixed offered load.
 */
import autocannon from "autocannon";
import { readFileSync } from "node:fs";
import { PosternError } from "../engine/errors/catalogue.js";

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

/** Collects the measured part of a run from autocannon's per-response events (one thread only). */
class WindowedStats {
  readonly latencies: number[] = [];
  readonly codes = new Map<number, number>();
  bytes = 0;
  errors = 0;
  timeouts = 0;
  warmupResponses = 0;
  #measuring = false;

  start(): void {
    this.#measuring = true;
  }

  response(status: number, bytes: number, ms: number): void {
    if (!this.#measuring) {
      this.warmupResponses++;
      return;
    }
    this.latencies.push(ms);
    this.codes.set(status, (this.codes.get(status) ?? 0) + 1);
    this.bytes += bytes;
  }

  error(err: Error): void {
    if (!this.#measuring) return;
    this.errors++;
    if (/timeout/i.test(err.message)) this.timeouts++;
  }
}

/** Most slices a paced run is cut into. */
const SLICES = 20;

function cannon(options: LoadOptions, durationS: number, amount: number | undefined, progress: NodeJS.WriteStream | undefined, windowed?: { stats: WindowedStats; warmupS: number; slice: number }): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    const instance = autocannon({
      url: options.url,
      connections: options.connections,
      pipelining: options.pipelining ?? 1,
      ...(amount !== undefined ? { amount } : { duration: durationS }),
      ...(options.rate !== undefined ? { overallRate: options.rate } : {}),
      ...(options.headers ? { headers: options.headers } : {}),
      ...(options.requests ? { requests: options.requests.map((r) => ({ ...r })) as autocannon.Request[] } : {}),
      ...(options.workers && !windowed ? { workers: options.workers } : {}),
      timeout: options.timeoutS ?? 10,
    }, (err, result) => {
      clearTimeout(mark);
      if (err) reject(err);
      else resolve(result);
    });
    const mark = windowed && windowed.slice === 0 ? setTimeout(() => windowed.stats.start(), windowed.warmupS * 1000) : undefined;
    if (windowed) {
      instance.on("response", (_client, status, bytes, ms) => windowed.stats.response(status, bytes, ms));
      instance.on("reqError", (err) => windowed.stats.error(err));
    }
    if (progress) autocannon.track(instance, { outputStream: progress, renderResultsTable: false, renderLatencyTable: false });
  });
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return Math.round(sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!);
}

function statusOf(codes: Iterable<[number, number]>): LoadReport["status"] {
  const status = { "2xx": 0, "3xx": 0, "4xx": 0, "429": 0, "5xx": 0 };
  for (const [c, n] of codes) {
    if (c === 429) status["429"] += n;
    else if (c >= 500) status["5xx"] += n;
    else if (c >= 400) status["4xx"] += n;
    else if (c >= 300) status["3xx"] += n;
    else if (c >= 200) status["2xx"] += n;
  }
  return status;
}

/**
 * One run. With a warm-up and no worker threads, warm-up and measurement are one autocannon
 * run on the same connections, and only responses after the warm-up count: that is steady
 * state, which capacity sweeps need (a fresh run would open every connection at once and
 * measure that burst). With worker threads the warm-up is a run of its own first.
 */
export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  const durationS = options.durationS ?? 10;
  if (options.warmupS && !options.workers && options.amount === undefined) {
    const stats = new WindowedStats();
    // autocannon paces a fixed rate per second per connection, so every connection sends its
    // quota at the same instant: one burst a second. Slices (autocannon runs with a share of
    // the rate and connections each, started evenly through the first second) turn that
    // into SLICES smaller bursts a second, closer to requests arriving independently.
    const slices = options.rate !== undefined ? Math.max(1, Math.min(SLICES, options.connections, Math.floor(options.rate))) : 1;
    const gapS = 1 / slices;
    const warmupS = options.warmupS + (slices - 1) * gapS;
    await Promise.all(Array.from({ length: slices }, async (_, i) => {
      await new Promise((r) => setTimeout(r, i * gapS * 1000));
      const share = {
        ...options,
        connections: Math.floor(options.connections / slices) + (i < options.connections % slices ? 1 : 0),
        ...(options.rate !== undefined ? { rate: options.rate / slices } : {}),
      };
      // Every slice ends at the same moment; the window is the last durationS seconds.
      await cannon(share, warmupS + durationS - i * gapS, undefined, i === 0 ? options.progress : undefined, { stats, warmupS: warmupS - i * gapS, slice: i });
    }));
    const sorted = stats.latencies.sort((x, y) => x - y);
    const status = statusOf(stats.codes);
    const answered = sorted.length;
    const mean = answered > 0 ? sorted.reduce((n, v) => n + v, 0) / answered : 0;
    return report(options, durationS, answered, stats.warmupResponses, status, stats.errors, stats.timeouts, stats.bytes / durationS, {
      p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99), p99_9: percentile(sorted, 99.9), max: Math.round(sorted.at(-1) ?? 0), mean: +mean.toFixed(2),
    });
  }
  const warmup = options.warmupS ? await cannon(options, options.warmupS, undefined, undefined) : undefined;
  const r = await cannon(options, durationS, options.amount, options.progress);
  const status = statusOf(Object.entries(r.statusCodeStats ?? {}).map(([code, c]) => [Number(code), c.count ?? 0] as [number, number]));
  const answered = status["2xx"] + status["3xx"] + status["4xx"] + status["429"] + status["5xx"];
  return report(options, r.duration, answered, warmup ? warmup.requests.total : 0, status, r.errors, r.timeouts, r.throughput.average,
    { p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, p99_9: r.latency.p99_9, max: r.latency.max, mean: r.latency.mean });
}

function report(options: LoadOptions, durationS: number, answered: number, warmupRequests: number, status: LoadReport["status"], errors: number, timeouts: number, bytesPerSecond: number, latencyMs: LoadReport["latencyMs"]): LoadReport {
  return {
    offeredRate: options.rate ?? null,
    connections: options.connections,
    durationS,
    requests: answered,
    warmupRequests,
    requestsPerSecond: Math.round(answered / Math.max(durationS, 0.001)),
    latencyMs,
    throughputBytesPerSecond: Math.round(bytesPerSecond),
    status,
    errors,
    timeouts,
    errorRate: answered + errors > 0 ? (errors + status["5xx"]) / (answered + errors) : 0,
  };
}
