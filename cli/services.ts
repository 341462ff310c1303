/**
 * Long-running processes and identity commands: `postern control`, `postern engine`,
 * `postern connector register|run|list|disable|enable|remove`, `postern user add`.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ADMIN_HELP, ADMIN_OPTIONS, UsageError, adminCall, defaultDataDir, resolveAdmin, table, type AdminTarget } from "./admin.js";
import { deviceLogin } from "./login.js";
import { DEFAULTS, numberFlag, portFlag, rateLimits } from "./flags.js";
import { availableParallelism } from "node:os";
import { VERSION } from "../engine/version.js";

export { VERSION };

/** `--metrics-port N [--metrics-host H]`: where a process serves Prometheus /metrics. */
function metricsFlags(v: { "metrics-port"?: string | undefined; "metrics-host"?: string | undefined }): { metricsPort?: number; metricsHost?: string } {
  return {
    ...(v["metrics-port"] !== undefined ? { metricsPort: portFlag(v["metrics-port"], "metrics-port", 0) } : {}),
    ...(v["metrics-host"] !== undefined ? { metricsHost: v["metrics-host"] } : {}),
  };
}

/** Resolves on SIGINT/SIGTERM with the signal's name. */
export function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    const done = (signal: string) => {
      process.off("SIGINT", done);
      process.off("SIGTERM", done);
      resolve(signal);
    };
    process.once("SIGINT", done);
    process.once("SIGTERM", done);
  });
}

const CONTROL_HELP = `Usage: postern control [options]

Runs the control plane: store (SQLite in --data-dir), tenant CA, built-in IdP, admin API
(/api/v1, OpenAPI at /api/v1/openapi.json) and the config feed. Writes a Global Administrator
credential to DIR/credentials.json (mode 0600) for the CLI, and the tenant CA to DIR/tenant-ca.crt.

Options:
  --data-dir DIR             State directory (default $POSTERN_DATA_DIR or ~/.local/share/postern)
  --store postgres://...     Share a PostgreSQL store with other control replicas (default: SQLite
                             in --data-dir); every replica needs the same POSTERN_MASTER_KEY
  --host H                   Listen address (default 127.0.0.1)
  --port N                   Listen port (default ${DEFAULTS.controlPort}; 0 picks a free one)
  --tls self|off             HTTPS with a tenant-CA certificate (default), or plain HTTP
  --tls-cert F --tls-key F   HTTPS with your own certificate
  --public-url URL           The URL clients use, when it differs from host:port
  --oidc-discovery URL       Trust an external IdP instead of the built-in one
  --oidc-audience A          Audience of the external IdP's access tokens
  --roles-claim C            Claim holding roles (default roles)
  --renew-after-days N       Connector certificate renewal age (default 180)
  --inactive-after-days N    Idle connectors become inactive after (default 10)
  --domain-suffix S          Default external domains <app>.<tenant>.S (default localhost)
  --metrics-port N           Prometheus /metrics on 127.0.0.1:N (--metrics-host H to change; default off)
  --json                     Print one JSON line when ready
  -h, --help                 Show this help
`;

