/**
 * The edge's limits, each enforced in the core and each hit by a test. Defaults come from
 * SECURITY.md (nginx, Envoy, Node and Entra figures).
 */
import { z } from "zod";
import { integer, resolveSettings, type Resolved } from "../config/settings.js";

export const edgeLimitsSchema = z.object({
  /** Requests per second per app; 0 disables the app limit. */
  appRatePerSecond: integer(0, 10_000_000, 500),
  /** Requests per second per tenant, all its apps together; 0 disables it. */
  tenantRatePerSecond: integer(0, 10_000_000, 750),
  /** Extra requests a bucket holds above one second's worth / 10 (the burst), as a fraction of the rate. */
  burstFraction: z.number({ error: "must be a number" }).min(0, { error: "must be >= 0" }).max(10, { error: "must be <= 10" }).default(0.1),
  /** Longest request target (path + query), bytes -> 414. */
  maxUrlBytes: integer(64, 1024 * 1024, 8192), // 8 KiB (nginx)
  /** All request headers together, bytes -> 431. */
  maxHeaderBytes: integer(1024, 1024 * 1024, 16_384), // 16 KiB (Node)
  /** Number of request headers -> 431. */
  maxHeaderCount: integer(1, 10_000, 100), // Envoy
  /** Longest pause between request body chunks, ms -> 408. */
  bodyIdleMs: integer(1, 3_600_000, 30_000), // 30 s (nginx client_body_timeout)
  /** The whole request head must arrive within this, ms -> 408 and close (slowloris). */
  headerTimeoutMs: integer(1, 600_000, 10_000), // 10 s
  /** An idle keep-alive connection is closed after this, ms. */
  keepAliveTimeoutMs: integer(1, 3_600_000, 65_000), // 65 s (nginx 60-75 s)
  /** Requests in flight through this engine; past it new ones get 503 at once. */
  maxInflight: integer(1, 10_000_000, 20_000),
  /**
   * Requests (without a body) that wait for a free tunnel stream when every connection of the
   * group is at its stream limit; past it, 503 at once. 0: none wait.
   */
  maxQueued: integer(0, 10_000_000, 10_000),
  /** Longest such a request waits for a stream before 503, ms. */
  maxQueueWaitMs: integer(1, 600_000, 30_000), // 30 s
  /** No response head within this: 504 (app setting `default`), ms. */
  defaultBackendTimeoutMs: integer(1, 3_600_000, 85_000), // 85 s (Entra)
  /** The same for apps set to `long`, ms. */
  longBackendTimeoutMs: integer(1, 3_600_000, 180_000), // 180 s (Entra)
  /**
   * Proxies in front of the engine (CIDRs or addresses) whose X-Forwarded-For entries name the
   * client for decisions (throttling, IP policy). Empty: the TCP peer is the client.
   */
  trustedProxies: z.array(z.string().regex(/^[0-9A-Fa-f:.]+(?:\/\d{1,3})?$/, "must be an address or a CIDR range")).max(256).readonly().default([]),
  /** HTTP/2: streams a client may have open at once on one connection. */
  h2MaxConcurrentStreams: integer(1, 10_000, 100), // Envoy
  /** HTTP/2: memory one session may use in nghttp2's buffers, MB. */
  h2MaxSessionMemoryMb: integer(1, 1024, 10),
  /** HTTP/2 rapid reset: judged once a client opened this many streams within a second. */
  h2ResetFloodMinStreams: integer(1, 1_000_000, 100),
}).strict();

export type EdgeLimits = Resolved<z.output<typeof edgeLimitsSchema>>;
export type EdgeLimitsInput = z.input<typeof edgeLimitsSchema>;

export function resolveLimits(input: EdgeLimitsInput = {}): EdgeLimits {
  return resolveSettings(edgeLimitsSchema, input, "limits");
}

export const DEFAULT_LIMITS: EdgeLimits = resolveLimits();
