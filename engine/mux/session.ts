import { EventEmitter } from "node:events";
import {
  Flag,
  FrameType,
  GOAWAY_FIXED_SIZE,
  GOAWAY_MAX_DEBUG,
  MAX_STREAM_ID,
  MAX_WINDOW,
  PING_PAYLOAD_SIZE,
  WireError,
} from "../protocol/constants.js";
import { PosternError, type ErrorCode } from "../errors/catalogue.js";
import { FrameDecoder, FrameWriter } from "../protocol/frame.js";
import {
  decodeHello,
  decodeRequestHead,
  decodeResponseHead,
  decodeSettingsUpdate,
  encodeHello,
  encodeRequestHead,
  encodeResponseHead,
  encodeSettingsUpdate,
  type Hello,
  type RequestHead,
  type ResponseHead,
  type Settings,
  type SettingsUpdate,
} from "../protocol/heads.js";
import { resolveMuxConfig, type MuxConfig, type MuxConfigInput } from "./config.js";
import { Stream, type StreamHost } from "./stream.js";
import { CloseCode, type Transport } from "./transport.js";

/**
 * "server": accepted the transport (the engine); sends HELLO first, opens odd stream ids.
 * "client": dialled it (the connector); answers the server's HELLO, opens even stream ids.
 */
export type Role = "server" | "client";

export interface SessionOptions {
  role: Role;
  config?: MuxConfigInput;
  /** Application fields for our HELLO; the client gets the server's HELLO to answer (e.g. sign its challenge). */
  helloExt?: (peer: Hello | null) => Record<string, unknown> | Promise<Record<string, unknown>>;
  /** Checks the peer's HELLO (identity, capabilities); throw or reject to refuse the peer. */
  verifyPeer?: (peer: Hello) => void | Promise<void>;
}

type State = "hello" | "verifying" | "open" | "closed";

/** Frames that arrive while the peer's HELLO is being verified wait here, up to this many. */
const MAX_HELD_FRAMES = 1024;
/** DATA payloads at least this large skip the batch buffer and go to the transport as they are. */
const ZERO_COPY_DATA = 16 * 1024;
/** Pings in flight at once through ping(). */
const MAX_OUTSTANDING_PINGS = 16;

const ERROR_TO_WIRE: Partial<Record<ErrorCode, number>> = {
  POSTERN_PROTOCOL: WireError.PROTOCOL_ERROR,
  POSTERN_FRAME_SIZE: WireError.FRAME_SIZE_ERROR,
  POSTERN_FLOW_CONTROL: WireError.FLOW_CONTROL_ERROR,
  POSTERN_FLOOD: WireError.ENHANCE_YOUR_CALM,
  POSTERN_HANDSHAKE: WireError.HANDSHAKE_FAILED,
};

const WIRE_TO_ERROR: Record<number, ErrorCode> = {
  [WireError.PROTOCOL_ERROR]: "POSTERN_PROTOCOL",
  [WireError.FRAME_SIZE_ERROR]: "POSTERN_FRAME_SIZE",
  [WireError.FLOW_CONTROL_ERROR]: "POSTERN_FLOW_CONTROL",
  [WireError.ENHANCE_YOUR_CALM]: "POSTERN_FLOOD",
  [WireError.HANDSHAKE_FAILED]: "POSTERN_HANDSHAKE",
};

type Handler = (flags: number, streamId: number, payload: Buffer) => void;

const noop = (): void => {};

/**
 * A multiplexed session over one message transport. Events: 'ready' (HELLO exchange done),
 * 'stream' (Stream opened by the peer; its requestHead is set), 'streamError' (a peer OPEN
 * had an invalid head; that stream was reset), 'goaway' ({ lastStreamId, code, debug }: the
 * peer is draining), 'close' (err?: PosternError). See docs/protocol.md for the rules enforced here.
 */
export class Session extends EventEmitter implements StreamHost {
  readonly role: Role;
  readonly config: MuxConfig;
  /** Settles when the HELLO exchange completes (rejects if the session closes first). */
  readonly ready: Promise<void>;

  private state: State = "hello";
  private peer: Hello | null = null;
  private peerSettings: Settings | null = null;
  private capabilitySet: ReadonlySet<string> = new Set();

  private readonly transport: Transport;
  private readonly decoder: FrameDecoder;
  private readonly writer = new FrameWriter();
  private readonly handlers: Handler[];
  private readonly options: SessionOptions;
  private flushScheduled = false;
  private transportBlocked = false;
  private transportGone = false;

