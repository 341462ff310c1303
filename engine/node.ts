/**
 * An engine node's lifecycle around the data path: its identity (enrolled with control at
 * bootstrap), the config feed from control, the connector registry that feed keeps current,
 * and the tunnel listener connectors dial. The public edge builds on top of this.
 */
import { join } from "node:path";
import pino, { type Logger } from "pino";
import type { MuxConfigInput } from "./mux/config.js";
import { ControlClient, controlTrust } from "../control/client/client.js";
import { ConfigFeed } from "../control/client/feed.js";
import { loadIdentity, type StoredIdentity } from "./identity/files.js";
import type { EngineConfig } from "../control/contract/feed.js";
import type { Listening } from "./uws/index.js";
import { ConnectorRegistry } from "./tunnel/registry.js";
import { startTunnelListener } from "./tunnel/listener.js";
import { Edge } from "./edge/server.js";
import type { Timers } from "./edge/proxy.js";
import type { EdgeLimits } from "./limits/config.js";
import type { PoolLimits, TranslateLimits } from "./workers/pool.js";
import { Agent } from "undici";
import type { SignInReport } from "../control/contract/feed.js";
import { type Clock } from "./config/clock.js";

const MAX_SIGN_INS_IN_FLIGHT = 100;

export interface EngineNodeOptions {
  /** Holds engine.key, engine.crt, tenant-ca.crt and engine.json from enrollment. */
  readonly stateDir: string;
  readonly tunnelHost: string;
  readonly tunnelPort: number;
  /** The wss:// URL connectors should dial, reported to control; default from host and port. */
  readonly tunnelUrl?: string;
  readonly version: string;
  /** Control's URL when it moved since enrollment (a local deployment on a new port). */
  readonly controlUrl?: string;
  readonly pullIntervalMs?: number; // 60_000
  /** Public listeners: HTTP and HTTPS ports on `publicHost`; unset: none. 0 picks a free port. */
  readonly publicHost?: string; // "127.0.0.1"
  readonly httpPort?: number;
  readonly httpsPort?: number;
  readonly limits?: Partial<EdgeLimits>;
  /** Worker pool for body link translation. */
  readonly translate?: Partial<TranslateLimits>;
  /** Worker pool for token and cookie crypto. */
  readonly authPool?: Partial<PoolLimits>;
  readonly timers?: Timers;
  readonly mux?: MuxConfigInput;
  readonly now?: Clock;
  readonly logger?: Logger;
}

export class EngineNode {
  #config: EngineConfig | null = null;

  private constructor(
    readonly identity: StoredIdentity,
    readonly registry: ConnectorRegistry,
    readonly edge: Edge,
    readonly tunnelUrl: string,
    private readonly feed: ConfigFeed<EngineConfig>,
    private readonly client: ControlClient,
    private readonly tunnel: Listening,
  ) {}

  static async start(options: EngineNodeOptions): Promise<EngineNode> {
    const log = options.logger ?? pino({ name: "engine", level: process.env.POSTERN_LOG_LEVEL ?? "info" }, pino.destination(2));
    const identity = loadIdentity(options.stateDir, "engine");
    const registry = new ConnectorRegistry();
    const tunnel = await startTunnelListener({
      host: options.tunnelHost,
      port: options.tunnelPort,
      keyFile: join(options.stateDir, "engine.key"),
      certFile: join(options.stateDir, "engine.crt"),
      caFile: join(options.stateDir, "tenant-ca.crt"),
      registry,
      logger: log,
      ...(options.mux ? { mux: options.mux } : {}),
      ...(options.now ? { now: options.now } : {}),
    });
    const tunnelUrl = options.tunnelUrl ?? `wss://${options.tunnelHost.includes(":") ? `[${options.tunnelHost}]` : options.tunnelHost}:${tunnel.port}/tunnel`;
    const client = new ControlClient({
      controlUrl: options.controlUrl ?? identity.controlUrl,
      caPem: identity.caPem,
      credentials: () => identity,
      headers: { "x-postern-version": options.version, "x-postern-tunnel-url": tunnelUrl },
      ...(options.now ? { now: options.now } : {}),
    });
    const feed = new ConfigFeed<EngineConfig>(client, { path: "/api/v1/feed/engine", pullIntervalMs: options.pullIntervalMs ?? 60_000 });
    // Identity providers: the built-in one is served by control (its CA), external ones by public CAs.
    const idpDispatcher = new Agent({ connect: { ca: controlTrust(identity.caPem) }, headersTimeout: 10_000, bodyTimeout: 10_000 });
    let signInsInFlight = 0;
    const signIns = (record: SignInReport) => {
      // Bounded: a control plane that does not answer costs dropped log records, never memory.
      if (signInsInFlight >= MAX_SIGN_INS_IN_FLIGHT) return void log.warn({ app: record.app, username: record.username }, "sign-in record dropped: control is not keeping up");
      signInsInFlight++;
      client.call("POST", "/api/v1/sign-ins", record).catch((err: Error) => log.warn({ err: err.message }, "sign-in record not delivered")).finally(() => signInsInFlight--);
    };
    const edge = await Edge.start({
      host: options.publicHost ?? "127.0.0.1",
      registry,
      ...(options.httpPort !== undefined ? { httpPort: options.httpPort } : {}),
      ...(options.httpsPort !== undefined
        ? { https: { port: options.httpsPort, keyFile: join(options.stateDir, "engine.key"), certFile: join(options.stateDir, "engine.crt") } }
        : {}),
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.translate ? { translate: options.translate } : {}),
      auth: { dispatcher: idpDispatcher, signIns, ...(options.authPool ? { pool: options.authPool } : {}) },
      ...(options.timers ? { timers: options.timers } : {}),
      ...(options.now ? { now: options.now } : {}),
    });
    const node = new EngineNode(identity, registry, edge, tunnelUrl, feed, client, tunnel);
    feed.on("config", (config) => {
      node.#config = config;
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
      throw err;
    }
    log.info({ engine: identity.id, tunnelUrl }, "engine ready");
    return node;
  }

  get config(): EngineConfig | null {
    return this.#config;
  }

  get tunnelPort(): number {
    return this.tunnel.port;
  }

  async close(): Promise<void> {
    this.feed.stop();
    this.edge.close();
    this.tunnel.close();
    for (const live of this.registry.connections()) live.session.close();
    await this.client.close();
  }
}
