import { Packr } from "msgpackr";
import { HELLO_MAGIC, HELLO_PREFIX_SIZE, MAX_CONTROL_BODY, PROTOCOL_VERSION } from "./constants.js";
import { PosternError } from "../errors/catalogue.js";
import { FIELD_VALUE, TOKEN } from "../http/headers.js";

/**
 * msgpack bodies of HELLO, SETTINGS, OPEN and RESPONSE frames, and their validation. Decoded
 * input is untrusted: every field is type-checked and anything unexpected is a protocol error.
 */

// Plain maps only: no record extension, so a body decodes the same in any msgpack library.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });

/** Header list as a flat array: [name0, value0, name1, value1, ...]; order and repeats kept. */
export type HeaderList = string[];

/** The request head carried by OPEN. */
export interface RequestHead {
  /** Upper-case method, e.g. "GET". */
  readonly method: string;
  /** Origin-form target: path and query, starting with "/". */
  readonly target: string;
  readonly headers: HeaderList;
  /** What the engine tells the connector about the stream; absent on bare mux streams. */
  readonly ext?: StreamOpen;
}

/**
 * The stream-open record: the engine's instructions to the connector beside the HTTP head.
 * Written by the engine's edge, read by the connector; both go through encodeRequestHead /
 * decodeRequestHead, which checks every field.
 */
export interface StreamOpen {
  /** The published app's name (the connector serves only its group's apps). */
  readonly app: string;
  readonly tenant: string;
  /** The engine's id for this request: on the error page, in both sides' logs. */
  readonly requestId: string;
  /** No response head within this: the backend request is aborted, ms. */
  readonly timeoutMs: number;
  /** A request body follows on the stream. */
  readonly body: boolean;
  /** The body's length when the client declared one; unset: chunked. */
  readonly length?: number;
  /** A WebSocket upgrade: after the backend's 101 the stream carries raw bytes both ways. */
  readonly upgrade?: boolean;
}

/** The response head carried by RESPONSE. */
export interface ResponseHead {
  readonly status: number;
  readonly headers: HeaderList;
}

/** Settings each side announces in its HELLO (what it is willing to receive). */
export interface Settings {
  /** Streams the peer may have open towards us at once; past it we answer REFUSED_STREAM. */
  readonly maxConcurrentStreams: number;
  /** Credit the peer starts with on every new stream, in bytes. */
  readonly initialStreamWindow: number;
  /** Credit the peer starts with on the connection, in bytes. */
  readonly connectionWindow: number;
  /** Largest DATA payload we accept, in bytes. */
  readonly maxFrameSize: number;
  /** Largest OPEN / RESPONSE payload we accept, in bytes. */
  readonly maxHeaderBlock: number;
}

/** SETTINGS after HELLO may change only these (windows are fixed for a connection's life). */
export type SettingsUpdate = Pick<Settings, "maxConcurrentStreams">;

export interface Hello {
  readonly version: number;
  /** Optional features this side supports; the session uses the intersection. */
  readonly capabilities: readonly string[];
  readonly settings: Settings;
  /** Application fields (identity challenge and proof, node names); opaque to the mux. */
  readonly ext: Readonly<Record<string, unknown>>;
}

// A request target never holds controls or spaces (smuggling, request splitting).
const BAD_TARGET = /[\x00-\x20\x7f]/;

function protocolError(message: string): PosternError {
  return new PosternError("POSTERN_PROTOCOL", message);
}

function decodeBody(bytes: Uint8Array, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch (err) {
    throw new PosternError("POSTERN_PROTOCOL", `${what}: not valid msgpack`, { cause: err });
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw protocolError(`${what}: body is not a map`);
  }
  return value as Record<string, unknown>;
}

function checkHeaders(value: unknown, what: string): HeaderList {
  if (!Array.isArray(value) || value.length % 2 !== 0) throw protocolError(`${what}: headers must be a flat array of name/value pairs`);
  for (let i = 0; i < value.length; i += 2) {
    const name = value[i];
    const val = value[i + 1];
    if (typeof name !== "string" || !TOKEN.test(name)) throw protocolError(`${what}: invalid header name`);
    if (typeof val !== "string" || !FIELD_VALUE.test(val)) throw protocolError(`${what}: invalid value for header ${name}`);
  }
  return value as HeaderList;
}

function checkExt(value: unknown, what: string): Record<string, unknown> | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw protocolError(`${what}: ext must be a map`);
  return value as Record<string, unknown>;
}

const SHORT_TEXT = 256;