  private readonly streams = new Map<number, Stream>();
  /** Streams with queued data waiting for connection credit or transport room. */
  private readonly pendingSend = new Set<Stream>();
  private nextLocalId: number;
  private lastPeerId = 0;
  private localActive = 0;
  private peerActive = 0;

  /**
   * The receive window streams we open start with: the largest any stream auto-tuned to, so a
   * session that carries large responses does not grow every stream's window from the start.
   */
  private tunedStreamWindow: number;
  private connSendWindow = 0;
  private connRecvWindow: number;
  private connUnacked = 0;
  private sessionBuffered = 0;

  /** Our limit for peer streams: the configured value until updateSettings() moves it. */
  private localMaxStreams: number;
  private closing = false;
  private goawaySent = false;
  /** Highest of our stream ids the peer will process, once it sent GOAWAY. */
  private peerGoawayLastId: number | null = null;

  private readonly pings = new Map<bigint, { sentAt: number; resolve: (rtt: number) => void; reject: (err: Error) => void }>();
  private pingCounter = 0n;
  private keepalivePing: bigint | null = null;
  private missedPings = 0;
  private lastRtt: number | null = null;
  private keepaliveTimer: NodeJS.Timeout | null = null;
  private helloTimer: NodeJS.Timeout | null = null;
  private held: [number, number, number, Buffer][] = [];

  private floodWindowStart = 0;
  private floodOpened = 0;
  private floodResets = 0;
  private controlWindowStart = 0;
  private controlFrames = 0;

  private resolveReady!: () => void;
  private rejectReady!: (err: Error) => void;

