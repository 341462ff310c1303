/**
 * The configuration feed. Engines and connectors fetch a versioned snapshot of what they need
 * with `GET /api/v1/feed/{engine|connector}?after=V`: when the store's version is already past
 * V the snapshot comes at once, otherwise the request waits (long poll) until a change commits
 * or the wait ends. A change therefore reaches every waiting client within milliseconds, and
 * the clients' periodic pull is the fallback when a long poll is lost. The version only grows,
 * so a client never applies a snapshot older than the one it has.
 */
import type { ConnectorConfig, EngineConfig } from "./contract/feed.js";
import { clientSecretName, usesExternalIssuer } from "./apps.js";
import { BACKEND_TIMEOUT_MS } from "./contract/apps.js";
import type { LifecyclePolicy } from "./context.js";
import type { Sealer } from "./secrets.js";
import type { App, Store } from "./store/types.js";
import { assertionKey, sessionKeys } from "./auth-keys.js";

/** A probe nobody answered within this is dropped from the feed, ms. */
export const PROBE_TTL_MS = 60_000;

export class FeedHub {
  readonly #waiters = new Set<() => void>();
  readonly #unsubscribe: () => void;

  constructor(private readonly store: Store) {
    this.#unsubscribe = store.onChange(() => {
      const waiters = [...this.#waiters];
      this.#waiters.clear();
      for (const wake of waiters) wake();
    });
  }

  /** Resolves with the current version once it passes `after`, or after `timeoutMs` (or on abort). */
  async waitPast(after: number, timeoutMs: number, signal: AbortSignal): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const version = await this.store.configVersion();
      const left = deadline - Date.now();
      if (version > after || left <= 0 || signal.aborted) return version;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          this.#waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, left);
        signal.addEventListener("abort", done, { once: true });
        this.#waiters.add(done);
      });
    }
  }

  get waiting(): number {
    return this.#waiters.size;
  }

  close(): void {
    this.#unsubscribe();
    for (const wake of [...this.#waiters]) wake();
  }
}

export async function connectorConfig(store: Store, connectorId: string, policy: LifecyclePolicy): Promise<ConnectorConfig | null> {
  // Read the version first: a change landing mid-build only makes the snapshot newer than its label.
  const version = await store.configVersion();
  const connector = await store.getConnector(connectorId);
  if (connector === null) return null;
  const apps = (await store.listApps(connector.tenantId)).filter((a) => a.settings.connectorGroup.toLowerCase() === connector.group.toLowerCase());
  const engines = (await store.listEngines()).map((e) => e.tunnelUrl).filter((u) => u !== "");
  return {
    version,
    connectorId,
    group: connector.group,
    engines,
    apps: apps.map((a) => ({
      name: a.settings.name,
      internalUrl: a.settings.internalUrl,
      validateBackendTls: a.settings.validateBackendTls,
      backendTimeoutMs: BACKEND_TIMEOUT_MS[a.settings.backendTimeout],
    })),
    renewAfterDays: policy.renewAfterDays,
    probes: await store.pendingProbes(connector.tenantId, connector.group, new Date(Date.now() - PROBE_TTL_MS).toISOString()),
  };
}

/** The app's client secret at its external issuer, for the engine's token requests. */
async function clientSecret(store: Store, sealer: Sealer, app: App): Promise<{ oidcClientSecret?: string }> {
  if (!usesExternalIssuer(app.settings)) return {};
  const name = clientSecretName(app.id);
  const sealed = await store.getSecret(name);
  return sealed ? { oidcClientSecret: sealer.open(sealed, name).toString() } : {};
}

export async function engineConfig(store: Store, sealer: Sealer, auth: { builtInIssuer: string | undefined; now: Date }): Promise<EngineConfig> {
  const version = await store.configVersion();
  const tenants = await store.listTenants();
  const certificates = await store.listCertificates();
  const connectors = await store.listConnectors();
  const groups = (await Promise.all(tenants.map((t) => store.listConnectorGroups(t.id)))).flat();
  const apps = await store.listApps();
  const domainCertificates: EngineConfig["certificates"][number][] = [];
  for (const app of apps) {
    if (!app.certificate) continue;
    // Every upload is sealed as PEM (PFX is converted when it is accepted).
    const pem = sealer.open(app.certificate.sealed, `domain-cert:${app.settings.externalUrl}`).toString();
    const keyPem = pem.match(/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----/)?.[0];
    const certPem = (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).join("\n");
    if (keyPem && certPem) {
      domainCertificates.push({ host: new URL(app.settings.externalUrl).hostname, certPem: `${certPem}\n`, keyPem: `${keyPem}\n`, fingerprint: app.certificate.fingerprintSha256 });
    }
  }
  return {
    version,
    engines: Math.max(1, (await store.listEngines()).length),
    apps: await Promise.all(apps.map(async (a) => ({ ...a.settings, id: a.id, tenantId: a.tenantId, ...(await clientSecret(store, sealer, a)) }))),
    connectorGroups: groups.map((g) => ({ tenantId: g.tenantId, name: g.name })),
    connectors: connectors.map((c) => ({
      id: c.id,
      tenantId: c.tenantId,
      group: c.group,
      status: c.status,
      serials: certificates.filter((cert) => cert.subjectId === c.id && cert.revokedAt === null).map((cert) => cert.serial),
    })),
    revokedSerials: certificates.filter((cert) => cert.revokedAt !== null).map((cert) => cert.serial),
    certificates: domainCertificates,
    auth: {
      builtInIssuer: auth.builtInIssuer ?? "",
      sessionKeys: await sessionKeys(store, sealer, auth.now),
      assertionKey: await assertionKey(store, sealer),
    },
  };
}
