/**
 * How engines and connectors talk to control: HTTP(S) with undici, trusting the tenant CA (or
 * the system's CAs for a publicly certified control), authenticated by an identity proof made
 * fresh per request with the caller's certificate key.
 */
import { rootCertificates } from "node:tls";
import { Agent, request } from "undici";
import { codeOfStatus, isErrorCode, PosternError, type ErrorCode } from "../../engine/errors/catalogue.js";
import { createIdentityProof } from "../../engine/identity/proof.js";
import { type Clock } from "../../engine/config/clock.js";

/** Audience of proofs sent to control; control checks the same value. */
export const CONTROL_PROOF_AUDIENCE = "postern-control";

/** TLS trust for control: the system CAs plus the tenant CA (control may use either). */
export function controlTrust(caPem?: string): string[] {
  return caPem === undefined ? [...rootCertificates] : [...rootCertificates, caPem];
}

export interface PeerCredentials {
  readonly keyPem: string;
  readonly certPem: string;
}

export interface ControlClientOptions {
  readonly controlUrl: string;
  /** PEM of the CA that issued control's TLS certificate; unset trusts the system CAs. */
  readonly caPem?: string;
  /** Read per request, so a renewed certificate is used at once. */
  readonly credentials: () => PeerCredentials;
  /** Sent with every call; a function is read per call (a connector reports its live tunnels). */
  readonly headers?: Record<string, string> | (() => Record<string, string>);
  readonly now?: Clock;
}


export class ControlClient {
  readonly #agent: Agent;

  constructor(private readonly options: ControlClientOptions) {
    this.#agent = new Agent({
      connect: { ca: controlTrust(options.caPem) },
      headersTimeout: 90_000,
      bodyTimeout: 90_000,
      keepAliveTimeout: 30_000,
    });
  }

  async call<T>(method: "GET" | "POST" | "DELETE", path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const creds = this.options.credentials();
    const proof = await createIdentityProof({ ...creds, audience: CONTROL_PROOF_AUDIENCE, ...(this.options.now ? { now: this.options.now() } : {}) });
    return controlRequest<T>(this.#agent, this.options.controlUrl, method, path, { authorization: `Postern-Proof ${proof}`, ...(typeof this.options.headers === "function" ? this.options.headers() : this.options.headers) }, body, signal);
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }
}

/**
 * One JSON request to control; a refusal becomes a PosternError with the catalogue code from
 * control's JSON error body (or the one its HTTP status stands for) and control's message.
 */
export async function controlRequest<T>(
  dispatcher: Agent | undefined,
  baseUrl: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: unknown,
  signal?: AbortSignal,
): Promise<T> {
  const res = await request(new URL(path, baseUrl.endsWith("/") ? baseUrl : `${baseUrl}/`), {
    method: method as "GET",
    headers: { accept: "application/json", ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    ...(dispatcher ? { dispatcher } : {}),
    ...(signal ? { signal } : {}),
  });
  const text = await res.body.text();
  if (res.statusCode >= 400) {
    let code: ErrorCode = codeOfStatus(res.statusCode);
    let message = `control answered HTTP ${res.statusCode}`;
    try {
      const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
      if (isErrorCode(parsed.error?.code)) code = parsed.error.code;
      if (typeof parsed.error?.message === "string") message = parsed.error.message;
    } catch {
      // not JSON: keep the status line
    }
    throw new PosternError(code, message, { status: res.statusCode });
  }
  return (text === "" ? undefined : JSON.parse(text)) as T;
}
