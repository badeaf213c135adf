/**
 * The durable event log on Redis (docs/protocol.md §8). Layout under a prefix (default "ssev:",
 * apart from the session cache's "ss:" so a cache wipe never touches it):
 *   <prefix>log        stream of events waiting for delivery; consumer group "webhook"
 *   <prefix>dead       stream of dead letters (refused permanently by the receiver)
 *   <prefix>c:<key>    claim of one idempotency key (device:incarnation:seq), with a TTL; its
 *                      value is the event's content hash (a reused id with other content: conflict)
 *   <prefix>d:<device> sorted set of the device's claims (key → time claimed), same TTL: at most
 *                      maxClaimsPerDevice; beyond it the oldest claims are deleted
 * `append` is one Lua script: claim (GET, then SET PX) and XADD happen together or not at all, and with
 * `appendonly yes` + `appendfsync always` Redis answers only after the write is on disk — so the
 * cloud ACKs a device only for an event that survives a kill -9 of Redis.
 * Delivery: XREADGROUP hands new entries to one consumer (one per cloud process); XACK+XDEL when
 * delivered; XAUTOCLAIM lets another process take over the entries of a process that died.
 * Bounded (docs/protocol.md §8.1): the log by maxBacklog, the dead letters by maxDeadLetters
 * (XADD MAXLEN ~), claims per device by maxClaimsPerDevice, and consumers that died are removed.
 *
 * On a Redis Cluster (redis-cluster://…) the log is N streams ("shards", ?shards=N, default 16),
 * each with its own consumer group, and every key carries its shard's hash tag:
 *   <prefix>{<shard>}log, <prefix>{<shard>}dead, <prefix>{<shard>}c:<key>, <prefix>{<shard>}d:<device>
 * A device's events all go to shard hash(device) mod N, so the append script's keys (claim, log,
 * the device's claim index, the claims it trims) are in one slot, and a device's events keep their
 * order in one stream. Entry ids are "<shard>/<stream id>". An append (new or duplicate) is
 * acknowledged only after WAIT says a replica has it (docs/scaling.md §failover).
 */
import { connectRedisLink, type RedisLink, type RedisOptions } from './redis-client.ts';
import { clusterParams } from './redis-client.ts';
import type { AppendResult, DeadLetter, DeviceEvent, EventLog, LoggedEvent } from './events.ts';
import { contentHash, deviceKeyPart, idempotencyKey, type TrimCounts } from './events.ts';

export const EVENT_GROUP = 'webhook';

/**
 * {0} duplicate (claimed for this content hash), {-2} conflict (claimed for another: a reused event
 * id), {-1} full (stream at its bound: nothing written), {1, claim…} appended, where the claims
 * listed are the device's oldest, dropped from its index to keep it at ARGV[5] claims (0: no
 * bound): the caller deletes those keys (a script may only touch the keys it declares, and these
 * are known only here). A claim's value is the content hash; claims written before hashes were
 * kept hold "1" and count as this content. A duplicate refreshes the claim's TTL: a write, so that
 * a WAIT after it covers the first write of the claim too (replication is in order).
 * KEYS: claim, log, the device's claim index. ARGV: TTL ms, entry, backlog bound, content hash,
 * claim bound per device, the claim's key (index member).
 */
const APPEND_LUA = `
local claimed = redis.call('GET', KEYS[1])
if claimed then
  if claimed == ARGV[4] or claimed == '1' then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
    return {0}
  end
  return {-2}
end
if tonumber(ARGV[3]) > 0 and redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[3]) then return {-1} end
redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[1])
redis.call('XADD', KEYS[2], '*', 'e', ARGV[2])
local cap = tonumber(ARGV[5])
if cap <= 0 then return {1} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. (now - tonumber(ARGV[1])))
redis.call('ZADD', KEYS[3], now, ARGV[6])
redis.call('PEXPIRE', KEYS[3], ARGV[1])
local over = redis.call('ZCARD', KEYS[3]) - cap
if over <= 0 then return {1} end
local old = redis.call('ZPOPMIN', KEYS[3], over)
local r = {1}
for i = 1, #old, 2 do r[#r + 1] = old[i] end
return r
`;

/**
 * Moves one entry to the dead-letter stream and out of the log, atomically; the dead-letter stream
 * is trimmed to about ARGV[6] entries (0: no bound). Returns how many old dead letters went.
 */
