/**
 * The connector's outbound tunnels: N connections (default 4) to every engine endpoint the
 * feed lists, each answering the engine's identity challenge with the connector's key. A lost
 * connection is redialled with exponential backoff and full jitter; an endpoint that leaves
 * the feed has its connections drained. Credentials are read per dial, so a renewed
 * certificate is used by new connections while existing ones carry on.
 *
 * An engine on several worker processes shares one tunnel port (the kernel picks the worker);
 * its HELLO says which worker a connection reached and how many there are. The pool keeps at
 * least two connections to every worker: a connection that lands on a worker that already has
 * its share is redialled at once (a new source port, so likely another worker), and every
 * couple of seconds a worker left short (one that restarted) gets a connection moved to it.
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
import { answerTunnelChallenge, engineWorkerOf } from "../engine/identity/proof.js";
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

/** Dials in a row that may land on an over-served worker before the slot keeps what it got. */
const MAX_PLACEMENT_REDIALS = 8;
/** How often worker coverage is checked, ms. */
const REBALANCE_MS = 2_000;

/** One slot: keeps one connection to one engine up until stopped. */
class TunnelSlot {
  session: Session | null = null;
  #stopped = false;
  /** Redials in a row made only to reach another engine worker. */
  #placementRedials = 0;
  /** The session was closed to move it to another worker: redial without waiting. */
  #moving = false;
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
        if (this.pool.misplaced(this.url, this, session) && this.#placementRedials < MAX_PLACEMENT_REDIALS) {
          this.#placementRedials++;
          session.close();
          continue;
        }
        this.#placementRedials = 0;
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
        if (this.#moving) {
          this.#moving = false;
          continue;
        }
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

  /** Closes this slot's connection so it is dialled again (to reach another worker); in-flight streams finish. */
  move(graceMs: number): void {
    if (!this.session || this.#moving) return;
    this.#moving = true;
    void this.session.drain(graceMs).catch(() => undefined);
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

  #rebalancer: NodeJS.Timeout | undefined;

  constructor(private readonly options: TunnelPoolOptions) {
    super();
    this.proxyAgent = options.proxyUrl ? new HttpsProxyAgent(options.proxyUrl) : undefined;
  }

  /** Live sessions per worker of the engine at `url` (all of them, when the engine has one process). */
  #byWorker(url: string, count: number, except?: TunnelSlot): number[] {
    const counts = new Array<number>(count).fill(0);
    for (const slot of this.#slots.get(url) ?? []) {
      if (slot === except || !slot.session) continue;
      const w = engineWorkerOf(slot.session.peerHello?.ext);
      if (w && w.index < count) counts[w.index]!++;
    }
    return counts;
  }

  /**
   * @internal Whether a new session of `slot` reached a worker that already has its share while
   * another lacks its two; also grows the slots to two per worker once the count is known.
   */
  misplaced(url: string, slot: TunnelSlot, session: Session): boolean {
    const w = engineWorkerOf(session.peerHello?.ext);
    const slots = this.#slots.get(url);
    if (!w || !slots || w.count === 1) return false;
    while (slots.length < 2 * w.count) slots.push(new TunnelSlot(url, this, this.options));
    this.#startRebalancing();
    const counts = this.#byWorker(url, w.count, slot);
    const share = Math.ceil(slots.length / w.count);
    return counts[w.index]! >= share || (counts[w.index]! >= 2 && counts.some((n) => n < 2));
  }

  #startRebalancing(): void {
    if (this.#rebalancer) return;
    this.#rebalancer = setInterval(() => this.#rebalance(), REBALANCE_MS);
    this.#rebalancer.unref();
  }

  /** A worker short of two connections (restarted, say) gets one moved from the best-served worker. */
  #rebalance(): void {
    for (const [url, slots] of this.#slots) {
      const count = slots.map((s) => engineWorkerOf(s.session?.peerHello?.ext)?.count).find((c) => c !== undefined);
      if (count === undefined || count === 1) continue;
      const counts = this.#byWorker(url, count);
      if (!counts.some((n) => n < 2)) continue;
      const richest = counts.indexOf(Math.max(...counts));
      if (counts[richest]! <= 2) continue;
      slots.find((s) => engineWorkerOf(s.session?.peerHello?.ext)?.index === richest)?.move(this.options.settings.drainGraceMs);
    }
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
    clearInterval(this.#rebalancer);
    const slots = [...this.#slots.values()].flat();
    this.#slots.clear();
    await Promise.all(slots.map((s) => s.stop(graceMs)));
  }
}
