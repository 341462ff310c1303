/**
 * The control API's one route table and its dispatcher. Each route declares its method, path,
 * who may call it (roles, or a connector/engine identity proof), and zod schemas for body and
 * query; the OpenAPI document is generated from the same table, so the two cannot drift. This
 * is also the one place that turns errors into HTTP responses (JSON with a stable code).
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { z } from "zod";
import { httpStatusOf, PosternError, type ErrorCode } from "../../engine/errors/catalogue.js";
import type { PeerIdentity } from "../../engine/identity/proof.js";
import { problemsFromZod, type Problem } from "../apps.js";
import type { Role } from "../store/types.js";

export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/** Who called: an admin with a bearer token, or a connector/engine with an identity proof. */
export type Caller =
  | { readonly kind: "user"; readonly sub: string; readonly name: string; readonly roles: readonly Role[]; readonly groups: readonly string[] }
  | { readonly kind: "peer"; readonly peer: PeerIdentity };

export interface Call<B = unknown, Q = Record<string, unknown>> {
  readonly params: Record<string, string>;
  readonly query: Q;
  readonly body: B;
  readonly caller: Caller;
  readonly requestId: string;
  readonly req: IncomingMessage;
  /** Throws POSTERN_FORBIDDEN unless the caller holds one of `roles`. */
  requireRole(roles: readonly Role[], what: string): void;
  /** Records the outcome of this call in the audit log (mutating routes are audited automatically). */
  readonly auditDetail: Record<string, unknown>;
}

export interface Reply {
  readonly status: number;
  readonly body?: unknown;
}

// Routes of different body and query shapes share one table; each route() call is typed exactly.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export interface Route<B = any, Q = any> {
  readonly method: Method;
  readonly path: string;
  readonly summary: string;
  /** `roles`: a user holding one of these; `proof`: a connector or engine; `public`: anyone. */
  readonly auth: { roles: readonly Role[] } | "proof" | "public" | "user";
  readonly body?: z.ZodType<B>;
  readonly query?: z.ZodType<Q>;
  /** Schema of the success body, for the OpenAPI document. */
  readonly response?: z.ZodType;
  readonly status?: number;
  /** Audit action name for mutating routes; defaults to `<method> <path>`. */
  readonly action?: string;
  handler(call: Call<B, Q>): Promise<Reply>;
}

export function route<B, Q>(r: Route<B, Q>): Route<B, Q> {
  return r;
}

/** Thrown by handlers; rendered as `{ error: { code, message, problems? } }` with the code's status. */
export class ApiError extends PosternError {
  constructor(code: ErrorCode, message: string, readonly problems?: readonly Problem[]) {
    super(code, message);
  }
}

export interface Authenticator {
  user(token: string): Promise<Caller & { kind: "user" }>;
  peer(proof: string, req: IncomingMessage): Promise<Caller & { kind: "peer" }>;
}

export interface AuditSink {
  (entry: { actor: string; action: string; target: string; outcome: "success" | "failure"; detail: Record<string, unknown> }): Promise<void>;
}

const MAX_BODY_BYTES = 1024 * 1024; // 1 MiB: the largest body is a PFX upload

interface Compiled {
  readonly route: Route;
  readonly pattern: RegExp;
  readonly names: string[];
}

export class Router {
  readonly routes: readonly Route[];
  readonly #compiled: Compiled[];
  /** Told of every answer: the route's template (never the path), the status, the seconds taken. */
  onAnswered: ((route: string, status: number, seconds: number) => void) | undefined;