const DEAD_LUA = `
local before = redis.call('XLEN', KEYS[2])
if tonumber(ARGV[6]) > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'e', ARGV[2], 'reason', ARGV[3], 'at', ARGV[4], 'from', ARGV[1])
else
  redis.call('XADD', KEYS[2], '*', 'e', ARGV[2], 'reason', ARGV[3], 'at', ARGV[4], 'from', ARGV[1])
end
redis.call('XACK', KEYS[1], ARGV[5], ARGV[1])
redis.call('XDEL', KEYS[1], ARGV[1])
return before + 1 - redis.call('XLEN', KEYS[2])
`;

/**
 * Removes the group's consumers idle for at least ARGV[2] ms that have nothing pending, atomically
 * (so none can take an entry between the check and the removal); returns how many. A consumer
 * with entries pending stays until another process reclaims them. Removing a live consumer would
 * be harmless: its next read creates it again.
 */
const PRUNE_LUA = `
local removed = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if tonumber(f['pending']) == 0 and tonumber(f['idle']) >= tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    removed = removed + 1
  end
end
return removed
`;

/** Moves one dead letter back into the log, atomically; 0 when it is not there. */
const RETRY_LUA = `
local r = redis.call('XRANGE', KEYS[2], ARGV[1], ARGV[1])
if #r == 0 then return 0 end
local f = r[1][2]
for i = 1, #f, 2 do
  if f[i] == 'e' then redis.call('XADD', KEYS[1], '*', 'e', f[i + 1]) end
end
redis.call('XDEL', KEYS[2], ARGV[1])
return 1
`;

const ACK_LUA = `
redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 2))
return redis.call('XDEL', KEYS[1], unpack(ARGV, 2))
`;

export interface RedisEventLogOptions extends RedisOptions {
  /** Events waiting at most (0 = no bound); beyond it `append` answers 'full' and the device is not ACKed. */
  maxBacklog?: number;
  /** Dead letters kept, about (XADD MAXLEN ~; 0 = no bound); the oldest go first, counted. */
  maxDeadLetters?: number;
  /** Claims kept per device (0 = no bound); beyond it the device's oldest claims are deleted, counted. */
  maxClaimsPerDevice?: number;
}

export const DEFAULT_MAX_BACKLOG = 10_000_000;
export const DEFAULT_MAX_DEAD_LETTERS = 1_000_000;
/** One event a minute for the 7-day claim TTL: devices below that rate keep every claim for its TTL. */
export const DEFAULT_MAX_CLAIMS_PER_DEVICE = 10_080;

function encode(ev: DeviceEvent): string {
  return JSON.stringify({ d: ev.deviceId, i: ev.incarnation, s: ev.seq, n: ev.name, x: ev.data.toString('base64'), t: ev.receivedMs });
}

function decode(json: string): DeviceEvent {
  const o = JSON.parse(json) as { d: string; i: string | null; s: number; n: string; x: string; t: number };
  return { deviceId: o.d, incarnation: o.i, seq: o.s, name: o.n, data: Buffer.from(o.x, 'base64'), receivedMs: o.t };
}

/**
 * Stream replies as node-redis hands them over from `sendCommand`, in either protocol: RESP2
 * (arrays only) or RESP3 (the default of @redis/client 6: XREADGROUP/XREAD answer a map of stream
 * name → entries, an object by default or a Map with a type mapping). Entries are `[id, fields]`,
 * fields a flat array of name, value (RESP2 and RESP3 alike); an entry deleted while pending is
 * `null` or `[id, null]` (Redis 6.2). Anything else is an error, never an empty list: a read that
 * moved entries into this consumer's pending list must hand them over or fail loudly.
 */
export class StreamReplyError extends Error {
  constructor(what: string, reply: unknown) {
    super(`unexpected ${what} reply from Redis: ${JSON.stringify(reply)?.slice(0, 200)}`);
  }
}

function fields(f: unknown): Record<string, string> {
  const o: Record<string, string> = {};
  if (Array.isArray(f)) {
    for (let i = 0; i + 1 < f.length; i += 2) o[String(f[i])] = String(f[i + 1]);
  } else if (f instanceof Map) {
    for (const [k, v] of f) o[String(k)] = String(v);
  } else if (f !== null && typeof f === 'object') {
    for (const [k, v] of Object.entries(f)) o[k] = String(v);
  } else {
    throw new StreamReplyError('stream entry fields', f);
  }
  return o;
}

