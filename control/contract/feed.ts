/**
 * The shapes control's config feed sends (GET /api/v1/feed/{connector,engine}); control builds
 * them, engines and connectors apply them. Every snapshot carries the store's configuration
 * version, which only grows: a receiver ignores one no newer than what it holds.
 */

import type { JWK } from "jose";

export interface ConnectorConfig {
  readonly version: number;
  readonly connectorId: string;
  readonly group: string;
  /** wss:// URLs of every engine's tunnel listener. */
  readonly engines: readonly string[];
  /** The only backends this connector may reach: the internal URLs of its group's apps. */
  readonly apps: readonly { name: string; internalUrl: string; validateBackendTls: boolean; backendTimeoutMs: number }[];
  /** Renew the certificate once it is older than this, in days. */
  readonly renewAfterDays: number;
  /** Diagnostics asked for with `postern app test`: probe the app and POST the report. */
  readonly probes: readonly { id: string; app: string }[];
}

export interface EngineConfig {
  readonly version: number;
  /** Every app of every tenant, with its settings (see control/apps.ts for the fields). */
  readonly apps: readonly ({ tenantId: string; name: string; connectorGroup: string } & Record<string, unknown>)[];
  readonly connectorGroups: readonly { tenantId: string; name: string }[];
  /** Connectors an engine may accept, with the certificate serials still valid for each. */
  readonly connectors: readonly {
    id: string;
    tenantId: string;
    group: string;
    status: "active" | "inactive" | "disabled";
    serials: readonly string[];
  }[];
  readonly revokedSerials: readonly string[];
  /** Custom-domain certificates (PEM) for the HTTPS listener's SNI, one per external host. */
  readonly certificates: readonly { host: string; certPem: string; keyPem: string; fingerprint: string }[];
  /** Pre-authentication: the built-in issuer, session cookie keys (newest first), the assertion key. */
  readonly auth?: {
    readonly builtInIssuer: string;
    readonly sessionKeys: readonly { kid: string; k: string }[];
    readonly assertionKey: JWK & { kid: string };
  };
}
