/**
 * The connector's half of a request: check the target against the apps published through
 * its group (anything else is refused, whatever the engine asks: no SSRF), send it to the
 * backend through undici's keep-alive pools with fresh HTTP/1.1 framing, and stream the
 * response back with backpressure both ways. The backend timeout (85 s / 180 s, from the
 * engine's head) runs here as well: the backend request is aborted when it fires or when the
 * engine resets the stream. Redirects are never followed.
 */
import { Readable } from "node:stream";
import type { Logger } from "pino";
import { Agent, errors as undiciErrors, type Dispatcher } from "undici";
import type { Stream } from "../engine/mux/stream.js";
import { wireCodeOf, type ErrorCode } from "../engine/errors/catalogue.js";
import { WireError } from "../engine/protocol/constants.js";
import type { ConnectorConfig } from "../control/contract/feed.js";
import type { ConnectorSettings } from "./settings.js";
import { relayUpgrade } from "./upgrade.js";
import { HOP_BY_HOP, isEndToEnd, isValidField } from "../engine/http/headers.js";
import { staysUnder } from "../engine/http/paths.js";
import type { RequestMetrics } from "../engine/metrics/requests.js";

type PublishedApp = ConnectorConfig["apps"][number];

/** Not sent to a backend beside the hop-by-hop ones: the edge answered the expectation itself. */
const EDGE_ONLY = new Set(["expect"]);

export interface ProxyOptions {
  readonly config: () => ConnectorConfig | null;
  readonly logger: Logger;
  /** Requests to backends, by app (unset: not counted). */
  readonly metrics?: RequestMetrics;
  readonly settings: Pick<ConnectorSettings, "backendConnectionsPerOrigin" | "backendKeepAliveMs" | "backendBodyIdleMs">;
}

export class BackendProxy {
  readonly #verified: Agent;
  readonly #unverified: Agent;

  constructor(private readonly options: ProxyOptions) {
    // undici follows no redirects unless told to: a backend redirect goes back to the user, translated.
    const { backendConnectionsPerOrigin, backendKeepAliveMs, backendBodyIdleMs } = options.settings;
    const common = { connections: backendConnectionsPerOrigin, keepAliveTimeout: backendKeepAliveMs, bodyTimeout: backendBodyIdleMs };
    this.#verified = new Agent({ ...common, connect: { rejectUnauthorized: true } });
    this.#unverified = new Agent({ ...common, connect: { rejectUnauthorized: false } });
  }

  /** Finds the published app a stream is for, or why it is refused. */
  resolve(stream: Stream): { app: PublishedApp; origin: string; target: string } | { refused: string } {
    const head = stream.requestHead;
    const published = this.#published(this.options.config());
    const entry = head.ext ? published.get(head.ext.app) : undefined;
    if (!entry) return { refused: `app ${String(head.ext?.app)} is not published through this connector's group` };
    const target = head.target;
    // Only the published origin, and only under its published path: the target must be a
    // plain path under the prefix that cannot climb out of it once a backend resolves it.
    if (!staysUnder(target, entry.pathname)) return { refused: `${target} is outside ${entry.app.internalUrl}` };
    return { app: entry.app, origin: entry.origin, target };
  }