export async function runControl(args: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args,
    options: {
      "data-dir": { type: "string" }, store: { type: "string" }, host: { type: "string", default: "127.0.0.1" }, port: { type: "string" },
      tls: { type: "string", default: "self" }, "tls-cert": { type: "string" }, "tls-key": { type: "string" }, "public-url": { type: "string" },
      "oidc-discovery": { type: "string" }, "oidc-audience": { type: "string" }, "roles-claim": { type: "string" },
      "renew-after-days": { type: "string" }, "inactive-after-days": { type: "string" }, "domain-suffix": { type: "string" },
      "metrics-port": { type: "string" }, "metrics-host": { type: "string" },
      json: { type: "boolean", default: false }, help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (v.help) {
    process.stdout.write(CONTROL_HELP);
    return 0;
  }
  const { readFileSync } = await import("node:fs");
  const { startControl } = await import("../control/server.js");
  if (v.tls !== "self" && v.tls !== "off") throw new UsageError(`--tls must be self or off, got "${v.tls}"`);
  if ((v["tls-cert"] === undefined) !== (v["tls-key"] === undefined)) throw new UsageError("--tls-cert and --tls-key go together");
  if (v["oidc-discovery"] !== undefined && v["oidc-audience"] === undefined) throw new UsageError("--oidc-discovery needs --oidc-audience");
  const dataDir = v["data-dir"] ?? defaultDataDir();
  const control = await startControl({
    dataDir,
    ...(v.store !== undefined ? { store: v.store } : {}),
    ...metricsFlags(v),
    host: v.host,
    port: portFlag(v.port, "port", DEFAULTS.controlPort),
    tls: v["tls-cert"] ? { certPem: readFileSync(v["tls-cert"], "utf8"), keyPem: readFileSync(v["tls-key"]!, "utf8") } : (v.tls as "self" | "off"),
    ...(v["public-url"] ? { publicUrl: v["public-url"] } : {}),
    ...(v["oidc-discovery"] ? { externalIdp: { discoveryUrl: v["oidc-discovery"], audience: v["oidc-audience"]!, ...(v["roles-claim"] ? { rolesClaim: v["roles-claim"] } : {}) } } : {}),
    ...(v["domain-suffix"] ? { tenant: { name: "default", domainSuffix: v["domain-suffix"] } } : {}),
    policy: {
      renewAfterDays: numberFlag(v["renew-after-days"], "renew-after-days", DEFAULTS.renewAfterDays, { min: 1 }),
      inactiveAfterDays: numberFlag(v["inactive-after-days"], "inactive-after-days", DEFAULTS.inactiveAfterDays, { min: 1 }),
    },
  });
  const caFile = join(dataDir, "tenant-ca.crt");
  writeFileSync(caFile, control.caCertPem);
  const credential = v["oidc-discovery"] ? undefined : await control.writeLocalCredential();
  const ready = { control: control.url, caFile, ...(credential ? { credential } : {}) };
  process.stdout.write(v.json ? JSON.stringify(ready) + "\n" : `Control plane at ${control.url}\n  tenant CA: ${caFile}\n${credential ? `  admin credential: ${credential}\n` : ""}`);
  await untilSignal();
  await control.close();
  return 0;
}

const ENGINE_HELP = `Usage: postern engine [options]

Runs an engine node. On first run it enrols with control (key and CSR made here; needs an
admin token, or a local deployment's --data-dir), then pulls its configuration and accepts
connector tunnels.

Options:
  --state-dir DIR       Engine identity (default DATA_DIR/engine)
  --tunnel-host H       Tunnel listen address (default 127.0.0.1)
  --tunnel-port N       Tunnel listen port (default ${DEFAULTS.tunnelPort})
  --tunnel-url URL      wss:// URL connectors dial (default from host and port)
  --public-host H       Public listeners' address (default 127.0.0.1)
  --http-port N         Public HTTP port (default ${DEFAULTS.httpPort}; 0 picks a free one)
  --https-port N        Public HTTPS port (default: none)
  --app-rate N          Requests/s per app (default 500; 0 = no limit)
  --tenant-rate N       Requests/s per tenant (default 750; 0 = no limit)
  --redis URL           redis://host:port shared by every engine: rate limits counted across
                        engines, sign-outs refused everywhere, sign-ins single-use everywhere
  --trusted-proxy A     A load balancer's address or CIDR range (repeat): its X-Forwarded-For
                        names the client; anyone else's is ignored
  --metrics-port N      Prometheus /metrics on 127.0.0.1:N (--metrics-host H to change; default off)
  --workers N           Worker processes, each a full data plane sharing the ports (default: one
                        per CPU); a worker that dies is replaced, SIGTERM drains them all
${ADMIN_HELP}`;

export async function runEngine(args: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args,
    options: {
      ...ADMIN_OPTIONS, "state-dir": { type: "string" }, "tunnel-host": { type: "string", default: "127.0.0.1" }, "tunnel-port": { type: "string" },
      "tunnel-url": { type: "string" }, "public-host": { type: "string", default: "127.0.0.1" }, "http-port": { type: "string" }, "https-port": { type: "string" },
      "app-rate": { type: "string" }, "tenant-rate": { type: "string" }, redis: { type: "string" }, "trusted-proxy": { type: "string", multiple: true },
      "metrics-port": { type: "string" }, "metrics-host": { type: "string" }, workers: { type: "string" },
    },
    strict: true,
  });
  if (v.help) {
    process.stdout.write(ENGINE_HELP);
    return 0;
  }
  const { identityExists } = await import("../engine/identity/files.js");
  const { enroll } = await import("../control/client/enroll.js");
  const { EngineNode, leaveEngine } = await import("../engine/node.js");
  const { workerPlace, reportReady, supervise } = await import("../engine/process/supervisor.js");
  const stateDir = v["state-dir"] ?? join(v["data-dir"] ?? defaultDataDir(), "engine");
  const port = portFlag(v["tunnel-port"], "tunnel-port", DEFAULTS.tunnelPort);
  const worker = workerPlace();
  const workers = worker?.count ?? numberFlag(v.workers, "workers", availableParallelism(), { min: 1, max: 256 });
  if (workers > 1 && port === 0) throw new UsageError("--workers above 1 needs a fixed --tunnel-port: every worker listens on it");
  const metrics = metricsFlags(v);
  if (workers > 1 && !worker) {
    // The primary: enrols once, then forks the workers and supervises them.
    if (!identityExists(stateDir, "engine")) await enrollEngine();
    (await import("../engine/identity/files.js")).loadIdentity(stateDir, "engine"); // refused settings stop here
    const { processLogger } = await import("../engine/config/logger.js");
    const { ClusterStateHost } = await import("../engine/fleet/cluster.js");
    const state = new ClusterStateHost();
    const supervisor = await supervise({
      workers, what: "engine", logger: processLogger("engine"), onFork: (w) => state.attach(w),
      ...(metrics.metricsPort !== undefined ? { metrics: { host: metrics.metricsHost ?? "127.0.0.1", port: metrics.metricsPort } } : {}),
    });
    const ready: Record<string, unknown> = { ...supervisor.ready, workers, pids: supervisor.pids(), metricsPort: supervisor.metricsPort };
    process.stdout.write(v.json ? JSON.stringify(ready) + "\n"
      : `Engine ${String(ready.engine)} on ${workers} workers: public HTTP on ${v["public-host"]}:${String(ready.httpPort)}; tunnel at ${String(ready.tunnelUrl)}\n`);
    await untilSignal();
    await supervisor.stop();
    await leaveEngine(stateDir, VERSION);
    return 0;
  }
  if (!identityExists(stateDir, "engine")) await enrollEngine();
  const { ClusterState } = await import("../engine/fleet/cluster.js");
  const engine = await EngineNode.start({
    stateDir, tunnelHost: v["tunnel-host"], tunnelPort: port, version: VERSION, ...(v["tunnel-url"] ? { tunnelUrl: v["tunnel-url"] } : {}),
    publicHost: v["public-host"], httpPort: portFlag(v["http-port"], "http-port", DEFAULTS.httpPort),
    limits: { ...rateLimits(v), ...(v["trusted-proxy"] ? { trustedProxies: v["trusted-proxy"] } : {}) },
    ...(v.redis !== undefined ? { redis: v.redis } : {}),
    ...(worker ? { worker, ...(v.redis === undefined ? { sharedState: new ClusterState() } : {}) } : metrics),
    ...(v["https-port"] !== undefined ? { httpsPort: portFlag(v["https-port"], "https-port", DEFAULTS.httpsPort) } : {}),
  });
  const ready = { engine: engine.identity.id, tunnelUrl: engine.tunnelUrl, httpPort: engine.edge.httpPort, httpsPort: engine.edge.httpsPort, metricsPort: engine.metricsPort };
  if (worker) {
    reportReady(ready);
    // A worker whose primary is gone stops too (it would serve with nobody to replace or drain it).
    await Promise.race([untilSignal(), new Promise((resolve) => process.once("disconnect", resolve))]);
    await engine.close({ leave: false });
    // The IPC channel to the primary would keep this process alive: let go of it.
    if (process.connected) process.disconnect();
    setTimeout(() => process.exit(0), 2_000).unref();
    return 0;
  }
  process.stdout.write(v.json ? JSON.stringify(ready) + "\n"
    : `Engine ${engine.identity.id}: public HTTP on ${v["public-host"]}:${engine.edge.httpPort}${engine.edge.httpsPort ? `, HTTPS on ${engine.edge.httpsPort}` : ""}; tunnel at ${engine.tunnelUrl}\n`);
  await untilSignal();
  await engine.close();
  return 0;

  async function enrollEngine(): Promise<void> {
    const admin = resolveAdmin(v);
    const tunnelUrl = v["tunnel-url"] ?? `wss://${v["tunnel-host"]}:${port}/tunnel`;
    await enroll({ kind: "engine", controlUrl: admin.controlUrl, token: admin.token, stateDir, ...(admin.caPem ? { controlCaPem: admin.caPem } : {}), fields: { tunnelUrl } });
  }
}

