/**
 * The Store on PostgreSQL, for several control replicas sharing one database. A pool (pg)
 * serves queries; every change that engines or connectors must learn of runs in one
 * transaction that also bumps the configuration version and NOTIFYs it, and one dedicated
 * connection LISTENs, so a change committed by any replica reaches this replica's feed
 * waiters within milliseconds. Writes two replicas could race are settled by the database:
 * uniqueness by unique indexes, create-if-absent by ON CONFLICT, compare-and-set by a row lock.
 * Schema changes are SQL migrations run by node-pg-migrate under its advisory lock, so
 * replicas starting together migrate once.
 */
import { EventEmitter } from "node:events";
import { existsSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { runner } from "node-pg-migrate";
import type { Logger } from "pino";
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
import { appFromRow, auditFromRow, certificateColumn, certificateFromRow, conflictField, connectorFromRow, json, logFilters, signInFromRow, tenantFromRow, userFromRow, type Row } from "./rows.js";
import { Backoff } from "../client/backoff.js";
import { PosternError } from "../../engine/errors/catalogue.js";

/** The NOTIFY channel carrying the new configuration version. */
const CHANNEL = "postern_config";
/** The SQL migrations live beside this source file; the built file finds them from dist/. */
const MIGRATIONS_DIR = [new URL("./postgres-migrations", import.meta.url), new URL("../../../control/store/postgres-migrations", import.meta.url)]
  .map((u) => fileURLToPath(u)).find((dir) => existsSync(dir)) ?? "control/store/postgres-migrations";

export interface PostgresStoreOptions {
  /** postgres://user:password@host:port/database (libpq URL, as psql takes it). */
  readonly url: string;
  /** Pool size per replica. */
  readonly maxConnections?: number; // 10
  readonly logger?: Logger;
}

/** Connects, migrates to the newest schema, and starts listening for other replicas' changes. */
export async function openPostgresStore(options: PostgresStoreOptions): Promise<Store> {
  const url = parseUrl(options.url);
  const migrator = new pg.Client({ connectionString: url });
  try {
    await migrator.connect();
    await runner({
      dbClient: migrator, dir: MIGRATIONS_DIR, direction: "up", migrationsTable: "postern_migrations",
      // Replicas starting together: one migrates, the others wait for it and find nothing to do.
      checkOrder: true, log: () => undefined, singleTransaction: true, advisoryLockMode: "wait",
    });
  } catch (err) {
    throw new PosternError("POSTERN_CONFIG", `store ${redact(url)}: ${(err as Error).message}`, { cause: err });
  } finally {
    await migrator.end().catch(() => undefined);
  }
  const store = new PostgresStore(url, options);
  await store.listen();
  return store;
}

/** Refuses anything but a postgres:// URL, naming the setting. */
function parseUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new PosternError("POSTERN_CONFIG", "store: not a URL (expected postgres://user:password@host:port/database)");
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
    throw new PosternError("POSTERN_CONFIG", `store: ${url.protocol} is not a store scheme (expected postgres://...)`);
  }
  return raw;
}

function redact(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = "***";
  return u.href;
}

/** int8 columns (BIGSERIAL ids, the version, expiry times) as numbers: all stay far below 2^53. */
const types = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as "text")) as typeof pg.types.getTypeParser,
};

class PostgresStore implements Store {
  readonly #pool: pg.Pool;
  readonly #events = new EventEmitter();
  #listener: pg.Client | undefined;
  #lastEmitted = 0;
  #closed = false;
  readonly #backoff = new Backoff({ initialMs: 100, maxMs: 5_000 });

  constructor(private readonly url: string, private readonly options: PostgresStoreOptions) {
    this.#pool = new pg.Pool({ connectionString: url, max: options.maxConnections ?? 10, types });
    // An idle pooled connection the server dropped must not crash the process; the pool replaces it.
    this.#pool.on("error", (err) => options.logger?.warn({ err: err.message }, "store connection lost"));
    this.#events.setMaxListeners(0);
  }

