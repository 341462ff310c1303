/**
 * The edge's limits, each enforced in the core and each hit by a test. Defaults come from
 * SECURITY.md (nginx, Envoy, Node and Entra figures).
 */
import { PosternError } from "../errors/catalogue.js";
import { DEFAULT_THROTTLE, type ThrottleConfig } from "./throttle.js";

export interface EdgeLimits extends ThrottleConfig {
  /** Longest request target (path + query), bytes -> 414. */
  readonly maxUrlBytes: number; // 8192
  /** All request headers together, bytes -> 431 (uWS is raised to this via UWS_HTTP_MAX_HEADERS_SIZE). */
  readonly maxHeaderBytes: number; // 16_384
  /**
   * Number of request headers -> 431, counted by us. This uWS build's parser stops at 48
   * headers and leaves a request with more unanswered until its idle timeout, so the count
   * must stay below that for the 431 to be reachable.
   */
  readonly maxHeaderCount: number; // 40
  /** Longest pause between request body chunks, ms -> 408. */
  readonly bodyIdleMs: number; // 30_000
  /** Requests in flight through this engine; past it new ones get 503 at once. */
  readonly maxInflight: number; // 20_000
  /**
   * Requests (without a body) that wait for a free tunnel stream when every connection of the
   * group is at its stream limit; past it, 503 at once.
   */
  readonly maxQueued: number; // 10_000
  /** Longest such a request waits for a stream before 503, ms. */
  readonly maxQueueWaitMs: number; // 30_000
  /** No response head within this: 504 (app setting `default`), ms. */
  readonly defaultBackendTimeoutMs: number; // 85_000
  /** The same for apps set to `long`, ms. */
  readonly longBackendTimeoutMs: number; // 180_000
}

export const DEFAULT_LIMITS: EdgeLimits = Object.freeze({
  ...DEFAULT_THROTTLE,
  maxUrlBytes: 8192,
  maxHeaderBytes: 16_384,
  maxHeaderCount: 40,
  bodyIdleMs: 30_000,
  maxInflight: 20_000,
  maxQueued: 10_000,
  maxQueueWaitMs: 30_000,
  defaultBackendTimeoutMs: 85_000,
  longBackendTimeoutMs: 180_000,
});

export function resolveLimits(input: Partial<EdgeLimits> = {}): EdgeLimits {
  const limits = { ...DEFAULT_LIMITS, ...input };
  for (const [key, value] of Object.entries(limits)) {
    if (!(key in DEFAULT_LIMITS)) throw new PosternError("POSTERN_CONFIG", `limits.${key}: unknown setting`);
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
      throw new PosternError("POSTERN_CONFIG", `limits.${key}: expected a number >= 0, got ${JSON.stringify(value)}`);
    }
  }
  return Object.freeze(limits);
}