function checkStreamOpen(value: unknown): StreamOpen | undefined {
  const m = checkExt(value, "request head");
  if (m === undefined) return undefined;
  const text = (key: string): string => {
    const v = m[key];
    if (typeof v !== "string" || v.length > SHORT_TEXT) throw protocolError(`request head: ext.${key} must be a string of at most ${SHORT_TEXT} characters`);
    return v;
  };
  const count = (key: string): number => {
    const v = m[key];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw protocolError(`request head: ext.${key} must be an integer >= 0`);
    return v;
  };
  const flag = (key: string): boolean => {
    const v = m[key];
    if (typeof v !== "boolean") throw protocolError(`request head: ext.${key} must be a boolean`);
    return v;
  };
  const open: { -readonly [K in keyof StreamOpen]: StreamOpen[K] } = {
    app: text("app"), tenant: text("tenant"), requestId: text("requestId"), timeoutMs: count("timeoutMs"), body: flag("body"),
  };
  if (m.length !== undefined) open.length = count("length");
  if (m.upgrade !== undefined) open.upgrade = flag("upgrade");
  return open;
}

export function encodeRequestHead(head: RequestHead): Buffer {
  return packr.pack(head);
}

export function decodeRequestHead(bytes: Uint8Array): RequestHead {
  const m = decodeBody(bytes, "request head");
  if (typeof m.method !== "string" || !TOKEN.test(m.method)) throw protocolError("request head: invalid method");
  if (typeof m.target !== "string" || m.target.length === 0 || BAD_TARGET.test(m.target)) {
    throw protocolError("request head: invalid target");
  }
  const headers = checkHeaders(m.headers, "request head");
  const ext = checkStreamOpen(m.ext);
  return ext === undefined
    ? { method: m.method, target: m.target, headers }
    : { method: m.method, target: m.target, headers, ext };
}

export function encodeResponseHead(head: ResponseHead): Buffer {
  return packr.pack(head);
}

export function decodeResponseHead(bytes: Uint8Array): ResponseHead {
  const m = decodeBody(bytes, "response head");
  const status = m.status;
  if (typeof status !== "number" || !Number.isInteger(status) || status < 100 || status > 999) {
    throw protocolError("response head: invalid status");
  }
  return { status, headers: checkHeaders(m.headers, "response head") };
}

const SETTING_KEYS: readonly (keyof Settings)[] = [
  "maxConcurrentStreams",
  "initialStreamWindow",
  "connectionWindow",
  "maxFrameSize",
  "maxHeaderBlock",
];

function checkSetting(m: Record<string, unknown>, key: string): number {
  const v = m[key];
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0x7fffffff) {
    throw protocolError(`settings: ${key} must be an integer in 0..2^31-1`);
  }
  return v;
}

export function encodeHello(hello: Omit<Hello, "version">): Buffer {
  const body = packr.pack({ capabilities: hello.capabilities, settings: hello.settings, ext: hello.ext });
  if (body.length > MAX_CONTROL_BODY) throw new RangeError(`HELLO body of ${body.length} bytes exceeds ${MAX_CONTROL_BODY}`);
  const out = Buffer.allocUnsafe(HELLO_PREFIX_SIZE + body.length);
  out.writeUInt32BE(HELLO_MAGIC, 0);
  out.writeUInt16BE(PROTOCOL_VERSION, 4);
  body.copy(out, HELLO_PREFIX_SIZE);
  return out;
}

export function decodeHello(payload: Buffer): Hello {
  if (payload.readUInt32BE(0) !== HELLO_MAGIC) throw new PosternError("POSTERN_HANDSHAKE", "HELLO: bad magic, not a Postern peer");
  const version = payload.readUInt16BE(4);
  if (version !== PROTOCOL_VERSION) {
    throw new PosternError("POSTERN_HANDSHAKE", `HELLO: peer speaks protocol version ${version}, this build speaks ${PROTOCOL_VERSION}`);
  }
  const m = decodeBody(payload.subarray(HELLO_PREFIX_SIZE), "HELLO");
  const caps = m.capabilities;
  if (!Array.isArray(caps) || caps.some((c) => typeof c !== "string")) throw protocolError("HELLO: capabilities must be strings");
  const s = m.settings;
  if (s === null || typeof s !== "object") throw protocolError("HELLO: settings missing");
  const settings = {} as Record<keyof Settings, number>;
  for (const key of SETTING_KEYS) settings[key] = checkSetting(s as Record<string, unknown>, key);
  return { version, capabilities: caps as string[], settings, ext: checkExt(m.ext, "HELLO") ?? {} };
}

export function encodeSettingsUpdate(update: SettingsUpdate): Buffer {
  return packr.pack(update);
}

export function decodeSettingsUpdate(payload: Buffer): SettingsUpdate {
  const m = decodeBody(payload, "SETTINGS");
  for (const key of Object.keys(m)) {
    if (key !== "maxConcurrentStreams") throw protocolError(`SETTINGS: ${key} cannot change after HELLO`);
  }
  return { maxConcurrentStreams: checkSetting(m, "maxConcurrentStreams") };
}
