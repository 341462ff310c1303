import { MAX_LENGTH_FIELD, MAX_WINDOW } from "../protocol/constants.js";
import { PosternError } from "../errors/catalogue.js";

/**
 * Mux session settings. Defaults follow ../shared/SECURITY.md; each is validated once by
 * resolveMuxConfig and then frozen. "Inbound" limits are what we accept from the peer and are
 * announced to it in HELLO.
 *
 * The schema is written out here rather than in zod like the process settings
 * (engine/config/settings.ts): the mux is the hot path of both hops and its module stays free
 * of a schema library. Loading zod into the lean benchmark peer alone cost the bulk transfer
 * ~20% (its extra long-lived heap makes V8 mark the old space again and again while `ws`
 * allocates masked frames). Process settings embed this schema with `muxSettings`.
 */
export interface MuxConfig {
  /** Streams the peer may have open towards us at once (REFUSED_STREAM past it). 0: the peer may open none. */
  readonly maxConcurrentStreams: number;
  /** Receive credit a stream starts with, bytes. */
  readonly initialStreamWindow: number;
  /**
   * Receive credit a stream may grow to, bytes: a stream whose reader keeps up but whose peer
   * ran out of credit doubles its window (up to this), so one stream can fill a long or busy
   * path. A stream never buffers more than its current window; 0 or initialStreamWindow: no growth.
   */
  readonly maxStreamWindow: number;
  /** Receive credit for the whole connection, bytes: bounds bytes in flight towards us. */
  readonly connectionWindow: number;
  /** Largest DATA payload we accept (and send, if the peer accepts as much), bytes. */
  readonly maxFrameSize: number;
  /** Largest OPEN / RESPONSE head we accept, bytes. */
  readonly maxHeaderBlock: number;
  /**
   * Bytes held for paused readers, across all streams, for which connection credit is handed
   * back at once (so one slow reader does not stall the others). Past it, credit comes back only
   * as readers consume: total buffered stays under this + connectionWindow. 0: never early.
   */
  readonly maxSessionBuffer: number;
  /** Outbound bytes the transport may queue before writers see backpressure. */
  readonly transportHighWater: number;
  /** Outbound bytes queued in the transport past which the peer is declared stuck and dropped. */
  readonly maxTransportBuffer: number;
  /** Largest transport message we build from batched frames, bytes. */
  readonly maxBatchBytes: number;
  /** Keepalive PING period, ms. 0 disables keepalive. */
  readonly pingIntervalMs: number;
  /** Consecutive unanswered ping periods after which the peer is dead. */
  readonly pingMisses: number;
  /** Time allowed for the HELLO exchange, ms. */
  readonly helloTimeoutMs: number;
  /** Rapid-reset guard: judged once at least this many peer streams opened in one window. */
  readonly resetFloodMinStreams: number;
  /** Rapid-reset guard: close when resets/opens in the window exceed this ratio. */
  readonly resetFloodRatio: number;
  /** Rapid-reset guard window, ms. */
  readonly resetFloodWindowMs: number;
  /** PING, SETTINGS and empty DATA frames accepted per second before the peer counts as flooding. */
  readonly maxControlFramesPerSecond: number;
  /** Optional features we offer; the session uses those both sides offer. */
  readonly capabilities: readonly string[];
}

