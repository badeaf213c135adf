/**
 * One Redis connection as the cloud uses it (node-redis, package @redis/client): no offline queue
 * (commands fail at once while Redis is down, so nothing waits on a dead server), a per-command
 * timeout, reconnection every 50–500 ms in the background, and Lua scripts by EVALSHA that are
 * re-loaded after a restart (NOSCRIPT). Shared by the session store and the event log.
 *
 * Two kinds behind one interface (RedisLink): one Redis (redis://HOST:PORT) and a Redis Cluster
 * (redis-cluster://HOST:PORT[,HOST:PORT…], @redis/client's cluster client: it follows MOVED/ASK
 * and re-reads the slot map after a failover). Every command names the key it is routed by; a
 * multi-key script keeps all its keys in one slot with a hash tag (see the callers' key layouts).
 * In a cluster, writes that must outlive a master failover are followed by WAIT (docs/scaling.md
 * §failover): Redis replicates asynchronously, so a write acknowledged by a master that dies the
 * next millisecond is lost unless a replica had it.
 */
import { createHash } from 'node:crypto';
import { createClient, createCluster } from '@redis/client';

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

/** What the session store and the event log need of Redis, on one server or a cluster. */
export interface RedisLink {
  readonly cluster: boolean;
  errors: number;
  lastError: string;
  readonly isReady: boolean;
  /** One command, sent to the node that holds `routeKey` (ignored on one Redis). */
  command<T>(args: string[], routeKey?: string): Promise<T>;
  /** EVALSHA (EVAL on NOSCRIPT), routed by keys[0]: every key must be in keys[0]'s slot. */
  script<T>(lua: string, keys: string[], args: string[]): Promise<T>;
  /**
   * `script`, and when `mustReplicate(reply)`, resolves only once `waitReplicas` replicas have its
   * writes (WAIT), else throws — the caller must then not acknowledge what it wrote. On one Redis
   * (nothing to wait for) or with wait=0 it is `script`.
   */
  replicatedScript<T>(lua: string, keys: string[], args: string[], mustReplicate: (reply: T) => boolean): Promise<T>;
  /** Runs `fn` with a command sender for each master (all keys of a layer are spread over them). */
  forEachMaster(fn: (send: (args: string[]) => Promise<unknown>) => Promise<void>): Promise<void>;
  close(): Promise<void>;
}

/** SHA-1 of a script, as EVALSHA wants it (computed here: SCRIPT LOAD would go to one node only). */
export function scriptSha(lua: string): string {
  return createHash('sha1').update(lua).digest('hex');
}

export class RedisConnection implements RedisLink {
  readonly cluster = false;
  readonly #shas = new Map<string, string>();
  errors = 0;
  lastError = '';
  constructor(readonly client: RedisClient) {}

  get isReady(): boolean {
    return this.client.isReady;
  }

  command<T>(args: string[], _routeKey?: string): Promise<T> {
    return this.client.sendCommand(args) as Promise<T>;
  }

  replicatedScript<T>(lua: string, keys: string[], args: string[], _mustReplicate: (reply: T) => boolean): Promise<T> {
    return this.script<T>(lua, keys, args);
  }

