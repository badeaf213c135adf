/**
 * Redis session store (node-redis, package @redis/client). Layout, under a key prefix (default
 * "ss:"):
 *   <prefix>s:<session id>   hash  m = session JSON, top = highest accepted seq, win = 64-char
 *                                  replay bitmap, wseq = next outgoing seq; PEXPIRE = session TTL
 *   <prefix>e:<device>:<seq> string claim of one event (SET NX PX)
 * `accept` and `reserve` are Lua scripts, so window update and sequence reservation are atomic
 * across every cloud process sharing the Redis. Commands fail fast while Redis is down (no offline
 * queue); the client reconnects in the background and re-loads the scripts after a restart.
 * Time is Redis's own clock: the `nowMs` arguments of the interface are not used here.
 */
import { createClient } from '@redis/client';
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

export interface RedisStoreOptions {
  url: string;
  prefix?: string;
  /** Per-command timeout (ms); a command that takes longer fails as a store error. */
  commandTimeoutMs?: number;
  /** Wait at most this long for the first connection (ms); the store keeps reconnecting after. */
  connectTimeoutMs?: number;
}

function makeClient(opts: RedisStoreOptions) {
  return createClient({
    url: opts.url,
    disableOfflineQueue: true,
    commandOptions: { timeout: opts.commandTimeoutMs ?? 2000 },
    socket: {
      connectTimeout: 1000,
      reconnectStrategy: (retries: number) => Math.min(50 * (retries + 1), 500),
    },
  });
}
type Client = ReturnType<typeof makeClient>;

export class RedisStore implements SessionStore {
  readonly kind = 'redis' as const;
  readonly #client: Client;
  readonly #prefix: string;
  readonly #shas = new Map<string, string>();
  #errors = 0;
  #lastError = '';

  private constructor(client: Client, prefix: string) {
    this.#client = client;
    this.#prefix = prefix;
  }

  /** Connects (waiting up to connectTimeoutMs); rejects with a clear message when Redis is unreachable. */
  static async connect(opts: RedisStoreOptions): Promise<RedisStore> {
    const client = makeClient(opts);
    const store = new RedisStore(client, opts.prefix ?? 'ss:');
    client.on('error', (e: Error) => {
      store.#errors++;
      store.#lastError = e.message;
    });
    const limit = opts.connectTimeoutMs ?? 5000;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        client.connect(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`cannot reach Redis at ${opts.url} within ${limit} ms${store.#lastError ? ` (${store.#lastError})` : ''}`)), limit);
        }),
      ]);
    } catch (e) {
      client.destroy();
      throw e;
    } finally {
      clearTimeout(timer);
    }
    return store;
  }

  /** Connection errors seen (reconnects after a Redis crash show up here). */
  get connectionErrors(): number {
    return this.#errors;
  }

  get isReady(): boolean {
    return this.#client.isReady;
  }

  #key(id: string): string {
    return `${this.#prefix}s:${id}`;
  }

  /** EVALSHA, loading the script on NOSCRIPT (a restarted Redis has an empty script cache). */
  async #script<T>(lua: string, keys: string[], args: string[]): Promise<T> {
    let sha = this.#shas.get(lua);
    if (!sha) {
      sha = (await this.#client.sendCommand(['SCRIPT', 'LOAD', lua])) as string;
      this.#shas.set(lua, sha);
    }
    try {
      return (await this.#client.sendCommand(['EVALSHA', sha, String(keys.length), ...keys, ...args])) as T;
    } catch (e) {
      if (!String((e as Error).message).startsWith('NOSCRIPT')) throw e;
      this.#shas.delete(lua);
      return (await this.#client.sendCommand(['EVAL', lua, String(keys.length), ...keys, ...args])) as T;
    }
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

  async claimEvent(deviceId: string, seq: number, ttlMs: number, _nowMs?: number): Promise<boolean> {
    const r: unknown = await this.#client.sendCommand(['SET', `${this.#prefix}e:${deviceId}:${seq}`, '1', 'NX', 'PX', String(Math.max(1, Math.round(ttlMs)))]);
    return r === 'OK';
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
    try {
      if (this.#client.isReady) await this.#client.close();
      else this.#client.destroy();
    } catch {
      this.#client.destroy();
    }
  }
}
