/**
 * State the engines of one deployment share (Redis with `postern engine --redis`): request-rate
 * buckets counted across every engine, sign-out revocations every engine refuses, and sign-in
 * transactions that can be completed once whichever engine gets the callback. Without it each
 * engine keeps its own (the embedded deployment has one engine).
 *
 * What happens when the shared store is unreachable is decided per use, and logged:
 * - rate limits: each engine enforces its share (the limit divided by the number of engines
 *   control lists), so the fleet as a whole still holds the limit;
 * - sessions: those this engine has already admitted keep working (revocations published
 *   meanwhile arrive when the store is back); a session it has not seen is refused with a
 *   503 page: it cannot be checked against revocations (fail closed);
 * - sign-in callbacks: refused with a 503 page, since single use cannot be checked (fail
 *   closed); sign-outs still clear the cookie and are published when the store is back.
 */

/** One token bucket: requests per second and how many it holds. rate 0 = unlimited. */
export interface BucketSpec {
  readonly key: string;
  readonly rate: number;
  readonly capacity: number;
}

export interface SharedState {
  /** Whether the shared store answers now. */
  readonly available: boolean;
  /** Takes up to `want` tokens from both buckets at once; `waitMs` says when one is due if none was granted. */
  take(app: BucketSpec, tenant: BucketSpec, want: number): Promise<{ granted: number; waitMs: number }>;
  /** Publishes a signed-out session id to every engine, kept until its expiry (seconds since the epoch). */
  revoke(sid: string, expS: number): Promise<void>;
  /** Whether a session id was signed out on any engine; rejects when the store is unreachable. */
  isRevoked(sid: string): Promise<boolean>;
  /** Called for every revocation in force when registered, every one any engine publishes, and all of them again after a reconnect. */
  onRevoked(listener: (sid: string, expS: number) => void): void;
  /** Called when the store answers again after an outage, once its revocations were replayed. */
  onReconnect(listener: () => void): void;
  /** True the first time `key` is used fleet-wide within `ttlMs`; rejects when the store is unreachable. */
  useOnce(key: string, ttlMs: number): Promise<boolean>;
  close(): Promise<void>;
}
