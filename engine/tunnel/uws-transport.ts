import { PosternError } from "../errors/catalogue.js";
import { uws, type TemplatedApp, type WebSocket } from "../uws/index.js";
import { Session, type SessionOptions } from "../mux/session.js";
import { closeError, type Transport, type TransportHandlers } from "../mux/transport.js";

export interface TunnelListenerOptions {
  /** URL path of the tunnel endpoint. */
  readonly path?: string;
  /**
   * Session options for accepted connections (the role is "server"); a function makes them per
   * connection, e.g. to send each one its own identity challenge.
   */
  readonly session: Omit<SessionOptions, "role"> | ((info: { readonly remoteAddress: string }) => Omit<SessionOptions, "role">);
  /** Largest WebSocket message accepted, bytes; uWS closes the connection past it. */
  readonly maxMessageBytes?: number;
  /** Called for each accepted connection, before its HELLO exchange, with the options it got. */
  readonly onSession: (session: Session, info: { readonly remoteAddress: string; readonly options: Omit<SessionOptions, "role"> }) => void;
}

interface TunnelUserData {
  transport?: UwsTransport;
}

/** A uWS server-side WebSocket as a session transport. */
class UwsTransport implements Transport {
  private handlers: TransportHandlers | null = null;
  private gone = false;

  constructor(private readonly ws: WebSocket<TunnelUserData>) {}

  get bufferedAmount(): number {
    return this.gone ? 0 : this.ws.getBufferedAmount();
  }

  bind(handlers: TransportHandlers): void {
    this.handlers = handlers;
  }

  send(data: Buffer): void {
    if (this.gone) return;
    // 2 = dropped past maxBackpressure; it is set far above the session's own limit, so a drop
    // means the stream of frames is broken: end the connection rather than skip bytes.
    if (this.ws.send(data, true, false) === 2) this.close(1011, "backpressure limit");
  }

  close(code: number, reason: string): void {
    if (this.gone) return;
    this.gone = true; // uWS calls the close handler synchronously: the session already knows
    this.ws.end(code, reason);
  }

  onMessage(message: ArrayBuffer): void {
    // uWS frees `message` when the handler returns; the session keeps views into the copy.
    this.handlers?.message(Buffer.copyBytesFrom(new Uint8Array(message)));
  }

  onDrain(): void {
    this.handlers?.drain();
  }

  onClose(code: number, message: ArrayBuffer): void {
    if (this.gone) return;
    this.gone = true;
    this.handlers?.closed(closeError(code, Buffer.from(message).toString("utf8")));
  }
}

/** Maximum uWS backpressure: far above any session's maxTransportBuffer. */
const UWS_MAX_BACKPRESSURE = 1024 * 1024 * 1024;

/** Adds the tunnel WebSocket endpoint to a uWS app; each connection becomes a server Session. */
export function attachTunnel(app: TemplatedApp, options: TunnelListenerOptions): void {
  app.ws<TunnelUserData>(options.path ?? "/tunnel", {
    compression: uws.DISABLED,
    maxPayloadLength: options.maxMessageBytes ?? 1024 * 1024,
    maxBackpressure: UWS_MAX_BACKPRESSURE,
    idleTimeout: 0, // the session's PING keepalive detects dead peers
    sendPingsAutomatically: false,
    open: (ws) => {
      const transport = new UwsTransport(ws);
      ws.getUserData().transport = transport;
      const remoteAddress = Buffer.from(ws.getRemoteAddressAsText()).toString();
      const sessionOptions = typeof options.session === "function" ? options.session({ remoteAddress }) : options.session;
      const session = new Session(transport, { ...sessionOptions, role: "server" });
      try {
        options.onSession(session, { remoteAddress, options: sessionOptions });
      } catch (err) {
        session.close(new PosternError("POSTERN_HANDSHAKE", `session refused: ${(err as Error).message}`, { cause: err }));
      }
    },
    message: (ws, message) => ws.getUserData().transport?.onMessage(message),
    drain: (ws) => ws.getUserData().transport?.onDrain(),
    close: (ws, code, message) => ws.getUserData().transport?.onClose(code, message),
  });
}
