/**
 * The console's only way to control: the admin API with the signed-in user's bearer token.
 * Refusals carry control's error code, message and, for validation, the field each problem
 * concerns, so forms can show them where they belong.
 */
import { accessToken } from "./auth.js";

export interface Problem {
  readonly field: string;
  readonly message: string;
}

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly problems: readonly Problem[] = []) {
    super(message);
  }
}

export class SignedOut extends Error {}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const token = accessToken();
  if (!token) throw new SignedOut("sign in first");
  const r = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${token}`, accept: "application/json", ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (r.status === 401) throw new SignedOut("your session ended: sign in again");
  const text = await r.text();
  const parsed = text ? (JSON.parse(text) as unknown) : undefined;
  if (!r.ok) {
    const error = (parsed as { error?: { code?: string; message?: string; problems?: Problem[] } } | undefined)?.error;
    throw new ApiError(r.status, error?.code ?? `HTTP ${r.status}`, error?.message ?? `control answered HTTP ${r.status}`, error?.problems ?? []);
  }
  return parsed as T;
}

export interface Me {
  readonly sub: string;
  readonly name: string;
  readonly roles: readonly string[];
}

export interface AppView {
  readonly name: string;
  readonly internalUrl: string;
  readonly externalUrl: string;
  readonly preAuthentication: "oidc" | "passthrough";
  readonly connectorGroup: string;
  readonly maintenanceMode: boolean;
  readonly certificate: { dnsNames: string[]; notAfter: string; fingerprintSha256: string } | null;
  readonly [setting: string]: unknown;
}

export interface ConnectorView {
  readonly id: string;
  readonly group: string;
  readonly hostName: string;
  readonly version: string;
  readonly status: "active" | "inactive" | "disabled";
  readonly lastSeen: string;
  readonly certNotAfter: string;
  readonly tunnels: Readonly<Record<string, number>>;
}
