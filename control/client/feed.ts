/**
 * `ConfigFeed` keeps a versioned configuration current: a long poll that control answers as
 * soon as anything changes, plus a periodic pull as a fallback, and it never applies a
 * version older than the one it holds.
 */
import { EventEmitter } from "node:events";
import { PosternError } from "../../engine/errors/catalogue.js";
import { Backoff } from "./backoff.js";
import type { ControlClient } from "./client.js";

export interface ConfigFeedOptions {
  /** `/api/v1/feed/connector` or `/api/v1/feed/engine`. */
  readonly path: string;
  /** Seconds control may hold a long poll open. */
  readonly waitSeconds?: number; // 25
  /** Fallback pull period, ms. */
  readonly pullIntervalMs?: number; // 60_000
}

export interface ConfigFeedEvents<T> {
  config: [config: T];
  error: [err: Error];
}

/** Keeps a versioned configuration current; emits `config` only for a newer version. */
export class ConfigFeed<T extends { readonly version: number }> extends EventEmitter<ConfigFeedEvents<T>> {
  #current: T | null = null;
  #stopped = false;
  readonly #abort = new AbortController();
  #pullTimer: NodeJS.Timeout | undefined;
  readonly #backoff = new Backoff({ initialMs: 250, maxMs: 15_000 });

  constructor(private readonly client: ControlClient, private readonly options: ConfigFeedOptions) {
    super();
  }

  get current(): T | null {
    return this.#current;
  }

  /** Resolves with the first configuration; rejects if control refuses us outright. */
  async start(): Promise<T> {
    const first = await this.#fetch(0);
    this.#apply(first);
    void this.#longPoll();
    const period = this.options.pullIntervalMs ?? 60_000;
    this.#pullTimer = setInterval(() => {
      this.#fetch(0).then((c) => this.#apply(c), (err: Error) => this.#fail(err));
    }, period);
    this.#pullTimer.unref();
    return first;
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#pullTimer);
    this.#abort.abort();
  }

  /** Pulls now (after a renewal, say) instead of waiting for the next change. */
  async refresh(): Promise<void> {
    this.#apply(await this.#fetch(0));
  }

  #apply(config: T): void {
    if (this.#current !== null && config.version <= this.#current.version) return;
    this.#current = config;
    this.emit("config", config);
  }

  #fail(err: Error): void {
    if (!this.#stopped && this.listenerCount("error") > 0) this.emit("error", err);
  }

  #fetch(wait: number): Promise<T> {
    const after = this.#current?.version ?? -1;
    return this.client.call<T>("GET", `${this.options.path}?after=${wait > 0 ? after : -1}&wait=${wait}`, undefined, this.#abort.signal);
  }

  async #longPoll(): Promise<void> {
    const wait = this.options.waitSeconds ?? 25;
    while (!this.#stopped) {
      try {
        this.#apply(await this.#fetch(wait));
        this.#backoff.reset();
      } catch (err) {
        if (this.#stopped) return;
        this.#fail(err instanceof Error ? err : new PosternError("POSTERN_TRANSPORT_CLOSED", String(err)));
        await new Promise((resolve) => setTimeout(resolve, this.#backoff.next()).unref());
      }
    }
  }
}
