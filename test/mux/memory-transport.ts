import { closeError, type Transport, type TransportHandlers } from "../../engine/mux/transport.js";

/**
 * Two in-process transports joined back to back, for unit tests of the session logic.
 * Delivery is asynchronous (one macrotask per message, like a socket), and bufferedAmount
 * counts bytes sent but not yet delivered, so backpressure paths run as they do on a socket.
 */
export function memoryPair(): [Transport, Transport] {
  const a = new MemoryTransport();
  const b = new MemoryTransport();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

class MemoryTransport implements Transport {
  peer!: MemoryTransport;
  bufferedAmount = 0;
  private handlers: TransportHandlers | null = null;
  private early: Buffer[] = [];
  private closed = false;

  bind(handlers: TransportHandlers): void {
    this.handlers = handlers;
    for (const m of this.early.splice(0)) handlers.message(m);
  }

  send(data: Buffer): void {
    if (this.closed) return;
    this.bufferedAmount += data.length;
    setImmediate(() => {
      this.bufferedAmount -= data.length;
      this.peer.deliver(data);
      this.handlers?.drain();
    });
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    // Let messages already queued arrive first, as a WebSocket close frame would.
    setImmediate(() => {
      this.handlers?.closed();
      this.peer.remoteClosed(code, reason);
    });
  }

  private deliver(data: Buffer): void {
    if (this.closed) return;
    if (this.handlers === null) this.early.push(data);
    else this.handlers.message(data);
  }

  private remoteClosed(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.handlers?.closed(closeError(code, reason));
  }
}
