import { PosternError } from "../errors/catalogue.js";

/** What a session needs from the connection under it: ordered, reliable binary messages. */
export interface TransportHandlers {
  /** One received message. The session owns the buffer from here on. */
  message(data: Buffer): void;
  /** The transport buffered less than before; the session re-checks bufferedAmount. */
  drain(): void;
  /** The transport is gone; `err` is absent for a clean close. */
  closed(err?: PosternError): void;
}

export interface Transport {
  /** Queues one message; the transport takes ownership of the buffer. */
  send(data: Buffer): void;
  /** Bytes accepted by send() and not yet written to the network. */
  readonly bufferedAmount: number;
  /** Closes after queued messages are written. `code` is a WebSocket close code. */
  close(code: number, reason: string): void;
  /** Installs the session's handlers; called once, before any message is delivered. */
  bind(handlers: TransportHandlers): void;
}

/** WebSocket close codes the session uses. */
export const CloseCode = {
  NORMAL: 1000,
  PROTOCOL_ERROR: 1002,
  /** Postern: the peer failed the HELLO exchange. */
  HANDSHAKE: 4001,
  /** Postern: the peer stopped answering or reading. */
  TIMEOUT: 4002,
} as const;

/** The error a session sees for a transport closed with `code`; none for a normal close. */
export function closeError(code: number, reason: string): PosternError | undefined {
  if (code === CloseCode.NORMAL) return undefined;
  return new PosternError("POSTERN_TRANSPORT_CLOSED", `connection closed (${code}${reason ? `: ${reason}` : ""})`);
}
