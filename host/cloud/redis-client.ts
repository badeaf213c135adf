/**
 * One Redis connection as the cloud uses it (node-redis, package @redis/client): no offline queue
 * (commands fail at once while Redis is down, so nothing waits on a dead server), a per-command
 * timeout, reconnection every 50–500 ms in the background, and Lua scripts by EVALSHA that are
 * re-loaded after a restart (NOSCRIPT). Shared by the session store and the event log.
 */
import { createClient } from '@redis/client';

export interface RedisOptions {
  url: string;
  prefix?: string;
  /** Per-command timeout (ms); a command that takes longer fails as a store error. */
  commandTimeoutMs?: number;
  /** Wait at most this long for the first connection (ms); the client keeps reconnecting after. */
  connectTimeoutMs?: number;
  /** Protocol (default: the client's, RESP3 for @redis/client 6); replies are read in either. */
  resp?: 2 | 3;
}

function makeClient(opts: RedisOptions) {
  return createClient({
    url: opts.url,
    ...(opts.resp !== undefined ? { RESP: opts.resp } : {}),
    disableOfflineQueue: true,
    commandOptions: { timeout: opts.commandTimeoutMs ?? 2000 },
    socket: {
      connectTimeout: 1000,
      reconnectStrategy: (retries: number) => Math.min(50 * (retries + 1), 500),
    },
  });
}
export type RedisClient = ReturnType<typeof makeClient>;

export class RedisConnection {
  readonly #shas = new Map<string, string>();
  errors = 0;
  lastError = '';
  constructor(readonly client: RedisClient) {}

  get isReady(): boolean {
    return this.client.isReady;
  }

  command<T>(args: string[]): Promise<T> {
    return this.client.sendCommand(args) as Promise<T>;
  }

  /** EVALSHA, loading the script on NOSCRIPT (a restarted Redis has an empty script cache). */
  async script<T>(lua: string, keys: string[], args: string[]): Promise<T> {
    let sha = this.#shas.get(lua);
    if (!sha) {
      sha = (await this.client.sendCommand(['SCRIPT', 'LOAD', lua])) as string;
      this.#shas.set(lua, sha);
    }
    try {
      return (await this.client.sendCommand(['EVALSHA', sha, String(keys.length), ...keys, ...args])) as T;
    } catch (e) {
      if (!String((e as Error).message).startsWith('NOSCRIPT')) throw e;
      this.#shas.delete(lua);
      return (await this.client.sendCommand(['EVAL', lua, String(keys.length), ...keys, ...args])) as T;
    }
  }

  async close(): Promise<void> {
    try {
      if (this.client.isReady) await this.client.close();
      else this.client.destroy();
    } catch {
      this.client.destroy();
    }
  }
}

/** Connects (waiting up to connectTimeoutMs); rejects with a clear message when Redis is unreachable. */
export async function connectRedis(opts: RedisOptions): Promise<RedisConnection> {
  const client = makeClient(opts);
  const conn = new RedisConnection(client);
  client.on('error', (e: Error) => {
    conn.errors++;
    conn.lastError = e.message;
  });
  const limit = opts.connectTimeoutMs ?? 5000;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.connect(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`cannot reach Redis at ${opts.url} within ${limit} ms${conn.lastError ? ` (${conn.lastError})` : ''}`)), limit);
      }),
    ]);
  } catch (e) {
    client.destroy();
    throw e;
  } finally {
    clearTimeout(timer);
  }
  return conn;
}