  /** The LISTEN connection; re-established with backoff, and a reconnect re-reads the version it may have missed. */
  async listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.url, types });
    client.on("notification", (msg) => {
      if (msg.channel === CHANNEL) this.#emit(Number(msg.payload));
    });
    client.on("error", (err) => {
      this.options.logger?.warn({ err: err.message }, "store change listener lost; reconnecting");
      this.#relisten(client);
    });
    client.on("end", () => this.#relisten(client));
    await client.connect();
    await client.query(`LISTEN ${CHANNEL}`);
    this.#listener = client;
    this.#backoff.reset();
    this.#emit(await this.configVersion());
  }

  #relisten(lost: pg.Client): void {
    if (this.#closed || this.#listener !== lost) return;
    this.#listener = undefined;
    lost.removeAllListeners();
    lost.end().catch(() => undefined);
    const retry = () => {
      if (this.#closed) return;
      this.listen().catch(() => setTimeout(retry, this.#backoff.next()).unref());
    };
    setTimeout(retry, this.#backoff.next()).unref();
  }

  /** Versions only grow; each one is told once, whether our own commit or a NOTIFY saw it first. */
  #emit(version: number): void {
    if (!(version > this.#lastEmitted)) return;
    this.#lastEmitted = version;
    this.#events.emit("change", version);
  }

  async #query(sql: string, params: unknown[] = []): Promise<Row[]> {
    try {
      return (await this.#pool.query(sql, params)).rows as Row[];
    } catch (err) {
      throw conflictFrom(err);
    }
  }

  async #one(sql: string, params: unknown[] = []): Promise<Row | undefined> {
    return (await this.#query(sql, params))[0];
  }

  /**
   * Runs `fn` in a transaction; when it reports a change, the version is bumped and NOTIFYed in
   * the same transaction (the NOTIFY is delivered only if it commits), then told locally.
   */
  async #transaction<T>(fn: (q: (sql: string, params?: unknown[]) => Promise<Row[]>) => Promise<{ result: T; changed: boolean }>): Promise<T> {
    const client = await this.#pool.connect();
    let version = 0;
    try {
      await client.query("BEGIN");
      const q = async (sql: string, params: unknown[] = []) => (await client.query(sql, params)).rows as Row[];
      const out = await fn(q);
      if (out.changed) {
        version = Number((await q("UPDATE config_state SET version = version + 1 WHERE id = 1 RETURNING version"))[0]!.version);
        await q("SELECT pg_notify($1, $2)", [CHANNEL, String(version)]);
      }
      await client.query("COMMIT");
      client.release();
      if (version > 0) this.#emit(version);
      return out.result;
    } catch (err) {
      await client.query("ROLLBACK").catch(() => undefined);
      client.release();
      throw conflictFrom(err);
    }
  }

  #change<T>(fn: (q: (sql: string, params?: unknown[]) => Promise<Row[]>) => Promise<T>): Promise<T> {
    return this.#transaction(async (q) => ({ result: await fn(q), changed: true }));
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#events.removeAllListeners();
    const listener = this.#listener;
    this.#listener = undefined;
    listener?.removeAllListeners();
    await Promise.all([listener?.end().catch(() => undefined), this.#pool.end().catch(() => undefined)]);
  }

  async configVersion(): Promise<number> {
    return Number((await this.#one("SELECT version FROM config_state WHERE id = 1"))!.version);
  }

  onChange(listener: (version: number) => void): () => void {
    this.#events.on("change", listener);
    return () => this.#events.off("change", listener);
  }

  async ensureTenant(tenant: Tenant): Promise<Tenant> {
    await this.#transaction(async (q) => {
      const inserted = await q("INSERT INTO tenants VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING id", [tenant.id, tenant.name, tenant.domainSuffix]);
      return { result: undefined, changed: inserted.length > 0 };
    });
    return (await this.getTenant(tenant.id))!;
  }

  async getTenant(id: string): Promise<Tenant | null> {
    const row = await this.#one("SELECT * FROM tenants WHERE id = $1", [id]);
    return row ? tenantFromRow(row) : null;
  }

  async listTenants(): Promise<Tenant[]> {
    return (await this.#query("SELECT * FROM tenants ORDER BY name")).map(tenantFromRow);
  }

  async listApps(tenantId?: string): Promise<App[]> {
    const rows = tenantId === undefined
      ? await this.#query("SELECT * FROM apps ORDER BY lower(name)")
      : await this.#query("SELECT * FROM apps WHERE tenant_id = $1 ORDER BY lower(name)", [tenantId]);
    return rows.map(appFromRow);
  }

  async getApp(tenantId: string, name: string): Promise<App | null> {
    const row = await this.#one("SELECT * FROM apps WHERE tenant_id = $1 AND lower(name) = lower($2)", [tenantId, name]);
    return row ? appFromRow(row) : null;
  }

  async putApp(tenantId: string, settings: AppSettings, certificate: StoredDomainCertificate | null, replacing?: string): Promise<App> {
    const now = new Date().toISOString();
    const cert = certificateColumn(certificate);
    await this.#change(async (q) => {
      if (replacing !== undefined) {
        const updated = await q(
          "UPDATE apps SET name = $1, internal_url = $2, external_url = $3, settings = $4, certificate = $5, updated_at = $6 WHERE tenant_id = $7 AND lower(name) = lower($8) RETURNING id",
          [settings.name, settings.internalUrl, settings.externalUrl, JSON.stringify(settings), cert, now, tenantId, replacing]);
        if (updated.length === 0) throw new StoreConflict("name", `no app named "${replacing}"`);
      } else {
        await q("INSERT INTO apps VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
          [randomUUID(), tenantId, settings.name, settings.internalUrl, settings.externalUrl, JSON.stringify(settings), cert, now, now]);
      }
    });
    return (await this.getApp(tenantId, settings.name))!;
  }

  async deleteApp(tenantId: string, name: string): Promise<boolean> {
    return this.#transaction(async (q) => {
      const gone = await q("DELETE FROM apps WHERE tenant_id = $1 AND lower(name) = lower($2) RETURNING id", [tenantId, name]);
      return { result: gone.length > 0, changed: gone.length > 0 };
    });
  }

  async listConnectorGroups(tenantId: string): Promise<ConnectorGroup[]> {
    return (await this.#query("SELECT * FROM connector_groups WHERE tenant_id = $1 ORDER BY lower(name)", [tenantId]))
      .map((row) => ({ id: row.id as string, tenantId: row.tenant_id as string, name: row.name as string }));
  }

  async addConnectorGroup(tenantId: string, name: string): Promise<ConnectorGroup> {
    const group = { id: randomUUID(), tenantId, name };
    await this.#change((q) => q("INSERT INTO connector_groups VALUES ($1, $2, $3)", [group.id, tenantId, name]));
    return group;
  }

  async removeConnectorGroup(tenantId: string, name: string): Promise<boolean> {
    return this.#transaction(async (q) => {
      const gone = await q("DELETE FROM connector_groups WHERE tenant_id = $1 AND lower(name) = lower($2) RETURNING id", [tenantId, name]);
      return { result: gone.length > 0, changed: gone.length > 0 };
    });
  }

  async addConnector(c: Connector): Promise<void> {
    await this.#change((q) => q("INSERT INTO connectors (id, tenant_id, group_name, host_name, version, cert_serial, cert_fingerprint, cert_not_before, cert_not_after, last_seen, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)", [
      c.id, c.tenantId, c.group, c.hostName, c.version, c.certSerial, c.certFingerprint, c.certNotBefore, c.certNotAfter, c.lastSeen, c.status, c.createdAt]));
  }

  async getConnector(id: string): Promise<Connector | null> {
    const row = await this.#one("SELECT * FROM connectors WHERE id = $1", [id]);
    return row ? connectorFromRow(row) : null;
  }

  async listConnectors(tenantId?: string): Promise<Connector[]> {
    const rows = tenantId === undefined
      ? await this.#query("SELECT * FROM connectors ORDER BY created_at")
      : await this.#query("SELECT * FROM connectors WHERE tenant_id = $1 ORDER BY created_at", [tenantId]);
    return rows.map(connectorFromRow);
  }

  async updateConnector(id: string, patch: Parameters<Store["updateConnector"]>[1]): Promise<Connector | null> {
    const columns: Record<string, string> = {
      group: "group_name", hostName: "host_name", version: "version", certSerial: "cert_serial", certFingerprint: "cert_fingerprint",
      certNotBefore: "cert_not_before", certNotAfter: "cert_not_after", status: "status",
    };
    const sets = Object.entries(patch).filter(([k, v]) => v !== undefined && columns[k] !== undefined);
    if (sets.length > 0) {
      await this.#change((q) => q(`UPDATE connectors SET ${sets.map(([k], i) => `${columns[k]} = $${i + 1}`).join(", ")} WHERE id = $${sets.length + 1}`,
        [...sets.map(([, v]) => v), id]));
    }
    return this.getConnector(id);
  }

  async touchConnector(id: string, at: string, version?: string, tunnels?: Readonly<Record<string, number>>): Promise<void> {
    await this.#query("UPDATE connectors SET last_seen = $1, version = coalesce($2, version), tunnels = coalesce($3::jsonb, tunnels) WHERE id = $4",
      [at, version ?? null, tunnels === undefined ? null : JSON.stringify(tunnels), id]);
  }

  async deleteConnector(id: string): Promise<boolean> {
    return this.#transaction(async (q) => {
      const gone = await q("DELETE FROM connectors WHERE id = $1 RETURNING id", [id]);
      return { result: gone.length > 0, changed: gone.length > 0 };
    });
  }

  async recordCertificate(c: IssuedCertificate): Promise<void> {
    await this.#change((q) => q("INSERT INTO certificates VALUES ($1, $2, $3, $4, $5, $6, $7)",
      [c.serial, c.kind, c.subjectId, c.fingerprint, c.notBefore, c.notAfter, c.revokedAt]));
  }

  async listCertificates(subjectId?: string): Promise<IssuedCertificate[]> {
    const rows = subjectId === undefined
      ? await this.#query("SELECT * FROM certificates ORDER BY not_before")
      : await this.#query("SELECT * FROM certificates WHERE subject_id = $1 ORDER BY not_before", [subjectId]);
    return rows.map(certificateFromRow);
  }

  async getCertificate(serial: string): Promise<IssuedCertificate | null> {
    const row = await this.#one("SELECT * FROM certificates WHERE serial = $1", [serial]);
    return row ? certificateFromRow(row) : null;
  }

  async revokeCertificates(subjectId: string, at: string): Promise<number> {
    return this.#change(async (q) => (await q("UPDATE certificates SET revoked_at = $1 WHERE subject_id = $2 AND revoked_at IS NULL RETURNING serial", [at, subjectId])).length);
  }

  async upsertEngine(e: Engine): Promise<void> {
    // A heartbeat only refreshes last_seen; a new engine or a new tunnel URL is a feed change.
    const same = await this.#query("UPDATE engines SET last_seen = $1 WHERE id = $2 AND tunnel_url = $3 RETURNING id", [e.lastSeen, e.id, e.tunnelUrl]);
    if (same.length > 0) return;
    await this.#change((q) => q("INSERT INTO engines VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET tunnel_url = excluded.tunnel_url, last_seen = excluded.last_seen",
      [e.id, e.tunnelUrl, e.lastSeen]));
  }

  async listEngines(): Promise<Engine[]> {
    return (await this.#query("SELECT * FROM engines ORDER BY id")).map((row) => ({ id: row.id as string, tunnelUrl: row.tunnel_url as string, lastSeen: row.last_seen as string }));
  }

  async removeEngine(id: string): Promise<boolean> {
    return this.#transaction(async (q) => {
      const gone = await q("DELETE FROM engines WHERE id = $1 RETURNING id", [id]);
      return { result: gone.length > 0, changed: gone.length > 0 };
    });
  }

  async addUser(u: User): Promise<void> {
    await this.#change((q) => q("INSERT INTO users VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
      [u.id, u.tenantId, u.username, u.displayName, u.email, u.passwordHash, u.totpSealed, JSON.stringify(u.roles), u.disabled]));
  }

  async getUser(id: string): Promise<User | null> {
    const row = await this.#one("SELECT * FROM users WHERE id = $1", [id]);
    return row ? userFromRow(row) : null;
  }

  async findUser(tenantId: string, username: string): Promise<User | null> {
    const row = await this.#one("SELECT * FROM users WHERE tenant_id = $1 AND lower(username) = lower($2)", [tenantId, username]);
    return row ? userFromRow(row) : null;
  }

  async listUsers(tenantId: string): Promise<User[]> {
    return (await this.#query("SELECT * FROM users WHERE tenant_id = $1 ORDER BY lower(username)", [tenantId])).map(userFromRow);
  }

  async updateUser(id: string, patch: Parameters<Store["updateUser"]>[1]): Promise<User | null> {
    const columns: Record<string, [string, (v: unknown) => unknown]> = {
      displayName: ["display_name", (v) => v], email: ["email", (v) => v], passwordHash: ["password_hash", (v) => v],
      totpSealed: ["totp_sealed", (v) => v], roles: ["roles", (v) => JSON.stringify(v)], disabled: ["disabled", (v) => v === true],
    };
    const sets = Object.entries(patch).filter(([k, v]) => v !== undefined && columns[k] !== undefined);
    if (sets.length > 0) {
      await this.#change((q) => q(`UPDATE users SET ${sets.map(([k], i) => `${columns[k]![0]} = $${i + 1}`).join(", ")} WHERE id = $${sets.length + 1}`,
        [...sets.map(([k, v]) => columns[k]![1](v)), id]));
    }
    return this.getUser(id);
  }

  async addGroup(g: Group): Promise<void> {
    await this.#change((q) => q("INSERT INTO groups VALUES ($1, $2, $3, $4)", [g.id, g.tenantId, g.name, JSON.stringify(g.members)]));
  }

  async listGroups(tenantId: string): Promise<Group[]> {
    return (await this.#query("SELECT * FROM groups WHERE tenant_id = $1 ORDER BY lower(name)", [tenantId])).map((row) => ({
      id: row.id as string, tenantId: row.tenant_id as string, name: row.name as string, members: json<string[]>(row.members),
    }));
  }

  async removeGroup(tenantId: string, name: string): Promise<boolean> {
    return this.#transaction(async (q) => {
      const gone = await q("DELETE FROM groups WHERE tenant_id = $1 AND lower(name) = lower($2) RETURNING id", [tenantId, name]);
      return { result: gone.length > 0, changed: gone.length > 0 };
    });
  }

  async getCa(tenantId: string): Promise<{ certPem: string; keySealed: Buffer } | null> {
    const row = await this.#one("SELECT * FROM ca WHERE tenant_id = $1", [tenantId]);
    return row ? { certPem: row.cert_pem as string, keySealed: row.key_sealed as Buffer } : null;
  }

  async putCa(tenantId: string, certPem: string, keySealed: Buffer): Promise<{ certPem: string; keySealed: Buffer }> {
    await this.#transaction(async (q) => {
      const inserted = await q("INSERT INTO ca VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING tenant_id", [tenantId, certPem, keySealed]);
      return { result: undefined, changed: inserted.length > 0 };
    });
    return (await this.getCa(tenantId))!;
  }

  async getSecret(name: string): Promise<Buffer | null> {
    return ((await this.#one("SELECT sealed FROM secrets WHERE name = $1", [name]))?.sealed as Buffer | undefined) ?? null;
  }

  async putSecret(name: string, sealed: Buffer, options: { feedChange?: boolean } = {}): Promise<void> {
    await this.#transaction(async (q) => {
      await q("INSERT INTO secrets VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed", [name, sealed]);
      return { result: undefined, changed: options.feedChange === true };
    });
  }

  async swapSecret(name: string, expected: Buffer | null, next: Buffer, options: { feedChange?: boolean } = {}): Promise<Buffer> {
    return this.#transaction(async (q) => {
      // Creating: the insert settles a race on its own. Replacing: the row lock orders racing swaps.
      if (expected === null) {
        const inserted = await q("INSERT INTO secrets VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING sealed", [name, next]);
        if (inserted.length > 0) return { result: next, changed: options.feedChange === true };
        return { result: (await q("SELECT sealed FROM secrets WHERE name = $1", [name]))[0]!.sealed as Buffer, changed: false };
      }
      const current = (await q("SELECT sealed FROM secrets WHERE name = $1 FOR UPDATE", [name]))[0]?.sealed as Buffer | undefined;
      if (current === undefined || !current.equals(expected)) {
        if (current === undefined) throw new PosternError("POSTERN_CONFLICT", `secret ${name} was deleted while it was being replaced`);
        return { result: current, changed: false };
      }
      await q("UPDATE secrets SET sealed = $2 WHERE name = $1", [name, next]);
      return { result: next, changed: options.feedChange === true };
    });
  }

  async deleteSecret(name: string, options: { feedChange?: boolean } = {}): Promise<boolean> {
    return this.#transaction(async (q) => {
      const gone = (await q("DELETE FROM secrets WHERE name = $1 RETURNING name", [name])).length > 0;
      return { result: gone, changed: gone && options.feedChange === true };
    });
  }

  async appendAudit(e: Omit<AuditEntry, "id">): Promise<void> {
    await this.#query("INSERT INTO audit (at, tenant_id, actor, action, target, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)",
      [e.at, e.tenantId, e.actor, e.action, e.target, e.outcome, JSON.stringify(e.detail)]);
  }

  async listAudit(q: Parameters<Store["listAudit"]>[0]): Promise<AuditEntry[]> {
    const where = logFilters([["action = ?", q.action], ["actor = ?", q.actor], ["outcome = ?", q.outcome]], 3);
    return (await this.#query(`SELECT * FROM audit WHERE tenant_id = $1 AND id < $2${where.sql} ORDER BY id DESC LIMIT $3`, [q.tenantId, q.beforeId ?? Number.MAX_SAFE_INTEGER, q.limit, ...where.params]))
      .map(auditFromRow);
  }

  async appendSignIn(e: Omit<SignIn, "id">): Promise<void> {
    await this.#query("INSERT INTO signins (at, tenant_id, username, outcome, reason, client, app, client_ip, transaction_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
      [e.at, e.tenantId, e.username, e.outcome, e.reason, e.client, e.app ?? "", e.clientIp ?? "", e.transactionId ?? ""]);
  }

  async listSignIns(q: Parameters<Store["listSignIns"]>[0]): Promise<SignIn[]> {
    const where = logFilters([["lower(username) = lower(?)", q.username], ["app = ?", q.app], ["outcome = ?", q.outcome]], 3);
    return (await this.#query(`SELECT * FROM signins WHERE tenant_id = $1 AND id < $2${where.sql} ORDER BY id DESC LIMIT $3`, [q.tenantId, q.beforeId ?? Number.MAX_SAFE_INTEGER, q.limit, ...where.params]))
      .map(signInFromRow);
  }

  async addProbe(probe: { id: string; tenantId: string; app: string; group: string; createdAt: string }): Promise<void> {
    await this.#change((q) => q("INSERT INTO probes (id, tenant_id, app, group_name, created_at) VALUES ($1, $2, $3, $4, $5)",
      [probe.id, probe.tenantId, probe.app, probe.group, probe.createdAt]));
  }

  async pendingProbes(tenantId: string, group: string, since: string): Promise<{ id: string; app: string }[]> {
    return (await this.#query("SELECT id, app FROM probes WHERE tenant_id = $1 AND lower(group_name) = lower($2) AND result IS NULL AND created_at >= $3",
      [tenantId, group, since])).map((row) => ({ id: row.id as string, app: row.app as string }));
  }

  async completeProbe(id: string, connectorId: string, result: unknown): Promise<boolean> {
    // The first connector to answer wins, whichever replica it reached; later answers are ignored.
    return (await this.#query("UPDATE probes SET connector_id = $1, result = $2 WHERE id = $3 AND result IS NULL RETURNING id", [connectorId, JSON.stringify(result), id])).length === 1;
  }

  async getProbe(id: string): Promise<{ connectorId: string | null; result: unknown } | null> {
    const row = await this.#one("SELECT connector_id, result FROM probes WHERE id = $1", [id]);
    return row ? { connectorId: (row.connector_id as string | null) ?? null, result: row.result ?? null } : null;
  }

  async oidcUpsert(model: string, id: string, record: OidcRecord, index: { grantId?: string; userCode?: string; uid?: string }): Promise<void> {
    await this.#query(
      "INSERT INTO oidc VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (model, id) DO UPDATE SET payload = excluded.payload, expires_at = excluded.expires_at, grant_id = excluded.grant_id, user_code = excluded.user_code, uid = excluded.uid",
      [model, id, JSON.stringify(record.payload), record.expiresAt, index.grantId ?? null, index.userCode ?? null, index.uid ?? null]);
  }

  async oidcFind(model: string, by: "id" | "uid" | "userCode", value: string, now: number): Promise<OidcRecord | null> {
    const column = by === "id" ? "id" : by === "uid" ? "uid" : "user_code";
    const row = await this.#one(`SELECT payload, expires_at FROM oidc WHERE model = $1 AND ${column} = $2 AND (expires_at IS NULL OR expires_at > $3)`, [model, value, now]);
    return row ? { payload: json<Record<string, unknown>>(row.payload), expiresAt: (row.expires_at as number | null) ?? null } : null;
  }

  async oidcDestroy(model: string, id: string): Promise<void> {
    await this.#query("DELETE FROM oidc WHERE model = $1 AND id = $2", [model, id]);
  }

  async oidcRevokeByGrantId(grantId: string): Promise<void> {
    await this.#query("DELETE FROM oidc WHERE grant_id = $1", [grantId]);
  }

  async oidcConsume(model: string, id: string, at: number): Promise<void> {
    await this.#query("UPDATE oidc SET payload = jsonb_set(payload, '{consumed}', to_jsonb($1::bigint)) WHERE model = $2 AND id = $3", [at, model, id]);
  }
}

/** A unique violation becomes a StoreConflict naming the setting, from the index that refused. */
function conflictFrom(err: unknown): unknown {
  const e = err as { code?: string; constraint?: string };
  if (e?.code !== "23505") return err;
  const field = conflictField(e.constraint ?? "name");
  return new StoreConflict(field, `another record already has this ${field}`);
}
