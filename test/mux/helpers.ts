import { once } from "node:events";
import { FrameType } from "../../engine/protocol/constants.js";
import { FrameDecoder, FrameWriter } from "../../engine/protocol/frame.js";
import { encodeHello, type Settings } from "../../engine/protocol/heads.js";
import type { MuxConfigInput } from "../../engine/mux/config.js";
import { Session } from "../../engine/mux/session.js";
import type { Transport } from "../../engine/mux/transport.js";
import { memoryPair } from "./memory-transport.js";
import type { PosternError } from "../../engine/errors/catalogue.js";
import type { Stream } from "../../engine/mux/stream.js";

export async function sessionPair(server: MuxConfigInput = {}, client: MuxConfigInput = {}) {
  const [a, b] = memoryPair();
  const s = new Session(a, { role: "server", config: server });
  const c = new Session(b, { role: "client", config: client });
  await Promise.all([s.ready, c.ready]);
  return { server: s, client: c };
}

export const CLIENT_SETTINGS: Settings = {
  maxConcurrentStreams: 100,
  initialStreamWindow: 64 * 1024,
  connectionWindow: 1024 * 1024,
  maxFrameSize: 16 * 1024,
  maxHeaderBlock: 16 * 1024,
};

export interface RawFrame {
  type: number;
  flags: number;
  id: number;
  payload: Buffer;
}

/**
 * A hand-driven client: it speaks raw frames so tests can break the protocol on purpose.
 * `transport` is whatever carries bytes (memory pair or a real WebSocket adapter).
 */
export class RawPeer {
  readonly frames: RawFrame[] = [];
  closed = false;
  private waiters: (() => void)[] = [];
  private readonly decoder = new FrameDecoder({ maxFrameSize: 1 << 24, maxHeaderBlock: 1 << 24 }, (type, flags, id, payload) => {
    this.frames.push({ type, flags, id, payload: Buffer.from(payload) });
    for (const w of this.waiters.splice(0)) w();
  });

  constructor(private readonly transport: Transport) {
    transport.bind({
      message: (d) => this.decoder.push(d),
      drain: () => {},
      closed: () => {
        this.closed = true;
        for (const w of this.waiters.splice(0)) w();
      },
    });
  }

  send(build: (w: FrameWriter) => void): void {
    const w = new FrameWriter();
    build(w);
    this.transport.send(w.take());
  }

  sendRaw(bytes: Buffer): void {
    this.transport.send(bytes);
  }

  hello(settings: Settings = CLIENT_SETTINGS, ext: Record<string, unknown> = {}): void {
    this.send((w) => w.frame(FrameType.HELLO, 0, 0, encodeHello({ capabilities: [], settings, ext })));
  }

  async waitFor(pred: (f: RawFrame) => boolean, timeoutMs = 5000): Promise<RawFrame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.frames.find(pred);
      if (hit) return hit;
      if (this.closed) throw new Error("peer closed before the frame arrived");
      if (Date.now() > deadline) throw new Error("timed out waiting for a frame");
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }

  /** The GOAWAY error code the session sent before closing. */
  async goawayCode(): Promise<number> {
    const f = await this.waitFor((x) => x.type === FrameType.GOAWAY);
    return f.payload.readUInt32BE(4);
  }
}

/** A server session with a raw client that has done the HELLO exchange. */
export async function serverWithRawClient(server: MuxConfigInput = {}, settings: Settings = CLIENT_SETTINGS) {
  const [a, b] = memoryPair();
  const s = new Session(a, { role: "server", config: server });
  const raw = new RawPeer(b);
  await raw.waitFor((f) => f.type === FrameType.HELLO);
  raw.hello(settings);
  await s.ready;
  return { server: s, raw };
}

export async function closeError(session: Session): Promise<PosternError | undefined> {
  if (session.closed) throw new Error("session already closed");
  const [err] = (await once(session, "close")) as [PosternError | undefined];
  return err;
}

/** Collects a stream's body and its close outcome. */
export function collect(stream: Stream): Promise<{ body: Buffer; err: PosternError | undefined }> {
  const chunks: Buffer[] = [];
  stream.on("data", (c: Buffer) => chunks.push(Buffer.from(c)));
  return new Promise((resolve) => stream.once("close", (err) => resolve({ body: Buffer.concat(chunks), err })));
}
