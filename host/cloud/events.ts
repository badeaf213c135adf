/**
 * The event log: where a device event goes before the cloud ACKs it, and where webhook delivery
 * reads it from. One operation decides both "is it new" and "is it stored": `append` claims the
 * idempotency key and appends the event in one atomic step, so an event is either ACKed and in
 * the log, or not ACKed (the device sends it again).
 *
 * Two implementations:
 *  - MemoryEventLog (this file): one process, bounded; loses everything when the process ends
 *    and forgets claims beyond its bound (docs/protocol.md §8.3 says what it cannot promise).
 *  - RedisEventLog (redis-events.ts): a Redis Stream plus claims in one Lua script, on a Redis
 *    with append-only persistence; shared by every cloud process; consumer-group delivery.
 */
import crypto from 'node:crypto';
import { BoundedMap } from './bounded.ts';

/** An accepted device event and its idempotency key (deviceId, incarnation, seq). */
export interface DeviceEvent {
  deviceId: string;
  /** Hex of the device's 4-byte event-stream incarnation, or null when it sent none. */
  incarnation: string | null;
  seq: number;
  name: string;
  data: Buffer;
  receivedMs: number;
}

/**
 * The idempotency key a webhook receiver de-duplicates by: `<device>:<incarnation>:<seq>`, or
 * `<device>:<seq>` for devices that send no incarnation. Device ids may contain ':', so in the key
 * the id is written with '%' as %25 and ':' as %3A: the key then holds no ':' but its separators,
 * and two different events never share a key (device "col", incarnation 0badc0de, seq 7 and
 * device "col:0badc0de", seq 7 made the same key before). Ids without ':' (or '%', which ids may
 * not contain) keep exactly the key they had, so existing claims and webhook ids stay valid.
 */
export function idempotencyKey(ev: Pick<DeviceEvent, 'deviceId' | 'incarnation' | 'seq'>): string {
  const device = deviceKeyPart(ev.deviceId);
  // join, not a template: it makes one flat string, where a template makes nested cons strings
  // (~3× the bytes), and the memory log keeps one key per claim for 7 days.
  return (ev.incarnation === null ? [device, ev.seq] : [device, ev.incarnation, ev.seq]).join(':');
}

/** The device id as written in keys: '%' as %25, ':' as %3A (so it holds no ':'). */
export function deviceKeyPart(deviceId: string): string {
  return deviceId.replaceAll('%', '%25').replaceAll(':', '%3A');
}

/** Bytes of SHA-256 kept as the content hash of a claim (hex in the claim). */
export const CONTENT_HASH_BYTES = 12;

/**
 * What a claim remembers of the event's content: SHA-256(name length (u16 BE) || name || data),
 * the first 12 bytes in hex. The same key with another hash is a reused event id (issue 17).
 */
export function contentHash(ev: Pick<DeviceEvent, 'name' | 'data'>): string {
  const name = Buffer.from(ev.name, 'utf8');
  const len = Buffer.alloc(2);
  len.writeUInt16BE(name.length);
  return crypto.createHash('sha256').update(len).update(name).update(ev.data).digest().subarray(0, CONTENT_HASH_BYTES).toString('hex');
}

/**
 * 'duplicate': the key is claimed for this very content (a retransmission); 'conflict': the key is
 * claimed for other content (the device reused an event id: neither claimed nor appended);
 * 'full': neither claimed nor appended (do not ACK).
 */
export type AppendResult = 'appended' | 'duplicate' | 'conflict' | 'full';

/** An event in the log, as handed to the deliverer. */
export interface LoggedEvent {
  /** Log entry id (a stream id in Redis). */
  id: string;
  ev: DeviceEvent;
}

export interface DeadLetter {
  id: string;
  ev: DeviceEvent;
  reason: string;
  failedMs: number;
}

/** What a log removed to stay bounded, since this process opened it (exported as metrics). */
export interface TrimCounts {
  /** Oldest dead letters dropped beyond the dead-letter bound. */
  deadLetters: number;
  /** Claims forgotten before their TTL because their device holds more than its claim bound. */
  claims: number;
  /** Consumers removed from the group after being idle, with nothing pending, beyond the idle bound. */
  consumers: number;
}

export interface EventLog {
  readonly kind: 'memory' | 'redis';
  /** What this log removed to stay bounded (absent: it removes nothing). */
  readonly trimmed?: TrimCounts;
  /** Removes consumers idle for `idleMs` with nothing pending; returns how many (absent: no consumer group). */
  pruneConsumers?(idleMs: number): Promise<number>;
  /** Claims the event's key (with its content hash) and appends it, atomically; see AppendResult. */
  append(ev: DeviceEvent, claimTtlMs: number, nowMs: number): Promise<AppendResult>;
  /** Up to `max` entries nobody has taken yet, now owned by `consumer`. */
  take(consumer: string, max: number): Promise<LoggedEvent[]>;
  /** Up to `max` entries taken by any consumer and untouched for `minIdleMs` (a crashed process's). */
  reclaim(consumer: string, minIdleMs: number, max: number): Promise<LoggedEvent[]>;
  /** Marks entries as still being worked on (so reclaim leaves them alone). */
  touch(consumer: string, ids: string[]): Promise<void>;
  /** Delivered: remove from the log. */
  ack(ids: string[]): Promise<void>;
  /** Refused permanently: move to the dead-letter list, atomically with removing it from the log. */
  deadLetter(entry: LoggedEvent, reason: string, nowMs: number): Promise<void>;
  listDead(max: number): Promise<DeadLetter[]>;
  /** Moves dead letters back into the log (all when `ids` is 'all'); returns how many. */
  retryDead(ids: string[] | 'all'): Promise<number>;
  /** Events in the log not yet delivered (taken or not). */
  backlog(): Promise<number>;
  deadCount(): Promise<number>;
  close(): Promise<void>;
}

