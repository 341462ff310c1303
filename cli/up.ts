/**
 * `postern up`: the all-in-one deployment on embedded defaults, in one process: control
 * (SQLite, built-in IdP, tenant CA), an engine node and a connector, enrolled with each other
 * on first run and reused from --data-dir afterwards. Prints the URLs and the demo admin,
 * or with --json one line once everything is ready.
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { defaultDataDir } from "./admin.js";
import { DEFAULTS, portFlag, rateLimits } from "./flags.js";
import type { ControlHandle } from "../control/server.js";
import { startSampleApp } from "./sample-app.js";
import { VERSION, untilSignal } from "./services.js";
import { PosternError } from "../engine/errors/catalogue.js";

/**
 * Publishes (or re-points, after a restart on other ports) a sample app: "Sample" opens without
 * signing in, "Private" (the same app, another instance) asks for a sign-in at the built-in IdP
 * and passes the user on in X-Remote-User.
 */
async function publishSample(control: ControlHandle, name: "Sample" | "Private", internalUrl: string, externalUrl: string): Promise<void> {
  const { store, tenant } = control.context;
  const token = await control.mintToken({ name: "postern-up", roles: ["Global Administrator"] }, 60);
  const existing = await store.getApp(tenant.id, name);
  const settings = name === "Sample"
    ? { preAuthentication: "passthrough" }
    : { preAuthentication: "oidc", ssoHeaders: { "X-Remote-User": "preferred_username", "X-Remote-Roles": "roles" } };
  const body = existing ? { internalUrl, externalUrl } : { name, internalUrl, externalUrl, translateBody: true, ...settings };
  const res = await fetch(`${control.url}/api/v1/apps${existing ? `/${name}` : ""}`, {
    method: existing ? "PATCH" : "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new PosternError("POSTERN_INTERNAL", `publishing the sample app ${name} failed: ${await res.text()}`);
}

const HELP = `Usage: postern up [options]

Starts control, an engine, a connector and a sample internal app on this host with embedded
defaults, publishes the sample app, and keeps everything running until Ctrl-C (the
connector drains first).

Options:
  --data-dir DIR        State directory (default $POSTERN_DATA_DIR or ~/.local/share/postern)
  --http-port N         Engine's public HTTP port (default ${DEFAULTS.httpPort}, env POSTERN_HTTP_PORT; 0 = free port)
  --control-port N      Control plane port (default ${DEFAULTS.controlPort}, env POSTERN_CONTROL_PORT; 0 = free port)
  --tunnel-port N       Engine tunnel port (default ${DEFAULTS.tunnelPort}, env POSTERN_TUNNEL_PORT; 0 = free port)
  --sample-port N       Sample app port (default 0: a free port, env POSTERN_SAMPLE_PORT)
  --no-sample           Do not start or publish the sample app
  --app-rate N          Requests/s per app (default 500; 0 = no limit)
  --tenant-rate N       Requests/s per tenant (default 750; 0 = no limit)
  --metrics-port N      Prometheus /metrics: the engine's on N, control's on N+1, the connector's
                        on N+2 (default 0: three free ports, printed)
  --once                Exit once everything is ready (for checks)
  --json                Print one JSON line when ready
  -h, --help            Show this help

Admin commands find this deployment's credential in DATA_DIR, e.g.
  postern app add --name Wiki --internal-url http://wiki.corp/ --data-dir DIR
`;

interface DemoUser {
  username: string;
  password: string;
  roles: ("Global Administrator")[];
}


export async function runUp(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      "data-dir": { type: "string" }, "control-port": { type: "string" }, "tunnel-port": { type: "string" }, "http-port": { type: "string" },
      "sample-port": { type: "string" }, "no-sample": { type: "boolean", default: false },
      "app-rate": { type: "string" }, "tenant-rate": { type: "string" }, "metrics-port": { type: "string" },
      once: { type: "boolean", default: false }, json: { type: "boolean", default: false }, help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const dataDir = values["data-dir"] ?? defaultDataDir();
  const controlPort = portFlag(values["control-port"], "control-port", DEFAULTS.controlPort, "POSTERN_CONTROL_PORT");
  const tunnelPort = portFlag(values["tunnel-port"], "tunnel-port", DEFAULTS.tunnelPort, "POSTERN_TUNNEL_PORT");
  const httpPort = portFlag(values["http-port"], "http-port", DEFAULTS.httpPort, "POSTERN_HTTP_PORT");
  const samplePort = portFlag(values["sample-port"], "sample-port", 0, "POSTERN_SAMPLE_PORT");
  const metricsPort = portFlag(values["metrics-port"], "metrics-port", 0);
  const metricsAt = (offset: number) => (metricsPort === 0 ? 0 : metricsPort + offset);

  const { startControl } = await import("../control/server.js");
  const { identityExists } = await import("../engine/identity/files.js");
  const { enroll } = await import("../control/client/enroll.js");
  const { EngineNode } = await import("../engine/node.js");
  const { ConnectorAgent } = await import("../connector/agent.js");

  // Plain HTTP on loopback: a local demo a browser can open without certificate warnings.
  const control = await startControl({ dataDir, host: "127.0.0.1", port: controlPort, tls: "off", metricsPort: metricsAt(1) });
  await control.writeLocalCredential();
  const usersFile = join(dataDir, "demo-users.json");
  let users: DemoUser[];
  if (existsSync(usersFile)) {
    users = JSON.parse(readFileSync(usersFile, "utf8")) as DemoUser[];
  } else {
    users = [{ username: "admin", password: randomBytes(9).toString("base64url"), roles: ["Global Administrator"] }];
    writeFileSync(usersFile, JSON.stringify(users, null, 2) + "\n", { mode: 0o600 });
  }
  for (const user of users) await control.ensureUser(user);

  const token = await control.mintToken({ name: "postern-up", roles: ["Global Administrator"] }, 600);
  const engineDir = join(dataDir, "engine");
  const connectorDir = join(dataDir, "connector");
  if (!identityExists(engineDir, "engine")) {
    await enroll({ kind: "engine", controlUrl: control.url, token, stateDir: engineDir, controlCaPem: control.caCertPem, fields: { tunnelUrl: `wss://127.0.0.1:${tunnelPort}/tunnel` } });
  }
  const engine = await EngineNode.start({
    stateDir: engineDir, tunnelHost: "127.0.0.1", tunnelPort, version: VERSION, controlUrl: control.url, httpPort, limits: rateLimits(values), metricsPort: metricsAt(0),
  });
  const edgePort = engine.edge.httpPort!;
  control.setEdgeDefaults({ scheme: "http", port: edgePort });
  const sample = values["no-sample"] ? undefined : await startSampleApp(samplePort);
  const privateSample = values["no-sample"] ? undefined : await startSampleApp(0);
  if (sample) await publishSample(control, "Sample", sample.internalUrl, `http://sample.${control.context.tenant.name}.localhost:${edgePort}/`);
  if (privateSample) await publishSample(control, "Private", privateSample.internalUrl, `http://private.${control.context.tenant.name}.localhost:${edgePort}/`);
  if (!identityExists(connectorDir, "connector")) {
    await enroll({ kind: "connector", controlUrl: control.url, token, stateDir: connectorDir, controlCaPem: control.caCertPem, fields: { version: VERSION } });
  }
  const connector = new ConnectorAgent({ stateDir: connectorDir, version: VERSION, connectionsPerEngine: 2, controlUrl: control.url, metricsPort: metricsAt(2) });
  const connected = new Promise<void>((resolve) => connector.once("connected", () => resolve()));
  await connector.start();
  await connected;

  const apps = (await control.context.store.listApps(control.context.tenant.id)).map((a) => ({
    name: a.settings.name, externalUrl: a.settings.externalUrl, internalUrl: a.settings.internalUrl, preAuthentication: a.settings.preAuthentication,
  }));
  const metrics = {
    engine: `http://127.0.0.1:${engine.metricsPort}/metrics`, control: `http://127.0.0.1:${control.metricsPort}/metrics`, connector: `http://127.0.0.1:${connector.metricsPort}/metrics`,
  };
  const ready = { control: control.url, admin: `${control.url}/admin/`, myApps: `${control.url}/myapps/`, engine: `http://127.0.0.1:${edgePort}`, tunnel: engine.tunnelUrl, apps, users, metrics };
  if (values.json) {
    process.stdout.write(JSON.stringify(ready) + "\n");
  } else {
    process.stdout.write(`Postern is up (data in ${dataDir})
  control plane:  ${control.url}   (OpenAPI: ${control.url}/api/v1/openapi.json)
  admin console:  ${ready.admin}
  My Apps:        ${ready.myApps}
  metrics:        ${metrics.engine} (engine), ${metrics.control} (control), ${metrics.connector} (connector)
  engine:         http://127.0.0.1:${edgePort}  (tunnel ${engine.tunnelUrl})
${apps.map((a) => `  app ${a.name.padEnd(11)} ${a.externalUrl} -> ${a.internalUrl} (${a.preAuthentication})`).join("\n")}
  connector:      ${connector.id} (${engine.registry.connections().length} tunnel connection(s))
  sign in as:     ${users.map((u) => `${u.username} / ${u.password} (${u.roles.join(", ")})`).join("; ")}
Publish an app:   postern app add --name Wiki --internal-url http://wiki.corp/ --data-dir ${dataDir}
Ctrl-C stops everything.
`);
  }
  if (!values.once) await untilSignal();
  await connector.stop(values.once ? 1000 : 30_000);
  await engine.close();
  await sample?.close();
  await privateSample?.close();
  await control.close();
  return 0;
}
