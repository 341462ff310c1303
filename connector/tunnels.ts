/**
 * The connector's outbound tunnels: N connections (default 4) to every engine endpoint the
 * feed lists, each answering the engine's identity challenge with the connector's key. A lost
 * connection is redialled with exponential backoff and full jitter; an endpoint that leaves
 * the feed has its connections drained. Credentials are read per dial, so a renewed
 * certificate is used by new connections while existing ones carry on.
 */
import { EventEmitter } from "node:events";
import { checkServerIdentity } from "node:tls";
import { HttpsProxyAgent } from "https-proxy-agent";
import type { Logger } from "pino";
import type { Session } from "../engine/mux/session.js";
import type { Stream } from "../engine/mux/stream.js";
import type { ConnectorSettings } from "./settings.js";
import { dialTunnel } from "./transport.js";
import { Backoff } from "../control/client/backoff.js";
import { answerTunnelChallenge } from "../engine/identity/proof.js";
import { isPosternError } from "../engine/errors/catalogue.js";
import { type Clock } from "../engine/config/clock.js";

export interface TunnelCredentials {
  readonly keyPem: string;
  readonly certPem: string;
  readonly caPem: string;
}

export interface TunnelPoolOptions {
  readonly credentials: () => TunnelCredentials;
  readonly settings: ConnectorSettings;
  readonly onStream: (stream: Stream) => void;
  readonly logger: Logger;
  readonly now?: Clock;
  /** Outbound HTTP proxy for the tunnels (CONNECT), e.g. from HTTPS_PROXY. */
  readonly proxyUrl?: string;
}

interface TunnelPoolEvents {
  connected: [url: string, session: Session];
  disconnected: [url: string, err: Error | undefined];
}

/** One slot: keeps one connection to one engine up until stopped. */
class TunnelSlot {
  session: Session | null = null;
  #stopped = false;
  readonly #backoff: Backoff;
  #timer: NodeJS.Timeout | undefined;

  constructor(private readonly url: string, private readonly pool: TunnelPool, private readonly options: TunnelPoolOptions) {
    this.#backoff = new Backoff({ initialMs: options.settings.reconnectInitialMs, maxMs: options.settings.reconnectMaxMs });
    void this.#run();
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      const creds = this.options.credentials();
      try {
        const session = await dialTunnel({
          url: this.url,
          ...(this.pool.proxyAgent ? { agent: this.pool.proxyAgent } : {}),
          tls: {
            ca: creds.caPem, cert: creds.certPem, key: creds.keyPem,
            // The engine's certificate must name the host we dial, also when a proxy sits in between.
            checkServerIdentity: (_host, cert) => checkServerIdentity(new URL(this.url).hostname.replace(/^\[|\]$/g, ""), cert),
          },
          connectTimeoutMs: this.options.settings.tunnelConnectTimeoutMs,
          session: {
            config: this.options.settings.mux,
            helloExt: (peer) => answerTunnelChallenge(peer?.ext, creds, this.options.now?.()),
          },
        });
        if (this.#stopped) {
          session.close();
          return;
        }
        this.session = session;
        const connectedAt = Date.now();
        session.on("stream", (stream: Stream) => this.options.onStream(stream));
        this.pool.emit("connected", this.url, session);
        const err = await new Promise<Error | undefined>((resolve) => session.once("close", resolve));
        this.session = null;
        this.pool.retireStalls(session.stalledWrites);
        this.pool.emit("disconnected", this.url, err);
        // Only a connection that stayed up resets the backoff: an engine that refuses us right
        // after the handshake (revoked, disabled) must not be hammered.
        if (Date.now() - connectedAt > this.options.settings.stableConnectionMs) this.#backoff.reset();
        if (err && !isPosternError(err, "POSTERN_GOAWAY")) this.options.logger.warn({ url: this.url, code: (err as { code?: string }).code, err: err.message }, "tunnel closed");
      } catch (err) {
        const e = err as Error & { code?: string };
        this.options.logger.warn({ url: this.url, code: e.code, err: e.message }, "tunnel dial failed");
      }
      if (this.#stopped) return;
      await new Promise<void>((resolve) => {
        this.#timer = setTimeout(resolve, this.#backoff.next());
      });
    }
  }

  stop(graceMs: number): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    const session = this.session;
    return session ? session.drain(graceMs).catch(() => undefined) : Promise.resolve();
  }
}

export class TunnelPool extends EventEmitter<TunnelPoolEvents> {
  readonly #slots = new Map<string, TunnelSlot[]>();
  /** CONNECT through the outbound proxy; TLS to the engine still runs end to end inside it. */
  readonly proxyAgent: HttpsProxyAgent<string> | undefined;

  constructor(private readonly options: TunnelPoolOptions) {
    super();
    this.proxyAgent = options.proxyUrl ? new HttpsProxyAgent(options.proxyUrl) : undefined;
  }

  /** Converges on exactly these engine endpoints. */
  setEngines(urls: readonly string[]): void {
    const wanted = new Set(urls);
    for (const [url, slots] of this.#slots) {
      if (!wanted.has(url)) {
        this.#slots.delete(url);
        for (const slot of slots) void slot.stop(this.options.settings.drainGraceMs);
      }
    }
    for (const url of wanted) {
      if (!this.#slots.has(url)) {
        this.#slots.set(url, Array.from({ length: this.options.settings.connectionsPerEngine }, () => new TunnelSlot(url, this, this.options)));
      }
    }
  }

  /** Live sessions. */
  sessions(): Session[] {
    return [...this.#slots.values()].flat().map((s) => s.session).filter((s): s is Session => s !== null);
  }

  /** Live sessions per engine URL (every engine the feed lists, 0 when none is up). */
  byEngine(): Map<string, Session[]> {
    return new Map([...this.#slots].map(([url, slots]) => [url, slots.map((s) => s.session).filter((s): s is Session => s !== null)]));
  }

  #retiredStalls = 0;

  /** @internal A closed session's stalled writes, so the total only grows. */
  retireStalls(n: number): void {
    this.#retiredStalls += n;
  }

  /** Writes that waited for flow-control credit or a full transport, over every tunnel ever held. */
  get stalledWrites(): number {
    return this.sessions().reduce((n, s) => n + s.stalledWrites, this.#retiredStalls);
  }

  /** GOAWAY on every connection; resolves when in-flight streams finish or `graceMs` passes. */
  async drain(graceMs: number): Promise<void> {
    const slots = [...this.#slots.values()].flat();
    this.#slots.clear();
    await Promise.all(slots.map((s) => s.stop(graceMs)));
  }
}