  /** Published apps by name with their parsed internal URL, rebuilt when the config changes. */
  #published(config: ConnectorConfig | null): Map<string, { app: PublishedApp; origin: string; pathname: string }> {
    if (this.#cache?.config !== config) {
      const apps = new Map<string, { app: PublishedApp; origin: string; pathname: string }>();
      for (const app of config?.apps ?? []) {
        const url = new URL(app.internalUrl);
        apps.set(app.name, { app, origin: url.origin, pathname: url.pathname });
      }
      this.#cache = { config, apps };
    }
    return this.#cache.apps;
  }

  #cache: { config: ConnectorConfig | null; apps: Map<string, { app: PublishedApp; origin: string; pathname: string }> } | undefined;

  handle(stream: Stream): void {
    const resolved = this.resolve(stream);
    if ("refused" in resolved) {
      this.options.logger.warn({ requestId: stream.requestHead.ext?.requestId, target: stream.requestHead.target, reason: resolved.refused }, "request refused");
      stream.reset(wireCodeOf("POSTERN_TARGET_FORBIDDEN"));
      return;
    }
    // resolve() found the app by the stream-open record, so it is there.
    const ext = stream.requestHead.ext!;
    const timeoutMs = Math.min(ext.timeoutMs, resolved.app.backendTimeoutMs);
    if (ext.upgrade === true) {
      relayUpgrade(stream, new URL(resolved.target, resolved.origin), resolved.app, timeoutMs, this.options.logger);
      return;
    }
    this.#forward(stream, resolved.app, resolved.origin, resolved.target, timeoutMs, ext.body, ext.length);
  }

  /**
   * Forwards through undici's dispatch() handler interface rather than request(): no promise,
   * AbortSignal or body stream per request, and backpressure maps one to one (pause the
   * backend socket while the tunnel stream is full, resume on 'drain').
   */
  #forward(stream: Stream, app: PublishedApp, origin: string, path: string, timeoutMs: number, hasBody: boolean, length: number | undefined): void {
    const head = stream.requestHead;
    const headers: string[] = [];
    for (let i = 0; i + 1 < head.headers.length; i += 2) {
      const name = head.headers[i]!;
      const lower = name.toLowerCase();
      if (isEndToEnd(lower) && !EDGE_ONLY.has(lower)) headers.push(name, head.headers[i + 1]!);
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
    const log = this.options.logger;
    const metrics = this.options.metrics;
    const started = performance.now();
    let bytes = 0;
    let controller: Dispatcher.DispatchController | undefined;
    let responded = false;
    stream.once("close", (err?: Error) => {
      // The engine gave up (timeout, client gone): so does the backend request.
      if (err && controller && !controller.aborted) controller.abort(err);
    });
    stream.on("drain", () => controller?.resume());
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c;
        if (stream.closed) c.abort(new Error("stream closed before the backend request started"));
      },
      onResponseStart(c, statusCode, responseHeaders) {
        if (statusCode < 200 || statusCode > 599) {
          // 1xx is undici's business; anything outside HTTP's range is not forwarded.
          c.abort(new Error(`invalid status ${statusCode}`));
          if (!stream.closed) stream.reset(wireCodeOf("POSTERN_BACKEND_INVALID"));
          return;
        }
        const out: string[] = [];
        for (const [name, value] of Object.entries(responseHeaders)) {
          if (HOP_BY_HOP.has(name) || name === "transfer-encoding") continue;
          for (const v of Array.isArray(value) ? value : [value ?? ""]) {
            // An invalid header fails this one request, never the tunnel or the process.
            if (!isValidField(name, v)) {
              c.abort(new Error(`invalid response header ${JSON.stringify(name)}`));
              if (!stream.closed) stream.reset(wireCodeOf("POSTERN_BACKEND_INVALID"));
              return;
            }
            out.push(name, v);
          }
        }
        if (stream.closed) return c.abort(new Error("stream closed"));
        responded = true;
        metrics?.count(app.name, statusCode);
        metrics?.latency(app.name, (performance.now() - started) / 1000);
        stream.respond({ status: statusCode, headers: out });
      },
      onResponseData(c, chunk) {
        if (stream.closed) return c.abort(new Error("stream closed"));
        bytes += chunk.length;
        if (!stream.write(chunk)) c.pause();
      },
      onResponseEnd() {
        metrics?.bytes(app.name, bytes);
        if (!stream.closed) stream.end();
      },
      onResponseError(_c, err) {
        if (!responded) metrics?.count(app.name, "error");
        else metrics?.bytes(app.name, bytes);
        if (stream.closed) return;
        const failure = responded ? "POSTERN_BACKEND_INVALID" : backendFailure(err);
        stream.reset(failure === undefined ? WireError.CANCEL : wireCodeOf(failure));
        log.info({ requestId: head.ext?.requestId, url: origin + path, code: (err as { code?: string }).code, err: err.message }, "backend request failed");
      },
    };
    (app.validateBackendTls ? this.#verified : this.#unverified).dispatch({
      origin,
      path,
      method: head.method as Dispatcher.HttpMethod,
      headers,
      body: body ?? null,
      headersTimeout: timeoutMs,
      bodyTimeout: this.options.settings.backendBodyIdleMs,
    }, handler);
  }

  async close(): Promise<void> {
    await Promise.all([this.#verified.close(), this.#unverified.close()]);
  }
}

/** What a failed backend request means for the user, as a catalogue code; undefined: it was cancelled (by us or the engine). */
function backendFailure(err: unknown): ErrorCode | undefined {
  if (err instanceof undiciErrors.HeadersTimeoutError) return "POSTERN_BACKEND_TIMEOUT";
  const code = (err as { code?: string }).code ?? "";
  if (code.startsWith("HPE_") || err instanceof undiciErrors.ResponseError) return "POSTERN_BACKEND_INVALID";
  if (code === "UND_ERR_ABORTED" || (err as Error).name === "AbortError") return undefined;
  return "POSTERN_BACKEND_UNREACHABLE";
}
