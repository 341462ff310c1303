/**
 * Request-rate limits per app and per tenant: token buckets (Entra's service limits: 500
 * requests/s per app, 750 per tenant) with a small burst, on an injectable clock. A request
 * takes a token from its app's bucket and its tenant's; if either is empty it is refused with
 * the time until a token is due, for Retry-After.
 */
import { systemClock, type Clock } from "../config/clock.js";
import { DEFAULT_LIMITS, type EdgeLimits } from "./config.js";

/** The throttle's part of the edge limits (engine/limits/config.ts). */
export type ThrottleConfig = Pick<EdgeLimits, "appRatePerSecond" | "tenantRatePerSecond" | "burstFraction">;

class TokenBucket {
  #tokens: number;
  #at: number;

  constructor(private readonly rate: number, private readonly capacity: number, now: number) {
    this.#tokens = capacity;
    this.#at = now;
  }

  #refill(now: number): void {
    if (now > this.#at) {
      this.#tokens = Math.min(this.capacity, this.#tokens + ((now - this.#at) / 1000) * this.rate);
      this.#at = now;
    }
  }

  /** Takes one token, or returns the ms until one is due. */
  take(now: number): number {
    this.#refill(now);
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.#tokens) / this.rate) * 1000);
  }

  giveBack(): void {
    this.#tokens = Math.min(this.capacity, this.#tokens + 1);
  }
}

export class Throttle {
  readonly #apps = new Map<string, TokenBucket>();
  readonly #tenants = new Map<string, TokenBucket>();

  constructor(private readonly config: ThrottleConfig = DEFAULT_LIMITS, private readonly now: Clock = systemClock) {}

  /** 0 when admitted, else the ms to wait before retrying. */
  admit(tenantId: string, appKey: string): number {
    const t = this.now();
    const app = this.#bucket(this.#apps, appKey, this.config.appRatePerSecond, t);
    const wait = app?.take(t) ?? 0;
    if (wait > 0) return wait;
    const tenantWait = this.#bucket(this.#tenants, tenantId, this.config.tenantRatePerSecond, t)?.take(t) ?? 0;
    if (tenantWait > 0) {
      app?.giveBack(); // refused by the tenant limit: the app's token was not used
      return tenantWait;
    }
    return 0;
  }

  #bucket(map: Map<string, TokenBucket>, key: string, rate: number, now: number): TokenBucket | undefined {
    if (rate <= 0) return undefined;
    let bucket = map.get(key);
    if (!bucket) {
      bucket = new TokenBucket(rate, Math.max(1, rate * this.config.burstFraction), now);
      map.set(key, bucket);
    }
    return bucket;
  }

  /** Drops buckets of apps and tenants no longer published. */
  retain(appKeys: ReadonlySet<string>, tenantIds: ReadonlySet<string>): void {
    for (const key of this.#apps.keys()) if (!appKeys.has(key)) this.#apps.delete(key);
    for (const key of this.#tenants.keys()) if (!tenantIds.has(key)) this.#tenants.delete(key);
  }
}