  constructor(
    routes: readonly Route[],
    private readonly auth: Authenticator,
    private readonly audit: AuditSink,
    private readonly onInternalError: (err: unknown, requestId: string) => void,
  ) {
    this.routes = routes;
    this.#compiled = routes.map((r) => {
      const names: string[] = [];
      const source = r.path.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{(\w+)\}/g, (_m, name: string) => {
        names.push(name);
        return "([^/]+)";
      });
      return { route: r, pattern: new RegExp(`^${source}$`), names };
    });
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    res.once("finish", () => this.onAnswered?.(matchedName, res.statusCode, (performance.now() - started) / 1000));
    let matchedName = "unmatched";
    const requestId = randomUUID();
    res.setHeader("x-request-id", requestId);
    let caller: Caller | undefined;
    let matched: Route | undefined;
    let target = "";
    const auditDetail: Record<string, unknown> = {};
    try {
      const url = new URL(req.url ?? "/", "http://control.invalid");
      const found = this.#match(req.method ?? "GET", url.pathname);
      if (found === "method") throw new ApiError("POSTERN_NOT_FOUND", `${req.method} is not allowed on ${url.pathname}`);
      if (found === undefined) throw new ApiError("POSTERN_NOT_FOUND", `no API route ${req.method} ${url.pathname}`);
      matched = found.route;
      matchedName = `${matched.method} ${matched.path}`;
      target = Object.values(found.params).join("/") || url.pathname;
      caller = await this.#authenticate(matched, req);
      this.#authorize(matched, caller);
      const query = matched.query ? parseWith(matched.query, Object.fromEntries(url.searchParams), "query") : {};
      const raw = matched.body ? await readJson(req) : undefined;
      const body = matched.body ? parseWith(matched.body, raw, "body") : undefined;
      const call: Call = {
        params: found.params, query, body, caller, requestId, req, auditDetail,
        requireRole(roles, what) {
          if (caller?.kind !== "user" || !caller.roles.some((r) => roles.includes(r))) {
            throw new ApiError("POSTERN_FORBIDDEN", `${what} needs one of the roles: ${roles.join(", ")}`);
          }
        },
      };
      const reply = await matched.handler(call);
      if (matched.method !== "GET") await this.#audit(matched, caller, target, "success", auditDetail);
      sendJson(res, reply.status, reply.body);
    } catch (err) {
      const apiError = toApiError(err);
      if (apiError.code === "POSTERN_INTERNAL") this.onInternalError(err, requestId);
      if (matched && matched.method !== "GET" && apiError.code !== "POSTERN_NOT_FOUND") {
        await this.#audit(matched, caller, target, "failure", { ...auditDetail, code: apiError.code, message: apiError.message });
      }
      const status = httpStatusOf(apiError.code) ?? 500;
      if (status === 401) res.setHeader("www-authenticate", 'Bearer realm="postern"');
      sendJson(res, status, {
        error: { code: apiError.code, message: apiError.message, ...(apiError.problems ? { problems: apiError.problems } : {}), requestId },
      });
    }
  }

  #match(method: string, path: string): { route: Route; params: Record<string, string> } | "method" | undefined {
    let pathMatched = false;
    for (const c of this.#compiled) {
      const m = c.pattern.exec(path);
      if (!m) continue;
      pathMatched = true;
      if (c.route.method !== method) continue;
      const params: Record<string, string> = {};
      c.names.forEach((name, i) => {
        try {
          params[name] = decodeURIComponent(m[i + 1]!);
        } catch {
          throw new ApiError("POSTERN_BAD_REQUEST", `path parameter ${name} is not valid percent-encoding`);
        }
      });
      return { route: c.route, params };
    }
    return pathMatched ? "method" : undefined;
  }

  async #authenticate(r: Route, req: IncomingMessage): Promise<Caller> {
    const header = req.headers.authorization ?? "";
    if (r.auth === "public") return { kind: "user", sub: "anonymous", name: "anonymous", roles: [], groups: [] };
    if (r.auth === "proof") {
      const m = /^Postern-Proof\s+(\S+)$/i.exec(header);
      if (!m) throw new ApiError("POSTERN_AUTH_REQUIRED", "this endpoint needs a connector or engine identity proof (Authorization: Postern-Proof ...)");
      return this.auth.peer(m[1]!, req);
    }
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) throw new ApiError("POSTERN_AUTH_REQUIRED", "sign in first: this endpoint needs Authorization: Bearer <token>");
    return this.auth.user(m[1]!);
  }

  /** Separate from authentication so a refusal is audited under the caller's name. */
  #authorize(r: Route, caller: Caller): void {
    const allowed = typeof r.auth === "object" ? r.auth.roles : undefined;
    if (allowed === undefined || caller.kind !== "user") return;
    if (!caller.roles.some((role) => allowed.includes(role))) {
      throw new ApiError("POSTERN_FORBIDDEN", `${r.method} ${r.path} needs one of the roles: ${allowed.join(", ")}; you have ${caller.roles.length > 0 ? caller.roles.join(", ") : "no admin role"}`);
    }
  }

  async #audit(r: Route, caller: Caller | undefined, target: string, outcome: "success" | "failure", detail: Record<string, unknown>): Promise<void> {
    const actor = caller === undefined ? "unauthenticated" : caller.kind === "user" ? caller.name : `${caller.peer.kind}:${caller.peer.id}`;
    await this.audit({ actor, action: r.action ?? `${r.method} ${r.path}`, target, outcome, detail });
  }
}

function parseWith<T>(schema: z.ZodType<T>, value: unknown, where: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const problems = problemsFromZod(parsed.error);
    throw new ApiError(where === "query" ? "POSTERN_BAD_REQUEST" : "POSTERN_VALIDATION", `invalid ${where}: ${problems.map((p) => `${p.field}: ${p.message}`).join("; ")}`, problems);
  }
  return parsed.data;
}

function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof PosternError) {
    if (err.code === "POSTERN_HANDSHAKE") return new ApiError("POSTERN_IDENTITY_REFUSED", err.message);
    if (httpStatusOf(err.code) !== undefined) return new ApiError(err.code, err.message);
    return new ApiError("POSTERN_BAD_REQUEST", err.message);
  }
  // Unknown failures stay opaque to the caller; the message is for the log.
  const internal = new ApiError("POSTERN_INTERNAL", "internal error");
  (internal as { cause?: unknown }).cause = err;
  return internal;
}

export async function readJson(req: IncomingMessage): Promise<unknown> {
  const type = req.headers["content-type"] ?? "";
  if (!/^application\/json\b/i.test(type)) throw new ApiError("POSTERN_BAD_REQUEST", `expected Content-Type: application/json, got "${type}"`);
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > MAX_BODY_BYTES) throw new ApiError("POSTERN_BAD_REQUEST", `body of ${declared} bytes is over the ${MAX_BODY_BYTES}-byte limit`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new ApiError("POSTERN_BAD_REQUEST", `body is over the ${MAX_BODY_BYTES}-byte limit`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
  } catch {
    throw new ApiError("POSTERN_BAD_REQUEST", "the body is not valid JSON");
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const text = body === undefined ? "" : JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store", "content-length": Buffer.byteLength(text) });
  res.end(text);
}
