import type { Agent } from "node:http";
import type { Socket } from "node:net";
import type { PeerCertificate } from "node:tls";
import WebSocket from "ws";
import { PosternError } from "../engine/errors/catalogue.js";
import { Session, type SessionOptions } from "../engine/mux/session.js";
import { closeError, type Transport, type TransportHandlers } from "../engine/mux/transport.js";

/** TLS material for the dialling side: its client certificate and the CA it trusts. */
export interface DialTls {
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
  readonly ca?: string | Buffer | (string | Buffer)[];
  /** Server name for SNI and certificate checks when it differs from the URL host. */
  readonly servername?: string;
  /** Certificate name check; through a CONNECT proxy the URL's host must be checked explicitly. */
  readonly checkServerIdentity?: (hostname: string, cert: PeerCertificate) => Error | undefined;
}

export interface ConnectOptions {
  /** ws:// or wss:// URL of the engine's tunnel endpoint. */
  readonly url: string;
  readonly tls?: DialTls;
  /** Largest WebSocket message accepted, bytes. */
  readonly maxMessageBytes?: number;
  /** Time for TCP + TLS + WebSocket upgrade, ms. */
  readonly connectTimeoutMs?: number;
  /** HTTP agent for the upgrade request (an outbound proxy, for example). */
  readonly agent?: Agent;
}

export interface DialOptions extends ConnectOptions {
  /** Session options (the role is "client"). */
  readonly session: Omit<SessionOptions, "role">;
}

/** A `ws` client WebSocket as a session transport. */
class WsTransport implements Transport {
  private handlers: TransportHandlers | null = null;
  private early: Buffer[] = [];
  private gone = false;

  /** `socket`: the connection under the WebSocket, whose 'drain' tells when sending can go on. */
  constructor(private readonly ws: WebSocket, socket: Socket) {
    ws.on("message", (data: Buffer) => {
      if (this.handlers === null) this.early.push(data);
      else this.handlers.message(data);
    });
    ws.on("close", (code: number, reason: Buffer) => this.closed(closeError(code, reason.toString("utf8"))));
    ws.on("error", (err: Error) => this.closed(new PosternError("POSTERN_TRANSPORT_CLOSED", `tunnel connection failed: ${err.message}`, { cause: err })));
    // `ws` has no drain event of its own; the socket under it does.
    socket.on("drain", () => this.handlers?.drain());
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  bind(handlers: TransportHandlers): void {
    this.handlers = handlers;
    for (const m of this.early.splice(0)) handlers.message(m);
  }

  send(data: Buffer): void {
    if (this.gone) return;
    this.ws.send(data, { binary: true });
  }

  close(code: number, reason: string): void {
    if (this.gone) return;
    this.gone = true;
    this.ws.close(code, reason);
  }

  private closed(err?: PosternError): void {
    if (this.gone) return;
    this.gone = true;
    this.handlers?.closed(err);
    this.ws.terminate();
  }
}

/** Opens the WebSocket to an engine's tunnel endpoint, as a bare transport. */
export function connectTransport(options: ConnectOptions): Promise<Transport> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(options.url, {
      perMessageDeflate: false,
      maxPayload: options.maxMessageBytes ?? 1024 * 1024,
      handshakeTimeout: options.connectTimeoutMs ?? 10_000,
      ...(options.agent === undefined ? {} : { agent: options.agent }),
      ...options.tls,
    });
    const failEarly = (err: Error): void => {
      reject(new PosternError("POSTERN_TRANSPORT_CLOSED", `cannot connect to ${options.url}: ${err.message}`, { cause: err }));
    };
    ws.once("error", failEarly);
    ws.once("unexpected-response", (_req, res) => {
      ws.off("error", failEarly);
      ws.terminate();
      failEarly(new Error(`upgrade refused with HTTP ${res.statusCode}`));
    });
    let socket: Socket | undefined;
    ws.once("upgrade", (res) => (socket = res.socket));
    ws.once("open", () => {
      ws.off("error", failEarly);
      resolve(new WsTransport(ws, socket!));
    });
  });
}

/** Connects to an engine's tunnel endpoint; resolves once the HELLO exchange is done. */
export async function dialTunnel(options: DialOptions): Promise<Session> {
  const session = new Session(await connectTransport(options), { ...options.session, role: "client" });
  await session.ready;
  return session;
}
