/**
 * An engine node's lifecycle around the data path: its identity (enrolled with control at
 * bootstrap), the config feed from control, the connector registry that feed keeps current,
 * and the tunnel listener connectors dial. The public edge builds on top of this.
 */
import { join } from "node:path";
import type { Logger } from "pino";
import { z } from "zod";
import { resolveMuxConfig, type MuxConfigInput } from "./mux/config.js";
import { integer, port, resolvedBy, resolveSettings } from "./config/settings.js";
import { ControlClient, controlTrust } from "../control/client/client.js";
import { ConfigFeed } from "../control/client/feed.js";
import { loadIdentity, type StoredIdentity } from "./identity/files.js";
import type { EngineConfig } from "../control/contract/feed.js";
import type { Listening } from "./uws/index.js";
import { ConnectorRegistry } from "./tunnel/registry.js";
import { startTunnelListener } from "./tunnel/listener.js";
import { Edge } from "./edge/server.js";
import type { Timers } from "./edge/proxy.js";
import { edgeLimitsSchema } from "./limits/config.js";
import { authPoolSchema, translateLimitsSchema } from "./workers/pool.js";
import { Agent } from "undici";
import type { SignInReport } from "../control/contract/feed.js";
import { type Clock } from "./config/clock.js";
import { processLogger } from "./config/logger.js";
import { connectRedisState } from "./fleet/redis.js";
import type { EngineWorker } from "./identity/proof.js";
import { certificateMetric, feedMetrics, processRegistry, serveMetrics, serveToPrimary, type MetricsListener } from "./metrics/registry.js";
import type { SharedState } from "./fleet/shared.js";

/** An engine node's settings, validated once at start; every number with its unit. */
export const engineSettingsSchema = z.object({
  /** Tunnel listener address and port (connectors dial it); 0 picks a free port. */
  tunnelHost: z.string().min(1).default("127.0.0.1"),
  tunnelPort: port(7700),
  /** Public listeners: HTTP and HTTPS ports on `publicHost`; unset: none. 0 picks a free port. */
  publicHost: z.string().min(1).default("127.0.0.1"),
  httpPort: port(0).optional(),
  httpsPort: port(0).optional(),
  /** Prometheus /metrics listener (apart from user traffic); unset port: no listener. 0 picks a free port. */
  metricsHost: z.string().min(1).default("127.0.0.1"),
  metricsPort: port(0).optional(),
  /** Fallback config pull period (the long poll delivers changes at once), ms. */
  pullIntervalMs: integer(1_000, 86_400_000, 60_000), // 60 s
  /** Sign-in records on their way to control; past it new ones are dropped (and logged), never queued. */
  maxSignInsInFlight: integer(1, 100_000, 100),
  /** redis://host:port: rate limits, sign-outs and sign-in state shared with the other engines; unset: this engine's own. */
  redis: z.string().min(1).optional(),
  /** On SIGTERM, requests in flight get this long to finish before connections are cut, ms. */
  drainGraceMs: integer(0, 3_600_000, 30_000), // 30 s
  /** A new worker of a multi-process engine waits for tunnels from every connector group (at most this long) before it takes users' connections, ms. */
  workerWarmupMs: integer(0, 600_000, 10_000), // 10 s
  /** Requests to identity providers (discovery, keys, token endpoint), ms. */
  idpTimeoutMs: integer(1, 600_000, 10_000), // 10 s
  limits: edgeLimitsSchema.prefault({}),
  /** Worker pool for body link translation. */
  translate: translateLimitsSchema.prefault({}),
  /** Worker pool for token and cookie crypto. */
  authPool: authPoolSchema.prefault({}),
  mux: resolvedBy((input: MuxConfigInput) => resolveMuxConfig(input)),
}).strict();

export type EngineSettingsInput = z.input<typeof engineSettingsSchema>;

