/**
 * SharedState on Redis (ioredis). Two connections: one for commands, one subscribed to the
 * revocation channel. Commands never queue while Redis is away (enableOfflineQueue off, a
 * short command timeout): a request must not wait on a store that is down, it takes the
 * documented fallback at once (engine/fleet/shared.ts). Token buckets live in Redis and are
 * refilled and taken by one Lua script on Redis's own clock, so engines with skewed clocks
 * and any number of engines count against the same buckets atomically.
 */
import { Redis } from "ioredis";
import type { Logger } from "pino";
import { PosternError } from "../errors/catalogue.js";
import type { BucketSpec, SharedState } from "./shared.js";

const PREFIX = "postern:";
const REVOKED_CHANNEL = `${PREFIX}revoked`;
/** Revocations replayed after a reconnect, at most (the gate's revocation list is bounded too). */
const MAX_REPLAY = 100_000;

/**
 * KEYS: app bucket, tenant bucket. ARGV: app rate, app capacity, tenant rate, tenant capacity,
 * tokens wanted. Returns { granted, ms until a token is due when none was granted }.
 */
const TAKE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local want = tonumber(ARGV[5])
local function level(key, rate, cap)
  if rate <= 0 then return want end
  local v = redis.call('HMGET', key, 'tokens', 'at')
  local tokens, at = tonumber(v[1]), tonumber(v[2])
  if tokens == nil then return cap end
  if now > at then tokens = math.min(cap, tokens + (now - at) * rate / 1000) end
  return tokens
end
local function store(key, rate, cap, tokens)
  if rate <= 0 then return end
  redis.call('HSET', key, 'tokens', tostring(tokens), 'at', now)
  redis.call('PEXPIRE', key, math.ceil(cap / rate * 1000) + 1000)
end
local appRate, appCap = tonumber(ARGV[1]), tonumber(ARGV[2])
local tenantRate, tenantCap = tonumber(ARGV[3]), tonumber(ARGV[4])
local a = level(KEYS[1], appRate, appCap)
local b = level(KEYS[2], tenantRate, tenantCap)
local granted = math.max(0, math.min(want, math.floor(a), math.floor(b)))
store(KEYS[1], appRate, appCap, a - granted)
store(KEYS[2], tenantRate, tenantCap, b - granted)
local wait = 0
if granted == 0 then
  if appRate > 0 and a < 1 then wait = math.max(wait, (1 - a) * 1000 / appRate) end
  if tenantRate > 0 and b < 1 then wait = math.max(wait, (1 - b) * 1000 / tenantRate) end
end
return { granted, math.ceil(wait) }
`;

export interface RedisStateOptions {
  /** redis://[user:password@]host:port[/db] or rediss:// */
  readonly url: string;
  readonly logger: Logger;
  /** A command slower than this counts as Redis being unreachable, ms. */
  readonly commandTimeoutMs?: number; // 250
}

type TakeCommand = (appKey: string, tenantKey: string, ...args: (string | number)[]) => Promise<[number, number]>;

export async function connectRedisState(options: RedisStateOptions): Promise<SharedState> {
  let url: URL;
  try {
    url = new URL(options.url);
  } catch {
    throw new PosternError("POSTERN_CONFIG", "redis: not a URL (expected redis://host:port)");
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") throw new PosternError("POSTERN_CONFIG", `redis: ${url.protocol} is not a Redis URL (expected redis://host:port)`);
  const state = new RedisState(options);
  await state.connect();
  return state;
}

class RedisState implements SharedState {
  readonly #commands: Redis;
  readonly #subscriber: Redis;
  readonly #listeners: ((sid: string, expS: number) => void)[] = [];
  readonly #reconnectListeners: (() => void)[] = [];
  readonly #take: TakeCommand;
  #wasAvailable = true;

