import { z } from "zod";
import { MAX_LENGTH_FIELD, MAX_WINDOW } from "../protocol/constants.js";
import { integer, resolveSettings, type Resolved } from "../config/settings.js";

/**
 * Mux session settings. Defaults follow ../shared/SECURITY.md; each is validated once by
 * resolveMuxConfig and then frozen. "Inbound" limits are what we accept from the peer and are
 * announced to it in HELLO.
 */
export const muxConfigSchema = z.object({
  /** Streams the peer may have open towards us at once (REFUSED_STREAM past it). 0: the peer may open none. */
  maxConcurrentStreams: integer(0, MAX_WINDOW, 1024),
  /** Receive credit per stream, bytes: a stream never buffers more than this. */
  initialStreamWindow: integer(1024, MAX_WINDOW, 256 * 1024), // 256 KiB (yamux)
  /** Receive credit for the whole connection, bytes: bounds bytes in flight towards us. */
  connectionWindow: integer(1024, MAX_WINDOW, 4 * 1024 * 1024), // 4 MiB
  /** Largest DATA payload we accept (and send, if the peer accepts as much), bytes. */
  maxFrameSize: integer(1024, MAX_LENGTH_FIELD, 64 * 1024), // 64 KiB (frp)
  /** Largest OPEN / RESPONSE head we accept, bytes: edge headers are capped at 16 KiB, plus identity. */
  maxHeaderBlock: integer(256, MAX_LENGTH_FIELD, 32 * 1024), // 32 KiB
  /**
   * Bytes held for paused readers, across all streams, for which connection credit is handed
   * back at once (so one slow reader does not stall the others). Past it, credit comes back only
   * as readers consume: total buffered stays under this + connectionWindow. 0: never early.
   */
  maxSessionBuffer: integer(0, Number.MAX_SAFE_INTEGER, 32 * 1024 * 1024), // 32 MiB
  /** Outbound bytes the transport may queue before writers see backpressure. */
  transportHighWater: integer(1, Number.MAX_SAFE_INTEGER, 1024 * 1024), // 1 MiB
  /** Outbound bytes queued in the transport past which the peer is declared stuck and dropped. */
  maxTransportBuffer: integer(1, Number.MAX_SAFE_INTEGER, 64 * 1024 * 1024), // 64 MiB
  /** Largest transport message we build from batched frames, bytes: below the stream window, so credit returns while data still flows. */
  maxBatchBytes: integer(1024, 64 * 1024 * 1024, 64 * 1024), // 64 KiB
  /** Keepalive PING period, ms. 0 disables keepalive. */
  pingIntervalMs: integer(0, 3_600_000, 15_000), // 15 s
  /** Consecutive unanswered ping periods after which the peer is dead. */
  pingMisses: integer(1, 100, 2),
  /** Time allowed for the HELLO exchange, ms. */
  helloTimeoutMs: integer(1, 600_000, 10_000), // 10 s
  /** Rapid-reset guard: judged once at least this many peer streams opened in one window. */
  resetFloodMinStreams: integer(1, Number.MAX_SAFE_INTEGER, 500),
  /** Rapid-reset guard: close when resets/opens in the window exceed this ratio. */
  resetFloodRatio: z.number({ error: "must be a number" })
    .min(0, { error: (i) => `must be between 0 and 1, got ${String(i.input)}` })
    .max(1, { error: (i) => `must be between 0 and 1, got ${String(i.input)}` }).default(0.5),
  /** Rapid-reset guard window, ms. */
  resetFloodWindowMs: integer(1, 600_000, 1_000), // 1 s
  /** PING, SETTINGS and empty DATA frames accepted per second before the peer counts as flooding. */
  maxControlFramesPerSecond: integer(1, Number.MAX_SAFE_INTEGER, 200),
  /** Optional features we offer; the session uses those both sides offer. */
  capabilities: z.array(z.string({ error: "must be a string" }), { error: "must be an array of strings" }).readonly().default([]),
}).strict().refine((c) => c.transportHighWater <= c.maxTransportBuffer, {
  path: ["transportHighWater"], error: "must not exceed maxTransportBuffer",
});

export type MuxConfig = Resolved<z.output<typeof muxConfigSchema>>;
export type MuxConfigInput = z.input<typeof muxConfigSchema>;

/** Validates an input against the schema, fills defaults, rejects unknown keys, freezes. */
export function resolveMuxConfig(input: MuxConfigInput = {}): MuxConfig {
  const resolved = resolveSettings(muxConfigSchema, input, "mux config");
  // Copied into one literal-shaped object: the session reads these fields on every frame, and
  // zod's result keeps most of them out of line (the bulk benchmark ran 20% slower on it).
  return Object.freeze({ ...resolved });
}

export const DEFAULT_MUX_CONFIG: MuxConfig = resolveMuxConfig();