/** Settings (validated at start) plus what the node is wired to. */
export interface EngineNodeOptions extends EngineSettingsInput {
  /** Holds engine.key, engine.crt, tenant-ca.crt and engine.json from enrollment. */
  readonly stateDir: string;
  /** The wss:// URL connectors should dial, reported to control; default from host and port. */
  readonly tunnelUrl?: string;
  readonly version: string;
  /** Control's URL when it moved since enrollment (a local deployment on a new port). */
  readonly controlUrl?: string;
  readonly timers?: Timers;
  readonly now?: Clock;
  readonly logger?: Logger;
  /** This process's place among the engine's workers (engine/supervisor.ts); unset: the engine is one process. */
  readonly worker?: EngineWorker;
  /** State shared with the other workers when there is no Redis (engine/fleet/cluster.ts). */
  readonly sharedState?: SharedState;
}

export class EngineNode {
  #config: EngineConfig | null = null;
  #appliedAt = 0;
  #metrics: MetricsListener | undefined;

  private constructor(
    readonly identity: StoredIdentity,
    readonly registry: ConnectorRegistry,
    readonly edge: Edge,
    readonly tunnelUrl: string,
    private readonly feed: ConfigFeed<EngineConfig>,
    private readonly client: ControlClient,
    private readonly tunnel: Listening,
    private readonly shared: SharedState | undefined,
    private readonly drainGraceMs: number,
  ) {}

