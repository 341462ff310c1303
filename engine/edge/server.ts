/**
 * The engine's public listeners: HTTP and (optionally) HTTPS on uWebSockets.js, every path to
 * the proxy and every upgrade to the WebSocket relay. The routing table is rebuilt from each
 * config snapshot and swapped in with one assignment.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { EngineConfig } from "../../control/contract/feed.js";
import { resolveLimits, type EdgeLimitsInput } from "../limits/config.js";
import { Throttle } from "../limits/throttle.js";
import type { ConnectorRegistry } from "../tunnel/registry.js";
import { listen, uws, type Listening, type TemplatedApp } from "../uws/index.js";
import { handleHttp, realTimers, type EdgeState, type Timers } from "./proxy.js";
import { RouteTable } from "./routes.js";
import { authPoolSchema, taskFile, WorkerPool, type AuthPoolInput, type TranslateLimitsInput } from "../workers/pool.js";
import { resolveSettings } from "../config/settings.js";
import type { AuthResult, AuthTask } from "../workers/auth-task.js";
import { AuthGate, type AuthConfig } from "../auth/gate.js";
import type { SignInReport } from "../../control/contract/feed.js";
import type { Dispatcher } from "undici";
import { authPage } from "./pages.js";
import { attachWebSockets } from "./websocket.js";
import { type Clock } from "../config/clock.js";

export interface EdgeOptions {
  readonly host: string;
  /** Plain HTTP port; unset: no HTTP listener; 0 picks a free port. */
  readonly httpPort?: number;
  /** HTTPS listener with a default certificate (PEM files). */
  readonly https?: { readonly port: number; readonly keyFile: string; readonly certFile: string };
  readonly registry: ConnectorRegistry;
  readonly limits?: EdgeLimitsInput;
  /** Worker pool for body link translation (threads, queue, per-response budgets). */
  readonly translate?: TranslateLimitsInput;
  /** Pre-authentication: how to reach identity providers, where sign-ins are recorded, the crypto pool's limits. */
  readonly auth?: { readonly dispatcher?: Dispatcher; readonly signIns?: (record: SignInReport) => void; readonly pool?: AuthPoolInput };
  readonly timers?: Timers;
  readonly now?: Clock;
}


export class Edge {
  readonly state: EdgeState;
  readonly #listening: Listening[] = [];
  #https: TemplatedApp | undefined;
  /** SNI hosts served with a custom-domain certificate: host -> certificate fingerprint. */
  readonly #sni = new Map<string, string>();
  #certDir: string | undefined;
  #authPool: WorkerPool<AuthTask, AuthResult> | undefined;
  httpPort: number | undefined;
  httpsPort: number | undefined;

  private constructor(state: EdgeState) {
    this.state = state;
  }

  static async start(options: EdgeOptions): Promise<Edge> {
    const limits = resolveLimits(options.limits);
    const edge = new Edge({
      routes: new RouteTable([]),
      registry: options.registry,
      throttle: new Throttle(limits, options.now),
      limits,
      timers: options.timers ?? realTimers,
      inflight: 0,
      queue: [],
      ...(options.translate ? { translateLimits: options.translate } : {}),
    });
    edge.state.gate = new AuthGate({
      pool: () => (edge.#authPool ??= new WorkerPool<AuthTask, AuthResult>(
        resolveSettings(authPoolSchema, options.auth?.pool, "auth pool"), taskFile("auth-task"), "POSTERN_AUTH_UNAVAILABLE", "token validation")),
      ...(options.auth?.dispatcher ? { dispatcher: options.auth.dispatcher } : {}),
      ...(options.auth?.signIns ? { signIns: options.auth.signIns } : {}),
      ...(options.now ? { now: options.now } : {}),
      page: authPage,
    });
    if (options.httpPort !== undefined) {
      const l = await listen(edge.#app(uws.App(), "http"), options.host, options.httpPort);
      edge.#listening.push(l);
      edge.httpPort = l.port;
    }
    if (options.https) {
      const app = uws.SSLApp({ key_file_name: options.https.keyFile, cert_file_name: options.https.certFile });
      edge.#https = app;
      const l = await listen(edge.#app(app, "https"), options.host, options.https.port);
      edge.#listening.push(l);
      edge.httpsPort = l.port;
    }
    return edge;
  }

  #app(app: TemplatedApp, scheme: "http" | "https"): TemplatedApp {
    attachWebSockets(app, this.state, scheme);
    app.any("/*", (res, req) => handleHttp(this.state, res, req, scheme));
    return app;
  }

  /** Swaps in the routes of a new config snapshot, and the custom-domain certificates. */
  apply(config: EngineConfig): void {
    const apps = config.apps;
    this.state.routes = new RouteTable(apps);
    this.state.gate?.apply((config as { auth?: AuthConfig }).auth);
    this.state.throttle.retain(new Set(apps.map((a) => `${a.tenantId}/${a.name}`)), new Set(apps.map((a) => a.tenantId)));
    if (this.#https) this.#applyCertificates(this.#https, config.certificates ?? []);
  }

  /**
   * SNI: each custom domain gets its certificate and its own router in uWS (a server name
   * only sees routes registered under `domain(name)`), pointing at the same handlers.
   */
  #applyCertificates(app: TemplatedApp, certificates: EngineConfig["certificates"]): void {
    const wanted = new Map(certificates.map((c) => [c.host.toLowerCase(), c]));
    for (const [host, fingerprint] of this.#sni) {
      if (wanted.get(host)?.fingerprint !== fingerprint) {
        app.removeServerName(host);
        this.#sni.delete(host);
      }
    }
    for (const [host, cert] of wanted) {
      if (this.#sni.has(host)) continue;
      // uWS reads certificates from files: keep them in a directory only this user can read.
      this.#certDir ??= mkdtempSync(join(tmpdir(), "postern-sni-"));
      const base = join(this.#certDir, cert.fingerprint.replace(/[^0-9A-F]/gi, ""));
      writeFileSync(`${base}.key`, cert.keyPem, { mode: 0o600 });
      writeFileSync(`${base}.crt`, cert.certPem, { mode: 0o600 });
      app.addServerName(host, { key_file_name: `${base}.key`, cert_file_name: `${base}.crt` });
      this.#app(app.domain(host), "https");
      this.#sni.set(host, cert.fingerprint);
    }
  }

  close(): void {
    for (const l of this.#listening) l.close();
    void this.state.translatePool?.close();
    void this.#authPool?.close();
    if (this.#certDir) rmSync(this.#certDir, { recursive: true, force: true });
  }
}
