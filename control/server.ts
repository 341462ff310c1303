/**
 * The control plane process: store, tenant CA, built-in IdP (or trust in an external issuer),
 * admin API with its OpenAPI document, the config feed and the inactivity sweeper, behind one
 * node:http(s) server. Control is not on the request path, so plain Node HTTP is the right
 * tool here; oidc-provider needs it anyway.
 */
import { randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync, renameSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { Logger } from "pino";
import { VERSION } from "../engine/version.js";
import { TenantCa } from "./ca.js";
import { CREDENTIAL_FILE, lifecyclePolicySchema, type ControlContext } from "./context.js";
import { z } from "zod";
import { integer, port, resolveSettings } from "../engine/config/settings.js";
import { FeedHub } from "./feed.js";
import { CONTROL_API_AUDIENCE } from "./idp/constants.js";
import { BuiltInIdp } from "./idp/provider.js";
import { hashPassword } from "./idp/passwords.js";
import { checkMasterKey, loadMasterKey } from "./secrets.js";
import { openSqliteStore } from "./store/sqlite.js";
import { openPostgresStore } from "./store/postgres.js";
import { StoreConflict, type Role, type Store } from "./store/types.js";
import { appRoutes, type EdgeDefaults } from "./api/apps.js";
import { createAuthenticator, discoverIssuer } from "./api/auth.js";
import { connectorRoutes, sweepInactive, sweepSilentEngines } from "./api/connectors.js";
import { directoryRoutes } from "./api/directory.js";
import { openApiDocument } from "./api/openapi.js";
import { Router, sendJson, type Route } from "./api/router.js";
import { PosternError } from "../engine/errors/catalogue.js";
import { type Clock, systemClock } from "../engine/config/clock.js";
import { processLogger } from "../engine/config/logger.js";
import { certificateMetric, processRegistry, serveMetrics } from "../engine/metrics/registry.js";
import { ControlMetrics } from "./metrics.js";
import { serveConsole } from "./console.js";

/** Control's numeric and address settings, validated once at start. */
export const controlSettingsSchema = z.object({
  /** Listen address. */
  host: z.string().min(1).default("127.0.0.1"),
  /** Listen port; 0 picks a free port. */
  port: port(0),
  /** How often to look for inactive connectors, ms; 0 disables the timer. */
  sweepIntervalMs: integer(0, 86_400_000, 3_600_000), // 1 h
  /** Prometheus /metrics listener; unset port: no listener. 0 picks a free port. */
  metricsHost: z.string().min(1).default("127.0.0.1"),
  metricsPort: port(0).optional(),
  /** How often to drop engines that went silent, ms; 0 disables the timer. */
  engineSweepMs: integer(0, 3_600_000, 5_000), // 5 s
  /** An engine not heard from for this long has left: connectors stop dialling it, ms (engines poll at least every 25 s). */
  engineSilentMs: integer(1_000, 86_400_000, 60_000), // 60 s
  policy: lifecyclePolicySchema.prefault({}),
}).strict();

export interface ControlOptions {
  /** Holds control.db, master.key and the local admin credential. */
  readonly dataDir: string;
  /** `postgres://...`: a store shared with other control replicas; default SQLite in dataDir. */
  readonly store?: string;
  readonly host?: string;
  readonly port?: number;
  /** `self`: HTTPS with a certificate from the tenant CA; `off`: plain HTTP (loopback demos); or PEM files. */
  readonly tls?: "self" | "off" | { readonly certPem: string; readonly keyPem: string };
  /** The URL clients use; default `http(s)://host:port`. */
  readonly publicUrl?: string;
  /** External OIDC issuer instead of the built-in IdP. */
  readonly externalIdp?: { readonly discoveryUrl: string; readonly audience: string; readonly rolesClaim?: string };
  readonly tenant?: { readonly name: string; readonly domainSuffix: string };
  readonly edge?: EdgeDefaults;
  readonly policy?: z.input<typeof lifecyclePolicySchema>;
  readonly masterKey?: string;
  readonly now?: Clock;
  readonly logger?: Logger;
  readonly sweepIntervalMs?: number;
  readonly engineSweepMs?: number;
  readonly engineSilentMs?: number;
  readonly metricsHost?: string;
  readonly metricsPort?: number;
}

export interface ControlHandle {
  /** The URL clients use (the public URL when set: a load balancer in front of replicas). */
  readonly url: string;
  /** Where this process itself listens. */
  readonly address: string;
  /** The /metrics listener's port, when it listens. */
  readonly metricsPort: number | undefined;
  readonly caCertPem: string;
  readonly context: ControlContext;
  readonly routes: readonly Route[];
  /** Writes `<dataDir>/credentials.json` (mode 0600) with a Global Administrator token, like a kubeconfig. */
  writeLocalCredential(ttlSeconds?: number): Promise<string>;
  /** Sets the scheme and port of the engine's public listener used in default external URLs. */
  setEdgeDefaults(edge: EdgeDefaults): void;
  /** Mints a built-in IdP access token (tests, `postern up`); throws with an external IdP. */
  /** An access token from the built-in IdP; `audience` defaults to the control API (an app's URL makes a bearer token for that app). */
  mintToken(claims: { sub?: string; name: string; roles: readonly (Role | string)[]; groups?: readonly string[]; amr?: readonly string[]; scope?: string }, ttlSeconds?: number, audience?: string): Promise<string>;
  /** Adds a user to the built-in IdP directly (first run of `postern up`). */
  ensureUser(user: { username: string; password: string; roles: readonly Role[] }): Promise<void>;
  sweep(): Promise<number>;
  close(): Promise<void>;
}

const DEFAULT_TENANT_ID = "default";

export async function startControl(options: ControlOptions): Promise<ControlHandle> {
  const log = options.logger ?? processLogger("control");
  const now = options.now ?? systemClock;
  const settings = resolveSettings(controlSettingsSchema, {
    host: options.host, port: options.port, sweepIntervalMs: options.sweepIntervalMs, engineSweepMs: options.engineSweepMs,
    engineSilentMs: options.engineSilentMs, policy: options.policy, metricsHost: options.metricsHost, metricsPort: options.metricsPort,
  }, "control");
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  const shared = options.store !== undefined;
  const sealer = loadMasterKey({ envValue: options.masterKey ?? process.env.POSTERN_MASTER_KEY, keyFile: join(options.dataDir, "master.key"), shared });
  const store: Store = shared ? await openPostgresStore({ url: options.store!, logger: log }) : openSqliteStore(join(options.dataDir, "control.db"));
  try {
    await checkMasterKey(store, sealer);
  } catch (err) {
    await store.close();
    throw err;
  }
  const tenantSpec = options.tenant ?? { name: "default", domainSuffix: "localhost" };
  const tenant = await store.ensureTenant({ id: DEFAULT_TENANT_ID, name: tenantSpec.name, domainSuffix: tenantSpec.domainSuffix });
  if (!(await store.listConnectorGroups(tenant.id)).some((g) => g.name === "Default")) {
    // Another replica starting at the same moment may add it first.
    await store.addConnectorGroup(tenant.id, "Default").catch((err: unknown) => {
      if (!(err instanceof StoreConflict)) throw err;
    });
  }
  const ca = await TenantCa.open(store, sealer, tenant.id, new Date(now()));
  const feed = new FeedHub(store);
  const policy = settings.policy;
  const registry = processRegistry("control");
  const metrics = new ControlMetrics(registry, store, feed);
  const context: ControlContext = { store, sealer, tenant, ca, feed, policy, now, idp: {}, metrics };

  const host = settings.host;
  const tlsMode = options.tls ?? "self";
  let tls: { cert: string; key: string } | undefined;
  if (tlsMode === "self") {
    const hosts = [...new Set([host, "localhost", "127.0.0.1", ...(options.publicUrl ? [new URL(options.publicUrl).hostname] : [])])].filter((h) => h !== "0.0.0.0" && h !== "::");
    const issued = await ca.issueServerCert("control", "control", hosts, policy.certificateDays, new Date(now()));
    tls = { cert: issued.certPem, key: issued.keyPem };
  } else if (tlsMode !== "off") {
    tls = { cert: tlsMode.certPem, key: tlsMode.keyPem };
  }

  let handler: (req: IncomingMessage, res: ServerResponse) => void = () => undefined;
  const server: Server = tls
    ? createHttpsServer({ cert: tls.cert, key: tls.key }, (req, res) => handler(req, res))
    : createHttpServer((req, res) => handler(req, res));
  server.headersTimeout = 10_000;
  server.requestTimeout = 120_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(settings.port, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const address = `${tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${port}`;
  const url = (options.publicUrl ?? address).replace(/\/$/, "");

  let idp: BuiltInIdp | undefined;
  let authenticator;
  if (options.externalIdp) {
    const discovered = await discoverIssuer(options.externalIdp.discoveryUrl);
    authenticator = createAuthenticator({
      trust: { issuer: discovered.issuer, audience: options.externalIdp.audience, rolesClaim: options.externalIdp.rolesClaim ?? "roles" },
      jwksUri: discovered.jwksUri, store, caCertPem: () => ca.certPem, now,
    });
  } else {
    idp = await BuiltInIdp.create({ store, sealer, tenantId: tenant.id, issuer: `${url}/oidc`, now, onSignIn: (result) => metrics.signIn("idp", result) });
    context.idp.issuer = idp.issuer;
    authenticator = createAuthenticator({
      trust: { issuer: idp.issuer, audience: CONTROL_API_AUDIENCE, jwks: idp.publicJwks, rolesClaim: "roles" },
      store, caCertPem: () => ca.certPem, now,
    });
  }

  // Read by the app routes at request time, so the edge's address can be set once it listens.
  const edge: { scheme: "http" | "https"; port?: number } = { ...(options.edge ?? { scheme: "https" }) };
  const routes: Route[] = [...appRoutes(context, edge), ...connectorRoutes(context), ...directoryRoutes(context)];
  let closing = false;
  const router = new Router(routes, authenticator, async (entry) => {
    await store.appendAudit({ ...entry, at: new Date(now()).toISOString(), tenantId: tenant.id });
  }, (err, requestId) => {
    // While closing, long polls that wake up find the store gone: expected, not worth an error line.
    if (!closing) log.error({ err, requestId }, "control API internal error");
  });
  router.onAnswered = (route, status, seconds) => metrics.answered(route, status, seconds);
  const openApi = JSON.stringify(openApiDocument(routes, VERSION));

  handler = (req, res) => {
    const path = (req.url ?? "/").split("?")[0]!;
    if (path === "/oidc" || path.startsWith("/oidc/")) {
      if (idp) return idp.handle(req, res, "/oidc");
      return sendJson(res, 404, { error: { code: "POSTERN_NOT_FOUND", message: "this control uses an external identity provider", requestId: randomUUID() } });
    }
    if (path === "/api/v1/openapi.json") {
      res.writeHead(200, { "content-type": "application/json; charset=utf-8" });
      res.end(openApi);
      return;
    }
    if (path === "/healthz") return sendJson(res, 200, { status: "ok" });
    if (serveConsole(req, res, path, { issuer: idp?.issuer, controlUrl: url })) return;
    router.handle(req, res).catch((err: unknown) => log.error({ err }, "control request failed"));
  };

  const sweepMs = settings.sweepIntervalMs;
  const sweep = async () => {
    const n = await sweepInactive(context);
    if (n > 0) log.info({ connectors: n }, "marked idle connectors inactive");
    return n;
  };
  const timer = sweepMs > 0 ? setInterval(() => void sweep().catch((err: unknown) => log.error({ err }, "inactivity sweep failed")), sweepMs) : undefined;
  timer?.unref();
  // Every replica sweeps: removing an engine twice is harmless, and no replica is special.
  const engineTimer = settings.engineSweepMs > 0
    ? setInterval(() => void sweepSilentEngines(context, settings.engineSilentMs)
      .then((gone) => gone.length > 0 && log.info({ engines: gone }, "engines went silent: connectors stop dialling them"))
      .catch((err: unknown) => !closing && log.error({ err }, "engine sweep failed")), settings.engineSweepMs)
    : undefined;
  engineTimer?.unref();
  if (tls) certificateMetric(registry, () => tls.cert);
  const metricsListener = settings.metricsPort === undefined ? undefined : await serveMetrics(registry, settings.metricsHost, settings.metricsPort);
  log.info({ url, tls: Boolean(tls), idp: idp ? idp.issuer : options.externalIdp?.discoveryUrl, ...(metricsListener ? { metricsPort: metricsListener.port } : {}) }, "control listening");

  const mintToken: ControlHandle["mintToken"] = async (claims, ttlSeconds = 3600, audience) => {
    if (!idp) throw new PosternError("POSTERN_CONFIG", "tokens can only be minted by the built-in IdP");
    return idp.mintToken({ ...claims, sub: claims.sub ?? `local:${claims.name}` }, ttlSeconds, audience);
  };

  return {
    url,
    address,
    metricsPort: metricsListener?.port,
    caCertPem: ca.certPem,
    context,
    routes,
    mintToken,
    setEdgeDefaults(next) {
      edge.scheme = next.scheme;
      if (next.port === undefined) delete edge.port;
      else edge.port = next.port;
    },
    async writeLocalCredential(ttlSeconds = 30 * 86_400) {
      const token = await mintToken({ sub: "local-admin", name: "local-admin", roles: ["Global Administrator"] }, ttlSeconds);
      const file = join(options.dataDir, CREDENTIAL_FILE);
      writeFileSync(`${file}.tmp`, JSON.stringify({ control: url, token, caCertificate: ca.certPem }, null, 2) + "\n", { mode: 0o600 });
      renameSync(`${file}.tmp`, file);
      return file;
    },
    async ensureUser(user) {
      if (await store.findUser(tenant.id, user.username)) return;
      await store.addUser({
        id: randomUUID(), tenantId: tenant.id, username: user.username, displayName: user.username, email: "",
        passwordHash: await hashPassword(user.password), totpSealed: null, roles: user.roles, disabled: false,
      }).catch((err: unknown) => {
        if (!(err instanceof StoreConflict)) throw err; // added by another replica meanwhile
      });
    },
    sweep,
    async close() {
      closing = true;
      if (timer) clearInterval(timer);
      if (engineTimer) clearInterval(engineTimer);
      feed.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await metricsListener?.close();
      await store.close();
    },
  };
}
