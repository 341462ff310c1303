/**
 * The connector's settings, validated once when the agent starts (engine/config/settings.ts):
 * how many tunnels it keeps, how it reconnects, how it talks to backends. Every number that
 * was fixed in code is here with its unit.
 */
import { z } from "zod";
import { integer, resolvedBy, resolveSettings, type Resolved } from "../engine/config/settings.js";
import { resolveMuxConfig, type MuxConfigInput } from "../engine/mux/config.js";

export const connectorSettingsSchema = z.object({
  /** Tunnel connections kept to every engine endpoint. */
  connectionsPerEngine: integer(1, 64, 4),
  /** How often the certificate's age is checked against the renewal policy, ms. */
  renewCheckIntervalMs: integer(1_000, 86_400_000, 3_600_000), // 1 h
  /** Fallback config pull period (the long poll delivers changes at once), ms. */
  pullIntervalMs: integer(1_000, 86_400_000, 60_000), // 60 s
  /** In-flight streams get this long to finish when a tunnel is drained (stop, engine removed), ms. */
  drainGraceMs: integer(0, 3_600_000, 30_000), // 30 s
  /** TCP + TLS + WebSocket handshake to an engine, ms. */
  tunnelConnectTimeoutMs: integer(1, 600_000, 10_000), // 10 s
  /** First reconnect delay after a tunnel fails; doubles per attempt (full jitter), ms. */
  reconnectInitialMs: integer(1, 600_000, 500),
  /** Longest reconnect delay, ms. */
  reconnectMaxMs: integer(1, 3_600_000, 30_000), // 30 s
  /** A tunnel up this long counts as healthy and resets the backoff, ms. */
  stableConnectionMs: integer(0, 3_600_000, 10_000), // 10 s
  /** Keep-alive connections per backend origin. */
  backendConnectionsPerOrigin: integer(1, 100_000, 256),
  /** An idle keep-alive connection to a backend is closed after this, ms. */
  backendKeepAliveMs: integer(1, 3_600_000, 30_000), // 30 s
  /** A backend response body that stalls longer than this is aborted, ms. */
  backendBodyIdleMs: integer(1, 86_400_000, 300_000), // 5 min
  /** Prometheus /metrics listener; unset port: no listener. 0 picks a free port. */
  metricsHost: z.string().min(1).default("127.0.0.1"),
  metricsPort: integer(0, 65_535, 0).optional(),
  /** Each step of `postern app test` (DNS, TCP, TLS, HTTP), ms. */
  probeStepTimeoutMs: integer(1, 600_000, 10_000), // 10 s
  mux: resolvedBy((input: MuxConfigInput) => resolveMuxConfig(input)),
}).strict();

export type ConnectorSettings = Resolved<z.output<typeof connectorSettingsSchema>>;
export type ConnectorSettingsInput = z.input<typeof connectorSettingsSchema>;

export function resolveConnectorSettings(input: ConnectorSettingsInput): ConnectorSettings {
  return resolveSettings(connectorSettingsSchema, input, "connector");
}
