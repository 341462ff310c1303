/**
 * The control plane's records and the one Store interface every backend implements (SQLite is
 * the embedded default). Every method is async so a networked store fits the same interface.
 * Mutations that change what engines or connectors must know bump one monotonically
 * increasing configuration version in the same transaction, and the store tells its
 * listeners; the config feed is built on that. A store shared by several control replicas
 * (PostgreSQL) also tells its listeners about changes other replicas commit.
 */
import type { AppSettings } from "../contract/apps.js";
import { PosternError } from "../../engine/errors/catalogue.js";

export type Role = "Global Administrator" | "Application Administrator" | "Cloud Application Administrator" | "Security Reader";
export const ROLES: readonly Role[] = ["Global Administrator", "Application Administrator", "Cloud Application Administrator", "Security Reader"];

export interface Tenant {
  readonly id: string;
  readonly name: string;
  /** Default external domains are `<app>.<tenant name>.<domainSuffix>`. */
  readonly domainSuffix: string;
}

export interface StoredDomainCertificate {
  /** The upload as PEM (a PFX is converted when accepted), sealed with the master key. */
  readonly sealed: Buffer;
  readonly format: "pem" | "pfx";
  readonly dnsNames: readonly string[];
  readonly notAfter: string;
  readonly fingerprintSha256: string;
}

export interface App {
  readonly id: string;
  readonly tenantId: string;
  readonly settings: AppSettings;
  readonly certificate: StoredDomainCertificate | null;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface ConnectorGroup {
  readonly id: string;
  readonly tenantId: string;
  readonly name: string;
}

export type ConnectorStatus = "active" | "inactive" | "disabled";

export interface Connector {
  readonly id: string;
  readonly tenantId: string;
  readonly group: string;
  readonly hostName: string;
  readonly version: string;
  /** The newest certificate issued to it. */
  readonly certSerial: string;
  readonly certFingerprint: string;
  readonly certNotBefore: string;
  readonly certNotAfter: string;
  readonly lastSeen: string;
  readonly status: ConnectorStatus;
  readonly createdAt: string;
  /** Live tunnels per engine URL, as the connector last reported them. */
  readonly tunnels?: Readonly<Record<string, number>>;
}

export interface IssuedCertificate {
  readonly serial: string;
  readonly kind: "connector" | "engine" | "control";
  readonly subjectId: string;
  readonly fingerprint: string;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly revokedAt: string | null;
}

export interface Engine {
  readonly id: string;
  /** wss:// URL connectors dial; empty until the engine reports it. */
  readonly tunnelUrl: string;
  readonly lastSeen: string;
}

export interface User {
  readonly id: string;
  readonly tenantId: string;
  readonly username: string;
  readonly displayName: string;
  readonly email: string;
  /** scrypt$N$r$p$salt$hash */
  readonly passwordHash: string;
  /** Base32 TOTP seed sealed with the master key; null when MFA is not enrolled. */
  readonly totpSealed: Buffer | null;
  readonly roles: readonly Role[];
  readonly disabled: boolean;
}

export interface Group {
  readonly id: string;
  readonly tenantId: string;
  readonly name: string;
  /** Usernames. */
  readonly members: readonly string[];
}

export interface AuditEntry {
  readonly id: number;
  readonly at: string;
  readonly tenantId: string;
  readonly actor: string;
  readonly action: string;
  readonly target: string;
  readonly outcome: "success" | "failure";
  readonly detail: Record<string, unknown>;
}

export interface SignIn {
  readonly id: number;
  readonly at: string;
  readonly tenantId: string;
  readonly username: string;
  readonly outcome: "success" | "failure";
  readonly reason: string;
  /** Who asked: the IdP's client (CLI, an app) or "engine" for pre-authentication at the edge. */
  readonly client: string;
  /** For sign-ins to a published app: its name, the user's address and the transaction id on the user's page. */
  readonly app?: string;
  readonly clientIp?: string;
  readonly transactionId?: string;
}

/** Rows for oidc-provider's adapter: one model per kind (Session, AccessToken, ...). */
export interface OidcRecord {
  readonly payload: Record<string, unknown>;
  readonly expiresAt: number | null;
}

export interface Store {
  close(): Promise<void>;
  /** The current configuration version (0 on an empty store). */
  configVersion(): Promise<number>;
  /** Called after a committed change with the new version. Returns an unsubscribe function. */
  onChange(listener: (version: number) => void): () => void;

  ensureTenant(tenant: Tenant): Promise<Tenant>;
  getTenant(id: string): Promise<Tenant | null>;
  listTenants(): Promise<Tenant[]>;

  listApps(tenantId?: string): Promise<App[]>;
  getApp(tenantId: string, name: string): Promise<App | null>;
  /** Insert, or replace the app named `replacing`; throws StoreConflict on a uniqueness clash. */
  putApp(tenantId: string, settings: AppSettings, certificate: StoredDomainCertificate | null, replacing?: string): Promise<App>;
  deleteApp(tenantId: string, name: string): Promise<boolean>;

