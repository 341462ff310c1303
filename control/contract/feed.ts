/**
 * The shapes control's config feed sends (GET /api/v1/feed/{connector,engine}) and the records
 * engines send back; control builds them, engines and connectors apply them. App fields are
 * derived from the one settings schema (./apps.ts), never restated. Every snapshot carries the
 * store's configuration version, which only grows: a receiver ignores one no newer than what it
 * holds.
 */
import type { JWK } from "jose";
import { z } from "zod";
import type { AppSettings } from "./apps.js";

/** An app as an engine receives it: its settings, plus who owns it. */
export type FeedApp = AppSettings & {
  /** Control's id of the app (the session cookie is bound to it). */
  readonly id: string;
  readonly tenantId: string;
  /** The app's client secret at its external issuer, when it is a confidential client there. */
  readonly oidcClientSecret?: string;
};

/** What a connector needs of an app it serves: where the backend is and how to reach it. */
export type ConnectorApp = Pick<AppSettings, "name" | "internalUrl" | "validateBackendTls"> & {
  /** The app's backend timeout (`backendTimeout` resolved), ms. */
  readonly backendTimeoutMs: number;
};

export interface ConnectorConfig {
  readonly version: number;
  readonly connectorId: string;
  readonly group: string;
  /** wss:// URLs of every engine's tunnel listener. */
  readonly engines: readonly string[];
  /** The only backends this connector may reach: the internal URLs of its group's apps. */
  readonly apps: readonly ConnectorApp[];
  /** Renew the certificate once it is older than this, in days. */
  readonly renewAfterDays: number;
  /** Diagnostics asked for with `postern app test`: probe the app and POST the report. */
  readonly probes: readonly { id: string; app: string }[];
}

export interface EngineConfig {
  readonly version: number;
  /** Engines control knows of: with the shared store away, each enforces this share of the rate limits. */
  readonly engines?: number;
  /** Every app of every tenant, with its settings. */
  readonly apps: readonly FeedApp[];
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

/** A sign-in to a published app, as an engine reports it (POST /api/v1/sign-ins). */
export const signInReportSchema = z.object({
  tenantId: z.string().max(64),
  app: z.string().max(64),
  username: z.string().max(256),
  outcome: z.enum(["success", "failure"]),
  reason: z.string().max(512),
  clientIp: z.string().max(64),
  transactionId: z.string().max(64),
  at: z.string().max(40),
}).strict();

export type SignInReport = z.infer<typeof signInReportSchema>;
