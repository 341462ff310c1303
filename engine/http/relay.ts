/**
 * Raw bytes both ways between a tunnel stream and a byte pipe, after an upgrade: the user's
 * socket (or HTTP/2 stream) at the edge, the backend's socket at the connector. Whatever the
 * upgraded protocol carries (WebSocket frames with any subprotocol or extension) passes as it
 * is, with backpressure each way: a side that cannot take more pauses the other. One side
 * ending half-closes the other; either side failing resets or destroys the other. Both hops
 * run this same loop.
 */
import type { Duplex } from "node:stream";
import type { Stream } from "../mux/stream.js";
import { WireError } from "../protocol/constants.js";

/** Bytes already read from the pipe past the upgrade's head (`head` of an 'upgrade' event). */
export function relay(stream: Stream, pipe: Duplex, early?: Buffer): void {
  let pipeEnded = false;
  let streamEnded = false;
  const toStream = (chunk: Buffer): void => {
    if (stream.closed || chunk.length === 0) return;
    if (!stream.write(chunk)) pipe.pause();
  };
  if (early && early.length > 0) toStream(early);
  pipe.on("data", toStream);
  stream.on("drain", () => pipe.resume());
  stream.on("data", (chunk: Buffer) => {
    if (pipe.destroyed) return;
    if (!pipe.write(chunk)) stream.pause();
  });
  pipe.on("drain", () => stream.resume());
  pipe.once("end", () => {
    pipeEnded = true;
    if (!stream.closed) stream.end();
  });
  stream.once("end", () => {
    streamEnded = true;
    if (!pipe.destroyed) pipe.end();
  });
  pipe.once("close", () => {
    // Closed before both directions finished: the other side must not wait for more.
    if (!stream.closed && !(pipeEnded && streamEnded)) stream.reset(WireError.CANCEL);
  });
  pipe.on("error", () => undefined); // 'close' follows; the reset above reports it
  stream.once("close", (err?: Error) => {
    if (err) pipe.destroy();
    else if (!pipe.destroyed) pipe.end();
  });
}