  constructor(private readonly options: RedisStateOptions) {
    const common = {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: 2_000,
      // Reconnect for ever, never faster than every 100 ms nor slower than every 1 s.
      retryStrategy: (times: number) => Math.min(1_000, 100 * times),
    };
    this.#commands = new Redis(options.url, { ...common, commandTimeout: options.commandTimeoutMs ?? 250 });
    this.#subscriber = new Redis(options.url, common);
    this.#commands.defineCommand("posternTake", { numberOfKeys: 2, lua: TAKE });
    const commands = this.#commands as Redis & { posternTake: TakeCommand };
    this.#take = (...args) => commands.posternTake(...args);
    for (const [name, client] of [["commands", this.#commands], ["subscriber", this.#subscriber]] as const) {
      // ioredis reports every failed reconnect as an error event: one log line per outage is enough.
      client.on("error", (err: Error) => this.#note(false, `redis ${name} connection: ${err.message}`));
      client.on("ready", () => {
        this.#note(true, `redis ${name} connection ready`);
        // Pub/sub keeps no messages: once both connections are back, what was published meanwhile is replayed.
        if (this.available) void this.#replay();
      });
    }
    this.#subscriber.on("message", (channel: string, message: string) => {
      if (channel !== REVOKED_CHANNEL) return;
      const [sid, exp] = message.split(" ");
      if (sid && exp) this.#tell(sid, Number(exp));
    });
  }

  async connect(): Promise<void> {
    try {
      await Promise.all([this.#commands.connect(), this.#subscriber.connect()]);
      await this.#subscriber.subscribe(REVOKED_CHANNEL);
    } catch (err) {
      this.#commands.disconnect();
      this.#subscriber.disconnect();
      throw new PosternError("POSTERN_CONFIG", `redis ${redact(this.options.url)}: ${(err as Error).message}`, { cause: err });
    }
  }

  #note(up: boolean, message: string): void {
    if (up === this.#wasAvailable) return;
    this.#wasAvailable = up;
    if (up) this.options.logger.info(message);
    else this.options.logger.warn(`${message}; shared limits fall back to this engine's share, unseen sessions and sign-in callbacks are refused until it is back`);
  }

  get available(): boolean {
    return this.#commands.status === "ready" && this.#subscriber.status === "ready";
  }

  async take(app: BucketSpec, tenant: BucketSpec, want: number): Promise<{ granted: number; waitMs: number }> {
    const [granted, waitMs] = await this.#take(`${PREFIX}bucket:app:${app.key}`, `${PREFIX}bucket:tenant:${tenant.key}`, app.rate, app.capacity, tenant.rate, tenant.capacity, want);
    return { granted: Number(granted), waitMs: Number(waitMs) };
  }

  async revoke(sid: string, expS: number): Promise<void> {
    const ttlS = Math.max(1, expS - Math.floor(Date.now() / 1000));
    await this.#commands.multi().set(`${PREFIX}revoked:${sid}`, String(expS), "EX", ttlS).publish(REVOKED_CHANNEL, `${sid} ${expS}`).exec();
  }

  async isRevoked(sid: string): Promise<boolean> {
    return (await this.#commands.exists(`${PREFIX}revoked:${sid}`)) === 1;
  }

  onRevoked(listener: (sid: string, expS: number) => void): void {
    this.#listeners.push(listener);
    // A new listener learns every revocation in force, not only those published from now on.
    if (this.available) void this.#replay();
  }

  onReconnect(listener: () => void): void {
    this.#reconnectListeners.push(listener);
  }

  async useOnce(key: string, ttlMs: number): Promise<boolean> {
    return (await this.#commands.set(`${PREFIX}once:${key}`, "1", "PX", Math.max(1, Math.ceil(ttlMs)), "NX")) === "OK";
  }

  #tell(sid: string, expS: number): void {
    for (const listener of this.#listeners) listener(sid, expS);
  }

  /** Every revocation still in force, after a (re)connect: the channel does not keep messages. */
  async #replay(): Promise<void> {
    let cursor = "0";
    let seen = 0;
    try {
      do {
        const [next, keys] = await this.#commands.scan(cursor, "MATCH", `${PREFIX}revoked:*`, "COUNT", 1000);
        cursor = next;
        if (keys.length === 0) continue;
        const values = await this.#commands.mget(...keys);
        keys.forEach((key, i) => {
          if (values[i]) this.#tell(key.slice(`${PREFIX}revoked:`.length), Number(values[i]));
        });
        seen += keys.length;
      } while (cursor !== "0" && seen < MAX_REPLAY);
    } catch (err) {
      this.options.logger.warn({ err: (err as Error).message }, "redis: revocations not replayed after reconnect; retried at the next one");
      return;
    }
    for (const listener of this.#reconnectListeners) listener();
  }

  async close(): Promise<void> {
    this.#commands.removeAllListeners("error");
    this.#subscriber.removeAllListeners("error");
    await Promise.all([this.#commands.quit().catch(() => this.#commands.disconnect()), this.#subscriber.quit().catch(() => this.#subscriber.disconnect())]);
  }
}

function redact(raw: string): string {
  const u = new URL(raw);
  if (u.password) u.password = "***";
  return u.href;
}