  static async start(options: EngineNodeOptions): Promise<EngineNode> {
    const base = options.logger ?? processLogger("engine");
    const log = options.worker ? base.child({ worker: options.worker.index }) : base;
    const { stateDir: _dir, tunnelUrl: _tunnelUrl, version: _version, controlUrl: _url, timers: _timers, now: _now, logger: _logger, worker: _worker, sharedState: _shared, ...input } = options;
    const settings = resolveSettings(engineSettingsSchema, input, "engine");
    const identity = loadIdentity(options.stateDir, "engine");
    const registry = new ConnectorRegistry();
    const tunnel = await startTunnelListener({
      host: settings.tunnelHost,
      port: settings.tunnelPort,
      keyFile: join(options.stateDir, "engine.key"),
      certFile: join(options.stateDir, "engine.crt"),
      caFile: join(options.stateDir, "tenant-ca.crt"),
      registry,
      logger: log,
      mux: settings.mux,
      ...(options.now ? { now: options.now } : {}),
      ...(options.worker ? { worker: options.worker } : {}),
    });
    const tunnelUrl = options.tunnelUrl ?? `wss://${settings.tunnelHost.includes(":") ? `[${settings.tunnelHost}]` : settings.tunnelHost}:${tunnel.port}/tunnel`;
    const client = new ControlClient({
      controlUrl: options.controlUrl ?? identity.controlUrl,
      caPem: identity.caPem,
      credentials: () => identity,
      headers: { "x-postern-version": options.version, "x-postern-tunnel-url": tunnelUrl },
      ...(options.now ? { now: options.now } : {}),
    });
    const feed = new ConfigFeed<EngineConfig>(client, { path: "/api/v1/feed/engine", pullIntervalMs: settings.pullIntervalMs });
    // Identity providers: the built-in one is served by control (its CA), external ones by public CAs.
    const idpDispatcher = new Agent({ connect: { ca: controlTrust(identity.caPem) }, headersTimeout: settings.idpTimeoutMs, bodyTimeout: settings.idpTimeoutMs });
    let signInsInFlight = 0;
    const signIns = (record: SignInReport) => {
      // Bounded: a control plane that does not answer costs dropped log records, never memory.
      if (signInsInFlight >= settings.maxSignInsInFlight) return void log.warn({ app: record.app, username: record.username }, "sign-in record dropped: control is not keeping up");
      signInsInFlight++;
      client.call("POST", "/api/v1/sign-ins", record).catch((err: Error) => log.warn({ err: err.message }, "sign-in record not delivered")).finally(() => signInsInFlight--);
    };
    const shared = settings.redis === undefined ? options.sharedState : await connectRedisState({ url: settings.redis, logger: log });
    const metrics = processRegistry("engine", options.worker?.index);
    const edge = await Edge.start({
      host: settings.publicHost,
      metrics,
      workers: options.worker?.count ?? 1,
      deferListen: options.worker !== undefined,
      ...(shared ? { shared } : {}),
      registry,
      ...(settings.httpPort !== undefined ? { httpPort: settings.httpPort } : {}),
      ...(settings.httpsPort !== undefined
        ? { https: { port: settings.httpsPort, keyFile: join(options.stateDir, "engine.key"), certFile: join(options.stateDir, "engine.crt") } }
        : {}),
      limits: settings.limits,
      translate: settings.translate,
      auth: { dispatcher: idpDispatcher, signIns, pool: settings.authPool },
      logger: log,
      ...(options.timers ? { timers: options.timers } : {}),
      ...(options.now ? { now: options.now } : {}),
    });
    const node = new EngineNode(identity, registry, edge, tunnelUrl, feed, client, tunnel, shared, settings.drainGraceMs);
    feedMetrics(metrics, () => (node.#config ? { version: node.#config.version, appliedAt: node.#appliedAt } : null));
    certificateMetric(metrics, () => identity.certPem);
    feed.on("config", (config) => {
      node.#config = config;
      node.#appliedAt = Date.now();
      edge.apply(config);
      const closed = registry.apply(config.connectors);
      log.info({ version: config.version, apps: config.apps.length, connectors: config.connectors.length, closed }, "configuration applied");
    });
    feed.on("error", (err) => log.warn({ err: err.message, code: (err as { code?: string }).code }, "configuration pull failed"));
    try {
      await feed.start();
    } catch (err) {
      tunnel.close();
      edge.close();
      await client.close();
      await shared?.close();
      throw err;
    }
    if (options.worker) {
      // A worker (a new one, or one replacing another) takes users' connections once connectors reach it.
      await tunnelsFromEveryGroup(registry, () => node.#config, settings.workerWarmupMs);
      await edge.listen();
    }
    // A worker's metrics are served by its primary, summed over the workers (engine/supervisor.ts).
    if (options.worker) serveToPrimary(metrics);
    else if (settings.metricsPort !== undefined) node.#metrics = await serveMetrics(metrics, settings.metricsHost, settings.metricsPort);
    log.info({ engine: identity.id, tunnelUrl, ...(node.#metrics ? { metricsPort: node.#metrics.port } : {}) }, "engine ready");
    return node;
  }

  get config(): EngineConfig | null {
    return this.#config;
  }

  get tunnelPort(): number {
    return this.tunnel.port;
  }

  /** The /metrics listener's port, when it listens. */
  get metricsPort(): number | undefined {
    return this.#metrics?.port;
  }

  /**
   * Stops; `leave` (default) also tells control the engine is gone, so connectors stop dialling
   * it. A worker of a multi-process engine does not: its siblings still serve.
   */
  async close(options: { leave?: boolean } = {}): Promise<void> {
    this.feed.stop();
    // Best effort: a silent engine is dropped by control anyway.
    if (options.leave !== false) await leaveControl(this.client);
    await this.edge.drain(this.drainGraceMs);
    this.tunnel.close();
    for (const live of this.registry.connections()) live.session.close();
    await this.client.close();
    await this.shared?.close();
    await this.#metrics?.close();
  }
}

/** Tells control this engine is leaving (DELETE /api/v1/engines/self), within 2 s or not at all. */
export async function leaveControl(client: ControlClient): Promise<void> {
  await client.call("DELETE", "/api/v1/engines/self", undefined, AbortSignal.timeout(2_000)).catch(() => undefined);
}

/** The primary of a multi-process engine leaving, once its workers have drained. */
export async function leaveEngine(stateDir: string, version: string): Promise<void> {
  const identity = loadIdentity(stateDir, "engine");
  const client = new ControlClient({ controlUrl: identity.controlUrl, caPem: identity.caPem, credentials: () => identity, headers: { "x-postern-version": version } });
  await leaveControl(client);
  await client.close();
}

/**
 * Resolves once every connector group with an active connector has a live tunnel here, or
 * after `limitMs`: a worker that took connections before would answer 503 for those groups.
 */
async function tunnelsFromEveryGroup(registry: ConnectorRegistry, config: () => EngineConfig | null, limitMs: number): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (Date.now() < deadline) {
    const c = config();
    if (c) {
      const wanted = new Set(c.connectors.filter((x) => x.status === "active").map((x) => `${x.tenantId}/${x.group.toLowerCase()}`));
      const live = new Set(registry.connections().map((l) => registry.entry(l.identity.id)).filter((e) => e !== undefined).map((e) => `${e.tenantId}/${e.group.toLowerCase()}`));
      if ([...wanted].every((g) => live.has(g))) return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
