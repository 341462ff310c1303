/**
 * HTTP/1.1 connections handle one request at a time at the edge: a pipelined request waits
 * for the one before it, and is never processed when that one's response closed the
 * connection (a refusal must be the last thing that happens on it, whatever the client
 * pipelined behind it).
 */
import type { IncomingMessage, ServerResponse } from "node:http";

interface SocketTurn {
  busy: boolean;
  /** A response closes the connection (or the socket failed): nothing more is processed. */
  closing: boolean;
  waiting: (() => void)[];
}

const turns = new WeakMap<object, SocketTurn>();
/** Pipelined requests held per connection before it is closed (they cannot be answered out of order). */
const MAX_PIPELINED = 16;

function turnOf(socket: object): SocketTurn {
  let turn = turns.get(socket);
  if (!turn) turns.set(socket, (turn = { busy: false, closing: false, waiting: [] }));
  return turn;
}

/** Nothing after the current request is processed on this connection. */
export function closeAfterThis(socket: object | null | undefined): void {
  if (socket) turnOf(socket).closing = true;
}

/** Runs `run` for this request once the requests before it on its connection are done. */
export function inTurn(req: IncomingMessage, res: ServerResponse, run: () => void): void {
  const turn = turnOf(req.socket);
  const go = () => {
    if (turn.closing) {
      req.socket.destroy();
      return;
    }
    turn.busy = true;
    res.once("close", () => {
      if (!res.shouldKeepAlive || !res.writableFinished) turn.closing = true;
      turn.busy = false;
      const next = turn.waiting.shift();
      if (next) next();
    });
    run();
  };
  if (!turn.busy && !turn.closing) return go();
  if (turn.closing || turn.waiting.length >= MAX_PIPELINED) {
    req.socket.destroy();
    return;
  }
  turn.waiting.push(go);
}
