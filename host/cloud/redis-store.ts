/**
 * Redis session store (node-redis, package @redis/client). Layout, under a key prefix (default
 * "ss:"):
 *   <prefix>s:<session id>   hash  m = session JSON, top = highest accepted seq, win = 64-char
 *                                  replay bitmap, wseq = next outgoing seq; PEXPIRE = session TTL
 * `accept` and `reserve` are Lua scripts, so window update and sequence reservation are atomic
 * across every cloud process sharing the Redis. Commands fail fast while Redis is down (no offline
 * queue); the client reconnects in the background and re-loads the scripts after a restart.
 * Time is Redis's own clock: the `nowMs` arguments of the interface are not used here.
 */
import { connectRedis, type RedisClient, type RedisConnection, type RedisOptions } from './redis-client.ts';
import { EMPTY_WINDOW, WINDOW_BITS, type AcceptResult, type SessionStore, type StoredSession } from './store.ts';

/** Same algorithm as windowAccept() in store.ts. Returns {status, outSeq}: 0 ok, -1 replay, -2 too old, -3 missing. */
const ACCEPT_LUA = `
local k = KEYS[1]
local seq = tonumber(ARGV[1])
local out = tonumber(ARGV[2])
local v = redis.call('HMGET', k, 'top', 'win')
if not v[1] then return {-3, 0} end
local top = tonumber(v[1])
local win = v[2]
if seq > top then
  local shift = seq - top
  if shift >= ${WINDOW_BITS} then
    win = '1' .. string.rep('0', ${WINDOW_BITS - 1})
  else
    win = '1' .. string.rep('0', shift - 1) .. string.sub(win, 1, ${WINDOW_BITS} - shift)
  end
  top = seq
else
  local d = top - seq
  if d >= ${WINDOW_BITS} then return {-2, 0} end
  if string.sub(win, d + 1, d + 1) == '1' then return {-1, 0} end
  win = string.sub(win, 1, d) .. '1' .. string.sub(win, d + 2)
end
local w = redis.call('HINCRBY', k, 'wseq', out) - out
redis.call('HSET', k, 'top', string.format('%.0f', top), 'win', win)
redis.call('PEXPIRE', k, ARGV[3])
return {0, w}
`;

const RESERVE_LUA = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return redis.call('HINCRBY', KEYS[1], 'wseq', ARGV[1]) - tonumber(ARGV[1])
`;

const STATUS: Record<number, AcceptResult['status']> = { 0: 'ok', [-1]: 'replay', [-2]: 'too_old', [-3]: 'missing' };

export type RedisStoreOptions = RedisOptions;

export class RedisStore implements SessionStore {
  readonly kind = 'redis' as const;
  readonly #conn: RedisConnection;
  readonly #client: RedisClient;
  readonly #prefix: string;

  private constructor(conn: RedisConnection, prefix: string) {
    this.#conn = conn;
    this.#client = conn.client;
    this.#prefix = prefix;
  }

  /** Connects (waiting up to connectTimeoutMs); rejects with a clear message when Redis is unreachable. */
  static async connect(opts: RedisStoreOptions): Promise<RedisStore> {
    const conn = await connectRedis(opts);
    return new RedisStore(conn, opts.prefix ?? 'ss:');
  }

  /** Connection errors seen (reconnects after a Redis crash show up here). */
  get connectionErrors(): number {
    return this.#conn.errors;
  }

  get isReady(): boolean {
    return this.#client.isReady;
  }

  #key(id: string): string {
    return `${this.#prefix}s:${id}`;
  }

  #script<T>(lua: string, keys: string[], args: string[]): Promise<T> {
    return this.#conn.script<T>(lua, keys, args);
  }

  async get(id: string, _nowMs?: number): Promise<StoredSession | undefined> {
    const m = (await this.#client.sendCommand(['HGET', this.#key(id), 'm'])) as string | null;
    return m === null ? undefined : (JSON.parse(m) as StoredSession);
  }

  async put(id: string, s: StoredSession, init: { top: number; nextOutSeq: number }, ttlMs: number, _nowMs?: number): Promise<void> {
    const key = this.#key(id);
    const win = init.top >= 0 ? '1' + EMPTY_WINDOW.slice(1) : EMPTY_WINDOW;
    await this.#client
      .multi()
      .addCommand(['DEL', key])
      .addCommand(['HSET', key, 'm', JSON.stringify(s), 'top', String(init.top), 'win', win, 'wseq', String(init.nextOutSeq)])
      .addCommand(['PEXPIRE', key, String(Math.max(1, Math.round(ttlMs)))])
      .exec();
  }

  async accept(id: string, seq: number, outCount: number, ttlMs: number, _nowMs?: number): Promise<AcceptResult> {
    const [code, outSeq] = await this.#script<[number, number]>(ACCEPT_LUA, [this.#key(id)], [String(seq), String(outCount), String(Math.max(1, Math.round(ttlMs)))]);
    return { status: STATUS[code] ?? 'missing', outSeq };
  }

  async reserve(id: string, count: number, _nowMs?: number): Promise<number | undefined> {
    const first = await this.#script<number>(RESERVE_LUA, [this.#key(id)], [String(count)]);
    return first < 0 ? undefined : first;
  }

  async delete(id: string): Promise<void> {
    await this.#client.sendCommand(['DEL', this.#key(id)]);
  }

  async wipe(): Promise<void> {
    let cursor = '0';
    do {
      const [next, keys] = (await this.#client.sendCommand(['SCAN', cursor, 'MATCH', `${this.#prefix}*`, 'COUNT', '1000'])) as [string, string[]];
      cursor = next;
      if (keys.length > 0) await this.#client.sendCommand(['DEL', ...keys]);
    } while (cursor !== '0');
  }

  async close(): Promise<void> {
    await this.#conn.close();
  }
}
