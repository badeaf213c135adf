/**
 * The durable event log on Redis (docs/protocol.md §8). Layout under a prefix (default "ssev:",
 * apart from the session cache's "ss:" so a cache wipe never touches it):
 *   <prefix>log        stream of events waiting for delivery; consumer group "webhook"
 *   <prefix>dead       stream of dead letters (refused permanently by the receiver)
 *   <prefix>c:<key>    claim of one idempotency key (device:incarnation:seq), with a TTL; its
 *                      value is the event's content hash (a reused id with other content: conflict)
 * `append` is one Lua script: claim (GET, then SET PX) and XADD happen together or not at all, and with
 * `appendonly yes` + `appendfsync always` Redis answers only after the write is on disk — so the
 * cloud ACKs a device only for an event that survives a kill -9 of Redis.
 * Delivery: XREADGROUP hands new entries to one consumer (one per cloud process); XACK+XDEL when
 * delivered; XAUTOCLAIM lets another process take over the entries of a process that died.
 */
import { connectRedis, type RedisConnection, type RedisOptions } from './redis-client.ts';
import type { AppendResult, DeadLetter, DeviceEvent, EventLog, LoggedEvent } from './events.ts';
import { contentHash, idempotencyKey } from './events.ts';

export const EVENT_GROUP = 'webhook';

/**
 * 1 appended, 0 duplicate (claimed for this content hash), -2 conflict (claimed for another: a
 * reused event id), -1 full (stream at its bound: nothing written). A claim's value is the content
 * hash; claims written before hashes were kept hold "1" and count as this content (duplicate).
 */
const APPEND_LUA = `
local claimed = redis.call('GET', KEYS[1])
if claimed then
  if claimed == ARGV[4] or claimed == '1' then return 0 end
  return -2
end
if tonumber(ARGV[3]) > 0 and redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[3]) then return -1 end
redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[1])
redis.call('XADD', KEYS[2], '*', 'e', ARGV[2])
return 1
`;

/** Moves one entry to the dead-letter stream and out of the log, atomically. */
const DEAD_LUA = `
redis.call('XADD', KEYS[2], '*', 'e', ARGV[2], 'reason', ARGV[3], 'at', ARGV[4], 'from', ARGV[1])
redis.call('XACK', KEYS[1], ARGV[5], ARGV[1])
redis.call('XDEL', KEYS[1], ARGV[1])
return 1
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
}

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

export class RedisEventLog implements EventLog {
  readonly kind = 'redis' as const;
  readonly #conn: RedisConnection;
  readonly #log: string;
  readonly #dead: string;
  readonly #claimPrefix: string;
  readonly #maxBacklog: number;
  #groupReady = false;
  #reclaimCursor = '0-0';

  private constructor(conn: RedisConnection, prefix: string, maxBacklog: number) {
    this.#conn = conn;
    this.#log = `${prefix}log`;
    this.#dead = `${prefix}dead`;
    this.#claimPrefix = `${prefix}c:`;
    this.#maxBacklog = maxBacklog;
  }

  static async connect(opts: RedisEventLogOptions): Promise<RedisEventLog> {
    const conn = await connectRedis(opts);
    const log = new RedisEventLog(conn, opts.prefix ?? 'ssev:', opts.maxBacklog ?? 10_000_000);
    try {
      await log.#ensureGroup();
    } catch (e) {
      await conn.close();
      throw e;
    }
    return log;
  }

  get connectionErrors(): number {
    return this.#conn.errors;
  }

  /** The consumer group exists (created with the stream); again after an empty Redis restart. */
  async #ensureGroup(): Promise<void> {
    try {
      await this.#conn.command(['XGROUP', 'CREATE', this.#log, EVENT_GROUP, '0', 'MKSTREAM']);
    } catch (e) {
      if (!String((e as Error).message).startsWith('BUSYGROUP')) throw e;
    }
    this.#groupReady = true;
  }

  async #withGroup<T>(run: () => Promise<T>): Promise<T> {
    if (!this.#groupReady) await this.#ensureGroup();
    try {
      return await run();
    } catch (e) {
      if (!String((e as Error).message).startsWith('NOGROUP')) throw e;
      this.#groupReady = false;
      await this.#ensureGroup();
      return run();
    }
  }

  async append(ev: DeviceEvent, claimTtlMs: number, _nowMs: number): Promise<AppendResult> {
    const r = await this.#conn.script<number>(APPEND_LUA, [this.#claimPrefix + idempotencyKey(ev), this.#log], [String(Math.max(1, Math.round(claimTtlMs))), encode(ev), String(this.#maxBacklog), contentHash(ev)]);
    return r === 1 ? 'appended' : r === 0 ? 'duplicate' : r === -2 ? 'conflict' : 'full';
  }

  async take(consumer: string, max: number): Promise<LoggedEvent[]> {
    return this.#withGroup(async () => {
      const r = await this.#conn.command<unknown>(['XREADGROUP', 'GROUP', EVENT_GROUP, consumer, 'COUNT', String(max), 'STREAMS', this.#log, '>']);
      return logged(readGroupEntries(r, this.#log));
    });
  }

  async reclaim(consumer: string, minIdleMs: number, max: number): Promise<LoggedEvent[]> {
    return this.#withGroup(async () => {
      const r = autoclaimReply(await this.#conn.command<unknown>(['XAUTOCLAIM', this.#log, EVENT_GROUP, consumer, String(Math.max(0, Math.round(minIdleMs))), this.#reclaimCursor, 'COUNT', String(max)]));
      this.#reclaimCursor = r.cursor;
      return logged(r.entries);
    });
  }

  async touch(consumer: string, ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.#withGroup(() => this.#conn.command(['XCLAIM', this.#log, EVENT_GROUP, consumer, '0', ...ids, 'JUSTID']));
  }

  async ack(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.#conn.script(ACK_LUA, [this.#log], [EVENT_GROUP, ...ids]);
  }

  async deadLetter(entry: LoggedEvent, reason: string, nowMs: number): Promise<void> {
    await this.#conn.script(DEAD_LUA, [this.#log, this.#dead], [entry.id, encode(entry.ev), reason, String(nowMs), EVENT_GROUP]);
  }

  async listDead(max: number): Promise<DeadLetter[]> {
    const r = streamEntries(await this.#conn.command<unknown>(['XRANGE', this.#dead, '-', '+', 'COUNT', String(max)]));
    return r.map(([id, o]) => ({ id, ev: decode(o.e), reason: o.reason ?? '', failedMs: Number(o.at ?? 0) }));
  }

  async retryDead(ids: string[] | 'all'): Promise<number> {
    let list = ids;
    if (list === 'all') list = streamEntries(await this.#conn.command<unknown>(['XRANGE', this.#dead, '-', '+'])).map(([id]) => id);
    let n = 0;
    for (const id of list) n += await this.#conn.script<number>(RETRY_LUA, [this.#log, this.#dead], [id]);
    return n;
  }

  async backlog(): Promise<number> {
    return this.#conn.command<number>(['XLEN', this.#log]);
  }

  async deadCount(): Promise<number> {
    return this.#conn.command<number>(['XLEN', this.#dead]);
  }

  async close(): Promise<void> {
    await this.#conn.close();
  }
}