export const DEFAULT_MUX_CONFIG: MuxConfig = Object.freeze({
  maxConcurrentStreams: 1024,
  initialStreamWindow: 256 * 1024, // 256 KiB (yamux)
  maxStreamWindow: 4 * 1024 * 1024, // 4 MiB: a 1 MiB response crossed the 256 KiB window at 0.7x the speed of a 2 MiB one
  connectionWindow: 4 * 1024 * 1024, // 4 MiB
  maxFrameSize: 64 * 1024, // 64 KiB (frp)
  maxHeaderBlock: 32 * 1024, // 32 KiB: edge headers are capped at 16 KiB, plus identity
  maxSessionBuffer: 32 * 1024 * 1024, // 32 MiB
  transportHighWater: 1024 * 1024, // 1 MiB
  maxTransportBuffer: 64 * 1024 * 1024, // 64 MiB
  maxBatchBytes: 64 * 1024, // 64 KiB: below the stream window, so credit returns while data still flows
  pingIntervalMs: 15_000, // 15 s
  pingMisses: 2,
  helloTimeoutMs: 10_000, // 10 s
  resetFloodMinStreams: 500,
  resetFloodRatio: 0.5,
  resetFloodWindowMs: 1_000, // 1 s
  maxControlFramesPerSecond: 200,
  capabilities: Object.freeze([]) as readonly string[],
});

export type MuxConfigInput = { -readonly [K in keyof MuxConfig]?: MuxConfig[K] };

type NumericKey = Exclude<keyof MuxConfig, "capabilities">;

/** [min, max] per numeric field. */
const RANGES: Record<NumericKey, readonly [number, number]> = {
  maxConcurrentStreams: [0, MAX_WINDOW],
  initialStreamWindow: [1024, MAX_WINDOW],
  maxStreamWindow: [0, MAX_WINDOW],
  connectionWindow: [1024, MAX_WINDOW],
  maxFrameSize: [1024, MAX_LENGTH_FIELD],
  maxHeaderBlock: [256, MAX_LENGTH_FIELD],
  maxSessionBuffer: [0, Number.MAX_SAFE_INTEGER],
  transportHighWater: [1, Number.MAX_SAFE_INTEGER],
  maxTransportBuffer: [1, Number.MAX_SAFE_INTEGER],
  maxBatchBytes: [1024, 64 * 1024 * 1024],
  pingIntervalMs: [0, 3_600_000],
  pingMisses: [1, 100],
  helloTimeoutMs: [1, 600_000],
  resetFloodMinStreams: [1, Number.MAX_SAFE_INTEGER],
  resetFloodRatio: [0, 1],
  resetFloodWindowMs: [1, 600_000],
  maxControlFramesPerSecond: [1, Number.MAX_SAFE_INTEGER],
};

const NON_INTEGER: ReadonlySet<NumericKey> = new Set(["resetFloodRatio"]);

function configError(field: string, problem: string): PosternError {
  return new PosternError("POSTERN_CONFIG", `mux config: ${field} ${problem}`);
}

function isNumericKey(key: string): key is NumericKey {
  return Object.hasOwn(RANGES, key);
}

/** Validates an input against the schema, fills defaults, rejects unknown keys, freezes. */
export function resolveMuxConfig(input: unknown = {}): MuxConfig {
  if (input === null || typeof input !== "object" || Array.isArray(input)) throw configError("(settings)", "must be an object");
  const out: { -readonly [K in keyof MuxConfig]: MuxConfig[K] } = { ...DEFAULT_MUX_CONFIG };
  for (const [key, value] of Object.entries(input)) {
    if (value === undefined) continue;
    if (key === "capabilities") {
      if (!Array.isArray(value)) throw configError(key, "must be an array of strings");
      value.forEach((c, i) => {
        if (typeof c !== "string") throw configError(`${key}.${i}`, "must be a string");
      });
      out.capabilities = Object.freeze([...(value as string[])]);
      continue;
    }
    if (!isNumericKey(key)) throw configError(key, "is not a known setting");
    const [min, max] = RANGES[key];
    if (typeof value !== "number" || Number.isNaN(value)) throw configError(key, "must be a number");
    if (!NON_INTEGER.has(key) && !Number.isInteger(value)) throw configError(key, "must be an integer");
    if (value < min || value > max) throw configError(key, `must be between ${min} and ${max}, got ${value}`);
    out[key] = value;
  }
  if (out.transportHighWater > out.maxTransportBuffer) throw configError("transportHighWater", "must not exceed maxTransportBuffer");
  return Object.freeze(out);
}