export interface MemoryEventLogOptions {
  /** Claims remembered at most (oldest forgotten: a retransmission older than that is delivered again, same key). */
  maxClaims?: number;
  /** Undelivered events held at most; beyond it `append` answers 'full' and the device is not ACKed. */
  maxBacklog?: number;
  maxDeadLetters?: number;
  /** false: keep claims only (no deliverer reads this log, e.g. no webhook configured). */
  keepEntries?: boolean;
}

interface MemEntry extends LoggedEvent {
  owner: string | null;
  touchedMs: number;
}

/** One-process event log: bounded; nothing survives the process. */
export class MemoryEventLog implements EventLog {
  readonly kind = 'memory' as const;
  /** Key → claim expiry and content hash. */
  readonly #claims: BoundedMap<string, { expMs: number; hash: string }>;
  readonly #entries = new BoundedMap<string, MemEntry>(Number.MAX_SAFE_INTEGER);
  readonly #dead: BoundedMap<string, DeadLetter>;
  readonly maxBacklog: number;
  readonly keepEntries: boolean;
  #nextId = 1;
  /** Dead letters pushed out by the bound (counted, so it is never silent). */
  readonly trimmed: TrimCounts = { deadLetters: 0, claims: 0, consumers: 0 };

  constructor(o: MemoryEventLogOptions = {}) {
    this.#claims = new BoundedMap(o.maxClaims ?? 1_000_000);
    this.maxBacklog = o.maxBacklog ?? 100_000;
    this.keepEntries = o.keepEntries ?? true;
    this.#dead = new BoundedMap(o.maxDeadLetters ?? 10_000, () => this.trimmed.deadLetters++);
  }

  get claimCount(): number {
    return this.#claims.size;
  }

  async append(ev: DeviceEvent, claimTtlMs: number, nowMs: number): Promise<AppendResult> {
    const key = idempotencyKey(ev);
    const hash = contentHash(ev);
    const claim = this.#claims.get(key);
    if (claim !== undefined && claim.expMs > nowMs) return claim.hash === hash ? 'duplicate' : 'conflict';
    if (this.#entries.size >= this.maxBacklog) return 'full';
    // A claim past its TTL decides nothing (above); dropping those at the old end keeps about one
    // TTL of claims (Redis expires them itself) instead of every claim up to maxClaims, for good.
    for (let o = this.#claims.oldest(); o !== undefined && o[1].expMs <= nowMs; o = this.#claims.oldest()) this.#claims.delete(o[0]);
    this.#claims.set(key, { expMs: nowMs + claimTtlMs, hash });
    if (!this.keepEntries) return 'appended';
    const id = String(this.#nextId++);
    this.#entries.set(id, { id, ev, owner: null, touchedMs: 0 });
    return 'appended';
  }

  async take(consumer: string, max: number): Promise<LoggedEvent[]> {
    const out: LoggedEvent[] = [];
    for (const e of this.#entries.values()) {
      if (out.length >= max) break;
      if (e.owner !== null) continue;
      e.owner = consumer;
      e.touchedMs = Date.now();
      out.push({ id: e.id, ev: e.ev });
    }
    return out;
  }

  async reclaim(consumer: string, minIdleMs: number, max: number): Promise<LoggedEvent[]> {
    const out: LoggedEvent[] = [];
    const now = Date.now();
    for (const e of this.#entries.values()) {
      if (out.length >= max) break;
      if (e.owner === null || now - e.touchedMs < minIdleMs) continue;
      e.owner = consumer;
      e.touchedMs = now;
      out.push({ id: e.id, ev: e.ev });
    }
    return out;
  }

  async touch(_consumer: string, ids: string[]): Promise<void> {
    const now = Date.now();
    for (const id of ids) {
      const e = this.#entries.get(id);
      if (e) e.touchedMs = now;
    }
  }

  async ack(ids: string[]): Promise<void> {
    for (const id of ids) this.#entries.delete(id);
  }

  async deadLetter(entry: LoggedEvent, reason: string, nowMs: number): Promise<void> {
    this.#entries.delete(entry.id);
    this.#dead.set(entry.id, { id: entry.id, ev: entry.ev, reason, failedMs: nowMs });
  }

  async listDead(max: number): Promise<DeadLetter[]> {
    const out: DeadLetter[] = [];
    for (const d of this.#dead.values()) {
      if (out.length >= max) break;
      out.push(d);
    }
    return out;
  }

  async retryDead(ids: string[] | 'all'): Promise<number> {
    const pick = ids === 'all' ? [...this.#dead.values()] : ids.map((id) => this.#dead.get(id)).filter((d): d is DeadLetter => d !== undefined);
    for (const d of pick) {
      this.#dead.delete(d.id);
      const id = String(this.#nextId++);
      this.#entries.set(id, { id, ev: d.ev, owner: null, touchedMs: 0 });
    }
    return pick.length;
  }

  async backlog(): Promise<number> {
    return this.#entries.size;
  }

  async deadCount(): Promise<number> {
    return this.#dead.size;
  }

  /** Forgets every claim and undelivered event (what a process restart does to this log). */
  wipe(): void {
    this.#claims.clear();
    this.#entries.clear();
  }

  async close(): Promise<void> {}
}
