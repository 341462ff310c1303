/**
 * Rows to records, for every SQL store: SQLite hands JSON columns back as text and booleans as
 * 0/1, PostgreSQL as parsed jsonb and booleans; the mappers here take either, so each record
 * shape is read in one place.
 */
import type { AppSettings } from "../contract/apps.js";
import type { App, AuditEntry, Connector, IssuedCertificate, Role, SignIn, StoredDomainCertificate, User } from "./types.js";

export type Row = Record<string, unknown>;

/** A JSON column: text on SQLite, already parsed on PostgreSQL. */
export function json<T>(value: unknown): T {
  return (typeof value === "string" ? JSON.parse(value) : value) as T;
}

/** The stored form of a domain certificate: its sealed bytes as base64 inside the JSON. */
export function certificateColumn(certificate: StoredDomainCertificate | null): string | null {
  return certificate === null ? null : JSON.stringify({ ...certificate, sealed: certificate.sealed.toString("base64") });
}

export function appFromRow(row: Row): App {
  const cert = row.certificate === null ? null : json<StoredDomainCertificate & { sealed: string }>(row.certificate);
  return {
    id: row.id as string,
    tenantId: row.tenant_id as string,
    settings: Object.freeze(json<AppSettings>(row.settings)),
    certificate: cert === null ? null : { ...cert, sealed: Buffer.from(cert.sealed, "base64") },
    createdAt: row.created_at as string,
    updatedAt: row.updated_at as string,
  };
}

export function connectorFromRow(row: Row): Connector {
  return {
    id: row.id as string, tenantId: row.tenant_id as string, group: row.group_name as string, hostName: row.host_name as string,
    version: row.version as string, certSerial: row.cert_serial as string, certFingerprint: row.cert_fingerprint as string,
    certNotBefore: row.cert_not_before as string, certNotAfter: row.cert_not_after as string, lastSeen: row.last_seen as string,
    status: row.status as Connector["status"], createdAt: row.created_at as string, tunnels: json<Record<string, number>>(row.tunnels ?? "{}"),
  };
}

export function certificateFromRow(row: Row): IssuedCertificate {
  return {
    serial: row.serial as string, kind: row.kind as IssuedCertificate["kind"], subjectId: row.subject_id as string,
    fingerprint: row.fingerprint as string, notBefore: row.not_before as string, notAfter: row.not_after as string,
    revokedAt: (row.revoked_at as string | null) ?? null,
  };
}

export function userFromRow(row: Row): User {
  return {
    id: row.id as string, tenantId: row.tenant_id as string, username: row.username as string, displayName: row.display_name as string,
    email: row.email as string, passwordHash: row.password_hash as string, totpSealed: (row.totp_sealed as Buffer | null) ?? null,
    roles: json<Role[]>(row.roles), disabled: row.disabled === 1 || row.disabled === true,
  };
}

export function auditFromRow(row: Row): AuditEntry {
  return {
    id: Number(row.id), at: row.at as string, tenantId: row.tenant_id as string, actor: row.actor as string, action: row.action as string,
    target: row.target as string, outcome: row.outcome as AuditEntry["outcome"], detail: json<Record<string, unknown>>(row.detail),
  };
}

export function signInFromRow(row: Row): SignIn {
  return {
    id: Number(row.id), at: row.at as string, tenantId: row.tenant_id as string, username: row.username as string,
    outcome: row.outcome as SignIn["outcome"], reason: row.reason as string, client: row.client as string,
    app: row.app as string, clientIp: row.client_ip as string, transactionId: row.transaction_id as string,
  };
}

export function tenantFromRow(row: Row): { id: string; name: string; domainSuffix: string } {
  return { id: row.id as string, name: row.name as string, domainSuffix: row.domain_suffix as string };
}

/** The setting a uniqueness clash is about, from the clashing column or index name. */
export function conflictField(name: string): string {
  if (name.includes("internal_url")) return "internalUrl";
  if (name.includes("external_url")) return "externalUrl";
  if (name.includes("username")) return "username";
  return "name";
}

/**
 * The optional exact-match filters of a log query as an SQL tail (" AND a = ? AND b = ?") with
 * its parameters; `numbered` after N parameters turns each ? into PostgreSQL's $N+1, $N+2, ...
 * The column texts are the code's own, never input.
 */
export function logFilters(filters: readonly (readonly [string, string | undefined])[], numbered?: number): { sql: string; params: string[] } {
  const used = filters.filter((f): f is readonly [string, string] => f[1] !== undefined && f[1] !== "");
  let n = numbered ?? 0;
  const sql = used.map(([clause]) => ` AND ${numbered === undefined ? clause : clause.replace("?", () => `$${++n}`)}`).join("");
  return { sql, params: used.map(([, value]) => value) };
}
