/**
 * How admin commands reach control: `--control URL` with `--token` (or POSTERN_TOKEN), or a
 * local deployment's data directory, whose credentials.json holds control's URL, a Global
 * Administrator token and the CA to trust (like a kubeconfig). Errors from control are shown
 * with their stable code and, for validation, one line per problem.
 */
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { Agent } from "undici";
import { CREDENTIAL_FILE } from "../control/context.js";
import { controlRequest, controlTrust } from "../control/client/client.js";
import { isPosternError } from "../engine/errors/catalogue.js";
import { UsageError } from "./flags.js";
export { UsageError };


/** `--data-dir` default: $POSTERN_DATA_DIR, else ~/.local/share/postern. */
export function defaultDataDir(): string {
  return process.env.POSTERN_DATA_DIR ?? join(process.env.XDG_DATA_HOME ?? join(homedir(), ".local", "share"), "postern");
}

export interface AdminTarget {
  readonly controlUrl: string;
  readonly token: string;
  readonly caPem?: string;
}

export function resolveAdmin(values: { control?: string | undefined; token?: string | undefined; "ca-file"?: string | undefined; "data-dir"?: string | undefined }): AdminTarget {
  const caPem = values["ca-file"] ? readFileSync(values["ca-file"], "utf8") : undefined;
  const token = values.token ?? process.env.POSTERN_TOKEN;
  if (values.control !== undefined) {
    if (!token) throw new UsageError(`--control ${values.control} needs --token (or POSTERN_TOKEN); get one with "postern login --control ${values.control}"`);
    return { controlUrl: values.control, token, ...(caPem ? { caPem } : {}) };
  }
  const dir = values["data-dir"] ?? defaultDataDir();
  const file = join(dir, CREDENTIAL_FILE);
  if (!existsSync(file)) throw new UsageError(`no local credential at ${file}: start "postern up --data-dir ${dir}" (or "postern control"), or pass --control URL --token T`);
  const cred = JSON.parse(readFileSync(file, "utf8")) as { control: string; token: string; caCertificate?: string };
  return { controlUrl: cred.control, token: token ?? cred.token, ...(caPem ?? cred.caCertificate ? { caPem: caPem ?? cred.caCertificate! } : {}) };
}

export async function adminCall<T>(target: AdminTarget, method: string, path: string, body?: unknown): Promise<T> {
  const agent = new Agent({ connect: { ca: controlTrust(target.caPem) } });
  try {
    return await controlRequest<T>(agent, target.controlUrl, method, path, { authorization: `Bearer ${target.token}` }, body);
  } finally {
    await agent.close();
  }
}

/** Renders a refusal from control for a terminal: message and code. */
export function describeControlError(err: unknown): string | undefined {
  if (!isPosternError(err) || err.status === undefined) return undefined;
  return `${err.message} [${err.code}]`;
}

export const ADMIN_OPTIONS = {
  control: { type: "string" },
  token: { type: "string" },
  "ca-file": { type: "string" },
  "data-dir": { type: "string" },
  json: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

export const ADMIN_HELP = `Connection options (every admin command):
  --data-dir DIR   Local deployment: use DIR/credentials.json (default ${"$"}POSTERN_DATA_DIR or ~/.local/share/postern)
  --control URL    Remote control plane (with --token or POSTERN_TOKEN)
  --token T        Admin access token from the IdP
  --ca-file F      CA certificate that issued control's TLS certificate
  --json           Print JSON instead of text
  -h, --help       Show help
`;

/** Prints rows as an aligned text table. */
export function table(rows: readonly Record<string, unknown>[], columns: readonly string[]): string {
  const cells = rows.map((r) => columns.map((c) => String(r[c] ?? "")));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
  const line = (values: readonly string[]) => values.map((v, i) => v.padEnd(widths[i]!)).join("  ").trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...cells.map(line)].join("\n") + "\n";
}