  async forEachMaster(fn: (send: (args: string[]) => Promise<unknown>) => Promise<void>): Promise<void> {
    await fn((args) => this.client.sendCommand(args));
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
  await connectWithin(client, conn, opts, `Redis at ${opts.url}`);
  return conn;
}

/** Counts errors on `conn`, connects within opts.connectTimeoutMs (default 5 s) or destroys the client and throws. */
async function connectWithin(client: { on(ev: 'error', f: (e: Error) => void): unknown; connect(): Promise<unknown>; destroy(): void }, conn: RedisLink, opts: RedisOptions, what: string): Promise<void> {
  client.on('error', (e: Error) => {
    conn.errors++;
    conn.lastError = e.message;
  });
  const limit = opts.connectTimeoutMs ?? 5000;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      // A client may give up before the limit (the cluster client: "All the root nodes are unavailable"): say where.
      client.connect().catch((e: Error) => {
        throw new Error(`cannot reach ${what}: ${e.message}`);
      }),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`cannot reach ${what} within ${limit} ms${conn.lastError ? ` (${conn.lastError})` : ''}`)), limit);
      }),
    ]);
  } catch (e) {
    client.destroy();
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/** The nodes of a redis-cluster://HOST:PORT[,HOST:PORT…] URL (any of them; the client finds the rest). */
export function clusterNodes(spec: string): { host: string; port: number }[] {
  const m = /^redis-cluster:\/\/([^?#/]+)\/?(\?.*)?$/.exec(spec);
  if (!m) throw new Error(`not a redis-cluster://HOST:PORT[,HOST:PORT…] URL: '${spec}'`);
  return m[1]!.split(',').map((hp) => {
    const i = hp.lastIndexOf(':');
    const host = i > 0 ? hp.slice(0, i).replace(/^\[|\]$/g, '') : hp;
    const port = i > 0 ? Number(hp.slice(i + 1)) : 6379;
    if (host === '' || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`bad node '${hp}' in '${spec}': HOST:PORT with a port 1..65535`);
    return { host, port };
  });
}

/** Query options of a redis-cluster:// URL: wait=N replicas (0..5) before acknowledging, wait-ms, shards (event log). */
export function clusterParams(spec: string): { waitReplicas: number; waitMs: number; shards: number } {
  const q = spec.includes('?') ? new URLSearchParams(spec.slice(spec.indexOf('?') + 1)) : new URLSearchParams();
  const num = (name: string, def: number, min: number, max: number): number => {
    const v = q.get(name);
    if (v === null) return def;
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new Error(`'${name}' in '${spec}' must be a whole number ${min}..${max} (got '${v}')`);
    return Number(v);
  };
  for (const k of q.keys()) if (!['wait', 'wait-ms', 'shards'].includes(k)) throw new Error(`unknown option '${k}' in '${spec}'; allowed: wait, wait-ms, shards`);
  return { waitReplicas: num('wait', DEFAULT_WAIT_REPLICAS, 0, 5), waitMs: num('wait-ms', DEFAULT_WAIT_MS, 1, 60_000), shards: num('shards', DEFAULT_EVENT_SHARDS, 1, 1024) };
}

/** Replicas that must have a write before the cloud acknowledges it (WAIT numreplicas). */
export const DEFAULT_WAIT_REPLICAS = 1;
/** WAIT's timeout: a replica on the same LAN answers in well under a millisecond. */
export const DEFAULT_WAIT_MS = 500;
/** Streams of the event log on a cluster: more than masters, so a larger cluster spreads them too. */
export const DEFAULT_EVENT_SHARDS = 16;

export class ReplicationError extends Error {}

function makeCluster(spec: string, opts: Omit<RedisOptions, 'url'>) {
  return createCluster({
    rootNodes: clusterNodes(spec).map(({ host, port }) => ({ socket: { host, port } })),
    ...(opts.resp !== undefined ? { RESP: opts.resp } : {}),
    defaults: {
      disableOfflineQueue: true,
      socket: { connectTimeout: 1000, reconnectStrategy: (retries: number) => Math.min(50 * (retries + 1), 500) },
    },
    commandOptions: { timeout: opts.commandTimeoutMs ?? 2000 },
    // A dead master's slots move to its replica within cluster-node-timeout; re-read the map soon.
    topologyRefreshOnReconnectionAttemptStrategy: 500,
  });
}
type RedisClusterClient = ReturnType<typeof makeCluster>;

/** EVALSHA (EVAL on NOSCRIPT) through a cluster client, routed by keys[0]. */
async function clusterScript<T>(client: RedisClusterClient, lua: string, keys: string[], args: string[]): Promise<T> {
  const route = keys[0];
  try {
    return (await client.sendCommand(route, false, ['EVALSHA', scriptSha(lua), String(keys.length), ...keys, ...args])) as T;
  } catch (e) {
    if (!String((e as Error).message).startsWith('NOSCRIPT')) throw e;
    return (await client.sendCommand(route, false, ['EVAL', lua, String(keys.length), ...keys, ...args])) as T;
  }
}

/**
 * A cluster as the cloud uses it: `client` for everything, and — when writes must be on a replica
 * before they are acknowledged (wait ≥ 1) — `guarded`, a second cluster client (its own connection
 * per node) that carries only those writes and their WAITs. WAIT blocks its connection until the
 * replicas answer; on a connection of its own it never holds up the reads, ACKs and deliveries.
 */
export class ClusterConnection implements RedisLink {
  readonly cluster = true;
  errors = 0;
  lastError = '';
  constructor(
    readonly client: RedisClusterClient,
    readonly guarded: RedisClusterClient | null,
    readonly waitReplicas: number,
    readonly waitMs: number,
  ) {}

  get isReady(): boolean {
    return this.client.isReady && (this.guarded?.isReady ?? true);
  }

  command<T>(args: string[], routeKey?: string): Promise<T> {
    return this.client.sendCommand(routeKey, false, args) as Promise<T>;
  }

  script<T>(lua: string, keys: string[], args: string[]): Promise<T> {
    return clusterScript<T>(this.client, lua, keys, args);
  }

  async replicatedScript<T>(lua: string, keys: string[], args: string[], mustReplicate: (reply: T) => boolean): Promise<T> {
    if (!this.guarded || this.waitReplicas <= 0) return this.script<T>(lua, keys, args);
    const reply = await clusterScript<T>(this.guarded, lua, keys, args);
    if (mustReplicate(reply)) await this.#replicated(keys[0]!);
    return reply;
  }

  /** Per node connection of `guarded`: the WAIT in flight, and the one that follows it (shared by everyone who asked meanwhile). */
  readonly #waits = new Map<unknown, { inFlight: Promise<number> | null; next: Promise<number> | null }>();

  /**
   * WAIT on the connection that carried the writes (`guarded` has one per node; WAIT counts every
   * write sent on it before). Sent to that node directly: through the cluster client's command
   * policies WAIT would go to every shard. Group commit: while one WAIT is in flight the callers
   * that come meanwhile share the next one (sent after their writes, so it covers them): at most
   * one WAIT in flight per node, however many writes are.
   */
  async #replicated(routeKey: string): Promise<void> {
    const node = await this.guarded!.getNodeClientForKey(routeKey);
    let w = this.#waits.get(node);
    if (!w) this.#waits.set(node, (w = { inFlight: null, next: null }));
    const state = w;
    const send = (): Promise<number> => {
      const p = (async () => Number(await node.sendCommand(['WAIT', String(this.waitReplicas), String(this.waitMs)])))();
      state.inFlight = p;
      void p.catch(() => undefined).finally(() => {
        if (state.inFlight === p) state.inFlight = null;
      });
      return p;
    };
    let n: number;
    if (!state.inFlight) n = await send();
    else {
      // The WAIT in flight may have been sent before our write: join the one after it.
      if (!state.next) {
        state.next = state.inFlight.catch(() => 0).then(() => {
          state.next = null;
          return send();
        });
      }
      n = await state.next;
    }
    if (n < this.waitReplicas) throw new ReplicationError(`Redis Cluster: write on ${this.waitReplicas === 1 ? 'no replica' : `${n} of ${this.waitReplicas} replicas`} within ${this.waitMs} ms (WAIT)`);
  }

  async forEachMaster(fn: (send: (args: string[]) => Promise<unknown>) => Promise<void>): Promise<void> {
    for (const m of this.client.masters) {
      const c = await this.client.nodeClient(m);
      await fn((args) => c.sendCommand(args));
    }
  }

  async close(): Promise<void> {
    for (const c of [this.client, this.guarded]) {
      if (!c) continue;
      try {
        if (c.isOpen) await c.close();
        else c.destroy();
      } catch {
        c.destroy();
      }
    }
  }
}

/** redis:// → one Redis, redis-cluster:// → a cluster; rejects with a clear message when unreachable. */
export async function connectRedisLink(opts: RedisOptions): Promise<RedisLink> {
  if (!opts.url.startsWith('redis-cluster://')) return connectRedis(opts);
  const { waitReplicas, waitMs } = clusterParams(opts.url);
  const client = makeCluster(opts.url, opts);
  const guarded = waitReplicas > 0 ? makeCluster(opts.url, opts) : null;
  const conn = new ClusterConnection(client, guarded, waitReplicas, waitMs);
  await connectWithin(client, conn, opts, `Redis Cluster at ${opts.url}`);
  if (guarded) {
    try {
      await connectWithin(guarded, conn, opts, `Redis Cluster at ${opts.url} (second connection, for writes confirmed by WAIT)`);
    } catch (e) {
      client.destroy();
      throw e;
    }
  }
  return conn;
}
