/**
 * The engine's public listeners: HTTP and (optionally) HTTPS on uWebSockets.js, every path to
 * the proxy and every upgrade to the WebSocket relay. The routing table is rebuilt from each
 * config snapshot and swapped in with one assignment.
 */
import type { EngineConfig } from "../protocol/feed.js";
import { resolveLimits, type EdgeLimits } from "../limits/config.js";
import { Throttle } from "../limits/throttle.js";
import type { ConnectorRegistry } from "../tunnel/registry.js";
import { listen, uws, type Listening, type TemplatedApp } from "../uws/index.js";
import { handleHttp, realTimers, type EdgeState, type Timers } from "./proxy.js";
import { RouteTable, type EdgeApp } from "./routes.js";
import { attachWebSockets } from "./websocket.js";

export interface EdgeOptions {
  readonly host: string;
  /** Plain HTTP port; unset: no HTTP listener; 0 picks a free port. */
  readonly httpPort?: number;
  /** HTTPS listener with a default certificate (PEM files). */
  readonly https?: { readonly port: number; readonly keyFile: string; readonly certFile: string };
  readonly registry: ConnectorRegistry;
  readonly limits?: Partial<EdgeLimits>;
  readonly timers?: Timers;
  readonly now?: () => number;
}

export class Edge {
  readonly state: EdgeState;
  readonly #listening: Listening[] = [];
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
    });
    if (options.httpPort !== undefined) {
      const l = await listen(edge.#app(uws.App(), "http"), options.host, options.httpPort);
      edge.#listening.push(l);
      edge.httpPort = l.port;
    }
    if (options.https) {
      const app = uws.SSLApp({ key_file_name: options.https.keyFile, cert_file_name: options.https.certFile });
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

  /** Swaps in the routes of a new config snapshot. */
  apply(config: EngineConfig): void {
    const apps = config.apps as unknown as EdgeApp[];
    this.state.routes = new RouteTable(apps);
    this.state.throttle.retain(new Set(apps.map((a) => `${a.tenantId}/${a.name}`)), new Set(apps.map((a) => a.tenantId)));
  }

  close(): void {
    for (const l of this.#listening) l.close();
  }
}
