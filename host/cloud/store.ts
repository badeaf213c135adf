/**
 * The session store: all session state the cloud keeps, behind one small interface, keyed by
 * session id (the server CID, or the client address for sessions without a CID), with a sliding
 * TTL. Two implementations: memory (this file; the default, and what the simulator uses in
 * virtual time) and Redis (redis-store.ts; shared by several cloud processes).
 *
 * Every mutation a record causes is one atomic `accept`: replay-window check and update (RFC 6347
 * §4.1.2.6, window 64) plus reservation of the outgoing sequence numbers for the reply. So two
 * processes serving one device never reuse a (key, nonce) pair and never both accept one record.
 */

/** What a session is, fixed at the end of the handshake. */
import { BoundedMap } from './bounded.ts';

export interface StoredSession {
  deviceId: string;
  epoch: number;
  /** Server-issued CID (hex, '' when none): devices put it in their records. */
  cid: string;
  /** The device's own CID (hex, '' when none): records to the device carry it. */
  peerCid: string;
  /** Key block (hex): client key, server key, client IV, server IV. */
  keys: string;
  createdMs: number;
  /** A reset token was handed to the device for this session. */
  token: boolean;
}

export type AcceptStatus = 'ok' | 'replay' | 'too_old' | 'missing';

export interface AcceptResult {
  status: AcceptStatus;
  /** First of the reserved outgoing sequence numbers (valid when status is 'ok'). */
  outSeq: number;
}

export interface SessionStore {
  readonly kind: 'memory' | 'redis';
  get(id: string, nowMs: number): Promise<StoredSession | undefined>;
  /** Creates or replaces a session: window top = `top` (already received), next outgoing = `nextOutSeq`. */
  put(id: string, s: StoredSession, init: { top: number; nextOutSeq: number }, ttlMs: number, nowMs: number): Promise<void>;
  /** Atomically: replay check + window update for `seq`, reserve `outCount` outgoing seqs, refresh TTL. */
  accept(id: string, seq: number, outCount: number, ttlMs: number, nowMs: number): Promise<AcceptResult>;
  /** Reserves outgoing sequence numbers without an incoming record; undefined when the session is gone. */
  reserve(id: string, count: number, nowMs: number): Promise<number | undefined>;
  delete(id: string): Promise<void>;
  /** Drops every session (the cache-loss fault). Event claims live in the event log (events.ts), not here. */
  wipe(): Promise<void>;
  close(): Promise<void>;
}

export const WINDOW_BITS = 64;
export const EMPTY_WINDOW = '0'.repeat(WINDOW_BITS);
const ZEROS = EMPTY_WINDOW;

/**
 * Anti-replay window over a string of 64 '0'/'1' characters: char i stands for sequence number
 * top − i. The Redis store runs the same algorithm in Lua (redis-store.ts); a test keeps them equal.
 */
export function windowAccept(top: number, win: string, seq: number): { status: 'ok' | 'replay' | 'too_old'; top: number; win: string } {
  if (seq > top) {
    const shift = seq - top;
    const next = shift >= WINDOW_BITS ? '1' + ZEROS.slice(1) : '1' + ZEROS.slice(0, shift - 1) + win.slice(0, WINDOW_BITS - shift);
    return { status: 'ok', top: seq, win: next };
  }
  const d = top - seq;
  if (d >= WINDOW_BITS) return { status: 'too_old', top, win };
  if (win[d] === '1') return { status: 'replay', top, win };
  return { status: 'ok', top, win: win.slice(0, d) + '1' + win.slice(d + 1) };
}

interface MemoryEntry {
  s: StoredSession;
  top: number;
  win: string;
  wseq: number;
  expiresMs: number;
}

/**
 * In-process store. Time is the caller's `nowMs`, so it runs in virtual time too. Bounded: beyond
 * `maxSessions` the least recently used session is forgotten (its device heals as after a cache loss).
 */
export class MemoryStore implements SessionStore {
  readonly kind = 'memory' as const;
  readonly #sessions: BoundedMap<string, MemoryEntry>;
  #lastSweepMs = 0;
  static readonly SWEEP_EVERY_MS = 10_000;

  constructor(maxSessions = 1_000_000) {
    this.#sessions = new BoundedMap(maxSessions);
  }

  get sessionCount(): number {
    return this.#sessions.size;
  }

  #live(id: string, nowMs: number): MemoryEntry | undefined {
    this.#sweep(nowMs);
    const e = this.#sessions.get(id);
    if (e && e.expiresMs <= nowMs) {
      this.#sessions.delete(id);
      return undefined;
    }
    return e;
  }

  #sweep(nowMs: number): void {
    if (nowMs - this.#lastSweepMs < MemoryStore.SWEEP_EVERY_MS) return;
    this.#lastSweepMs = nowMs;
    // Least recently used first; with one TTL for all, that is expiry order too.
    for (const [k, e] of this.#sessions) {
      if (e.expiresMs > nowMs) break;
      this.#sessions.delete(k);
    }
  }

  async get(id: string, nowMs: number): Promise<StoredSession | undefined> {
    return this.#live(id, nowMs)?.s;
  }

  async put(id: string, s: StoredSession, init: { top: number; nextOutSeq: number }, ttlMs: number, nowMs: number): Promise<void> {
    const win = init.top >= 0 ? '1' + ZEROS.slice(1) : EMPTY_WINDOW;
    this.#sessions.set(id, { s, top: init.top, win, wseq: init.nextOutSeq, expiresMs: nowMs + ttlMs });
  }

  async accept(id: string, seq: number, outCount: number, ttlMs: number, nowMs: number): Promise<AcceptResult> {
    const e = this.#live(id, nowMs);
    if (!e) return { status: 'missing', outSeq: 0 };
    const r = windowAccept(e.top, e.win, seq);
    if (r.status !== 'ok') return { status: r.status, outSeq: 0 };
    e.top = r.top;
    e.win = r.win;
    const outSeq = e.wseq;
    e.wseq += outCount;
    e.expiresMs = nowMs + ttlMs;
    this.#sessions.set(id, e); // most recently used now
    return { status: 'ok', outSeq };
  }

  async reserve(id: string, count: number, nowMs: number): Promise<number | undefined> {
    const e = this.#live(id, nowMs);
    if (!e) return undefined;
    const first = e.wseq;
    e.wseq += count;
    return first;
  }

  async delete(id: string): Promise<void> {
    this.#sessions.delete(id);
  }

  async wipe(): Promise<void> {
    this.#sessions.clear();
  }

  async close(): Promise<void> {}
}
