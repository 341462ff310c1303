-- Live tunnels per engine, as each connector reports them on its feed requests.

-- Up Migration
ALTER TABLE connectors ADD COLUMN tunnels JSONB NOT NULL DEFAULT '{}';

-- Down Migration
ALTER TABLE connectors DROP COLUMN tunnels;
