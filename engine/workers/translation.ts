/**
 * Link translation of one response body, streaming: [decode] -> rewrite on the pool ->
 * [encode], with Node stream backpressure between the stages, so a response holds at most a
 * few high-water marks of data whatever its size. gzip, deflate and br are decoded and encoded
 * again on libuv's threads (never on the event loop); each rewritten chunk is flushed so the
 * page keeps streaming. Limits: decoded bytes per response (zip bombs), worker time per
 * response, and the pool's own chunk deadline.
 */
import { Duplex, pipeline, type Readable, type Writable } from "node:stream";
import zlib from "node:zlib";
import { PosternError } from "../errors/catalogue.js";
import type { LinkMapping } from "./links.js";
import type { TranslatePool } from "./pool.js";
import { holdsInput, rewriteChunk, type BodyKind, type RewriteState } from "./rewrite.js";
import { LinkMap } from "./links.js";
import { BoundedMap } from "../limits/bounded.js";

export type BodyEncoding = "identity" | "gzip" | "deflate" | "br";

export interface TranslationPlan {
  readonly kind: BodyKind;
  readonly encoding: BodyEncoding;
}

/** The links of a tenant: every app's internal URL -> external URL, with a key that changes with them. */
export interface TenantLinks {
  readonly key: string;
  readonly mappings: readonly LinkMapping[];
}

/** Charsets whose markup is not ASCII-compatible: bytes cannot be scanned as latin1, so they pass through. */
const WIDE_CHARSET = /^(?:utf-?16|utf-?32|ucs-?2|ucs-?4|utf-?7)/;

/** Which bodies are translated: HTML and CSS by Content-Type, in an encoding we can undo. */
export function translationPlan(contentType: string | undefined, contentEncoding: string | undefined): TranslationPlan | undefined {
  if (contentType === undefined) return undefined;
  const [type, ...params] = contentType.toLowerCase().split(";");
  const mime = type!.trim();
  const kind: BodyKind | undefined = mime === "text/html" || mime === "application/xhtml+xml" ? "html" : mime === "text/css" ? "css" : undefined;
  if (!kind) return undefined;
  for (const p of params) {
    const [name, value] = p.split("=", 2).map((s) => s.trim().replace(/^"|"$/g, ""));
    if (name === "charset" && value !== undefined && WIDE_CHARSET.test(value)) return undefined;
  }
  const enc = (contentEncoding ?? "identity").trim().toLowerCase();
  const encoding: BodyEncoding | undefined = enc === "identity" || enc === "" ? "identity" : enc === "gzip" || enc === "x-gzip" ? "gzip" : enc === "deflate" ? "deflate" : enc === "br" ? "br" : undefined;
  return encoding ? { kind, encoding } : undefined;
}

function decoder(encoding: BodyEncoding): Duplex | undefined {
  switch (encoding) {
    case "gzip": return zlib.createGunzip();
    case "deflate": return zlib.createInflate();
    case "br": return zlib.createBrotliDecompress();
    default: return undefined;
  }
}

/** Encoders flush after every rewritten chunk: a proxy must not hold a streaming page back. */
function encoder(encoding: BodyEncoding): Duplex | undefined {
  switch (encoding) {
    case "gzip": return zlib.createGzip({ flush: zlib.constants.Z_SYNC_FLUSH });
    case "deflate": return zlib.createDeflate({ flush: zlib.constants.Z_SYNC_FLUSH });
    // Quality 5 of 11: the higher ones cost several times the CPU for a few per cent of size.
    case "br": return zlib.createBrotliCompress({ flush: zlib.constants.BROTLI_OPERATION_FLUSH, params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 5 } });
    default: return undefined;
  }
}

const UTF16_BOM = (b: Buffer) => b.length >= 2 && ((b[0] === 0xfe && b[1] === 0xff) || (b[0] === 0xff && b[1] === 0xfe));

/** Input gathered for one task; past it, writers wait for the task to finish. */
const BATCH_BYTES = 64 * 1024;

/**
 * The rewrite stage. Input written in the same event-loop turn (the chunks of one tunnel
 * message, and often the end of the body) goes to the pool as one task: a small page is one
 * round trip to a worker, not one per chunk. One task at a time per response, so output stays
 * in order and its memory is bounded by a batch.
 */
