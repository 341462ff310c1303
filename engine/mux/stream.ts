import { EventEmitter } from "node:events";
import { WireError } from "../protocol/constants.js";
import { PosternError } from "../errors/catalogue.js";
import type { RequestHead, ResponseHead } from "../protocol/heads.js";

/** The part of Session a stream calls into. Internal to engine/mux. */
export interface StreamHost {
  writeData(stream: Stream, chunk: Buffer): boolean;
  flushStream(stream: Stream): void;
  sendResponse(stream: Stream, head: ResponseHead): void;
  resetStream(stream: Stream, code: number): void;
  /** The reader took `bytes`; `buffered` tells whether they had been held in the stream. */
  consumed(stream: Stream, bytes: number, buffered: boolean): void;
  /** Held bytes were dropped unread (reset, close). */
  discarded(stream: Stream, bytes: number): void;
  released(stream: Stream): void;
}

/**
 * One request/response exchange inside a session: a head each way, then body bytes each way
 * with flow control, then END each way (or a RESET).
 *
 * Events: 'response' (ResponseHead, on streams we opened), 'data' (Buffer), 'end' (the peer
 * sent everything), 'drain' (write() may be called again), 'close' (err?: PosternError; no
 * error means both directions completed). There is no 'error' event: failures arrive once, on
 * 'close'.
 *
 * Backpressure: write() returns false when the chunk had to be queued (window or transport
 * full); wait for 'drain'. pause() stops 'data'; the peer can then send at most the stream's
 * window before it is blocked, so a paused stream never holds more than its window.
 */
export class Stream extends EventEmitter {
  /** Stream id, unique within the session. */
  readonly id: number;
  /** True when this side opened the stream. */
  readonly local: boolean;
  /** The request head: sent by us (local) or received in the peer's OPEN. */
  readonly requestHead: RequestHead;
  /** The response head once sent (inbound stream) or received (local stream). */
  responseHead: ResponseHead | undefined;

  // --- send side (owned by the session) ---
  /** @internal Credit left to send on this stream. */
  sendWindow: number;
  /** @internal Chunks waiting for credit or transport room. */
  sendQueue: Buffer[] = [];
  /** @internal Bytes in sendQueue. */
  sendQueued = 0;
  /** @internal end() was called: END goes out once sendQueue is empty. */
  endQueued = false;
  /** @internal END was written. */
  endSent = false;
  /** @internal A write returned false; emit 'drain' when the queue empties. */
  needDrain = false;

  // --- receive side ---
  /** @internal Credit the peer has left on this stream. */
  recvWindow: number;
  /** @internal Bytes consumed since the last stream WINDOW_UPDATE. */
  unacked = 0;
  /** @internal Buffered bytes whose connection credit is still owed to the peer. */
  uncredited = 0;
  /** @internal END received. */
  recvEnded = false;
  private recvBuffer: Buffer[] = [];
  private recvBuffered = 0;
  private paused = false;
  private endEmitted = false;
  private isReleased = false;
  private isClosed = false;
  private drainScheduled = false;

  /** @internal Created by Session only. */
  constructor(
    private readonly host: StreamHost,
    id: number,
    local: boolean,
    requestHead: RequestHead,
    sendWindow: number,
    recvWindow: number,
  ) {
    super();
    this.id = id;
    this.local = local;
    this.requestHead = requestHead;
    this.sendWindow = sendWindow;
    this.recvWindow = recvWindow;
    // Data that arrived before a 'data' listener was attached is delivered once one is.
    this.on("newListener", (event) => {
      if (event === "data") this.scheduleDrain();
    });
  }

  /** Bytes received and not yet delivered to a 'data' listener. */
  get bufferedBytes(): number {
    return this.recvBuffered;
  }