/** A list of stream entries (XRANGE, XAUTOCLAIM's second element, one stream of XREADGROUP) → [id, fields]. */
export function streamEntries(list: unknown): [string, Record<string, string>][] {
  if (!Array.isArray(list)) throw new StreamReplyError('stream entries', list);
  const out: [string, Record<string, string>][] = [];
  for (const e of list) {
    if (e === null) continue; // deleted while pending
    if (!Array.isArray(e) || e.length < 2) throw new StreamReplyError('stream entry', e);
    if (e[1] === null) continue; // deleted while pending (Redis 6.2)
    out.push([String(e[0]), fields(e[1])]);
  }
  return out;
}

/** The entries of `stream` in an XREADGROUP / XREAD reply (null: nothing new). */
export function readGroupEntries(reply: unknown, stream: string): [string, Record<string, string>][] {
  if (reply === null || reply === undefined) return [];
  let list: unknown;
  if (Array.isArray(reply)) {
    // RESP2: [[name, entries], …]
    for (const s of reply) {
      if (!Array.isArray(s) || s.length !== 2) throw new StreamReplyError('XREADGROUP', reply);
      if (String(s[0]) === stream) list = s[1];
    }
  } else if (reply instanceof Map) {
    for (const [k, v] of reply) if (String(k) === stream) list = v;
  } else if (typeof reply === 'object') {
    list = (reply as Record<string, unknown>)[stream];
  } else {
    throw new StreamReplyError('XREADGROUP', reply);
  }
  return list === undefined || list === null ? [] : streamEntries(list);
}

/** The entries of XAUTOCLAIM's reply ([next cursor, entries, deleted ids] from Redis 7, two elements in 6.2). */
export function autoclaimReply(reply: unknown): { cursor: string; entries: [string, Record<string, string>][] } {
  if (!Array.isArray(reply) || reply.length < 2) throw new StreamReplyError('XAUTOCLAIM', reply);
  return { cursor: String(reply[0]), entries: streamEntries(reply[1]) };
}

/**
 * The events among entries read. An entry that is not an event of ours (no "e" field, or not its
 * JSON; nothing this code writes) is left out rather than failing the read: the others, already
 * moved into this consumer's pending list by the read, are handed over. It stays pending, counted
 * in the backlog, for someone to look at.
 */
function logged(list: [string, Record<string, string>][]): LoggedEvent[] {
  const out: LoggedEvent[] = [];
  for (const [id, f] of list) {
    if (f.e === undefined) continue;
    let ev: DeviceEvent;
    try {
      ev = decode(f.e);
    } catch {
      continue;
    }
    out.push({ id, ev });
  }
  return out;
}

/** FNV-1a (32 bit) of the device id: which shard of the log holds the device's events. */
export function shardOf(deviceId: string, shards: number): number {
  if (shards <= 1) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < deviceId.length; i++) {
    h ^= deviceId.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % shards;
}

/** The keys of one shard (on one Redis: the one unsharded layout of before). */
interface ShardKeys {
  log: string;
  dead: string;
  claimPrefix: string;
  indexPrefix: string;
}

export class RedisEventLog implements EventLog {
  readonly kind = 'redis' as const;
  readonly #conn: RedisLink;
  readonly #shards: ShardKeys[];
  readonly #maxBacklogPerShard: number;
  readonly #maxDeadLetters: number;
  readonly #maxClaimsPerDevice: number;
  readonly trimmed: TrimCounts = { deadLetters: 0, claims: 0, consumers: 0 };
  readonly #groupReady: boolean[];
  readonly #reclaimCursor: string[];

