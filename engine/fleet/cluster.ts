/**
 * SharedState for the worker processes of one engine without Redis: the primary process
 * holds the buckets, revocations and single-use marks, and workers ask it over the cluster
 * IPC channel. The primary outlives its workers, so a restarted worker finds the state whole.
 * With Redis (`--redis`) workers use it directly instead, like separate engines.
 */
import type { Worker } from "node:cluster";
import { PosternError } from "../errors/catalogue.js";
import type { BucketSpec, SharedState } from "./shared.js";

const CHANNEL = "postern-state";
/** Revocations and single-use marks the primary keeps, at most (oldest dropped first). */
const MAX_ENTRIES = 100_000;
/** An IPC answer slower than this counts as the primary being unreachable, ms. */
const ANSWER_MS = 1_000;

type Request =
  | { op: "take"; app: BucketSpec; tenant: BucketSpec; want: number }
  | { op: "revoke"; sid: string; exp: number }
  | { op: "isRevoked"; sid: string }
  | { op: "useOnce"; key: string; ttlMs: number }
  | { op: "replay" };

interface Envelope {
  readonly channel: typeof CHANNEL;
  readonly id?: number;
  readonly request?: Request;
  readonly result?: unknown;
  readonly error?: string;
  /** Pushed to every worker: one revocation, or a replay of all of them. */
  readonly revoked?: readonly (readonly [string, number])[];
}

function isEnvelope(message: unknown): message is Envelope {
  return typeof message === "object" && message !== null && (message as { channel?: unknown }).channel === CHANNEL;
}

/** The primary's side: the state itself, answering its workers. */
export class ClusterStateHost {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #revoked = new Map<string, number>();
  readonly #once = new Map<string, number>();
  readonly #workers = new Set<Worker>();

  /** Serves `worker` until it exits. */
  attach(worker: Worker): void {
    this.#workers.add(worker);
    worker.on("message", (message: unknown) => {
      if (!isEnvelope(message) || message.id === undefined || message.request === undefined) return;
      let reply: Envelope;
      try {
        reply = { channel: CHANNEL, id: message.id, result: this.#answer(message.request, worker) };
      } catch (err) {
        reply = { channel: CHANNEL, id: message.id, error: (err as Error).message };
      }
      if (worker.isConnected()) worker.send(reply);
    });
    worker.once("exit", () => this.#workers.delete(worker));
  }

  #answer(request: Request, from: Worker): unknown {
    const now = Date.now();
    switch (request.op) {
      case "take": return this.#take(request.app, request.tenant, request.want, now);
      case "revoke": {
        this.#remember(this.#revoked, request.sid, request.exp);
        for (const worker of this.#workers) if (worker.isConnected()) worker.send({ channel: CHANNEL, revoked: [[request.sid, request.exp]] } satisfies Envelope);
        return true;
      }
      case "isRevoked": return this.#revoked.has(request.sid);
      case "useOnce": {
        for (const [key, until] of this.#once) if (until > now) break; else this.#once.delete(key);
        if ((this.#once.get(request.key) ?? 0) > now) return false;
        this.#remember(this.#once, request.key, now + request.ttlMs);
        return true;
      }
      case "replay": {
        const nowS = now / 1000;
        const live = [...this.#revoked].filter(([, exp]) => exp > nowS);
        from.send({ channel: CHANNEL, revoked: live } satisfies Envelope);
        return live.length;
      }
      default: throw new PosternError("POSTERN_PROTOCOL", "unknown shared-state operation");
    }
  }

  #remember(map: Map<string, number>, key: string, value: number): void {
    map.delete(key);
    if (map.size >= MAX_ENTRIES) map.delete(map.keys().next().value!);
    map.set(key, value);
  }

  /** Both buckets at once, as the Redis script does (engine/fleet/redis.ts): refill, grant what both hold. */
  #take(app: BucketSpec, tenant: BucketSpec, want: number, now: number): { granted: number; waitMs: number } {
    const level = (spec: BucketSpec) => {
      if (spec.rate <= 0) return want;
      const b = this.#buckets.get(spec.key);
      return b === undefined ? spec.capacity : Math.min(spec.capacity, b.tokens + (Math.max(0, now - b.at) * spec.rate) / 1000);
    };
    const a = level(app);
    const t = level(tenant);
    const granted = Math.max(0, Math.min(want, Math.floor(a), Math.floor(t)));
    if (app.rate > 0) this.#buckets.set(app.key, { tokens: a - granted, at: now });
    if (tenant.rate > 0) this.#buckets.set(tenant.key, { tokens: t - granted, at: now });
    let waitMs = 0;
    if (granted === 0) {
      if (app.rate > 0 && a < 1) waitMs = Math.max(waitMs, ((1 - a) * 1000) / app.rate);
      if (tenant.rate > 0 && t < 1) waitMs = Math.max(waitMs, ((1 - t) * 1000) / tenant.rate);
    }
    return { granted, waitMs: Math.ceil(waitMs) };
  }
}

/** A worker's side: asks the primary. */
export class ClusterState implements SharedState {
  #next = 0;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  readonly #listeners: ((sid: string, expS: number) => void)[] = [];

  constructor() {
    process.on("message", (message: unknown) => {
      if (!isEnvelope(message)) return;
      if (message.revoked) {
        for (const [sid, exp] of message.revoked) for (const listener of this.#listeners) listener(sid, exp);
        return;
      }
      const waiter = message.id === undefined ? undefined : this.#pending.get(message.id);
      if (!waiter) return;
      this.#pending.delete(message.id!);
      clearTimeout(waiter.timer);
      if (message.error !== undefined) waiter.reject(new PosternError("POSTERN_INTERNAL", message.error));
      else waiter.resolve(message.result);
    });
  }

  get available(): boolean {
    return process.connected === true;
  }

  #ask<T>(request: Request): Promise<T> {
    if (!process.send || !process.connected) return Promise.reject(new PosternError("POSTERN_INTERNAL", "the engine's primary process is gone"));
    const id = ++this.#next;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new PosternError("POSTERN_INTERNAL", "the engine's primary process did not answer"));
      }, ANSWER_MS);
      timer.unref();
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      process.send!({ channel: CHANNEL, id, request } satisfies Envelope);
    });
  }

  take(app: BucketSpec, tenant: BucketSpec, want: number): Promise<{ granted: number; waitMs: number }> {
    return this.#ask({ op: "take", app, tenant, want });
  }

  async revoke(sid: string, expS: number): Promise<void> {
    await this.#ask({ op: "revoke", sid, exp: expS });
  }

  isRevoked(sid: string): Promise<boolean> {
    return this.#ask({ op: "isRevoked", sid });
  }

  onRevoked(listener: (sid: string, expS: number) => void): void {
    this.#listeners.push(listener);
    void this.#ask({ op: "replay" }).catch(() => undefined);
  }

  onReconnect(): void {
    // The IPC channel does not come back: a worker whose primary is gone exits.
  }

  useOnce(key: string, ttlMs: number): Promise<boolean> {
    return this.#ask({ op: "useOnce", key, ttlMs });
  }

  async close(): Promise<void> {
    for (const { reject, timer } of this.#pending.values()) {
      clearTimeout(timer);
      reject(new PosternError("POSTERN_INTERNAL", "closing"));
    }
    this.#pending.clear();
  }
}
