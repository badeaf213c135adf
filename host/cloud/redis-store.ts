/**
 * Redis session store (node-redis, package @redis/client). Layout, under a key prefix (default
 * "ss:"):
 *   <prefix>s:<session id>   hash  m = session JSON, top = highest accepted seq, win = 64-char
 *                                  replay bitmap, wseq = next outgoing seq; PEXPIRE = session TTL
 * `accept` and `reserve` are Lua scripts, so window update and sequence reservation are atomic
 * across every cloud process sharing the Redis. Commands fail fast while Redis is down (no offline
 * queue); the client reconnects in the background and re-loads the scripts after a restart.
 * Time is Redis's own clock: the `nowMs` arguments of the interface are not used here.
 *
 * On a Redis Cluster (redis-cluster://…) every operation touches one key, so no hash tag is
 * needed: sessions spread over the slots by their id (the CID), and any front end finds a device's
 * session from the CID in its record. A write that reserves outgoing sequence numbers (accept with
 * replies, reserve) waits for a replica (WAIT) before the reply is encrypted: a failover that lost
 * the reservation would hand the same numbers out again — the same (key, nonce) twice.
 */
import { connectRedisLink, type RedisLink, type RedisOptions } from './redis-client.ts';
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

/** Creates or replaces a session (one key, so one slot: atomic on a cluster too). */
const PUT_LUA = `
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'm', ARGV[1], 'top', ARGV[2], 'win', ARGV[3], 'wseq', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
`;

const STATUS: Record<number, AcceptResult['status']> = { 0: 'ok', [-1]: 'replay', [-2]: 'too_old', [-3]: 'missing' };

export type RedisStoreOptions = RedisOptions;

export class RedisStore implements SessionStore {
  readonly kind = 'redis' as const;
  readonly #conn: RedisLink;
  readonly #prefix: string;

  private constructor(conn: RedisLink, prefix: string) {
    this.#conn = conn;
    this.#prefix = prefix;
  }

  /** Connects (waiting up to connectTimeoutMs); rejects with a clear message when Redis is unreachable. */
  static async connect(opts: RedisStoreOptions): Promise<RedisStore> {
    const conn = await connectRedisLink(opts);
    return new RedisStore(conn, opts.prefix ?? 'ss:');
  }

  /** Connection errors seen (reconnects after a Redis crash show up here). */
  get connectionErrors(): number {
    return this.#conn.errors;
  }

  get isReady(): boolean {
    return this.#conn.isReady;
  }

  #key(id: string): string {
    return `${this.#prefix}s:${id}`;
  }

  #script<T>(lua: string, keys: string[], args: string[]): Promise<T> {
    return this.#conn.script<T>(lua, keys, args);
  }

  async get(id: string, _nowMs?: number): Promise<StoredSession | undefined> {
    const key = this.#key(id);
    const m = await this.#conn.command<string | null>(['HGET', key, 'm'], key);
    return m === null ? undefined : (JSON.parse(m) as StoredSession);
  }

  async put(id: string, s: StoredSession, init: { top: number; nextOutSeq: number }, ttlMs: number, _nowMs?: number): Promise<void> {
    const key = this.#key(id);
    const win = init.top >= 0 ? '1' + EMPTY_WINDOW.slice(1) : EMPTY_WINDOW;
    await this.#script(PUT_LUA, [key], [JSON.stringify(s), String(init.top), win, String(init.nextOutSeq), String(Math.max(1, Math.round(ttlMs)))]);
  }

  async accept(id: string, seq: number, outCount: number, ttlMs: number, _nowMs?: number): Promise<AcceptResult> {
    const key = this.#key(id);
    const [code, outSeq] = await this.#conn.replicatedScript<[number, number]>(ACCEPT_LUA, [key], [String(seq), String(outCount), String(Math.max(1, Math.round(ttlMs)))], ([c]) => c === 0 && outCount > 0);
    return { status: STATUS[code] ?? 'missing', outSeq };
  }

  async reserve(id: string, count: number, _nowMs?: number): Promise<number | undefined> {
    const key = this.#key(id);
    const first = await this.#conn.replicatedScript<number>(RESERVE_LUA, [key], [String(count)], (f) => f >= 0);
    return first < 0 ? undefined : first;
  }

  async delete(id: string): Promise<void> {
    const key = this.#key(id);
    await this.#conn.command(['DEL', key], key);
  }

  async wipe(): Promise<void> {
    await this.#conn.forEachMaster(async (send) => {
      let cursor = '0';
      do {
        const [next, keys] = (await send(['SCAN', cursor, 'MATCH', `${this.#prefix}*`, 'COUNT', '1000'])) as [string, string[]];
        cursor = next;
        // One DEL per key: on a cluster node the keys are in many slots (a multi-key DEL would be CROSSSLOT).
        await Promise.all(keys.map((k) => send(['DEL', k])));
      } while (cursor !== '0');
    });
  }

  async close(): Promise<void> {
    await this.#conn.close();
  }
}