  private constructor(conn: RedisLink, prefix: string, shards: number, opts: RedisEventLogOptions) {
    this.#conn = conn;
    this.#shards = Array.from({ length: shards }, (_, n) => {
      const p = conn.cluster ? `${prefix}{${n}}` : prefix;
      return { log: `${p}log`, dead: `${p}dead`, claimPrefix: `${p}c:`, indexPrefix: `${p}d:` };
    });
    this.#groupReady = this.#shards.map(() => false);
    this.#reclaimCursor = this.#shards.map(() => '0-0');
    const maxBacklog = opts.maxBacklog ?? DEFAULT_MAX_BACKLOG;
    // The bound is per stream: the total stays at most maxBacklog (rounded up to a multiple of N).
    this.#maxBacklogPerShard = maxBacklog <= 0 ? 0 : Math.ceil(maxBacklog / shards);
    this.#maxDeadLetters = opts.maxDeadLetters ?? DEFAULT_MAX_DEAD_LETTERS;
    this.#maxClaimsPerDevice = opts.maxClaimsPerDevice ?? DEFAULT_MAX_CLAIMS_PER_DEVICE;
  }

  static async connect(opts: RedisEventLogOptions): Promise<RedisEventLog> {
    const conn = await connectRedisLink(opts);
    const shards = conn.cluster ? clusterParams(opts.url).shards : 1;
    const log = new RedisEventLog(conn, opts.prefix ?? 'ssev:', shards, opts);
    try {
      for (let n = 0; n < shards; n++) await log.#ensureGroup(n);
    } catch (e) {
      await conn.close();
      throw e;
    }
    return log;
  }

  get connectionErrors(): number {
    return this.#conn.errors;
  }

  /** How many streams the log is spread over (1 on one Redis). */
  get shardCount(): number {
    return this.#shards.length;
  }

  /** "<shard>/<stream id>" on a cluster, the stream id alone on one Redis. */
  #id(n: number, streamId: string): string {
    return this.#conn.cluster ? `${n}/${streamId}` : streamId;
  }

  #parseId(id: string): { n: number; streamId: string } {
    const i = id.indexOf('/');
    if (i < 0) return { n: 0, streamId: id };
    const n = Number(id.slice(0, i));
    if (!Number.isInteger(n) || n < 0 || n >= this.#shards.length) throw new Error(`event log entry id '${id}': no shard ${id.slice(0, i)} (the log has ${this.#shards.length})`);
    return { n, streamId: id.slice(i + 1) };
  }

  /** Ids grouped by shard, each as its stream id. */
  #byShard(ids: string[]): Map<number, string[]> {
    const m = new Map<number, string[]>();
    for (const id of ids) {
      const { n, streamId } = this.#parseId(id);
      let l = m.get(n);
      if (!l) m.set(n, (l = []));
      l.push(streamId);
    }
    return m;
  }

  #logged(n: number, list: [string, Record<string, string>][]): LoggedEvent[] {
    const out = logged(list);
    if (this.#conn.cluster) for (const e of out) e.id = this.#id(n, e.id);
    return out;
  }

  /** The consumer group exists (created with the stream); again after an empty Redis restart. */
  async #ensureGroup(n: number): Promise<void> {
    const { log } = this.#shards[n]!;
    try {
      await this.#conn.command(['XGROUP', 'CREATE', log, EVENT_GROUP, '0', 'MKSTREAM'], log);
    } catch (e) {
      if (!String((e as Error).message).startsWith('BUSYGROUP')) throw e;
    }
    this.#groupReady[n] = true;
  }

  async #withGroup<T>(n: number, run: () => Promise<T>): Promise<T> {
    if (!this.#groupReady[n]) await this.#ensureGroup(n);
    try {
      return await run();
    } catch (e) {
      if (!String((e as Error).message).startsWith('NOGROUP')) throw e;
      this.#groupReady[n] = false;
      await this.#ensureGroup(n);
      return run();
    }
  }

  /** `run` on every shard at once; results in shard order. */
  #all<T>(run: (n: number, k: ShardKeys) => Promise<T>): Promise<T[]> {
    return Promise.all(this.#shards.map((k, n) => run(n, k)));
  }

  async append(ev: DeviceEvent, claimTtlMs: number, _nowMs: number): Promise<AppendResult> {
    const key = idempotencyKey(ev);
    const k = this.#shards[shardOf(ev.deviceId, this.#shards.length)]!;
    const r = await this.#conn.replicatedScript<(number | string)[]>(
      APPEND_LUA,
      [k.claimPrefix + key, k.log, k.indexPrefix + deviceKeyPart(ev.deviceId)],
      [String(Math.max(1, Math.round(claimTtlMs))), encode(ev), String(this.#maxBacklogPerShard), contentHash(ev), String(this.#maxClaimsPerDevice), key],
      // Appended, or a duplicate (its TTL refresh is a write that follows the first one): ACKed only once on a replica.
      (reply) => Number(reply[0]) === 1 || Number(reply[0]) === 0,
    );
    const code = Number(r[0]);
    if (code === 1 && r.length > 1) {
      // The device's oldest claims, dropped from its index by the script: their keys go too (same slot).
      const old = r.slice(1).map((c) => k.claimPrefix + String(c));
      await this.#conn.command(['DEL', ...old], old[0]);
      this.trimmed.claims += old.length;
    }
    return code === 1 ? 'appended' : code === 0 ? 'duplicate' : code === -2 ? 'conflict' : 'full';
  }

  async take(consumer: string, max: number): Promise<LoggedEvent[]> {
    const per = Math.max(1, Math.ceil(max / this.#shards.length));
    const lists = await this.#all((n, k) =>
      this.#withGroup(n, async () => {
        const r = await this.#conn.command<unknown>(['XREADGROUP', 'GROUP', EVENT_GROUP, consumer, 'COUNT', String(per), 'STREAMS', k.log, '>'], k.log);
        return this.#logged(n, readGroupEntries(r, k.log));
      }),
    );
    return lists.flat();
  }

  async reclaim(consumer: string, minIdleMs: number, max: number): Promise<LoggedEvent[]> {
    const per = Math.max(1, Math.ceil(max / this.#shards.length));
    const lists = await this.#all((n, k) =>
      this.#withGroup(n, async () => {
        const r = autoclaimReply(await this.#conn.command<unknown>(['XAUTOCLAIM', k.log, EVENT_GROUP, consumer, String(Math.max(0, Math.round(minIdleMs))), this.#reclaimCursor[n]!, 'COUNT', String(per)], k.log));
        this.#reclaimCursor[n] = r.cursor;
        return this.#logged(n, r.entries);
      }),
    );
    return lists.flat();
  }

  async touch(consumer: string, ids: string[]): Promise<void> {
    await Promise.all(
      [...this.#byShard(ids)].map(([n, list]) => {
        const log = this.#shards[n]!.log;
        return this.#withGroup(n, () => this.#conn.command(['XCLAIM', log, EVENT_GROUP, consumer, '0', ...list, 'JUSTID'], log));
      }),
    );
  }

  async ack(ids: string[]): Promise<void> {
    await Promise.all([...this.#byShard(ids)].map(([n, list]) => this.#conn.script(ACK_LUA, [this.#shards[n]!.log], [EVENT_GROUP, ...list])));
  }

  async deadLetter(entry: LoggedEvent, reason: string, nowMs: number): Promise<void> {
    const { n, streamId } = this.#parseId(entry.id);
    const k = this.#shards[n]!;
    this.trimmed.deadLetters += await this.#conn.script<number>(DEAD_LUA, [k.log, k.dead], [streamId, encode(entry.ev), reason, String(nowMs), EVENT_GROUP, String(this.#maxDeadLetters)]);
  }

  async pruneConsumers(idleMs: number): Promise<number> {
    const counts = await this.#all((n, k) => this.#withGroup(n, () => this.#conn.script<number>(PRUNE_LUA, [k.log], [EVENT_GROUP, String(Math.max(0, Math.round(idleMs)))])));
    const total = counts.reduce((a, b) => a + b, 0);
    this.trimmed.consumers += total;
    return total;
  }

  async #dead(max?: number): Promise<{ n: number; id: string; o: Record<string, string> }[]> {
    const lists = await this.#all(async (n, k) => streamEntries(await this.#conn.command<unknown>(['XRANGE', k.dead, '-', '+', ...(max !== undefined ? ['COUNT', String(max)] : [])], k.dead)).map(([id, o]) => ({ n, id, o })));
    return lists.flat();
  }

  async listDead(max: number): Promise<DeadLetter[]> {
    const all = await this.#dead(max);
    return all.slice(0, max).map(({ n, id, o }) => ({ id: this.#id(n, id), ev: decode(o.e!), reason: o.reason ?? '', failedMs: Number(o.at ?? 0) }));
  }

  async retryDead(ids: string[] | 'all'): Promise<number> {
    const list = ids === 'all' ? (await this.#dead()).map(({ n, id }) => this.#id(n, id)) : ids;
    let moved = 0;
    for (const id of list) {
      const { n, streamId } = this.#parseId(id);
      const k = this.#shards[n]!;
      moved += await this.#conn.script<number>(RETRY_LUA, [k.log, k.dead], [streamId]);
    }
    return moved;
  }

  async backlog(): Promise<number> {
    const lens = await this.#all((_, k) => this.#conn.command<number>(['XLEN', k.log], k.log));
    return lens.reduce((a, b) => a + Number(b), 0);
  }

  async deadCount(): Promise<number> {
    const lens = await this.#all((_, k) => this.#conn.command<number>(['XLEN', k.dead], k.dead));
    return lens.reduce((a, b) => a + Number(b), 0);
  }

  async close(): Promise<void> {
    await this.#conn.close();
  }
}
