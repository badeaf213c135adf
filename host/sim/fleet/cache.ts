/**
 * The session cache of the in-process replay: the cloud core's memory store, crashed at the
 * crash (every session gone) and — what-if `cacheBackAfterMs` — brought back later with the data
 * it had at the crash (restored from a backup, say): from then on a session missing from the new
 * cache is looked up in the old one. What was written since the crash wins over the old data.
 */
import { MemoryStore, type AcceptResult, type SessionStore, type StoredSession } from '../../cloud/store.ts';

export class CrashableStore implements SessionStore {
  readonly kind = 'memory' as const;
  #current: MemoryStore;
  /** The sessions the crash took, and from when they are back (Infinity: never). */
  #lost: MemoryStore | null = null;
  #backAtMs = Infinity;

  constructor(private readonly maxSessions: number) {
    this.#current = new MemoryStore(maxSessions);
  }

  /** The crash: the cache restarts empty; with `backAtMs` finite, its old data returns at that time. */
  crash(backAtMs = Infinity): void {
    this.#lost = this.#current;
    this.#current = new MemoryStore(this.maxSessions);
    this.#backAtMs = backAtMs;
  }

  async #owner(id: string, nowMs: number): Promise<MemoryStore> {
    if (this.#lost && nowMs >= this.#backAtMs && (await this.#current.get(id, nowMs)) === undefined && (await this.#lost.get(id, nowMs)) !== undefined) return this.#lost;
    return this.#current;
  }

  async get(id: string, nowMs: number): Promise<StoredSession | undefined> {
    return (await this.#owner(id, nowMs)).get(id, nowMs);
  }

  async put(id: string, s: StoredSession, init: { top: number; nextOutSeq: number }, ttlMs: number, nowMs: number): Promise<void> {
    await this.#lost?.delete(id);
    await this.#current.put(id, s, init, ttlMs, nowMs);
  }

  async accept(id: string, seq: number, outCount: number, ttlMs: number, nowMs: number): Promise<AcceptResult> {
    return (await this.#owner(id, nowMs)).accept(id, seq, outCount, ttlMs, nowMs);
  }

  async reserve(id: string, count: number, nowMs: number): Promise<number | undefined> {
    return (await this.#owner(id, nowMs)).reserve(id, count, nowMs);
  }

  async delete(id: string): Promise<void> {
    await this.#current.delete(id);
    await this.#lost?.delete(id);
  }

  async wipe(): Promise<void> {
    this.crash();
  }

  async close(): Promise<void> {}
}
