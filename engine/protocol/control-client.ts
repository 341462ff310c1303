/**
 * How engines and connectors talk to control: HTTP(S) with undici, trusting the tenant CA (or
 * the system's CAs for a publicly certified control), authenticated by an identity proof made
 * fresh per request with the caller's certificate key. `ConfigFeed` keeps a versioned
 * configuration current: a long poll that control answers as soon as anything changes, plus
 * a periodic pull as a fallback, and it never applies a version older than the one it holds.
 */
import { EventEmitter } from "node:events";
import { rootCertificates } from "node:tls";
import { Agent, request } from "undici";
import { Backoff } from "./backoff.js";
import { PosternError } from "./errors.js";
import { createIdentityProof } from "./identity.js";

/** Audience of proofs sent to control; control checks the same value. */
export const CONTROL_PROOF_AUDIENCE = "postern-control";

/** TLS trust for control: the system CAs plus the tenant CA (control may use either). */
export function controlTrust(caPem?: string): string[] {
  return caPem === undefined ? [...rootCertificates] : [...rootCertificates, caPem];
}

export interface PeerCredentials {
  readonly keyPem: string;
  readonly certPem: string;
}

export interface ControlClientOptions {
  readonly controlUrl: string;
  /** PEM of the CA that issued control's TLS certificate; unset trusts the system CAs. */
  readonly caPem?: string;
  /** Read per request, so a renewed certificate is used at once. */
  readonly credentials: () => PeerCredentials;
  readonly headers?: Record<string, string>;
  readonly now?: () => Date;
}

/** A refusal from control, with the stable code from its JSON error body. */
export class ControlError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
    this.name = "ControlError";
  }

  /** 5xx and transport failures can pass; auth and validation refusals will not by retrying. */
  get retryable(): boolean {
    return this.status >= 500 || this.status === 429;
  }
}

export class ControlClient {
  readonly #agent: Agent;

  constructor(private readonly options: ControlClientOptions) {
    this.#agent = new Agent({
      connect: { ca: controlTrust(options.caPem) },
      headersTimeout: 90_000,
      bodyTimeout: 90_000,
      keepAliveTimeout: 30_000,
    });
  }

  async call<T>(method: "GET" | "POST", path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const creds = this.options.credentials();
    const proof = await createIdentityProof({ ...creds, audience: CONTROL_PROOF_AUDIENCE, ...(this.options.now ? { now: this.options.now() } : {}) });
    return controlRequest<T>(this.#agent, this.options.controlUrl, method, path, { authorization: `Postern-Proof ${proof}`, ...this.options.headers }, body, signal);
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }
}

/** One JSON request to control; errors become ControlError with control's code and message. */
export async function controlRequest<T>(
  dispatcher: Agent | undefined,
  baseUrl: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: unknown,
  signal?: AbortSignal,
): Promise<T> {
  const res = await request(new URL(path, baseUrl.endsWith("/") ? baseUrl : `${baseUrl}/`), {
    method: method as "GET",
    headers: { accept: "application/json", ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    ...(dispatcher ? { dispatcher } : {}),
    ...(signal ? { signal } : {}),
  });
  const text = await res.body.text();
  if (res.statusCode >= 400) {
    let code = "POSTERN_HTTP";
    let message = `control answered HTTP ${res.statusCode}`;
    try {
      const parsed = JSON.parse(text) as { error?: { code?: string; message?: string } };
      code = parsed.error?.code ?? code;
      message = parsed.error?.message ?? message;
    } catch {
      // not JSON: keep the status line
    }
    throw new ControlError(res.statusCode, code, message);
  }
  return (text === "" ? undefined : JSON.parse(text)) as T;
}

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