  constructor(transport: Transport, options: SessionOptions) {
    super();
    this.options = options;
    this.role = options.role;
    this.config = resolveMuxConfig(options.config);
    this.nextLocalId = this.role === "server" ? 1 : 2;
    this.connRecvWindow = this.config.connectionWindow;
    this.tunedStreamWindow = this.config.initialStreamWindow;
    this.localMaxStreams = this.config.maxConcurrentStreams;
    this.transport = transport;
    this.ready = new Promise<void>((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.ready.catch(() => {}); // observed through 'close' as well; never unhandled
    this.handlers = [
      this.onHello,
      this.onSettings,
      this.onOpen,
      this.onResponse,
      this.onData,
      this.onEnd,
      this.onReset,
      this.onWindowUpdate,
      this.onPing,
      this.onGoaway,
    ].map((h) => h.bind(this));
    this.decoder = new FrameDecoder(this.config, (type, flags, id, payload) => this.dispatch(type, flags, id, payload));
    this.helloTimer = setTimeout(() => {
      this.fail(new PosternError("POSTERN_HANDSHAKE", `no HELLO within ${this.config.helloTimeoutMs} ms`));
    }, this.config.helloTimeoutMs);
    this.helloTimer.unref();
    transport.bind({
      message: (data) => this.onMessage(data),
      drain: () => this.onTransportDrain(),
      closed: (err) => this.onTransportClosed(err),
    });
    if (this.role === "server") void this.sendHello(null);
  }

  // ------------------------------------------------------------------ public surface

  get closed(): boolean {
    return this.state === "closed";
  }

  /** True once GOAWAY went either way: no new streams on this session. */
  get draining(): boolean {
    return this.goawaySent || this.peerGoawayLastId !== null;
  }

  /** Streams open in both directions. */
  get activeStreams(): number {
    return this.localActive + this.peerActive;
  }

  /** Streams we may still open before the peer's concurrency limit. */
  get availableStreams(): number {
    if (this.state !== "open" || this.draining || this.peerSettings === null) return 0;
    return Math.max(0, this.peerSettings.maxConcurrentStreams - this.localActive);
  }

  /** Round-trip time of the last answered PING, ms (null before the first). */
  get rttMs(): number | null {
    return this.lastRtt;
  }

  /** The peer's HELLO (after the exchange). */
  get peerHello(): Hello | null {
    return this.peer;
  }

  /** Capabilities both sides offered. */
  get capabilities(): ReadonlySet<string> {
    return this.capabilitySet;
  }

  #stalledWrites = 0;

  /** Writes that had to wait for flow-control credit or a full transport (metrics). */
  get stalledWrites(): number {
    return this.#stalledWrites;
  }

  /** Bytes held for paused readers across all streams. */
  get bufferedBytes(): number {
    return this.sessionBuffered;
  }

  /**
   * Opens a stream with a request head. Throws POSTERN_STREAM_REFUSED (retryable) at the
   * peer's concurrency limit, POSTERN_GOAWAY while draining, POSTERN_SESSION_CLOSED after close.
   */
  open(head: RequestHead, options?: { end?: boolean }): Stream {
    if (this.state === "closed") throw new PosternError("POSTERN_SESSION_CLOSED", "session is closed");
    if (this.state !== "open" || this.peerSettings === null) {
      throw new PosternError("POSTERN_STREAM_REFUSED", "session is not ready (HELLO exchange pending)");
    }
    if (this.draining) throw new PosternError("POSTERN_GOAWAY", "session is draining; open the stream elsewhere");
    if (this.localActive >= this.peerSettings.maxConcurrentStreams) {
      throw new PosternError("POSTERN_STREAM_REFUSED", `peer allows ${this.peerSettings.maxConcurrentStreams} concurrent streams`);
    }
    const id = this.nextLocalId;
    if (id > MAX_STREAM_ID) throw new PosternError("POSTERN_GOAWAY", "stream ids exhausted; open the stream on a new connection");
    const body = encodeRequestHead(head);
    if (body.length > this.peerSettings.maxHeaderBlock) {
      throw new PosternError("POSTERN_STREAM_STATE", `request head of ${body.length} bytes exceeds the peer's ${this.peerSettings.maxHeaderBlock}`);
    }
    this.nextLocalId += 2;
    const stream = new Stream(this, id, true, head, this.peerSettings.initialStreamWindow, this.config.initialStreamWindow);
    this.streams.set(id, stream);
    this.localActive++;
    this.writer.frame(FrameType.OPEN, 0, id, body);
    const extra = stream.widenReceiveWindow(this.tunedStreamWindow);
    if (extra > 0) this.writer.frameU32(FrameType.WINDOW_UPDATE, id, extra);
    this.afterWrite();
    if (options?.end === true) stream.end();
    return stream;
  }

  /** Measures the round trip with a PING; resolves with the RTT in ms. */
  ping(): Promise<number> {
    if (this.state !== "open") return Promise.reject(new PosternError("POSTERN_SESSION_CLOSED", "session is not open"));
    if (this.pings.size >= MAX_OUTSTANDING_PINGS) {
      return Promise.reject(new PosternError("POSTERN_FLOOD", `at most ${MAX_OUTSTANDING_PINGS} pings in flight`));
    }
    return new Promise((resolve, reject) => void this.sendPing(resolve, reject));
  }

  /** Lowers (or raises) how many streams the peer may open towards us. */
  updateSettings(update: SettingsUpdate): void {
    if (this.state !== "open") return;
    this.localMaxStreams = update.maxConcurrentStreams;
    this.writer.frame(FrameType.SETTINGS, 0, 0, encodeSettingsUpdate(update));
    this.afterWrite();
  }

  /**
   * Graceful drain, step one: tells the peer no new streams will be accepted (GOAWAY with the
   * last peer stream we process). The session closes itself once in-flight streams finish.
   */
  goaway(code: number = WireError.NO_ERROR): void {
    if (this.state === "closed" || this.goawaySent) return;
    this.goawaySent = true;
    this.writeGoaway(code, "");
    this.flush();
    this.closeIfDrained();
  }

  /** GOAWAY, wait for in-flight streams up to graceMs, then close (resetting stragglers). */
  async drain(graceMs: number): Promise<void> {
    if (this.state === "closed") return;
    this.goaway();
    if (this.closed) return; // nothing was in flight
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.close();
        resolve();
      }, graceMs);
      timer.unref();
      this.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Closes now. With an error, the peer gets GOAWAY with its wire code. */
  close(err?: PosternError): void {
    if (this.state === "closed" || this.closing) return;
    this.closing = true;
    if (!this.transportGone) {
      if (err !== undefined) this.writeGoaway(ERROR_TO_WIRE[err.code] ?? WireError.INTERNAL_ERROR, err.message);
      else if (!this.goawaySent) this.writeGoaway(WireError.NO_ERROR, "");
      this.flush();
      const code = err === undefined ? CloseCode.NORMAL : err.code === "POSTERN_HANDSHAKE" ? CloseCode.HANDSHAKE : CloseCode.PROTOCOL_ERROR;
      this.closeTransport(code, err?.code ?? "");
    }
    this.teardown(err);
  }

  // ------------------------------------------------------------------ StreamHost

  /** @internal */
  writeData(stream: Stream, chunk: Buffer): boolean {
    if (stream.writableLength === 0 && !this.transportBlocked) {
      const sent = this.sendNow(stream, chunk);
      if (sent === chunk.length) return true;
      chunk = chunk.subarray(sent);
    }
    this.#stalledWrites++;
    stream.queueSend(chunk);
    this.pendingSend.add(stream);
    return false;
  }

  /** @internal Sends what credit allows from the queue, then END if due. */
  flushStream(stream: Stream): void {
    if (!stream.flushQueue(this.sendQueuedChunk)) return; // still waiting for credit: stays in pendingSend
    if (stream.endDue) {
      this.writer.frame(FrameType.END, 0, stream.id);
      this.afterWrite();
      stream.sentEnd();
    }
    // A writer told to wait is told to go on only when the transport has room too; until
    // then the stream stays in pendingSend, which the transport's drain walks.
    if (stream.wantsDrain && this.transportBlocked) return;
    this.pendingSend.delete(stream);
    stream.drained();
  }

  /** Sends a queued chunk as far as credit and the transport allow (bound once: it runs per flush). */
  private readonly sendQueuedChunk = (stream: Stream, chunk: Buffer): number => (this.transportBlocked ? 0 : this.sendNow(stream, chunk));

  /** @internal */
  sendResponse(stream: Stream, head: ResponseHead): void {
    const body = encodeResponseHead(head);
    if (this.peerSettings !== null && body.length > this.peerSettings.maxHeaderBlock) {
      throw new PosternError("POSTERN_STREAM_STATE", `response head of ${body.length} bytes exceeds the peer's ${this.peerSettings.maxHeaderBlock}`);
    }
    this.writer.frame(FrameType.RESPONSE, 0, stream.id, body);
    this.afterWrite();
  }

  /** @internal */
  resetStream(stream: Stream, code: number): void {
    if (this.state === "closed" || !this.streams.has(stream.id)) return;
    this.writer.frameU32(FrameType.RESET, stream.id, code);
    this.afterWrite();
  }

  /** @internal */
  consumed(stream: Stream, bytes: number, buffered: boolean): void {
    if (buffered) {
      this.sessionBuffered -= bytes;
      this.creditConnection(stream.repayConnectionCredit(bytes));
    } else {
      this.creditConnection(bytes);
    }
    const increment = stream.acknowledge(bytes, buffered, this.config.maxStreamWindow);
    if (stream.receiveWindow > this.tunedStreamWindow) this.tunedStreamWindow = stream.receiveWindow;
    if (increment > 0) {
      this.writer.frameU32(FrameType.WINDOW_UPDATE, stream.id, increment);
      this.afterWrite();
    }
  }

  /** @internal */
  discarded(stream: Stream, bytes: number): void {
    this.sessionBuffered -= bytes;
    this.creditConnection(stream.repayConnectionCredit());
  }

  /** @internal */
  released(stream: Stream): void {
    if (this.streams.get(stream.id) !== stream) return;
    this.streams.delete(stream.id);
    this.pendingSend.delete(stream);
    if (stream.local) this.localActive--;
    else this.peerActive--;
    this.closeIfDrained();
  }

  // ------------------------------------------------------------------ receive path

  private onMessage(data: Buffer): void {
    if (this.state === "closed") return;
    this.missedPings = 0;
    try {
      this.decoder.push(data);
    } catch (err) {
      this.fail(err);
    }
  }

  private dispatch(type: number, flags: number, id: number, payload: Buffer): void {
    if (this.state === "closed") {
      this.decoder.fail();
      return;
    }
    if (this.state !== "open" && type !== FrameType.HELLO) {
      if (this.state === "verifying" && this.held.length < MAX_HELD_FRAMES) {
        this.held.push([type, flags, id, payload]);
        return;
      }
      throw new PosternError("POSTERN_HANDSHAKE", `expected HELLO, got frame type 0x${type.toString(16)}`);
    }
    this.handlers[type]!(flags, id, payload);
  }

  private onHello(_flags: number, _id: number, payload: Buffer): void {
    if (this.state !== "hello") throw new PosternError("POSTERN_PROTOCOL", "second HELLO");
    const hello = decodeHello(payload);
    this.state = "verifying";
    this.peer = hello;
    void this.completeHandshake(hello);
  }

  private async completeHandshake(hello: Hello): Promise<void> {
    try {
      await this.options.verifyPeer?.(hello);
      if (this.role === "client") await this.sendHello(hello);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      this.fail(new PosternError("POSTERN_HANDSHAKE", `peer refused: ${reason}`, { cause: err }));
      return;
    }
    if (this.state !== "verifying") return;
    this.state = "open";
    if (this.helloTimer !== null) clearTimeout(this.helloTimer);
    this.peerSettings = hello.settings;
    this.connSendWindow = hello.settings.connectionWindow;
    this.capabilitySet = new Set(hello.capabilities.filter((c) => this.config.capabilities.includes(c)));
    this.startKeepalive();
    this.resolveReady();
    this.emit("ready");
    const held = this.held;
    this.held = [];
    try {
      for (const [type, flags, id, payload] of held) {
        if (this.state !== "open") return;
        this.handlers[type]!(flags, id, payload);
      }
    } catch (err) {
      this.fail(err);
    }
  }

  private onSettings(flags: number, _id: number, payload: Buffer): void {
    this.countControlFrame();
    if ((flags & Flag.ACK) !== 0) {
      if (payload.length !== 0) throw new PosternError("POSTERN_FRAME_SIZE", "SETTINGS ACK with a payload");
      return;
    }
    const update = decodeSettingsUpdate(payload);
    this.peerSettings = { ...this.peerSettings!, ...update };
    this.writer.frame(FrameType.SETTINGS, Flag.ACK, 0);
    this.afterWrite();
  }

  private onOpen(_flags: number, id: number, payload: Buffer): void {
    if (this.isLocalId(id)) throw new PosternError("POSTERN_PROTOCOL", `OPEN with stream id ${id} of our parity`);
    if (id <= this.lastPeerId) throw new PosternError("POSTERN_PROTOCOL", `OPEN with stream id ${id}, not above ${this.lastPeerId}`);
    this.lastPeerId = id;
    this.countOpen();
    let head: RequestHead;
    try {
      head = decodeRequestHead(payload);
    } catch (err) {
      // A bad head fails that stream only: no state is shared between heads.
      this.writer.frameU32(FrameType.RESET, id, WireError.PROTOCOL_ERROR);
      this.afterWrite();
      this.emit("streamError", err);
      return;
    }
    if (this.goawaySent || this.peerActive >= this.localMaxStreams) {
      this.writer.frameU32(FrameType.RESET, id, WireError.REFUSED_STREAM);
      this.afterWrite();
      this.countReset();
      return;
    }
    const stream = new Stream(this, id, false, head, this.peerSettings!.initialStreamWindow, this.config.initialStreamWindow);
    this.streams.set(id, stream);
    this.peerActive++;
    this.emit("stream", stream);
  }

  private onResponse(_flags: number, id: number, payload: Buffer): void {
    const stream = this.streams.get(id);
    if (stream === undefined) {
      this.checkKnownId(id, "RESPONSE");
      return;
    }
    if (!stream.local) throw new PosternError("POSTERN_PROTOCOL", `RESPONSE on stream ${id} opened by the peer`);
    if (stream.responseHead !== undefined) throw new PosternError("POSTERN_PROTOCOL", `second RESPONSE on stream ${id}`);
    let head: ResponseHead;
    try {
      head = decodeResponseHead(payload);
    } catch (err) {
      this.resetStream(stream, WireError.PROTOCOL_ERROR);
      stream.close(err as PosternError);
      return;
    }
    stream.receiveResponse(head);
  }

  private onData(_flags: number, id: number, payload: Buffer): void {
    const n = payload.length;
    if (n === 0) this.countControlFrame();
    this.connRecvWindow -= n;
    if (this.connRecvWindow < 0) throw new PosternError("POSTERN_FLOW_CONTROL", "DATA beyond the connection window");
    const stream = this.streams.get(id);
    if (stream === undefined) {
      this.checkKnownId(id, "DATA");
      this.creditConnection(n); // late data for a stream we reset: the peer still spent the credit
      return;
    }
    if (stream.local && stream.responseHead === undefined) throw new PosternError("POSTERN_PROTOCOL", `DATA before RESPONSE on stream ${id}`);
    stream.acceptData(n);
    if (n === 0) return;
    if (stream.receiveData(payload)) return;
    this.sessionBuffered += n;
    if (this.sessionBuffered <= this.config.maxSessionBuffer) this.creditConnection(n);
    else stream.oweConnectionCredit(n);
  }

  private onEnd(_flags: number, id: number): void {
    const stream = this.streams.get(id);
    if (stream === undefined) {
      this.checkKnownId(id, "END");
      return;
    }
    if (stream.local && stream.responseHead === undefined) throw new PosternError("POSTERN_PROTOCOL", `END before RESPONSE on stream ${id}`);
    if (stream.endReceived) throw new PosternError("POSTERN_PROTOCOL", `second END on stream ${id}`);
    stream.receiveEnd();
  }

  private onReset(_flags: number, id: number, payload: Buffer): void {
    const code = payload.readUInt32BE(0);
    const stream = this.streams.get(id);
    if (!this.isLocalId(id)) this.countReset();
    if (stream === undefined) {
      this.checkKnownId(id, "RESET");
      return;
    }
    this.streams.delete(id); // no RESET goes back for a stream the peer reset
    if (stream.local) this.localActive--;
    else this.peerActive--;
    this.pendingSend.delete(stream);
    const errCode: ErrorCode = code === WireError.REFUSED_STREAM ? "POSTERN_STREAM_REFUSED" : "POSTERN_STREAM_RESET";
    stream.close(new PosternError(errCode, `stream ${id} reset by peer (code 0x${code.toString(16)})`, { wireCode: code }));
    this.closeIfDrained();
  }

  private onWindowUpdate(_flags: number, id: number, payload: Buffer): void {
    const increment = payload.readUInt32BE(0) & MAX_WINDOW;
    if (increment === 0) throw new PosternError("POSTERN_PROTOCOL", `WINDOW_UPDATE with zero increment on stream ${id}`);
    if (id === 0) {
      this.connSendWindow += increment;
      if (this.connSendWindow > MAX_WINDOW) throw new PosternError("POSTERN_FLOW_CONTROL", "connection window overflow");
      for (const stream of this.pendingSend) {
        if (this.connSendWindow <= 0 || this.transportBlocked) break;
        this.flushStream(stream);
      }
      return;
    }
    const stream = this.streams.get(id);
    if (stream === undefined) {
      this.checkKnownId(id, "WINDOW_UPDATE");
      return;
    }
    if (stream.grantSendCredit(increment)) this.flushStream(stream);
  }

  private onPing(flags: number, _id: number, payload: Buffer): void {
    if ((flags & Flag.ACK) !== 0) {
      const key = payload.readBigUInt64BE(0);
      const entry = this.pings.get(key);
      if (entry === undefined) return; // late answer to a ping we gave up on
      this.pings.delete(key);
      const rtt = performance.now() - entry.sentAt;
      this.lastRtt = rtt;
      if (key === this.keepalivePing) this.keepalivePing = null;
      entry.resolve(rtt);
      return;
    }
    this.countControlFrame();
    this.writer.frame(FrameType.PING, Flag.ACK, 0, payload);
    this.afterWrite();
  }

  private onGoaway(_flags: number, _id: number, payload: Buffer): void {
    const lastId = payload.readUInt32BE(0) & MAX_STREAM_ID;
    const code = payload.readUInt32BE(4);
    const debug = payload.subarray(GOAWAY_FIXED_SIZE).toString("utf8");
    if (this.peerGoawayLastId !== null && lastId > this.peerGoawayLastId) {
      throw new PosternError("POSTERN_PROTOCOL", "GOAWAY raised its last stream id");
    }
    this.peerGoawayLastId = lastId;
    this.emit("goaway", { lastStreamId: lastId, code, debug });
    // Our streams above lastId were never processed: fail them as retryable.
    for (const stream of [...this.streams.values()]) {
      if (stream.local && stream.id > lastId) {
        this.streams.delete(stream.id);
        this.localActive--;
        stream.close(new PosternError("POSTERN_STREAM_REFUSED", `stream ${stream.id} not processed before GOAWAY`, { wireCode: WireError.REFUSED_STREAM }));
      }
    }
    if (code !== WireError.NO_ERROR) {
      const errCode = WIRE_TO_ERROR[code] ?? "POSTERN_TRANSPORT_CLOSED";
      // The peer is closing; close our end too rather than trust it to (nothing more to say).
      this.closeTransport(CloseCode.NORMAL, "");
      this.teardown(new PosternError(errCode, `peer closed the session (code 0x${code.toString(16)}${debug ? `: ${debug}` : ""})`, { wireCode: code }));
      return;
    }
    this.closeIfDrained();
  }

  // ------------------------------------------------------------------ send path

  /** Writes as much of `chunk` as stream and connection credit allow; returns bytes written. */
  private sendNow(stream: Stream, chunk: Buffer): number {
    // Never more than one batch in a frame, so every message stays under the peer's transport limit.
    const maxFrame = Math.min(this.peerSettings!.maxFrameSize, this.config.maxBatchBytes);
    let off = 0;
    while (off < chunk.length) {
      const n = Math.min(chunk.length - off, stream.sendCredit, this.connSendWindow, maxFrame);
      if (n <= 0) break;
      if (n >= ZERO_COPY_DATA) {
        // Header at the end of the current batch, payload as its own message: the caller's
        // bytes go to the transport without a copy into the batch (the receiver's decoder
        // takes the payload as a view as well).
        this.writer.frameHeader(FrameType.DATA, 0, stream.id, n);
        this.flush();
        this.sendMessage(chunk.subarray(off, off + n));
      } else {
        this.writer.frame(FrameType.DATA, 0, stream.id, chunk.subarray(off, off + n));
      }
      stream.spendSendCredit(n);
      this.connSendWindow -= n;
      off += n;
      this.afterWrite();
      if (this.transportBlocked) break;
    }
    return off;
  }

  /**
   * Batches frames into one transport message per event-loop turn (setImmediate, not a
   * microtask: every HTTP request and backend response arrives in its own native callback, so
   * a microtask would send one message per request), or sooner when the batch is large.
   */
  private afterWrite(): void {
    if (this.writer.size >= this.config.maxBatchBytes) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushTask);
    }
  }

  private readonly flushTask = (): void => {
    this.flushScheduled = false;
    this.flush();
  };

  private flush(): void {
    if (this.writer.size === 0) return;
    this.sendMessage(this.writer.take());
  }

  private sendMessage(data: Buffer): void {
    if (this.transportGone) return;
    this.transport.send(data);
    const buffered = this.transport.bufferedAmount;
    if (buffered > this.config.transportHighWater) {
      this.transportBlocked = true;
      if (buffered > this.config.maxTransportBuffer) {
        this.fail(new PosternError("POSTERN_TRANSPORT_OVERFLOW", `peer is not reading: ${buffered} bytes queued`));
      }
    }
  }

  private closeTransport(code: number, reason: string): void {
    if (this.transportGone) return;
    this.transportGone = true;
    this.transport.close(code, reason);
  }

  private onTransportDrain(): void {
    if (!this.transportBlocked || this.transport.bufferedAmount > this.config.transportHighWater) return;
    this.transportBlocked = false;
    for (const stream of this.pendingSend) {
      if (this.transportBlocked) break;
      this.flushStream(stream);
    }
  }

  private onTransportClosed(err?: PosternError): void {
    if (this.state === "closed") return;
    this.transportGone = true;
    const clean = err === undefined && this.streams.size === 0;
    this.teardown(clean ? undefined : (err ?? new PosternError("POSTERN_TRANSPORT_CLOSED", "connection closed with streams in flight")));
  }

  private async sendHello(peer: Hello | null): Promise<void> {
    const ext = (await this.options.helloExt?.(peer)) ?? {};
    if (this.state === "closed") return;
    const c = this.config;
    const settings: Settings = {
      maxConcurrentStreams: c.maxConcurrentStreams,
      initialStreamWindow: c.initialStreamWindow,
      connectionWindow: c.connectionWindow,
      maxFrameSize: c.maxFrameSize,
      maxHeaderBlock: c.maxHeaderBlock,
    };
    this.writer.frame(FrameType.HELLO, 0, 0, encodeHello({ capabilities: c.capabilities, settings, ext }));
    this.flush();
  }

  /** Sends a PING whose ACK settles the callbacks (keepalive pings pass none). */
  private sendPing(resolve: (rtt: number) => void = noop, reject: (err: Error) => void = noop): bigint {
    const id = ++this.pingCounter;
    const payload = Buffer.allocUnsafe(PING_PAYLOAD_SIZE);
    payload.writeBigUInt64BE(id, 0);
    this.pings.set(id, { sentAt: performance.now(), resolve, reject });
    this.writer.frame(FrameType.PING, 0, 0, payload);
    this.afterWrite();
    return id;
  }

  private writeGoaway(code: number, debug: string): void {
    const text = Buffer.from(debug, "utf8").subarray(0, GOAWAY_MAX_DEBUG);
    const payload = Buffer.allocUnsafe(GOAWAY_FIXED_SIZE + text.length);
    payload.writeUInt32BE(this.lastPeerId, 0);
    payload.writeUInt32BE(code >>> 0, 4);
    text.copy(payload, GOAWAY_FIXED_SIZE);
    this.writer.frame(FrameType.GOAWAY, 0, 0, payload);
  }

  private creditConnection(bytes: number): void {
    if (bytes <= 0) return;
    this.connUnacked += bytes;
    if (this.connUnacked >= this.config.connectionWindow >>> 2) {
      this.writer.frameU32(FrameType.WINDOW_UPDATE, 0, this.connUnacked);
      this.connRecvWindow += this.connUnacked;
      this.connUnacked = 0;
      this.afterWrite();
    }
  }

  // ------------------------------------------------------------------ guards and lifecycle

  private isLocalId(id: number): boolean {
    return (id & 1) === (this.role === "server" ? 1 : 0);
  }

  /** A frame for a stream we do not track: fine if the stream existed (late frame), else a protocol error. */
  private checkKnownId(id: number, what: string): void {
    const existed = this.isLocalId(id) ? id < this.nextLocalId : id <= this.lastPeerId;
    if (!existed) throw new PosternError("POSTERN_PROTOCOL", `${what} for unknown stream ${id}`);
  }

  private countOpen(): void {
    const now = performance.now();
    if (now - this.floodWindowStart >= this.config.resetFloodWindowMs) {
      this.floodWindowStart = now;
      this.floodOpened = 0;
      this.floodResets = 0;
    }
    this.floodOpened++;
  }

  private countReset(): void {
    this.floodResets++;
    if (this.floodOpened >= this.config.resetFloodMinStreams && this.floodResets > this.floodOpened * this.config.resetFloodRatio) {
      throw new PosternError(
        "POSTERN_FLOOD",
        `rapid reset: ${this.floodResets} of ${this.floodOpened} streams reset within ${this.config.resetFloodWindowMs} ms`,
      );
    }
  }

  private countControlFrame(): void {
    const now = performance.now();
    if (now - this.controlWindowStart >= 1000) {
      this.controlWindowStart = now;
      this.controlFrames = 0;
    }
    if (++this.controlFrames > this.config.maxControlFramesPerSecond) {
      throw new PosternError("POSTERN_FLOOD", `more than ${this.config.maxControlFramesPerSecond} control frames in one second`);
    }
  }

  private startKeepalive(): void {
    const interval = this.config.pingIntervalMs;
    if (interval === 0) return;
    this.keepaliveTimer = setInterval(() => {
      if (this.keepalivePing !== null) {
        if (++this.missedPings >= this.config.pingMisses) {
          this.fail(new PosternError("POSTERN_PING_TIMEOUT", `no answer to PING for ${this.missedPings} intervals of ${interval} ms`));
          return;
        }
        this.pings.delete(this.keepalivePing);
      }
      this.keepalivePing = this.sendPing();
    }, interval);
    this.keepaliveTimer.unref();
  }

  private closeIfDrained(): void {
    if (this.draining && this.streams.size === 0 && this.state !== "closed") this.close();
  }

  /** Closes on an error thrown by a frame handler or a guard. */
  private fail(err: unknown): void {
    const e =
      err instanceof PosternError ? err : new PosternError("POSTERN_PROTOCOL", `internal failure: ${String(err)}`, { cause: err });
    this.decoder.fail();
    this.close(e);
  }

  private teardown(err?: PosternError): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.decoder.fail();
    if (this.helloTimer !== null) clearTimeout(this.helloTimer);
    if (this.keepaliveTimer !== null) clearInterval(this.keepaliveTimer);
    this.held = [];
    const streamErr = err ?? new PosternError("POSTERN_SESSION_CLOSED", "session closed");
    for (const stream of [...this.streams.values()]) stream.close(streamErr);
    this.streams.clear();
    this.pendingSend.clear();
    this.localActive = 0;
    this.peerActive = 0;
    for (const entry of this.pings.values()) entry.reject(streamErr);
    this.pings.clear();
    this.rejectReady(streamErr);
    this.emit("close", err);
  }
}
