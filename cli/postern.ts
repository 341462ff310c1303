#!/usr/bin/env node
/**
 * The `postern` command: one entry point, each subcommand in its own module (loaded on use,
 * so `postern app list` does not load the IdP). Usage mistakes exit 2, refusals from control
 * print control's message and stable code and exit 1.
 */
import { UsageError, describeControlError } from "./admin.js";

const HELP = `postern — self-hosted application proxy

Usage: postern <command> [options]

Commands:
  up          Control, engine and connector on this host with embedded defaults (demo)
  control     Run the control plane (store, CA, built-in IdP, admin API, config feed)
  engine      Run an engine node (enrols with control on first run)
  connector   register | run | list | disable | enable | remove
  app         add | list | show | update | remove
  group       Connector groups: add | list | remove
  user        add (built-in IdP)
  login       Device-code sign-in at control's IdP; prints an access token
  loadtest    Load a deployment (or --compare with direct and an nginx chain); reports and a chart
  capacity    Measure a capacity table: highest TPS within the SLO per connector size
  version     Print the version

Every command takes --help.
`;

const COMMANDS: Record<string, () => Promise<(args: string[]) => Promise<number>>> = {
  up: async () => (await import("./up.js")).runUp,
  control: async () => (await import("./services.js")).runControl,
  engine: async () => (await import("./services.js")).runEngine,
  connector: async () => (await import("./services.js")).runConnector,
  user: async () => (await import("./services.js")).runUser,
  app: async () => (await import("./apps.js")).runApp,
  group: async () => (await import("./apps.js")).runGroup,
  login: async () => (await import("./login.js")).runLogin,
  loadtest: async () => (await import("./loadtest.js")).runLoadtest,
  capacity: async () => (await import("./capacity.js")).runCapacity,
};

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "-h" || command === "--help" || command === "help") {
    process.stdout.write(HELP);
    return 0;
  }
  if (command === "version" || command === "--version") {
    process.stdout.write(`${(await import("./services.js")).VERSION}\n`);
    return 0;
  }
  const load = COMMANDS[command];
  if (!load) {
    process.stderr.write(`postern: unknown command "${command}"\n\n${HELP}`);
    return 2;
  }
  return (await load())(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exitCode = code;
  },
  (err: unknown) => {
    const usage = err instanceof UsageError || (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS");
    process.stderr.write(`postern: ${describeControlError(err) ?? (err instanceof Error ? err.message : String(err))}\n`);
    process.exitCode = usage ? 2 : 1;
  },
);
