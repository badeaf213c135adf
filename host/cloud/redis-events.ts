/**
 * The durable event log on Redis (docs/protocol.md §8). Layout under a prefix (default "ssev:",
 * apart from the session cache's "ss:" so a cache wipe never touches it):
 *   <prefix>log        stream of events waiting for delivery; consumer group "webhook"
 *   <prefix>dead       stream of dead letters (refused permanently by the receiver)
 *   <prefix>c:<key>    claim of one idempotency key (device:incarnation:seq), with a TTL
 * `append` is one Lua script: claim (SET NX PX) and XADD happen together or not at all, and with
 * `appendonly yes` + `appendfsync always` Redis answers only after the write is on disk — so the
 * cloud ACKs a device only for an event that survives a kill -9 of Redis.
 * Delivery: XREADGROUP hands new entries to one consumer (one per cloud process); XACK+XDEL when
 * delivered; XAUTOCLAIM lets another process take over the entries of a process that died.
 */
import { connectRedis, type RedisConnection, type RedisOptions } from './redis-client.ts';
import type { AppendResult, DeadLetter, DeviceEvent, EventLog, LoggedEvent } from './events.ts';
import { idempotencyKey } from './events.ts';

export const EVENT_GROUP = 'webhook';

/** 1 appended, 0 duplicate, -1 full (stream at its bound: nothing written). */
const APPEND_LUA = `
if tonumber(ARGV[3]) > 0 and redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[3]) then return -1 end
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end
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

type StreamEntry = [string, string[]] | null;

function fields(f: string[]): Record<string, string> {
  const o: Record<string, string> = {};
  for (let i = 0; i + 1 < f.length; i += 2) o[f[i]] = f[i + 1];
  return o;
}

function entries(list: StreamEntry[]): LoggedEvent[] {
  const out: LoggedEvent[] = [];
  for (const e of list) {
    if (!e) continue; // deleted while pending
    const f = fields(e[1]);
    if (f.e !== undefined) out.push({ id: e[0], ev: decode(f.e) });
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
    const r = await this.#conn.script<number>(APPEND_LUA, [this.#claimPrefix + idempotencyKey(ev), this.#log], [String(Math.max(1, Math.round(claimTtlMs))), encode(ev), String(this.#maxBacklog)]);
    return r === 1 ? 'appended' : r === 0 ? 'duplicate' : 'full';
  }

  async take(consumer: string, max: number): Promise<LoggedEvent[]> {
    return this.#withGroup(async () => {
      const r = await this.#conn.command<[string, StreamEntry[]][] | null>(['XREADGROUP', 'GROUP', EVENT_GROUP, consumer, 'COUNT', String(max), 'STREAMS', this.#log, '>']);
      return r && r[0] ? entries(r[0][1]) : [];
    });
  }

  async reclaim(consumer: string, minIdleMs: number, max: number): Promise<LoggedEvent[]> {
    return this.#withGroup(async () => {
      const r = await this.#conn.command<[string, StreamEntry[], string[]?]>(['XAUTOCLAIM', this.#log, EVENT_GROUP, consumer, String(Math.max(0, Math.round(minIdleMs))), this.#reclaimCursor, 'COUNT', String(max)]);
      this.#reclaimCursor = r[0];
      return entries(r[1]);
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
    const r = await this.#conn.command<[string, string[]][]>(['XRANGE', this.#dead, '-', '+', 'COUNT', String(max)]);
    return r.map(([id, f]) => {
      const o = fields(f);
      return { id, ev: decode(o.e), reason: o.reason ?? '', failedMs: Number(o.at ?? 0) };
    });
  }

  async retryDead(ids: string[] | 'all'): Promise<number> {
    let list = ids;
    if (list === 'all') list = (await this.#conn.command<[string, string[]][]>(['XRANGE', this.#dead, '-', '+'])).map(([id]) => id);
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