class RewriteStream extends Duplex {
  #state: RewriteState | undefined;
  #spentMs = 0;
  #decoded = 0;
  #first = true;
  /** A UTF-16 body (by its byte order mark): passed through untouched. */
  #passthrough = false;
  #input: Buffer[] = [];
  #inputBytes = 0;
  /** Write callbacks held back while the batch is full. */
  #writers: (() => void)[] = [];
  /** The end callback, once the writer has ended. */
  #ended: ((err?: Error | null) => void) | null = null;
  #running = false;
  #scheduled = false;
  /** What to do once the reader wants more output. */
  #waiting: (() => void) | null = null;

  constructor(private readonly pool: TranslatePool, private readonly kind: BodyKind, private readonly links: TenantLinks, private readonly decodedCap: number | undefined) {
    super({ writableHighWaterMark: BATCH_BYTES, readableHighWaterMark: BATCH_BYTES });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    this.#input.push(chunk);
    this.#inputBytes += chunk.length;
    if (this.#inputBytes < BATCH_BYTES) done();
    else this.#writers.push(done);
    this.#schedule();
  }

  override _final(done: (err?: Error | null) => void): void {
    this.#ended = done;
    this.#schedule();
  }

  override _read(): void {
    const waiting = this.#waiting;
    this.#waiting = null;
    waiting?.();
  }

  #schedule(): void {
    if (this.#running || this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#flush();
    });
  }

  #flush(): void {
    // While the reader has not taken the last output (#waiting), nothing more is translated:
    // the input then fills, and backpressure reaches the writer.
    if (this.#running || this.#waiting !== null || this.destroyed) return;
    const final = this.#ended !== null;
    if (this.#inputBytes === 0 && !final) return;
    const chunks = this.#input;
    const size = this.#inputBytes;
    const writers = this.#writers;
    this.#input = [];
    this.#inputBytes = 0;
    this.#writers = [];
    this.#running = true;
    this.#translate(chunks, size, final).then((out) => {
      this.#running = false;
      for (const writer of writers) writer();
      const next = () => {
        if (!final) return this.#flush();
        this.push(null);
        this.#ended!();
      };
      if (out.length === 0 || this.push(out)) next();
      else this.#waiting = next;
    }, (err: Error) => this.destroy(err));
  }

  async #translate(chunks: Buffer[], size: number, final: boolean): Promise<Buffer> {
    this.#decoded += size;
    if (this.decodedCap !== undefined && this.#decoded > this.decodedCap) {
      throw new PosternError("POSTERN_TRANSLATE", `the decoded body passed ${this.decodedCap} bytes`);
    }
    if (this.#first && size > 0) {
      this.#first = false;
      this.#passthrough = UTF16_BOM(chunks[0]!);
    }
    if (this.#passthrough) return Buffer.concat(chunks, size);
    if (size === 0 && !holdsInput(this.#state)) return Buffer.alloc(0); // the end, with nothing held back: no task
    const result = await this.pool.translate({ kind: this.kind, state: this.#state, input: chunks, final, links: this.links });
    this.#state = result.state;
    this.#spentMs += result.ms;
    if (this.#spentMs > this.pool.limits.budgetMs) {
      throw new PosternError("POSTERN_TRANSLATE", `translation used more than its ${this.pool.limits.budgetMs} ms of worker time`);
    }
    return result.out;
  }
}

export interface TranslationSink {
  /** Translated bytes, in order (not the last ones: those come with end()). */
  data(chunk: Buffer): void;
  /** The input side has room again after write() returned false. */
  drain(): void;
  /**
   * Everything was written and translated; `last` is the output not yet given to data(). When
   * data() was never called, `last` is the whole body (the response can carry a Content-Length).
   */
  end(last: Buffer | undefined): void;
  /** Translation failed; nothing more comes. */
  error(err: Error): void;
}

/** What the edge drives a body's translation through, inline or on the pool. */
export interface Translation {
  /** false: stop writing until the sink's drain(). */
  write(chunk: Buffer): boolean;
  end(): void;
  pause(): void;
  resume(): void;
  destroy(): void;
}

/** Link maps of the event loop's inline rewrites: built once per tenant links key, the last few kept. */
const inlineLinkMaps = new BoundedMap<string, LinkMap>(64);

/**
 * A small body that comes in one piece (identity encoding, a known length of at most
 * `inlineMaxBytes`), rewritten on the event loop when it has arrived: for a page of a few KiB
 * the pool's round trip (batching, moving the bytes, waking the loop again) costs the loop more
 * than the rewrite itself. Large, streaming and compressed bodies go to the pool.
 */
export class InlineTranslation implements Translation {
  readonly #chunks: Buffer[] = [];
  #length = 0;
  #done = false;

  constructor(private readonly kind: BodyKind, private readonly links: TenantLinks, private readonly maxBytes: number, private readonly sink: TranslationSink) {}

  write(chunk: Buffer): boolean {
    if (this.#done) return true;
    this.#length += chunk.length;
    if (this.#length > this.maxBytes) {
      this.#done = true;
      this.sink.error(new PosternError("POSTERN_TRANSLATE", `the body is longer than it announced (over ${this.maxBytes} bytes)`));
      return true;
    }
    this.#chunks.push(chunk);
    return true;
  }

  end(): void {
    if (this.#done) return;
    this.#done = true;
    let out: Buffer;
    try {
      const links = inlineLinkMaps.getOrMake(this.links.key, () => new LinkMap(this.links.mappings));
      out = rewriteChunk(this.kind, undefined, this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#length), true, links).out;
    } catch (err) {
      return this.sink.error(new PosternError("POSTERN_TRANSLATE", `the body could not be translated: ${(err as Error).message}`, { cause: err }));
    }
    this.sink.end(out);
  }

  pause(): void {
    // The whole body goes out in one write: nothing to hold back.
  }

  resume(): void {
    // As pause().
  }

  destroy(): void {
    this.#done = true;
    this.#chunks.length = 0;
  }
}

/** One response body on its way through translation on the worker pool. */
export class BodyTranslation implements Translation {
  readonly #input: Writable;
  readonly #output: Readable;
  readonly #stages: Duplex[];
  #failed = false;
  /**
   * The newest output, held for the rest of the event-loop turn: when the body ends within it
   * (a page that came in one piece), the whole body goes out in one write with its length,
   * not as chunked encoding; a page that streams loses one turn of latency at most.
   */
  #latest: Buffer | undefined;
  #releasing = false;
  #paused = false;

  constructor(pool: TranslatePool, plan: TranslationPlan, links: TenantLinks, private readonly sink: TranslationSink) {
    const decode = decoder(plan.encoding);
    const rewrite = new RewriteStream(pool, plan.kind, links, decode ? pool.limits.maxDecodedBytes : undefined);
    const encode = encoder(plan.encoding);
    this.#stages = [decode, rewrite, encode].filter((s): s is Duplex => s !== undefined);
    this.#input = this.#stages[0]!;
    this.#output = this.#stages[this.#stages.length - 1]!;
    const fail = (err: Error | null | undefined) => {
      if (!err || this.#failed) return;
      this.#failed = true;
      this.#latest = undefined;
      sink.error(err instanceof PosternError ? err : new PosternError("POSTERN_TRANSLATE", `the body could not be translated: ${err.message}`, { cause: err }));
    };
    if (this.#stages.length > 1) pipeline(this.#stages, fail);
    else this.#input.on("error", fail);
    this.#input.on("drain", () => sink.drain());
    this.#output.on("data", (chunk: Buffer) => this.#hold(chunk));
    this.#output.on("end", () => {
      if (this.#failed) return;
      const last = this.#latest;
      this.#latest = undefined;
      sink.end(last);
    });
  }

  #hold(chunk: Buffer): void {
    if (this.#failed) return;
    if (this.#latest) this.sink.data(this.#latest);
    this.#latest = chunk;
    if (this.#releasing) return;
    this.#releasing = true;
    setImmediate(() => {
      this.#releasing = false;
      this.#release();
    });
  }

  /** Gives the held output to the sink, unless the sink asked for a pause (then resume() does). */
  #release(): void {
    const latest = this.#latest;
    if (!latest || this.#failed || this.#paused) return;
    this.#latest = undefined;
    this.sink.data(latest);
  }

  /** false: stop writing until the sink's drain(). */
  write(chunk: Buffer): boolean {
    return this.#failed ? true : this.#input.write(chunk);
  }

  end(): void {
    if (!this.#failed) this.#input.end();
  }

  /** Stops output while the client is slow; backpressure then reaches write(). */
  pause(): void {
    this.#paused = true;
    this.#output.pause();
  }

  resume(): void {
    this.#paused = false;
    this.#output.resume();
    this.#release();
  }

  /** Drops everything (the client went away, or the response failed elsewhere). */
  destroy(): void {
    this.#failed = true;
    for (const s of this.#stages) s.destroy();
  }
}