const CONNECTOR_HELP = `Usage: postern connector <register|run|list|disable|enable|remove> [ID] [options]

  register   Make a key pair and CSR here, have control sign it (--token, or an
             interactive device sign-in), store key + certificate (mode 0600) in --state-dir
  run        Run the connector: pull configuration, keep tunnels to every engine, renew the
             certificate when due; SIGTERM drains (GOAWAY, finish in-flight streams, exit)
  list       List connectors (admin)
  disable    Disable a connector: engines refuse it within seconds (admin)
  enable     Enable a disabled connector (admin)
  remove     Delete a connector and revoke its certificates (admin)

Options:
  --state-dir DIR      Connector identity (default DATA_DIR/connector)
  --group NAME         Connector group to join at registration (default "Default")
  --connections N      Tunnel connections per engine (default 4)
  --grace-ms N         Drain grace period on SIGTERM (default 30000)
  --metrics-port N     run: Prometheus /metrics on 127.0.0.1:N (--metrics-host H to change; default off)
  --workers N          run: worker processes, each with its own tunnels and backend pools (default:
                       one per CPU); one that dies is replaced, SIGTERM drains them all
${ADMIN_HELP}`;

export async function runConnector(args: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args,
    options: {
      ...ADMIN_OPTIONS, "state-dir": { type: "string" }, group: { type: "string" }, connections: { type: "string" }, "grace-ms": { type: "string" },
      "metrics-port": { type: "string" }, "metrics-host": { type: "string" }, workers: { type: "string" },
    },
    strict: true,
    allowPositionals: true,
  });
  const [verb, id] = positionals;
  if (v.help || verb === undefined) {
    process.stdout.write(CONNECTOR_HELP);
    return v.help ? 0 : 2;
  }
  const stateDir = v["state-dir"] ?? join(v["data-dir"] ?? defaultDataDir(), "connector");
  const out = (data: unknown, text: string) => process.stdout.write(v.json ? JSON.stringify(data) + "\n" : text);
  switch (verb) {
    case "register": {
      const { enroll } = await import("../control/client/enroll.js");
      let admin: AdminTarget;
      if (v.control !== undefined && v.token === undefined && process.env.POSTERN_TOKEN === undefined) {
        const caPem = v["ca-file"] ? (await import("node:fs")).readFileSync(v["ca-file"], "utf8") : undefined;
        const token = await deviceLogin(v.control, caPem, (line) => process.stderr.write(`${line}\n`));
        admin = { controlUrl: v.control, token, ...(caPem ? { caPem } : {}) };
      } else {
        admin = resolveAdmin(v);
      }
      const identity = await enroll({
        kind: "connector", controlUrl: admin.controlUrl, token: admin.token, stateDir, ...(admin.caPem ? { controlCaPem: admin.caPem } : {}),
        fields: { version: VERSION, ...(v.group ? { group: v.group } : {}) },
      });
      out({ id: identity.id, stateDir }, `Registered connector ${identity.id}; identity stored in ${stateDir}\n`);
      return 0;
    }
    case "run": {
      const { ConnectorAgent } = await import("../connector/agent.js");
      const { workerPlace, reportReady, supervise } = await import("../engine/process/supervisor.js");
      const place = workerPlace();
      const workers = place?.count ?? numberFlag(v.workers, "workers", availableParallelism(), { min: 1, max: 256 });
      const metrics = metricsFlags(v);
      const grace = numberFlag(v["grace-ms"], "grace-ms", DEFAULTS.graceMs);
      if (workers > 1 && !place) {
        // Refused settings (a key others can read, ...) stop here, not in a loop of failing workers.
        (await import("../engine/identity/files.js")).loadIdentity(stateDir, "connector");
        const { processLogger } = await import("../engine/config/logger.js");
        const supervisor = await supervise({
          workers, what: "connector", logger: processLogger("connector"),
          ...(metrics.metricsPort !== undefined ? { metrics: { host: metrics.metricsHost ?? "127.0.0.1", port: metrics.metricsPort } } : {}),
        });
        const ready: Record<string, unknown> = { ...supervisor.ready, workers, pids: supervisor.pids(), metricsPort: supervisor.metricsPort };
        out(ready, `Connector ${String(ready.connector)} (group ${String(ready.group)}) on ${workers} workers\n`);
        await untilSignal();
        await supervisor.stop();
        return 0;
      }
      const agent = new ConnectorAgent({
        stateDir, version: VERSION, connectionsPerEngine: numberFlag(v.connections, "connections", DEFAULTS.connections, { min: 1, max: 64 }),
        ...(place ? { worker: place } : metrics),
      });
      const config = await agent.start();
      const ready = { connector: agent.id, group: config.group, engines: config.engines, metricsPort: agent.metricsPort };
      if (place) {
        reportReady(ready);
        await Promise.race([untilSignal(), new Promise((resolve) => process.once("disconnect", resolve))]);
        await agent.stop(grace);
        if (process.connected) process.disconnect();
        setTimeout(() => process.exit(0), 2_000).unref();
        return 0;
      }
      out(ready, `Connector ${agent.id} (group ${config.group}) serving ${config.engines.length} engine(s)\n`);
      await untilSignal();
      await agent.stop(grace);
      return 0;
    }
    case "list": {
      const { connectors } = await adminCall<{ connectors: Record<string, unknown>[] }>(resolveAdmin(v), "GET", "/api/v1/connectors");
      process.stdout.write(v.json ? JSON.stringify(connectors, null, 2) + "\n" : table(connectors, ["id", "group", "hostName", "status", "version", "lastSeen", "certNotAfter"]));
      return 0;
    }
    case "disable":
    case "enable":
    case "remove": {
      if (!id) throw new UsageError(`postern connector ${verb} needs the connector id (see postern connector list)`);
      const path = `/api/v1/connectors/${encodeURIComponent(id)}`;
      if (verb === "remove") await adminCall(resolveAdmin(v), "DELETE", path);
      else await adminCall(resolveAdmin(v), "PATCH", path, { status: verb === "disable" ? "disabled" : "active" });
      out({ id, done: verb }, `Connector ${id}: ${verb === "remove" ? "removed" : `${verb}d`}.\n`);
      return 0;
    }
    default:
      throw new UsageError(`unknown connector command "${verb}"; see postern connector --help`);
  }
}