  /** Bytes written and queued behind flow control or transport backpressure. */
  get writableLength(): number {
    return this.sendQueued;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /**
   * Sends body bytes. Returns false when they had to be queued; wait for 'drain'. As with
   * Node's Writable, the chunk must not be modified after it is passed in: large chunks go to
   * the transport without a copy.
   */
  write(chunk: Uint8Array): boolean {
    this.checkWritable();
    if (chunk.length === 0) return this.sendQueued === 0;
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    return this.host.writeData(this, buf);
  }

  /** Ends our direction, after an optional last chunk. */
  end(chunk?: Uint8Array): void {
    if (this.endQueued || this.isClosed) return;
    if (chunk !== undefined && chunk.length > 0) this.write(chunk);
    else this.checkWritable();
    this.endQueued = true;
    this.host.flushStream(this);
  }

  /** Answers an inbound stream with a response head; `end` finishes it with no body. */
  respond(head: ResponseHead, options?: { end?: boolean }): void {
    if (this.local) throw new PosternError("POSTERN_STREAM_STATE", "respond() is for streams the peer opened");
    if (this.responseHead !== undefined) throw new PosternError("POSTERN_STREAM_STATE", "stream already has a response head");
    if (this.isClosed) throw new PosternError("POSTERN_STREAM_STATE", "stream is closed");
    this.responseHead = head;
    this.host.sendResponse(this, head);
    if (options?.end === true) this.end();
  }

  /** Aborts both directions with a wire error code (default CANCEL). */
  reset(code: number = WireError.CANCEL): void {
    if (this.isClosed) return;
    this.host.resetStream(this, code);
    this.close(new PosternError("POSTERN_STREAM_RESET", `stream ${this.id} reset locally (code 0x${code.toString(16)})`, { wireCode: code }));
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.scheduleDrain();
  }

  get isPaused(): boolean {
    return this.paused;
  }

  private checkWritable(): void {
    if (this.endQueued || this.isClosed) throw new PosternError("POSTERN_STREAM_STATE", `write after end on stream ${this.id}`);
    if (!this.local && this.responseHead === undefined) {
      throw new PosternError("POSTERN_STREAM_STATE", "respond() before writing the body of an inbound stream");
    }
  }

  /** @internal The session received a RESPONSE for this (local) stream. */
  receiveResponse(head: ResponseHead): void {
    this.responseHead = head;
    this.emit("response", head);
  }

  /** @internal Returns true when the bytes were delivered at once (consumed). */
  receiveData(chunk: Buffer): boolean {
    if (this.recvBuffered === 0 && !this.paused && this.listenerCount("data") > 0) {
      this.host.consumed(this, chunk.length, false);
      this.emit("data", chunk);
      return true;
    }
    this.recvBuffer.push(chunk);
    this.recvBuffered += chunk.length;
    return false;
  }

  /** @internal */
  receiveEnd(): void {
    this.recvEnded = true;
    if (this.recvBuffered === 0) this.emitEnd();
    else this.scheduleDrain();
  }

  /** @internal END has been written: the stream may be complete. */
  sentEnd(): void {
    this.endSent = true;
    this.checkDone();
  }

  /** @internal Ends the stream at once, dropping buffers; the session has done the wire part. */
  close(err?: PosternError): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.sendQueue.length = 0;
    this.sendQueued = 0;
    const held = this.recvBuffered;
    this.recvBuffer.length = 0;
    this.recvBuffered = 0;
    if (held > 0) this.host.discarded(this, held);
    this.release();
    this.emit("close", err);
  }

  private scheduleDrain(): void {
    if (this.drainScheduled || this.isClosed) return;
    this.drainScheduled = true;
    queueMicrotask(() => {
      this.drainScheduled = false;
      this.deliverBuffered();
    });
  }

  private deliverBuffered(): void {
    while (this.recvBuffered > 0 && !this.paused && !this.isClosed && this.listenerCount("data") > 0) {
      const chunk = this.recvBuffer.shift()!;
      this.recvBuffered -= chunk.length;
      this.host.consumed(this, chunk.length, true);
      this.emit("data", chunk);
    }
    if (this.recvBuffered === 0 && this.recvEnded) this.emitEnd();
  }

  private emitEnd(): void {
    if (this.endEmitted || this.isClosed) return;
    this.endEmitted = true;
    this.emit("end");
    this.checkDone();
  }

  private checkDone(): void {
    if (!this.endSent || !this.recvEnded) return;
    this.release();
    if (this.endEmitted && !this.isClosed) {
      this.isClosed = true;
      this.emit("close");
    }
  }

  /** Both ENDs crossed the wire (or the stream died): the session stops tracking it. */
  private release(): void {
    if (this.isReleased) return;
    this.isReleased = true;
    this.host.released(this);
  }
}
