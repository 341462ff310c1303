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
import { UsageError, defaultDataDir } from "./admin.js";
import { VERSION, untilSignal } from "./services.js";

const HELP = `Usage: postern up [options]

Starts control, an engine and a connector on this host with embedded defaults and keeps them
running until Ctrl-C (the connector drains first).

Options:
  --data-dir DIR        State directory (default $POSTERN_DATA_DIR or ~/.local/share/postern)
  --control-port N      Control plane port (default 9443, env POSTERN_CONTROL_PORT; 0 = free port)
  --tunnel-port N       Engine tunnel port (default 7700, env POSTERN_TUNNEL_PORT; 0 = free port)
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

function port(value: string | undefined, env: string, fallback: number, flag: string): number {
  const raw = value ?? process.env[env];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`--${flag} must be 0..65535, got "${raw}"`);
  return n;
}

export async function runUp(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      "data-dir": { type: "string" }, "control-port": { type: "string" }, "tunnel-port": { type: "string" },
      once: { type: "boolean", default: false }, json: { type: "boolean", default: false }, help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const dataDir = values["data-dir"] ?? defaultDataDir();
  const controlPort = port(values["control-port"], "POSTERN_CONTROL_PORT", 9443, "control-port");
  const tunnelPort = port(values["tunnel-port"], "POSTERN_TUNNEL_PORT", 7700, "tunnel-port");

  const { startControl } = await import("../control/server.js");
  const { enroll, identityExists } = await import("../engine/protocol/enrollment.js");
  const { EngineNode } = await import("../engine/node.js");
  const { ConnectorAgent } = await import("../connector/agent.js");

  // Plain HTTP on loopback: a local demo a browser can open without certificate warnings.
  const control = await startControl({ dataDir, host: "127.0.0.1", port: controlPort, tls: "off" });
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
  const engine = await EngineNode.start({ stateDir: engineDir, tunnelHost: "127.0.0.1", tunnelPort, version: VERSION, controlUrl: control.url });
  if (!identityExists(connectorDir, "connector")) {
    await enroll({ kind: "connector", controlUrl: control.url, token, stateDir: connectorDir, controlCaPem: control.caCertPem, fields: { version: VERSION } });
  }
  const connector = new ConnectorAgent({ stateDir: connectorDir, version: VERSION, connectionsPerEngine: 2, controlUrl: control.url });
  const connected = new Promise<void>((resolve) => connector.once("connected", () => resolve()));
  await connector.start();
  await connected;

  const apps = (await control.context.store.listApps(control.context.tenant.id)).map((a) => ({
    name: a.settings.name, externalUrl: a.settings.externalUrl, internalUrl: a.settings.internalUrl, preAuthentication: a.settings.preAuthentication,
  }));
  const ready = { control: control.url, engine: engine.tunnelUrl, apps, users };
  if (values.json) {
    process.stdout.write(JSON.stringify(ready) + "\n");
  } else {
    process.stdout.write(`Postern is up (data in ${dataDir})
  control plane:  ${control.url}   (OpenAPI: ${control.url}/api/v1/openapi.json)
  engine tunnel:  ${engine.tunnelUrl}
  connector:      ${connector.id} (${engine.registry.connections().length} tunnel connection(s))
  sign in as:     ${users.map((u) => `${u.username} / ${u.password} (${u.roles.join(", ")})`).join("; ")}
Publish an app:   postern app add --name Wiki --internal-url http://wiki.corp/ --data-dir ${dataDir}
Ctrl-C stops everything.
`);
  }
  if (!values.once) await untilSignal();
  await connector.stop(values.once ? 1000 : 30_000);
  await engine.close();
  await control.close();
  return 0;
}
