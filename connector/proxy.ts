/**
 * The connector's half of a request: check the target against the apps published through
 * its group (anything else is refused, whatever the engine asks: no SSRF), send it to the
 * backend through undici's keep-alive pools with fresh HTTP/1.1 framing, and stream the
 * response back with backpressure both ways. The backend timeout (85 s / 180 s, from the
 * engine's head) runs here as well: the backend request is aborted when it fires or when the
 * engine resets the stream. Redirects are never followed.
 */
import { once } from "node:events";
import { Readable } from "node:stream";
import type { Logger } from "pino";
import { Agent, errors as undiciErrors, type Dispatcher } from "undici";
import type { Session } from "../engine/mux/session.js";
import type { Stream } from "../engine/mux/stream.js";
import { WireError } from "../engine/protocol/constants.js";
import type { ConnectorConfig } from "../engine/protocol/feed.js";
import { relayWebSocket } from "./websocket.js";

type PublishedApp = ConnectorConfig["apps"][number];

const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "proxy-authorization", "proxy-authenticate", "content-length"]);
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** Backend body stalls longer than this abort the request, ms. */
const BODY_IDLE_MS = 300_000;

export interface ProxyOptions {
  readonly config: () => ConnectorConfig | null;
  readonly logger: Logger;
  /** Keep-alive connections per backend origin. */
  readonly connectionsPerOrigin?: number; // 256
}

export class BackendProxy {
  readonly #verified: Agent;
  readonly #unverified: Agent;

  constructor(private readonly options: ProxyOptions) {
    // undici follows no redirects unless told to: a backend redirect goes back to the user, translated.
    const common = { connections: options.connectionsPerOrigin ?? 256, keepAliveTimeout: 30_000, bodyTimeout: BODY_IDLE_MS };
    this.#verified = new Agent({ ...common, connect: { rejectUnauthorized: true } });
    this.#unverified = new Agent({ ...common, connect: { rejectUnauthorized: false } });
  }

  /** Finds the published app a stream is for, or why it is refused. */
  resolve(stream: Stream): { app: PublishedApp; url: URL } | { refused: string } {
    const head = stream.requestHead;
    const ext = (head.ext ?? {}) as { app?: unknown };
    const config = this.options.config();
    const app = config?.apps.find((a) => a.name === ext.app);
    if (!app) return { refused: `app ${String(ext.app)} is not published through this connector's group` };
    const base = new URL(app.internalUrl);
    if (!head.target.startsWith("/") || head.target.startsWith("//")) return { refused: "the target is not a path" };
    const url = new URL(head.target, base.origin);
    // Only the published origin, and only under its published path.
    if (url.origin !== base.origin || !url.pathname.startsWith(base.pathname)) return { refused: `${url.href} is outside ${app.internalUrl}` };
    return { app, url };
  }

  handle(stream: Stream, _session: Session): void {
    const resolved = this.resolve(stream);
    if ("refused" in resolved) {
      this.options.logger.warn({ target: stream.requestHead.target, reason: resolved.refused }, "request refused");
      stream.reset(WireError.TARGET_FORBIDDEN);
      return;
    }
    const ext = (stream.requestHead.ext ?? {}) as { ws?: unknown; timeoutMs?: unknown; body?: unknown; length?: unknown };
    if (ext.ws === true) {
      relayWebSocket(stream, resolved.url, resolved.app, this.options.logger);
      return;
    }
    const length = typeof ext.length === "number" && Number.isSafeInteger(ext.length) && ext.length >= 0 ? ext.length : undefined;
    const timeoutMs = typeof ext.timeoutMs === "number" ? Math.min(ext.timeoutMs, resolved.app.backendTimeoutMs) : resolved.app.backendTimeoutMs;
    void this.#forward(stream, resolved.app, resolved.url, timeoutMs, ext.body === true, length);
  }

  async #forward(stream: Stream, app: PublishedApp, url: URL, timeoutMs: number, hasBody: boolean, length: number | undefined): Promise<void> {
    const head = stream.requestHead;
    const abort = new AbortController();
    stream.once("close", (err?: Error) => {
      if (err) abort.abort(err); // the engine gave up (timeout, client gone): so does the backend request
    });
    const headers: string[] = [];
    for (let i = 0; i + 1 < head.headers.length; i += 2) {
      const name = head.headers[i]!.toLowerCase();
      if (!HOP_BY_HOP.has(name)) headers.push(name, head.headers[i + 1]!);
    }
    let body: Readable | undefined;
    if (length !== undefined) headers.push("content-length", String(length));
    if (hasBody) {
      body = new Readable({ read: () => stream.resume() });
      stream.on("data", (chunk: Buffer) => {
        if (!body!.push(chunk)) stream.pause();
      });
      stream.once("end", () => body!.push(null));
    }
    let response: Dispatcher.ResponseData;
    try {
      response = await (app.validateBackendTls ? this.#verified : this.#unverified).request({
        origin: url.origin,
        path: url.pathname + url.search,
        method: head.method as Dispatcher.HttpMethod,
        headers,
        ...(body ? { body } : {}),
        signal: abort.signal,
        headersTimeout: timeoutMs,
        bodyTimeout: BODY_IDLE_MS,
      });
    } catch (err) {
      if (!stream.closed) stream.reset(resetCodeFor(err));
      if (!abort.signal.aborted) this.options.logger.info({ url: url.href, code: (err as { code?: string }).code, err: (err as Error).message }, "backend request failed");
      return;
    }
    const out: string[] = [];
    for (const [name, value] of Object.entries(response.headers)) {
      const lower = name.toLowerCase();
      if (lower === "connection" || lower === "keep-alive" || lower === "transfer-encoding" || lower === "trailer" || lower === "upgrade" || lower === "te") continue;
      for (const v of Array.isArray(value) ? value : [value ?? ""]) {
        // An invalid header fails this one request, never the tunnel or the process.
        if (!TOKEN.test(name) || !VALUE.test(v)) {
          response.body.destroy();
          if (!stream.closed) stream.reset(WireError.BACKEND_INVALID_RESPONSE);
          return;
        }
        out.push(lower, v);
      }
    }
    if (stream.closed) {
      response.body.destroy();
      return;
    }
    stream.respond({ status: response.statusCode, headers: out });
    try {
      for await (const chunk of response.body) {
        if (stream.closed) break;
        if (!stream.write(chunk as Buffer)) await Promise.race([once(stream, "drain"), once(stream, "close")]);
      }
      if (!stream.closed) stream.end();
    } catch (err) {
      if (!stream.closed) stream.reset(WireError.BACKEND_INVALID_RESPONSE);
      this.options.logger.info({ url: url.href, err: (err as Error).message }, "backend response body failed");
    } finally {
      response.body.destroy();
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.#verified.close(), this.#unverified.close()]);
  }
}

function resetCodeFor(err: unknown): number {
  if (err instanceof undiciErrors.HeadersTimeoutError) return WireError.BACKEND_TIMEOUT;
  const code = (err as { code?: string }).code ?? "";
  if (code.startsWith("HPE_") || err instanceof undiciErrors.ResponseError) return WireError.BACKEND_INVALID_RESPONSE;
  if (code === "UND_ERR_ABORTED" || (err as Error).name === "AbortError") return WireError.CANCEL;
  return WireError.BACKEND_UNREACHABLE;
}
