/**
 * The embedded Store on SQLite (better-sqlite3): WAL journal with synchronous=FULL, so a
 * transaction that returned is on disk even if the process is killed the next instant, and a
 * crash mid-transaction leaves the previous state. Schema changes are numbered migrations
 * tracked in `PRAGMA user_version`.
 */
import Database, { type Statement } from "better-sqlite3";
import { EventEmitter } from "node:events";
import { randomUUID } from "node:crypto";
import type { AppSettings } from "../contract/apps.js";
import {
  StoreConflict,
  type App,
  type AuditEntry,
  type Connector,
  type ConnectorGroup,
  type Engine,
  type Group,
  type IssuedCertificate,
  type OidcRecord,
  type SignIn,
  type Store,
  type StoredDomainCertificate,
  type Tenant,
  type User,
} from "./types.js";
import { PosternError } from "../../engine/errors/catalogue.js";
import { appFromRow, auditFromRow, certificateColumn, certificateFromRow, conflictField, connectorFromRow, json, logFilters, signInFromRow, tenantFromRow, userFromRow, type Row } from "./rows.js";

/** Prepared statements kept per store (distinct SQL texts). */
const MAX_STATEMENTS = 256;

/** Each entry moves the schema from version i to i+1; never edit a shipped one. */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE config_state (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
  INSERT INTO config_state VALUES (1, 0);
  CREATE TABLE tenants (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, domain_suffix TEXT NOT NULL);
  CREATE TABLE apps (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL COLLATE NOCASE, internal_url TEXT NOT NULL COLLATE NOCASE, external_url TEXT NOT NULL COLLATE NOCASE,
    settings TEXT NOT NULL, certificate TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    UNIQUE (tenant_id, name), UNIQUE (tenant_id, internal_url), UNIQUE (external_url));
  CREATE TABLE connector_groups (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), name TEXT NOT NULL COLLATE NOCASE,
    UNIQUE (tenant_id, name));
  CREATE TABLE connectors (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), group_name TEXT NOT NULL, host_name TEXT NOT NULL,
    version TEXT NOT NULL, cert_serial TEXT NOT NULL, cert_fingerprint TEXT NOT NULL, cert_not_before TEXT NOT NULL,
    cert_not_after TEXT NOT NULL, last_seen TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL);
  CREATE TABLE certificates (serial TEXT PRIMARY KEY, kind TEXT NOT NULL, subject_id TEXT NOT NULL, fingerprint TEXT NOT NULL,
    not_before TEXT NOT NULL, not_after TEXT NOT NULL, revoked_at TEXT);
  CREATE INDEX certificates_subject ON certificates (subject_id);
  CREATE TABLE engines (id TEXT PRIMARY KEY, tunnel_url TEXT NOT NULL, last_seen TEXT NOT NULL);
  CREATE TABLE users (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), username TEXT NOT NULL COLLATE NOCASE,
    display_name TEXT NOT NULL, email TEXT NOT NULL, password_hash TEXT NOT NULL, totp_sealed BLOB, roles TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0, UNIQUE (tenant_id, username));
  CREATE TABLE groups (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), name TEXT NOT NULL COLLATE NOCASE,
    members TEXT NOT NULL, UNIQUE (tenant_id, name));
  CREATE TABLE ca (tenant_id TEXT PRIMARY KEY REFERENCES tenants(id), cert_pem TEXT NOT NULL, key_sealed BLOB NOT NULL);
  CREATE TABLE secrets (name TEXT PRIMARY KEY, sealed BLOB NOT NULL);
  CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, tenant_id TEXT NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, target TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT NOT NULL);
  CREATE TABLE signins (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, tenant_id TEXT NOT NULL, username TEXT NOT NULL,
    outcome TEXT NOT NULL, reason TEXT NOT NULL, client TEXT NOT NULL);
  CREATE TABLE oidc (model TEXT NOT NULL, id TEXT NOT NULL, payload TEXT NOT NULL, expires_at INTEGER, grant_id TEXT,
    user_code TEXT, uid TEXT, PRIMARY KEY (model, id));
  CREATE INDEX oidc_grant ON oidc (grant_id);
  CREATE INDEX oidc_uid ON oidc (model, uid);
  CREATE INDEX oidc_user_code ON oidc (model, user_code);
  `,
  `
  CREATE TABLE probes (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, app TEXT NOT NULL, group_name TEXT NOT NULL,
    created_at TEXT NOT NULL, connector_id TEXT, result TEXT);
  `,
  `
  ALTER TABLE signins ADD COLUMN app TEXT NOT NULL DEFAULT '';
  ALTER TABLE signins ADD COLUMN client_ip TEXT NOT NULL DEFAULT '';
  ALTER TABLE signins ADD COLUMN transaction_id TEXT NOT NULL DEFAULT '';
  `,
  `
  ALTER TABLE connectors ADD COLUMN tunnels TEXT NOT NULL DEFAULT '{}';
  `,
];


export function openSqliteStore(file: string): Store {
  return new SqliteStore(file);
}

class SqliteStore implements Store {
  readonly #db: Database.Database;
  readonly #events = new EventEmitter();

  constructor(file: string) {
    this.#db = new Database(file);
    this.#db.pragma("journal_mode = WAL");
    this.#db.pragma("synchronous = FULL");
    this.#db.pragma("foreign_keys = ON");
    this.#db.pragma("busy_timeout = 5000");
    this.#migrate();
    this.#events.setMaxListeners(0);
  }

  #migrate(): void {
    const current = this.#db.pragma("user_version", { simple: true }) as number;
    if (current > MIGRATIONS.length) {
      throw new PosternError("POSTERN_CONFIG", `store schema version ${current} is newer than this build knows (${MIGRATIONS.length}); upgrade postern`);
    }
    for (let v = current; v < MIGRATIONS.length; v++) {
      this.#db.transaction(() => {
        this.#db.exec(MIGRATIONS[v]!);
        this.#db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  /** Runs `fn` in a transaction that also bumps the configuration version, then notifies. */
  #change<T>(fn: () => T): T {
    return this.#maybeChange(() => ({ result: fn(), changed: true }));
  }

  /** As #change, for writes that may turn out to change nothing (then nothing is bumped). */
  #maybeChange<T>(fn: () => { result: T; changed: boolean }): T {
    let version = 0;
    const result = this.#db.transaction(() => {
      const out = fn();
      if (out.changed) version = (this.#stmt("UPDATE config_state SET version = version + 1 WHERE id = 1 RETURNING version").get() as { version: number }).version;
      return out.result;
    }).immediate();
    if (version > 0) this.#events.emit("change", version);
    return result;
  }

  /**
   * Prepared once per SQL text and reused: preparing costs more than most queries here. The
   * texts are the code's own (a few filter combinations of the log queries), bounded anyway.
   */
  #stmt(sql: string): Statement {
    let stmt = this.#statements.get(sql);
    if (stmt === undefined) {
      if (this.#statements.size >= MAX_STATEMENTS) this.#statements.delete(this.#statements.keys().next().value!);
      stmt = this.#db.prepare(sql);
      this.#statements.set(sql, stmt);
    }
    return stmt;
  }

  readonly #statements = new Map<string, Statement>();

  #all(sql: string, ...params: unknown[]): Row[] {
    return this.#stmt(sql).all(...params) as Row[];
  }

  #get(sql: string, ...params: unknown[]): Row | undefined {
    return this.#stmt(sql).get(...params) as Row | undefined;
  }

  async close(): Promise<void> {
    this.#events.removeAllListeners();
    this.#db.close();
  }

  async configVersion(): Promise<number> {
    return (this.#get("SELECT version FROM config_state WHERE id = 1") as { version: number }).version;
  }

  onChange(listener: (version: number) => void): () => void {
    this.#events.on("change", listener);
    return () => this.#events.off("change", listener);
  }

  async ensureTenant(tenant: Tenant): Promise<Tenant> {
    const existing = await this.getTenant(tenant.id);
    if (existing) return existing;
    this.#change(() => this.#stmt("INSERT INTO tenants VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING").run(tenant.id, tenant.name, tenant.domainSuffix));
    return (await this.getTenant(tenant.id))!;
  }

  async getTenant(id: string): Promise<Tenant | null> {
    const row = this.#get("SELECT * FROM tenants WHERE id = ?", id);
    return row ? tenantFromRow(row) : null;
  }

  async listTenants(): Promise<Tenant[]> {
    return this.#all("SELECT * FROM tenants ORDER BY name").map(tenantFromRow);
  }

  async listApps(tenantId?: string): Promise<App[]> {
    const rows = tenantId === undefined ? this.#all("SELECT * FROM apps ORDER BY name") : this.#all("SELECT * FROM apps WHERE tenant_id = ? ORDER BY name", tenantId);
    return rows.map(appFromRow);
  }

  async getApp(tenantId: string, name: string): Promise<App | null> {
    const row = this.#get("SELECT * FROM apps WHERE tenant_id = ? AND name = ?", tenantId, name);
    return row ? appFromRow(row) : null;
  }

  async putApp(tenantId: string, settings: AppSettings, certificate: StoredDomainCertificate | null, replacing?: string): Promise<App> {
    const now = new Date().toISOString();
    const cert = certificateColumn(certificate);
    try {
      this.#change(() => {
        if (replacing !== undefined) {
          const info = this.#stmt(
            "UPDATE apps SET name = ?, internal_url = ?, external_url = ?, settings = ?, certificate = ?, updated_at = ? WHERE tenant_id = ? AND name = ?",
          ).run(settings.name, settings.internalUrl, settings.externalUrl, JSON.stringify(settings), cert, now, tenantId, replacing);
          if (info.changes === 0) throw new StoreConflict("name", `no app named "${replacing}"`);
        } else {
          this.#stmt("INSERT INTO apps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)").run(
            randomUUID(), tenantId, settings.name, settings.internalUrl, settings.externalUrl, JSON.stringify(settings), cert, now, now);
        }
      });
    } catch (err) {
      throw conflictFrom(err);
    }
    return (await this.getApp(tenantId, settings.name))!;
  }

  async deleteApp(tenantId: string, name: string): Promise<boolean> {
    if (!this.#get("SELECT 1 FROM apps WHERE tenant_id = ? AND name = ?", tenantId, name)) return false;
    this.#change(() => this.#stmt("DELETE FROM apps WHERE tenant_id = ? AND name = ?").run(tenantId, name));
    return true;
  }

  async listConnectorGroups(tenantId: string): Promise<ConnectorGroup[]> {
    return this.#all("SELECT * FROM connector_groups WHERE tenant_id = ? ORDER BY name", tenantId)
      .map((row) => ({ id: row.id as string, tenantId: row.tenant_id as string, name: row.name as string }));
  }

  async addConnectorGroup(tenantId: string, name: string): Promise<ConnectorGroup> {
    const group = { id: randomUUID(), tenantId, name };
    try {
      this.#change(() => this.#stmt("INSERT INTO connector_groups VALUES (?, ?, ?)").run(group.id, tenantId, name));
    } catch (err) {
      throw conflictFrom(err);
    }
    return group;
  }

  async removeConnectorGroup(tenantId: string, name: string): Promise<boolean> {
    if (!this.#get("SELECT 1 FROM connector_groups WHERE tenant_id = ? AND name = ?", tenantId, name)) return false;
    this.#change(() => this.#stmt("DELETE FROM connector_groups WHERE tenant_id = ? AND name = ?").run(tenantId, name));
    return true;
  }

  async addConnector(c: Connector): Promise<void> {
    this.#change(() => this.#stmt("INSERT INTO connectors (id, tenant_id, group_name, host_name, version, cert_serial, cert_fingerprint, cert_not_before, cert_not_after, last_seen, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)").run(
      c.id, c.tenantId, c.group, c.hostName, c.version, c.certSerial, c.certFingerprint, c.certNotBefore, c.certNotAfter, c.lastSeen, c.status, c.createdAt));
  }

  async getConnector(id: string): Promise<Connector | null> {
    const row = this.#get("SELECT * FROM connectors WHERE id = ?", id);
    return row ? connectorFromRow(row) : null;
  }

  async listConnectors(tenantId?: string): Promise<Connector[]> {
    const rows = tenantId === undefined ? this.#all("SELECT * FROM connectors ORDER BY created_at") : this.#all("SELECT * FROM connectors WHERE tenant_id = ? ORDER BY created_at", tenantId);
    return rows.map(connectorFromRow);
  }

  async updateConnector(id: string, patch: Parameters<Store["updateConnector"]>[1]): Promise<Connector | null> {
    const columns: Record<string, string> = {
      group: "group_name", hostName: "host_name", version: "version", certSerial: "cert_serial", certFingerprint: "cert_fingerprint",
      certNotBefore: "cert_not_before", certNotAfter: "cert_not_after", status: "status",
    };
    const sets = Object.entries(patch).filter(([, v]) => v !== undefined);
    if (sets.length > 0) {
      this.#change(() => this.#stmt(`UPDATE connectors SET ${sets.map(([k]) => `${columns[k]} = ?`).join(", ")} WHERE id = ?`)
        .run(...sets.map(([, v]) => v), id));
    }
    return this.getConnector(id);
  }

  async touchConnector(id: string, at: string, version?: string, tunnels?: Readonly<Record<string, number>>): Promise<void> {
    this.#stmt("UPDATE connectors SET last_seen = ?, version = coalesce(?, version), tunnels = coalesce(?, tunnels) WHERE id = ?")
      .run(at, version ?? null, tunnels === undefined ? null : JSON.stringify(tunnels), id);
  }

  async deleteConnector(id: string): Promise<boolean> {
    if (!this.#get("SELECT 1 FROM connectors WHERE id = ?", id)) return false;
    this.#change(() => this.#stmt("DELETE FROM connectors WHERE id = ?").run(id));
    return true;
  }

  async recordCertificate(c: IssuedCertificate): Promise<void> {
    this.#change(() => this.#stmt("INSERT INTO certificates VALUES (?, ?, ?, ?, ?, ?, ?)").run(
      c.serial, c.kind, c.subjectId, c.fingerprint, c.notBefore, c.notAfter, c.revokedAt));
  }

  async listCertificates(subjectId?: string): Promise<IssuedCertificate[]> {
    const rows = subjectId === undefined ? this.#all("SELECT * FROM certificates ORDER BY not_before") : this.#all("SELECT * FROM certificates WHERE subject_id = ? ORDER BY not_before", subjectId);
    return rows.map(certificateFromRow);
  }

  async getCertificate(serial: string): Promise<IssuedCertificate | null> {
    const row = this.#get("SELECT * FROM certificates WHERE serial = ?", serial);
    return row ? certificateFromRow(row) : null;
  }

  async revokeCertificates(subjectId: string, at: string): Promise<number> {
    return this.#change(() => this.#stmt("UPDATE certificates SET revoked_at = ? WHERE subject_id = ? AND revoked_at IS NULL").run(at, subjectId).changes);
  }

  async upsertEngine(e: Engine): Promise<void> {
    const row = this.#get("SELECT tunnel_url FROM engines WHERE id = ?", e.id);
    if (row && row.tunnel_url === e.tunnelUrl) {
      this.#stmt("UPDATE engines SET last_seen = ? WHERE id = ?").run(e.lastSeen, e.id);
      return;
    }
    this.#change(() => this.#stmt("INSERT INTO engines VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET tunnel_url = excluded.tunnel_url, last_seen = excluded.last_seen")
      .run(e.id, e.tunnelUrl, e.lastSeen));
  }

  async removeEngine(id: string): Promise<boolean> {
    if (!this.#get("SELECT 1 FROM engines WHERE id = ?", id)) return false;
    this.#change(() => this.#stmt("DELETE FROM engines WHERE id = ?").run(id));
    return true;
  }

  async listEngines(): Promise<Engine[]> {
    return this.#all("SELECT * FROM engines ORDER BY id").map((row) => ({ id: row.id as string, tunnelUrl: row.tunnel_url as string, lastSeen: row.last_seen as string }));
  }

  async addUser(u: User): Promise<void> {
    try {
      this.#change(() => this.#stmt("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)").run(
        u.id, u.tenantId, u.username, u.displayName, u.email, u.passwordHash, u.totpSealed, JSON.stringify(u.roles), u.disabled ? 1 : 0));
    } catch (err) {
      throw conflictFrom(err);
    }
  }

  async getUser(id: string): Promise<User | null> {
    const row = this.#get("SELECT * FROM users WHERE id = ?", id);
    return row ? userFromRow(row) : null;
  }

  async findUser(tenantId: string, username: string): Promise<User | null> {
    const row = this.#get("SELECT * FROM users WHERE tenant_id = ? AND username = ?", tenantId, username);
    return row ? userFromRow(row) : null;
  }

  async listUsers(tenantId: string): Promise<User[]> {
    return this.#all("SELECT * FROM users WHERE tenant_id = ? ORDER BY username", tenantId).map(userFromRow);
  }

  async updateUser(id: string, patch: Parameters<Store["updateUser"]>[1]): Promise<User | null> {
    const columns: Record<string, [string, (v: unknown) => unknown]> = {
      displayName: ["display_name", (v) => v], email: ["email", (v) => v], passwordHash: ["password_hash", (v) => v],
      totpSealed: ["totp_sealed", (v) => v], roles: ["roles", (v) => JSON.stringify(v)], disabled: ["disabled", (v) => (v ? 1 : 0)],
    };
    const sets = Object.entries(patch).filter(([, v]) => v !== undefined);
    if (sets.length > 0) {
      this.#change(() => this.#stmt(`UPDATE users SET ${sets.map(([k]) => `${columns[k]![0]} = ?`).join(", ")} WHERE id = ?`)
        .run(...sets.map(([k, v]) => columns[k]![1](v)), id));
    }
    return this.getUser(id);
  }

  async addGroup(g: Group): Promise<void> {
    try {
      this.#change(() => this.#stmt("INSERT INTO groups VALUES (?, ?, ?, ?)").run(g.id, g.tenantId, g.name, JSON.stringify(g.members)));
    } catch (err) {
      throw conflictFrom(err);
    }
  }

  async listGroups(tenantId: string): Promise<Group[]> {
    return this.#all("SELECT * FROM groups WHERE tenant_id = ? ORDER BY name", tenantId).map((row) => ({
      id: row.id as string, tenantId: row.tenant_id as string, name: row.name as string, members: json<string[]>(row.members),
    }));
  }

  async removeGroup(tenantId: string, name: string): Promise<boolean> {
    if (!this.#get("SELECT 1 FROM groups WHERE tenant_id = ? AND name = ?", tenantId, name)) return false;
    this.#change(() => this.#stmt("DELETE FROM groups WHERE tenant_id = ? AND name = ?").run(tenantId, name));
    return true;
  }

  async getCa(tenantId: string): Promise<{ certPem: string; keySealed: Buffer } | null> {
    const row = this.#get("SELECT * FROM ca WHERE tenant_id = ?", tenantId);
    return row ? { certPem: row.cert_pem as string, keySealed: row.key_sealed as Buffer } : null;
  }

  async putCa(tenantId: string, certPem: string, keySealed: Buffer): Promise<{ certPem: string; keySealed: Buffer }> {
    this.#change(() => this.#stmt("INSERT INTO ca VALUES (?, ?, ?) ON CONFLICT (tenant_id) DO NOTHING").run(tenantId, certPem, keySealed));
    return (await this.getCa(tenantId))!;
  }

  async getSecret(name: string): Promise<Buffer | null> {
    return (this.#get("SELECT sealed FROM secrets WHERE name = ?", name)?.sealed as Buffer | undefined) ?? null;
  }

  async putSecret(name: string, sealed: Buffer, options: { feedChange?: boolean } = {}): Promise<void> {
    const put = () => this.#stmt("INSERT INTO secrets VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed").run(name, sealed);
    if (options.feedChange) this.#change(put);
    else put();
  }

  async swapSecret(name: string, expected: Buffer | null, next: Buffer, options: { feedChange?: boolean } = {}): Promise<Buffer> {
    return this.#maybeChange(() => {
      const current = (this.#get("SELECT sealed FROM secrets WHERE name = ?", name)?.sealed as Buffer | undefined) ?? null;
      const matches = current === null ? expected === null : expected !== null && current.equals(expected);
      if (!matches) return { result: current!, changed: false };
      this.#stmt("INSERT INTO secrets VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed").run(name, next);
      // Only a swap that happened, of a secret the feed carries, is a feed change.
      return { result: next, changed: options.feedChange === true };
    });
  }

  async deleteSecret(name: string, options: { feedChange?: boolean } = {}): Promise<boolean> {
    const drop = () => this.#stmt("DELETE FROM secrets WHERE name = ?").run(name).changes > 0;
    return options.feedChange ? this.#change(drop) : drop();
  }

  async appendAudit(e: Omit<AuditEntry, "id">): Promise<void> {
    this.#stmt("INSERT INTO audit (at, tenant_id, actor, action, target, outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?)")
      .run(e.at, e.tenantId, e.actor, e.action, e.target, e.outcome, JSON.stringify(e.detail));
  }

  async listAudit(q: Parameters<Store["listAudit"]>[0]): Promise<AuditEntry[]> {
    const where = logFilters([["action = ?", q.action], ["actor = ?", q.actor], ["outcome = ?", q.outcome]]);
    return this.#all(`SELECT * FROM audit WHERE tenant_id = ? AND id < ?${where.sql} ORDER BY id DESC LIMIT ?`, q.tenantId, q.beforeId ?? Number.MAX_SAFE_INTEGER, ...where.params, q.limit)
      .map(auditFromRow);
  }

  async appendSignIn(e: Omit<SignIn, "id">): Promise<void> {
    this.#stmt("INSERT INTO signins (at, tenant_id, username, outcome, reason, client, app, client_ip, transaction_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
      .run(e.at, e.tenantId, e.username, e.outcome, e.reason, e.client, e.app ?? "", e.clientIp ?? "", e.transactionId ?? "");
  }

  async listSignIns(q: Parameters<Store["listSignIns"]>[0]): Promise<SignIn[]> {
    const where = logFilters([["username = ? COLLATE NOCASE", q.username], ["app = ?", q.app], ["outcome = ?", q.outcome]]);
    return this.#all(`SELECT * FROM signins WHERE tenant_id = ? AND id < ?${where.sql} ORDER BY id DESC LIMIT ?`, q.tenantId, q.beforeId ?? Number.MAX_SAFE_INTEGER, ...where.params, q.limit)
      .map(signInFromRow);
  }

  async addProbe(probe: { id: string; tenantId: string; app: string; group: string; createdAt: string }): Promise<void> {
    this.#change(() => this.#stmt("INSERT INTO probes (id, tenant_id, app, group_name, created_at) VALUES (?, ?, ?, ?, ?)")
      .run(probe.id, probe.tenantId, probe.app, probe.group, probe.createdAt));
  }

  async pendingProbes(tenantId: string, group: string, since: string): Promise<{ id: string; app: string }[]> {
    return this.#all("SELECT id, app FROM probes WHERE tenant_id = ? AND group_name = ? COLLATE NOCASE AND result IS NULL AND created_at >= ?", tenantId, group, since)
      .map((row) => ({ id: row.id as string, app: row.app as string }));
  }

  async completeProbe(id: string, connectorId: string, result: unknown): Promise<boolean> {
    // The first connector to answer wins; later answers are ignored.
    return this.#stmt("UPDATE probes SET connector_id = ?, result = ? WHERE id = ? AND result IS NULL").run(connectorId, JSON.stringify(result), id).changes === 1;
  }

  async getProbe(id: string): Promise<{ connectorId: string | null; result: unknown } | null> {
    const row = this.#get("SELECT connector_id, result FROM probes WHERE id = ?", id);
    return row ? { connectorId: (row.connector_id as string | null) ?? null, result: row.result === null ? null : JSON.parse(row.result as string) } : null;
  }

  async oidcUpsert(model: string, id: string, record: OidcRecord, index: { grantId?: string; userCode?: string; uid?: string }): Promise<void> {
    this.#stmt("INSERT INTO oidc VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (model, id) DO UPDATE SET payload = excluded.payload, expires_at = excluded.expires_at, grant_id = excluded.grant_id, user_code = excluded.user_code, uid = excluded.uid")
      .run(model, id, JSON.stringify(record.payload), record.expiresAt, index.grantId ?? null, index.userCode ?? null, index.uid ?? null);
  }

  async oidcFind(model: string, by: "id" | "uid" | "userCode", value: string, now: number): Promise<OidcRecord | null> {
    const column = by === "id" ? "id" : by === "uid" ? "uid" : "user_code";
    const row = this.#get(`SELECT payload, expires_at FROM oidc WHERE model = ? AND ${column} = ? AND (expires_at IS NULL OR expires_at > ?)`, model, value, now);
    return row ? { payload: JSON.parse(row.payload as string) as Record<string, unknown>, expiresAt: row.expires_at as number | null } : null;
  }

  async oidcDestroy(model: string, id: string): Promise<void> {
    this.#stmt("DELETE FROM oidc WHERE model = ? AND id = ?").run(model, id);
  }

  async oidcRevokeByGrantId(grantId: string): Promise<void> {
    this.#stmt("DELETE FROM oidc WHERE grant_id = ?").run(grantId);
  }

  async oidcConsume(model: string, id: string, at: number): Promise<void> {
    this.#stmt("UPDATE oidc SET payload = json_set(payload, '$.consumed', ?) WHERE model = ? AND id = ?").run(at, model, id);
  }
}

function conflictFrom(err: unknown): unknown {
  if (!(err instanceof Error) || (err as { code?: string }).code !== "SQLITE_CONSTRAINT_UNIQUE") return err;
  const field = conflictField(/UNIQUE constraint failed: \w+\.(\w+)/.exec(err.message)?.[1] ?? "name");
  return new StoreConflict(field, `another record already has this ${field}`);
}
