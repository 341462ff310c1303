import { EventEmitter } from "node:events";
import { MAX_WINDOW, WireError } from "../protocol/constants.js";
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
 * window before it is blocked, so a paused stream never holds more than its window (the
 * initial one, or what auto-tuning grew it to while the reader kept up; see acknowledge()).
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

  // --- send side: the stream keeps its credit and queue; the session moves the bytes ---
  /** Credit left to send on this stream (never above MAX_WINDOW). */
  #sendWindow: number;
  /** Chunks waiting for credit or transport room. */
  readonly #sendQueue: Buffer[] = [];
  /** Bytes in #sendQueue. */
  #sendQueued = 0;
  /** end() was called: END goes out once #sendQueue is empty. */
  #endQueued = false;
  /** END was written. */
  #endSent = false;
  /** A write returned false; emit 'drain' when the queue empties. */
  #needDrain = false;

  // --- receive side ---
  /** Credit the peer has left on this stream; below zero is a flow-control violation. */
  #recvWindow: number;
  /** This stream's receive window now: the initial one, grown by acknowledge(). */
  #recvLimit: number;
  /** Some bytes acknowledged since the last WINDOW_UPDATE had waited in the buffer for the reader. */
  #readerLagged = false;
  /** Bytes consumed since the last stream WINDOW_UPDATE. */
  #unacked = 0;
  /** Buffered bytes whose connection credit is still owed to the peer. */
  #uncredited = 0;
  /** END received. */
  #recvEnded = false;
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
    this.#sendWindow = sendWindow;
    this.#recvWindow = recvWindow;
    this.#recvLimit = recvWindow;
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
    return this.#sendQueued;
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
    if (chunk.length === 0) return this.#sendQueued === 0;
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    return this.host.writeData(this, buf);
  }

  /** Ends our direction, after an optional last chunk. */
  end(chunk?: Uint8Array): void {
    if (this.#endQueued || this.isClosed) return;
    if (chunk !== undefined && chunk.length > 0) this.write(chunk);
    else this.checkWritable();
    this.#endQueued = true;
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

  private checkWritable(): void {
    if (this.#endQueued || this.isClosed) throw new PosternError("POSTERN_STREAM_STATE", `write after end on stream ${this.id}`);
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
    this.#recvEnded = true;
    if (this.recvBuffered === 0) this.emitEnd();
    else this.scheduleDrain();
  }

  /** @internal END has been written: the stream may be complete. */
  sentEnd(): void {
    this.#endSent = true;
    this.checkDone();
  }

  // --- flow control, called by the session (internal to engine/mux) ---

  /** @internal Credit left to send on this stream. */
  get sendCredit(): number {
    return this.#sendWindow;
  }

  /** @internal The session sent `bytes` of DATA on this stream. */
  spendSendCredit(bytes: number): void {
    this.#sendWindow -= bytes;
  }

  /** @internal The peer granted credit; returns whether queued bytes or END now wait to go out. */
  grantSendCredit(increment: number): boolean {
    this.#sendWindow += increment;
    if (this.#sendWindow > MAX_WINDOW) throw new PosternError("POSTERN_FLOW_CONTROL", `window overflow on stream ${this.id}`);
    return this.#sendQueued > 0 || this.#endQueued;
  }

  /** @internal Queues what could not be sent now; the writer is told to wait for 'drain'. */
  queueSend(chunk: Buffer): void {
    this.#sendQueue.push(chunk);
    this.#sendQueued += chunk.length;
    this.#needDrain = true;
  }

  /**
   * @internal Offers queued chunks, oldest first, to `send`, which returns how many bytes it
   * took; stops at the first chunk not taken whole. Returns true when the queue is empty.
   */
  flushQueue(send: (stream: Stream, chunk: Buffer) => number): boolean {
    const queue = this.#sendQueue;
    while (queue.length > 0) {
      const chunk = queue[0]!;
      const sent = send(this, chunk);
      this.#sendQueued -= sent;
      if (sent < chunk.length) {
        queue[0] = chunk.subarray(sent);
        return false;
      }
      queue.shift();
    }
    return true;
  }

  /** @internal end() was called and END is not written yet. */
  get endDue(): boolean {
    return this.#endQueued && !this.#endSent && !this.isClosed;
  }

  /** @internal A writer waits for 'drain'. */
  get wantsDrain(): boolean {
    return this.#needDrain;
  }

  /** @internal The queue is empty and the transport has room: the writer may go on. */
  drained(): void {
    if (!this.#needDrain) return;
    this.#needDrain = false;
    this.emit("drain");
  }

  /** @internal END arrived from the peer. */
  get endReceived(): boolean {
    return this.#recvEnded;
  }

  /** @internal Accounts `bytes` of DATA from the peer against this stream's window. */
  acceptData(bytes: number): void {
    if (this.#recvEnded) throw new PosternError("POSTERN_PROTOCOL", `DATA after END on stream ${this.id}`);
    this.#recvWindow -= bytes;
    if (this.#recvWindow < 0) throw new PosternError("POSTERN_FLOW_CONTROL", `DATA beyond the window of stream ${this.id}`);
  }

  /** @internal Held bytes whose connection credit the session keeps back for now. */
  oweConnectionCredit(bytes: number): void {
    this.#uncredited += bytes;
  }

  /** @internal Of `bytes` just consumed (all if unset), how much connection credit was kept back and is now due. */
  repayConnectionCredit(bytes = this.#uncredited): number {
    const owed = Math.min(this.#uncredited, bytes);
    this.#uncredited -= owed;
    return owed;
  }

  /** @internal This stream's receive window now (what a paused reader may come to hold). */
  get receiveWindow(): number {
    return this.#recvLimit;
  }

  /**
   * @internal Raises a new stream's receive window to `window` (what earlier streams of the
   * session grew to); returns the credit to grant the peer for it.
   */
  widenReceiveWindow(window: number): number {
    const extra = window - this.#recvLimit;
    if (extra <= 0) return 0;
    this.#recvLimit = window;
    this.#recvWindow += extra;
    return extra;
  }

  /**
   * @internal The reader consumed `bytes`; once half the window is unacknowledged, returns the
   * increment to grant in a WINDOW_UPDATE (and counts it as granted), else 0.
   *
   * Auto-tuning (as TCP receive windows and HTTP/2 stacks do): when the reader took half a
   * window as it arrived (`buffered` false for all of it), the window doubles, up to
   * `maxWindow`. A large transfer then costs a few WINDOW_UPDATE round trips instead of one
   * per half window (each one a message and an event-loop turn on both hops), and a slow
   * reader never grows it: what a paused stream may hold grows only while its reader keeps up.
   */
  acknowledge(bytes: number, buffered: boolean, maxWindow: number): number {
    if (this.#recvEnded || this.isClosed) return 0;
    this.#unacked += bytes;
    if (buffered) this.#readerLagged = true;
    if (this.#unacked < this.#recvLimit >>> 1) return 0;
    let increment = this.#unacked;
    if (!this.#readerLagged && this.#recvLimit < maxWindow) {
      const growth = Math.min(this.#recvLimit, maxWindow - this.#recvLimit);
      this.#recvLimit += growth;
      increment += growth;
    }
    this.#readerLagged = false;
    this.#recvWindow += increment;
    this.#unacked = 0;
    return increment;
  }

  /** @internal Ends the stream at once, dropping buffers; the session has done the wire part. */
  close(err?: PosternError): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.#sendQueue.length = 0;
    this.#sendQueued = 0;
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
    if (this.recvBuffered === 0 && this.#recvEnded) this.emitEnd();
  }

  private emitEnd(): void {
    if (this.endEmitted || this.isClosed) return;
    this.endEmitted = true;
    this.emit("end");
    this.checkDone();
  }

  private checkDone(): void {
    if (!this.#endSent || !this.#recvEnded) return;
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
