/**
 * The connector agent's lifecycle: load its identity, pull its configuration from control
 * (group, engine endpoints, the internal URLs it may reach), keep tunnels to every engine,
 * renew its certificate once it is older than the policy says (180 days by default) without
 * touching live connections, and drain on stop. The request proxying on top of the tunnels
 * lives in its own module; this one only hands it the streams.
 */
import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import type { Session } from "../engine/mux/session.js";
import type { Stream } from "../engine/mux/stream.js";
import { ControlClient } from "../control/client/client.js";
import { ConfigFeed } from "../control/client/feed.js";
import { createKeyAndCsr } from "../engine/identity/csr.js";
import { loadIdentity, saveIdentity, type StoredIdentity } from "../engine/identity/files.js";
import type { ConnectorConfig } from "../control/contract/feed.js";
import { probe } from "./probe.js";
import { BackendProxy } from "./proxy.js";
import { TunnelPool } from "./tunnels.js";
import { resolveConnectorSettings, type ConnectorSettings, type ConnectorSettingsInput } from "./settings.js";
import { type Clock, systemClock } from "../engine/config/clock.js";
import { processLogger } from "../engine/config/logger.js";
import { certificateMetric, feedMetrics, processRegistry, serveMetrics, serveToPrimary, type MetricsListener } from "../engine/metrics/registry.js";
import type { Registry } from "prom-client";
import type { WorkerPlace } from "../engine/process/supervisor.js";
import { connectorMetrics } from "./metrics.js";

const DAY_MS = 86_400_000;

function proxyFrom(options: ConnectorAgentOptions): string | undefined {
  const value = options.proxyUrl ?? process.env.HTTPS_PROXY ?? process.env.https_proxy;
  return value === undefined || value === "" ? undefined : value;
}

/** Settings (connector/settings.ts, validated at construction) plus what the agent is wired to. */
export interface ConnectorAgentOptions extends ConnectorSettingsInput {
  readonly stateDir: string;
  readonly version: string;
  /** Control's URL when it moved since registration (a local deployment on a new port). */
  readonly controlUrl?: string;
  /** The clock, injectable so renewal at day 180 is testable. */
  readonly now?: Clock;
  /** Streams the engine opens; unset: proxied to the published backends (connector/proxy.ts). */
  readonly onStream?: (stream: Stream, agent: ConnectorAgent) => void;
  readonly logger?: Logger;
  /** Outbound HTTP proxy for tunnel connections; default HTTPS_PROXY / https_proxy from the environment. */
  readonly proxyUrl?: string;
  /**
   * This process's place among the connector's workers (engine/process/supervisor.ts): each
   * keeps its own tunnels and backend pools; the first also renews the certificate and runs
   * probes, the others pick the renewed certificate up from disk.
   */
  readonly worker?: WorkerPlace;
}

interface AgentEvents {
  config: [config: ConnectorConfig];
  renewed: [serial: { notBefore: Date }];
  connected: [url: string, session: Session];
  disconnected: [url: string, err: Error | undefined];
}

export class ConnectorAgent extends EventEmitter<AgentEvents> {
  #identity: StoredIdentity;
  readonly #client: ControlClient;
  readonly #feed: ConfigFeed<ConnectorConfig>;
  readonly #tunnels: TunnelPool;
  readonly #log: Logger;
  readonly #proxy: BackendProxy;
  readonly #now: Clock;
  readonly #settings: ConnectorSettings;
  #renewTimer: NodeJS.Timeout | undefined;
  #renewing: Promise<boolean> | null = null;
  #stopped = false;
  #appliedAt = 0;
  #metricsListener: MetricsListener | undefined;
  /** This connector's Prometheus registry (served on metricsPort when set). */
  readonly metrics: Registry;
  /** Probe ids already run (a probe stays in the feed until answered; ids that left it are forgotten). */
  #probed = new Set<string>();

