/**
 * The CLI's one place for numeric flags and their defaults. Every command reads numbers with
 * `numberFlag` (a mistake names the flag and exits 2) and takes its defaults from DEFAULTS, so
 * `postern up`, `postern engine` and the help texts cannot drift apart.
 */
import { PosternError } from "../engine/errors/catalogue.js";

/** A command-line mistake: printed with the command's usage hint, exit code 2. */
export class UsageError extends PosternError {
  constructor(message: string) {
    super("POSTERN_USAGE", message);
  }
}

/** Defaults of the flags several commands share. Ports: 0 picks a free one. */
export const DEFAULTS = {
  controlPort: 9443,
  tunnelPort: 7700,
  httpPort: 8080,
  httpsPort: 8443,
  /** Tunnel connections per engine of `postern connector run`. */
  connections: 4,
  /** In-flight requests get this long on SIGTERM, ms. */
  graceMs: 30_000,
  renewAfterDays: 180,
  inactiveAfterDays: 10,
} as const;

export interface NumberRule {
  readonly min?: number; // 0
  readonly max?: number; // Number.MAX_SAFE_INTEGER
  /** Whole numbers only (ports, counts, ms). */
  readonly integer?: boolean; // true
  /** An environment variable read when the flag is absent. */
  readonly env?: string;
}

/** The flag's number, its env variable's, or `fallback`; anything else is a UsageError naming the flag. */
export function numberFlag(value: string | undefined, flag: string, fallback: number, rule?: NumberRule): number;
export function numberFlag(value: string | undefined, flag: string, fallback: undefined, rule?: NumberRule): number | undefined;
export function numberFlag(value: string | undefined, flag: string, fallback: number | undefined, rule: NumberRule = {}): number | undefined {
  const raw = value ?? (rule.env === undefined ? undefined : process.env[rule.env]);
  if (raw === undefined) return fallback;
  const { min = 0, max = Number.MAX_SAFE_INTEGER, integer = true } = rule;
  const n = raw.trim() === "" ? Number.NaN : Number(raw);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
    const what = integer ? "an integer" : "a number";
    throw new UsageError(`--${flag} must be ${what} in ${min}..${max === Number.MAX_SAFE_INTEGER ? "" : max}, got "${raw}"`);
  }
  return n;
}

/** A TCP port flag (0 picks a free one). */
export function portFlag(value: string | undefined, flag: string, fallback: number, env?: string): number {
  return numberFlag(value, flag, fallback, { max: 65_535, ...(env ? { env } : {}) });
}

/** A comma-separated list of numbers >= 0. */
export function numberListFlag(value: string | undefined, flag: string, fallback: number[]): number[] {
  if (value === undefined) return fallback;
  return value.split(",").map((x) => numberFlag(x, flag, 0, { integer: false }));
}

/** A size such as 2G, 512M or a byte count. */
export function sizeFlag(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const m = /^(\d+(?:\.\d+)?)([KMG]?)i?B?$/i.exec(value.trim());
  if (!m) throw new UsageError(`--${flag} must look like 2G, 512M or a byte count, got "${value}"`);
  return Math.round(Number(m[1]) * 1024 ** " KMG".indexOf((m[2] || " ").toUpperCase()));
}

/** --app-rate / --tenant-rate as engine limits (only those given). */
export function rateLimits(values: { "app-rate"?: string | undefined; "tenant-rate"?: string | undefined }): { appRatePerSecond?: number; tenantRatePerSecond?: number } {
  const app = numberFlag(values["app-rate"], "app-rate", undefined);
  const tenant = numberFlag(values["tenant-rate"], "tenant-rate", undefined);
  return { ...(app !== undefined ? { appRatePerSecond: app } : {}), ...(tenant !== undefined ? { tenantRatePerSecond: tenant } : {}) };
}
