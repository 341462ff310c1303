-- The control store's schema on PostgreSQL (node-pg-migrate, SQL migrations; never edit a shipped one).
-- Names are unique per tenant whatever their case, as on SQLite (COLLATE NOCASE there, lower() here).

-- Up Migration
CREATE TABLE config_state (id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL);
INSERT INTO config_state VALUES (1, 0);
CREATE TABLE tenants (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, domain_suffix TEXT NOT NULL);
CREATE TABLE apps (
  id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
  name TEXT NOT NULL, internal_url TEXT NOT NULL, external_url TEXT NOT NULL,
  settings JSONB NOT NULL, certificate JSONB, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE UNIQUE INDEX apps_name ON apps (tenant_id, lower(name));
CREATE UNIQUE INDEX apps_internal_url ON apps (tenant_id, lower(internal_url));
CREATE UNIQUE INDEX apps_external_url ON apps (lower(external_url));
CREATE TABLE connector_groups (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), name TEXT NOT NULL);
CREATE UNIQUE INDEX connector_groups_name ON connector_groups (tenant_id, lower(name));
CREATE TABLE connectors (
  id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), group_name TEXT NOT NULL, host_name TEXT NOT NULL,
  version TEXT NOT NULL, cert_serial TEXT NOT NULL, cert_fingerprint TEXT NOT NULL, cert_not_before TEXT NOT NULL,
  cert_not_after TEXT NOT NULL, last_seen TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE certificates (serial TEXT PRIMARY KEY, kind TEXT NOT NULL, subject_id TEXT NOT NULL, fingerprint TEXT NOT NULL,
  not_before TEXT NOT NULL, not_after TEXT NOT NULL, revoked_at TEXT);
CREATE INDEX certificates_subject ON certificates (subject_id);
CREATE TABLE engines (id TEXT PRIMARY KEY, tunnel_url TEXT NOT NULL, last_seen TEXT NOT NULL);
CREATE TABLE users (
  id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), username TEXT NOT NULL,
  display_name TEXT NOT NULL, email TEXT NOT NULL, password_hash TEXT NOT NULL, totp_sealed BYTEA, roles JSONB NOT NULL,
  disabled BOOLEAN NOT NULL DEFAULT false);
CREATE UNIQUE INDEX users_username ON users (tenant_id, lower(username));
CREATE TABLE groups (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), name TEXT NOT NULL, members JSONB NOT NULL);
CREATE UNIQUE INDEX groups_name ON groups (tenant_id, lower(name));
CREATE TABLE ca (tenant_id TEXT PRIMARY KEY REFERENCES tenants(id), cert_pem TEXT NOT NULL, key_sealed BYTEA NOT NULL);
CREATE TABLE secrets (name TEXT PRIMARY KEY, sealed BYTEA NOT NULL);
CREATE TABLE audit (id BIGSERIAL PRIMARY KEY, at TEXT NOT NULL, tenant_id TEXT NOT NULL, actor TEXT NOT NULL,
  action TEXT NOT NULL, target TEXT NOT NULL, outcome TEXT NOT NULL, detail JSONB NOT NULL);
CREATE INDEX audit_tenant ON audit (tenant_id, id DESC);
CREATE TABLE signins (id BIGSERIAL PRIMARY KEY, at TEXT NOT NULL, tenant_id TEXT NOT NULL, username TEXT NOT NULL,
  outcome TEXT NOT NULL, reason TEXT NOT NULL, client TEXT NOT NULL, app TEXT NOT NULL DEFAULT '',
  client_ip TEXT NOT NULL DEFAULT '', transaction_id TEXT NOT NULL DEFAULT '');
CREATE INDEX signins_tenant ON signins (tenant_id, id DESC);
CREATE TABLE oidc (model TEXT NOT NULL, id TEXT NOT NULL, payload JSONB NOT NULL, expires_at BIGINT, grant_id TEXT,
  user_code TEXT, uid TEXT, PRIMARY KEY (model, id));
CREATE INDEX oidc_grant ON oidc (grant_id);
CREATE INDEX oidc_uid ON oidc (model, uid);
CREATE INDEX oidc_user_code ON oidc (model, user_code);
CREATE TABLE probes (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, app TEXT NOT NULL, group_name TEXT NOT NULL,
  created_at TEXT NOT NULL, connector_id TEXT, result JSONB);

-- Down Migration
DROP TABLE probes, oidc, signins, audit, secrets, ca, groups, users, engines, certificates, connectors, connector_groups, apps, tenants, config_state;