  listConnectorGroups(tenantId: string): Promise<ConnectorGroup[]>;
  addConnectorGroup(tenantId: string, name: string): Promise<ConnectorGroup>;
  removeConnectorGroup(tenantId: string, name: string): Promise<boolean>;

  addConnector(connector: Connector): Promise<void>;
  getConnector(id: string): Promise<Connector | null>;
  listConnectors(tenantId?: string): Promise<Connector[]>;
  updateConnector(id: string, patch: Partial<Pick<Connector, "group" | "hostName" | "version" | "certSerial" | "certFingerprint" | "certNotBefore" | "certNotAfter" | "status">>): Promise<Connector | null>;
  /** Records a heartbeat (and what the connector reports); does not bump the configuration version. */
  touchConnector(id: string, at: string, version?: string, tunnels?: Readonly<Record<string, number>>): Promise<void>;
  deleteConnector(id: string): Promise<boolean>;

  recordCertificate(cert: IssuedCertificate): Promise<void>;
  listCertificates(subjectId?: string): Promise<IssuedCertificate[]>;
  getCertificate(serial: string): Promise<IssuedCertificate | null>;
  revokeCertificates(subjectId: string, at: string): Promise<number>;

  upsertEngine(engine: Engine): Promise<void>;
  listEngines(): Promise<Engine[]>;
  /** An engine that left (or went silent): its connectors drop their tunnels to it. Bumps the version. */
  removeEngine(id: string): Promise<boolean>;

  addUser(user: User): Promise<void>;
  getUser(id: string): Promise<User | null>;
  findUser(tenantId: string, username: string): Promise<User | null>;
  listUsers(tenantId: string): Promise<User[]>;
  updateUser(id: string, patch: Partial<Pick<User, "displayName" | "email" | "passwordHash" | "totpSealed" | "roles" | "disabled">>): Promise<User | null>;

  addGroup(group: Group): Promise<void>;
  listGroups(tenantId: string): Promise<Group[]>;
  removeGroup(tenantId: string, name: string): Promise<boolean>;

  getCa(tenantId: string): Promise<{ certPem: string; keySealed: Buffer } | null>;
  /** Stores the tenant's CA unless one is there already; returns the one in force (replicas starting together agree). */
  putCa(tenantId: string, certPem: string, keySealed: Buffer): Promise<{ certPem: string; keySealed: Buffer }>;
  getSecret(name: string): Promise<Buffer | null>;
  /** `feedChange`: the secret travels in the config feed (session keys), so storing it bumps the version. */
  putSecret(name: string, sealed: Buffer, options?: { feedChange?: boolean }): Promise<void>;
  /**
   * Compare-and-set: stores `next` only if the secret is still `expected` (null: absent), and
   * returns the value in force afterwards. Two replicas creating or rotating a key at once
   * thus end up using the same one.
   */
  swapSecret(name: string, expected: Buffer | null, next: Buffer, options?: { feedChange?: boolean }): Promise<Buffer>;
  /** Whether there was one to delete; `feedChange` as for putSecret. */
  deleteSecret(name: string, options?: { feedChange?: boolean }): Promise<boolean>;

  appendAudit(entry: Omit<AuditEntry, "id">): Promise<void>;
  /** Newest first; filters match exactly (action, actor, outcome). */
  listAudit(query: { tenantId: string; limit: number; beforeId?: number; action?: string; actor?: string; outcome?: "success" | "failure" }): Promise<AuditEntry[]>;
  appendSignIn(entry: Omit<SignIn, "id">): Promise<void>;
  /** Newest first; filters match exactly (username case-insensitively, app, outcome). */
  listSignIns(query: { tenantId: string; limit: number; beforeId?: number; username?: string; app?: string; outcome?: "success" | "failure" }): Promise<SignIn[]>;

  /** `postern app test`: a probe a connector of `group` runs and answers. Adding one bumps the version (it travels in the feed). */
  addProbe(probe: { id: string; tenantId: string; app: string; group: string; createdAt: string }): Promise<void>;
  pendingProbes(tenantId: string, group: string, since: string): Promise<{ id: string; app: string }[]>;
  completeProbe(id: string, connectorId: string, result: unknown): Promise<boolean>;
  getProbe(id: string): Promise<{ connectorId: string | null; result: unknown } | null>;

  oidcUpsert(model: string, id: string, record: OidcRecord, index: { grantId?: string; userCode?: string; uid?: string }): Promise<void>;
  oidcFind(model: string, by: "id" | "uid" | "userCode", value: string, now: number): Promise<OidcRecord | null>;
  oidcDestroy(model: string, id: string): Promise<void>;
  oidcRevokeByGrantId(grantId: string): Promise<void>;
  oidcConsume(model: string, id: string, at: number): Promise<void>;
}

/** A write refused by a uniqueness rule; `field` names the setting that clashed. */
export class StoreConflict extends PosternError {
  constructor(readonly field: string, message: string) {
    super("POSTERN_CONFLICT", message);
  }
}
