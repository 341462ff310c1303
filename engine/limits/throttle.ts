/**
 * Request-rate limits per app and per tenant: token buckets (Entra's service limits: 500
 * requests/s per app, 750 per tenant) with a small burst, on an injectable clock. A request
 * takes a token from its app's bucket and its tenant's; if either is empty it is refused with
 * the time until a token is due, for Retry-After.
 *
 * With several engines the buckets are shared (engine/fleet): an engine leases a few tokens
 * at a time (about 20 ms of the limit) from the shared buckets and spends them locally, so a
 * request costs a Redis round trip only once per lease, and the fleet as a whole never admits
 * more than the buckets hold. A lease unspent after LEASE_MS is dropped, so a quiet engine does
 * not hoard. With the shared store unreachable, each engine enforces its share: the limit
 * divided by the number of engines.
 */
import { systemClock, type Clock } from "../config/clock.js";
import type { SharedState } from "../fleet/shared.js";
import { DEFAULT_LIMITS, type EdgeLimits } from "./config.js";

/** How long leased tokens stay spendable, ms. */
const LEASE_MS = 250;
/** A lease holds this much of the tighter of the two limits, in ms of traffic. */
const LEASE_SPAN_MS = 20;

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

/** Tokens leased from the shared buckets for one app, spent locally. */
interface Lease {
  tokens: number;
  until: number;
  /** No token in the shared buckets before this (they answered "none"). */
  blockedUntil: number;
  refill: Promise<void> | undefined;
  /** Requests waiting for the refill in flight: the next one asks for enough for all of them. */
  waiting: number;
}

export class Throttle {
  readonly #apps = new Map<string, TokenBucket>();
  readonly #tenants = new Map<string, TokenBucket>();
  readonly #leases = new Map<string, Lease>();
  /** This engine's share of each limit when it enforces them alone (1 / engines). */
  #share = 1;

  constructor(
    private readonly config: ThrottleConfig = DEFAULT_LIMITS,
    private readonly now: Clock = systemClock,
    private readonly shared?: SharedState,
  ) {}

  /** The number of engines enforcing the limits together (from control's feed). */
  setFleetSize(engines: number): void {
    const share = 1 / Math.max(1, engines);
    if (share === this.#share) return;
    this.#share = share;
    // The local buckets were sized for the old share.
    this.#apps.clear();
    this.#tenants.clear();
  }

  /** 0 when admitted, else the ms to wait before retrying; a promise while a shared lease is on its way. */
  admit(tenantId: string, appKey: string): number | Promise<number> {
    if (this.config.appRatePerSecond <= 0 && this.config.tenantRatePerSecond <= 0) return 0;
    if (this.shared?.available) return this.#admitShared(tenantId, appKey);
    return this.#admitLocal(tenantId, appKey, this.shared ? this.#share : 1);
  }

  #admitLocal(tenantId: string, appKey: string, share: number): number {
    const t = this.now();
    const app = this.#bucket(this.#apps, appKey, this.config.appRatePerSecond * share, t);
    const wait = app?.take(t) ?? 0;
    if (wait > 0) return wait;
    const tenantWait = this.#bucket(this.#tenants, tenantId, this.config.tenantRatePerSecond * share, t)?.take(t) ?? 0;
    if (tenantWait > 0) {
      app?.giveBack(); // refused by the tenant limit: the app's token was not used
      return tenantWait;
    }
    return 0;
  }

  #admitShared(tenantId: string, appKey: string): number | Promise<number> {
    let lease = this.#leases.get(appKey);
    if (!lease) this.#leases.set(appKey, (lease = { tokens: 0, until: 0, blockedUntil: 0, refill: undefined, waiting: 0 }));
    const t = this.now();
    if (lease.tokens > 0 && t < lease.until) {
      lease.tokens--;
      // Ask for the next lease before this one runs out, so requests rarely wait for Redis.
      if (lease.tokens <= this.#leaseSize() / 2) this.#refill(lease, tenantId, appKey);
      return 0;
    }
    if (t < lease.blockedUntil) return lease.blockedUntil - t;
    return this.#awaitLease(lease, tenantId, appKey, 0);
  }

  /** Waits for a lease with the others waiting; a few rounds at most, since Redis may grant less than all of them need. */
  #awaitLease(lease: Lease, tenantId: string, appKey: string, round: number): Promise<number> {
    lease.waiting++;
    return this.#refill(lease, tenantId, appKey).then(() => {
      lease.waiting--;
      const t = this.now();
      if (lease.tokens > 0 && t < lease.until) {
        lease.tokens--;
        return 0;
      }
      if (!this.shared!.available) return this.#admitLocal(tenantId, appKey, this.#share);
      if (t < lease.blockedUntil) return lease.blockedUntil - t;
      return round < 3 ? this.#awaitLease(lease, tenantId, appKey, round + 1) : 1;
    });
  }

  #leaseSize(waiting = 0): number {
    const rates = [this.config.appRatePerSecond, this.config.tenantRatePerSecond].filter((r) => r > 0);
    const tightest = Math.min(...rates);
    const capacity = Math.max(1, Math.floor(tightest * this.config.burstFraction));
    return Math.max(1, Math.min(capacity, Math.max(waiting, Math.ceil((tightest * LEASE_SPAN_MS) / 1000))));
  }

  #refill(lease: Lease, tenantId: string, appKey: string): Promise<void> {
    if (lease.refill) return lease.refill;
    const spec = (key: string, rate: number) => ({ key, rate, capacity: Math.max(1, rate * this.config.burstFraction) });
    lease.refill = this.shared!.take(spec(appKey, this.config.appRatePerSecond), spec(tenantId, this.config.tenantRatePerSecond), this.#leaseSize(lease.waiting))
      .then(({ granted, waitMs }) => {
        const t = this.now();
        // Leftovers of an expired lease are dropped: they were taken from the fleet long ago.
        lease.tokens = (t < lease.until ? lease.tokens : 0) + granted;
        lease.until = t + LEASE_MS;
        lease.blockedUntil = granted === 0 ? t + waitMs : 0;
      }, () => undefined) // unreachable: the caller falls back to this engine's share
      .finally(() => {
        lease.refill = undefined;
      });
    return lease.refill;
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

  /** Drops buckets and leases of apps and tenants no longer published. */
  retain(appKeys: ReadonlySet<string>, tenantIds: ReadonlySet<string>): void {
    for (const key of this.#apps.keys()) if (!appKeys.has(key)) this.#apps.delete(key);
    for (const key of this.#leases.keys()) if (!appKeys.has(key)) this.#leases.delete(key);
    for (const key of this.#tenants.keys()) if (!tenantIds.has(key)) this.#tenants.delete(key);
  }
}