const USER_HELP = `Usage: postern user add --username U --password P [options]

Adds a user to the built-in IdP (Global Administrator only).

Options:
  --username U          Sign-in name
  --password P          Password (8 characters or more)
  --role R              Admin role (repeat): "Global Administrator", "Application Administrator",
                        "Cloud Application Administrator", "Security Reader"
  --display-name N      Display name
  --email E             Email address
  --totp                Enrol a TOTP second factor; prints the otpauth:// URI once
${ADMIN_HELP}`;

export async function runUser(args: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args,
    options: {
      ...ADMIN_OPTIONS, username: { type: "string" }, password: { type: "string" }, role: { type: "string", multiple: true },
      "display-name": { type: "string" }, email: { type: "string" }, totp: { type: "boolean", default: false },
    },
    strict: true,
    allowPositionals: true,
  });
  if (v.help || positionals[0] !== "add") {
    process.stdout.write(USER_HELP);
    return v.help ? 0 : 2;
  }
  if (!v.username || !v.password) throw new UsageError("postern user add needs --username and --password");
  const user = await adminCall<{ username: string; roles: string[]; totp?: { uri: string } }>(resolveAdmin(v), "POST", "/api/v1/users", {
    username: v.username, password: v.password, roles: v.role ?? [], totp: v.totp,
    ...(v["display-name"] ? { displayName: v["display-name"] } : {}), ...(v.email ? { email: v.email } : {}),
  });
  process.stdout.write(v.json ? JSON.stringify(user) + "\n"
    : `Added user ${user.username}${user.roles.length ? ` (${user.roles.join(", ")})` : ""}\n${user.totp ? `Scan into an authenticator app (shown once): ${user.totp.uri}\n` : ""}`);
  return 0;
}
