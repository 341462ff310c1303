#!/usr/bin/env node
/**
 * The `postern` command. Subcommands arrive with the issues that build them (control plane,
 * data path, load testing); today: `up`, which starts an engine tunnel endpoint and a
 * connector on loopback and proves the multiplexed tunnel end to end.
 */
import { runUp } from "./up.js";

const HELP = `postern — self-hosted application proxy

Usage: postern <command> [options]

Commands:
  up          Start an engine tunnel endpoint and a connector on this host (demo)
  version     Print the version

Options:
  -h, --help  Show help for a command
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "-h" || command === "--help" || command === "help") {
    process.stdout.write(HELP);
    return 0;
  }
  if (command === "version" || command === "--version") {
    const { createRequire } = await import("node:module");
    const pkg = createRequire(import.meta.url)("../../package.json") as { version: string };
    process.stdout.write(`${pkg.version}\n`);
    return 0;
  }
  if (command === "up") return runUp(rest);
  process.stderr.write(`postern: unknown command "${command}"\n\n${HELP}`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`postern: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);