  constructor(private readonly options: ConnectorAgentOptions) {
    super();
    const { stateDir: _dir, version: _version, controlUrl: _url, now: _now, onStream: _onStream, logger: _logger, proxyUrl: _proxy, worker: _worker, ...settings } = options;
    this.#settings = resolveConnectorSettings(settings);
    this.metrics = processRegistry("connector", options.worker?.index);
    this.#identity = loadIdentity(options.stateDir, "connector");
    this.#now = options.now ?? systemClock;
    const log = options.logger ?? processLogger("connector");
    this.#log = options.worker ? log.child({ worker: options.worker.index }) : log;
    this.#client = new ControlClient({
      controlUrl: options.controlUrl ?? this.#identity.controlUrl,
      caPem: this.#identity.caPem,
      credentials: () => this.#identity,
      // Control shows each connector's live tunnels per engine, as of its last feed request.
      headers: () => ({ "x-postern-version": options.version, "x-postern-tunnels": tunnelReport(this.#tunnels) }),
      now: this.#now,
    });
    feedMetrics(this.metrics, () => (this.#feed.current ? { version: this.#feed.current.version, appliedAt: this.#appliedAt } : null));
    certificateMetric(this.metrics, () => this.#identity.certPem);
    const requests = connectorMetrics(this.metrics, () => this.#tunnels);
    this.#proxy = new BackendProxy({ config: () => this.#feed.current, logger: this.#log, settings: this.#settings, metrics: requests });
    this.#feed = new ConfigFeed<ConnectorConfig>(this.#client, { path: "/api/v1/feed/connector", pullIntervalMs: this.#settings.pullIntervalMs });
    this.#tunnels = new TunnelPool({
      credentials: () => this.#identity,
      settings: this.#settings,
      onStream: (stream) => (options.onStream ? options.onStream(stream, this) : this.#proxy.handle(stream)),
      logger: this.#log,
      now: this.#now,
      ...(proxyFrom(options) ? { proxyUrl: proxyFrom(options)! } : {}),
    });
    this.#tunnels.on("connected", (url, session) => this.emit("connected", url, session));
    this.#tunnels.on("disconnected", (url, err) => this.emit("disconnected", url, err));
  }

  get id(): string {
    return this.#identity.id;
  }

  get identity(): StoredIdentity {
    return this.#identity;
  }

  get config(): ConnectorConfig | null {
    return this.#feed.current;
  }

  get tunnels(): TunnelPool {
    return this.#tunnels;
  }

  /** The /metrics listener's port, when it listens. */
  get metricsPort(): number | undefined {
    return this.#metricsListener?.port;
  }

  async start(): Promise<ConnectorConfig> {
    this.#feed.on("config", (config) => {
      this.#appliedAt = Date.now();
      this.#log.info({ version: config.version, group: config.group, engines: config.engines.length, apps: config.apps.length }, "configuration applied");
      this.#tunnels.setEngines(config.engines);
      this.emit("config", config);
      void this.checkRenewal();
      const current = new Set(config.probes.map((p) => p.id));
      this.#probed = new Set([...this.#probed].filter((id) => current.has(id)));
      // One answer per connector: with several workers, the first runs the probes.
      if ((this.options.worker?.index ?? 0) === 0) for (const request of config.probes) void this.#answerProbe(request.id, request.app);
    });
    this.#feed.on("error", (err) => this.#log.warn({ err: err.message, code: (err as { code?: string }).code }, "configuration pull failed"));
    const config = await this.#feed.start();
    // A worker's metrics are served by its primary, summed over the workers.
    if (this.options.worker) serveToPrimary(this.metrics);
    else if (this.#settings.metricsPort !== undefined) {
      this.#metricsListener = await serveMetrics(this.metrics, this.#settings.metricsHost, this.#settings.metricsPort);
    }
    const period = this.#settings.renewCheckIntervalMs;
    this.#renewTimer = setInterval(() => void this.checkRenewal(), period);
    this.#renewTimer.unref();
    return config;
  }

  /** Renews the certificate if it is older than the policy allows; true when it did. */
  checkRenewal(): Promise<boolean> {
    this.#renewing ??= this.#renewIfDue().finally(() => {
      this.#renewing = null;
    });
    return this.#renewing;
  }

  async #renewIfDue(): Promise<boolean> {
    if (this.options.worker && this.options.worker.index !== 0) {
      // Worker 0 renews; the others switch to the certificate it saved (new tunnels use it).
      const onDisk = loadIdentity(this.options.stateDir, "connector");
      if (onDisk.issuedAt.getTime() > this.#identity.issuedAt.getTime()) this.#identity = onDisk;
      return false;
    }
    const after = this.#feed.current?.renewAfterDays ?? 180;
    const ageDays = (this.#now() - this.#identity.issuedAt.getTime()) / DAY_MS;
    if (ageDays < after) return false;
    try {
      const { keyPem, csrPem } = await createKeyAndCsr(this.#identity.id);
      const issued = await this.#client.call<{ certificate: string; caCertificate: string }>("POST", "/api/v1/connectors/renew", { csr: csrPem });
      // Save first, then switch: a crash in between leaves the old identity, which still works.
      this.#identity = saveIdentity(this.options.stateDir, { ...this.#identity, keyPem, certPem: issued.certificate, caPem: issued.caCertificate });
      this.#log.info({ ageDays: Math.floor(ageDays), notBefore: this.#identity.issuedAt }, "certificate renewed");
      this.emit("renewed", { notBefore: this.#identity.issuedAt });
      return true;
    } catch (err) {
      this.#log.error({ err: (err as Error).message, code: (err as { code?: string }).code }, "certificate renewal failed; will retry");
      return false;
    }
  }

  /** Runs an `app test` probe once and sends the report to control. */
  async #answerProbe(id: string, appName: string): Promise<void> {
    if (this.#probed.has(id)) return;
    this.#probed.add(id);
    const app = this.#feed.current?.apps.find((a) => a.name === appName);
    if (!app) return;
    const report = await probe(app.internalUrl, app.validateBackendTls, this.#settings.probeStepTimeoutMs);
    await this.#client.call("POST", `/api/v1/connectors/probes/${encodeURIComponent(id)}`, { report }).catch((err: Error) => {
      this.#log.warn({ err: err.message, probe: id }, "could not send the probe report");
    });
  }

  /** GOAWAY on every tunnel, finish in-flight streams within `graceMs`, stop pulling config. */
  async stop(graceMs = this.#settings.drainGraceMs): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#renewTimer);
    this.#feed.stop();
    await this.#tunnels.drain(graceMs);
    await this.#client.close();
    await this.#proxy.close();
    await this.#metricsListener?.close();
  }
}

/** Live tunnels per engine, as `url=n` pairs (the URLs are the feed's: no commas or spaces in them). */
function tunnelReport(tunnels: TunnelPool | undefined): string {
  if (!tunnels) return "";
  return [...tunnels.byEngine()].map(([url, sessions]) => `${url}=${sessions.length}`).join(",").slice(0, 4096);
}

