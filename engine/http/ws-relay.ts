/**
 * WebSocket messages inside a tunnel stream. The engine terminates the user's WebSocket and
 * the connector opens its own to the backend; between them each message travels as one
 * record on the stream (a stream is a byte pipe, so records carry their length):
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +---------------+-----------------------------------------------+
 *   |  Kind (8)     |                 Length (32) ...               |
 *   +---------------+-----------------------------------------------+
 *   |  ... Length   |        Payload (Length bytes) ...             |
 *   +---------------+-----------------------------------------------+
 *
 * Kind: 1 text, 2 binary, 8 close (payload: code u16, then a UTF-8 reason).
 */
import { PosternError } from "../errors/catalogue.js";

export const RelayKind = { TEXT: 1, BINARY: 2, CLOSE: 8 } as const;
const HEADER = 5;
/** Largest message relayed; larger ones close the socket (1009, message too big). */
export const MAX_RELAY_MESSAGE = 16 * 1024 * 1024;

export function encodeRelay(kind: number, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(HEADER + payload.length);
  out[0] = kind;
  out.writeUInt32BE(payload.length, 1);
  out.set(payload, HEADER);
  return out;
}

export function encodeRelayClose(code: number, reason: string): Buffer {
  const text = Buffer.from(reason.slice(0, 120));
  const payload = Buffer.allocUnsafe(2 + text.length);
  payload.writeUInt16BE(code, 0);
  text.copy(payload, 2);
  return encodeRelay(RelayKind.CLOSE, payload);
}

/** Reassembles records from stream chunks; calls `onMessage` for each whole one. */
export class RelayDecoder {
  #pending: Buffer[] = [];
  #size = 0;

  constructor(private readonly onMessage: (kind: number, payload: Buffer) => void) {}

  push(chunk: Buffer): void {
    this.#pending.push(chunk);
    this.#size += chunk.length;
    while (this.#size >= HEADER) {
      const head = this.#peek(HEADER);
      const kind = head[0]!;
      const length = head.readUInt32BE(1);
      if (kind !== RelayKind.TEXT && kind !== RelayKind.BINARY && kind !== RelayKind.CLOSE) {
        throw new PosternError("POSTERN_PROTOCOL", `unknown WebSocket relay record kind ${kind}`);
      }
      if (length > MAX_RELAY_MESSAGE) throw new PosternError("POSTERN_FRAME_SIZE", `WebSocket message of ${length} bytes is over ${MAX_RELAY_MESSAGE}`);
      if (this.#size < HEADER + length) return;
      const record = this.#take(HEADER + length);
      this.onMessage(kind, record.subarray(HEADER));
    }
  }

  #peek(n: number): Buffer {
    if (this.#pending[0]!.length >= n) return this.#pending[0]!;
    const joined = Buffer.concat(this.#pending);
    this.#pending = [joined];
    return joined;
  }

  #take(n: number): Buffer {
    const joined = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending);
    this.#pending = joined.length > n ? [joined.subarray(n)] : [];
    this.#size -= n;
    return joined.subarray(0, n);
  }
}
