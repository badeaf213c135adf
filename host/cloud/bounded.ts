/**
 * A Map with a size bound and O(1) eviction of its oldest entry.
 *
 * Why not `map.delete(map.keys().next().value)`: V8's ordered hash tables leave a hole for every
 * deleted entry until the next rehash, and an iterator starts at slot 0, so at the bound each
 * eviction walks over all holes left by earlier evictions (measured: 2–10 s per 100k inserts at a
 * 100k bound vs 54 ms below it — the throughput cliff of issue 10). Here the order lives in a
 * doubly linked list beside the Map: eviction is unlinking the head.
 *
 * Order is insertion order; `set` of an existing key moves it to the newest end (so "oldest" is
 * "least recently set"), `get` does not move it.
 */
interface Node<K, V> {
  key: K;
  value: V;
  prev: Node<K, V> | null;
  next: Node<K, V> | null;
}

export class BoundedMap<K, V> {
  readonly #map = new Map<K, Node<K, V>>();
  #head: Node<K, V> | null = null;
  #tail: Node<K, V> | null = null;

  /** `onEvict` is told about every entry removed to keep the bound (not about `delete`). */
  constructor(
    public maxEntries: number,
    readonly onEvict?: (key: K, value: V) => void,
  ) {
    if (!(maxEntries >= 1)) throw new Error(`BoundedMap needs maxEntries ≥ 1 (got ${maxEntries})`);
  }

  get size(): number {
    return this.#map.size;
  }

  has(key: K): boolean {
    return this.#map.has(key);
  }

  get(key: K): V | undefined {
    return this.#map.get(key)?.value;
  }

  /** Inserts or replaces (the key becomes the newest), then evicts the oldest beyond the bound. */
  set(key: K, value: V): void {
    let n = this.#map.get(key);
    if (n) {
      // Reuse the node (hot path: a session touched by every record).
      this.#unlink(n);
      n.value = value;
      n.prev = this.#tail;
    } else {
      n = { key, value, prev: this.#tail, next: null };
      this.#map.set(key, n);
    }
    if (this.#tail) this.#tail.next = n;
    else this.#head = n;
    this.#tail = n;
    while (this.#map.size > this.maxEntries) this.evictOldest();
  }

  delete(key: K): boolean {
    const n = this.#map.get(key);
    if (!n) return false;
    this.#unlink(n);
    this.#map.delete(key);
    return true;
  }

  /** The oldest entry, or undefined when empty. */
  oldest(): [K, V] | undefined {
    return this.#head ? [this.#head.key, this.#head.value] : undefined;
  }

  /** Removes the oldest entry (telling onEvict); false when empty. */
  evictOldest(): boolean {
    const h = this.#head;
    if (!h) return false;
    this.#unlink(h);
    this.#map.delete(h.key);
    this.onEvict?.(h.key, h.value);
    return true;
  }

  clear(): void {
    this.#map.clear();
    this.#head = this.#tail = null;
  }

  /** Entries oldest first. Deleting the entry being visited is allowed. */
  *entries(): IterableIterator<[K, V]> {
    let n = this.#head;
    while (n) {
      const next = n.next;
      yield [n.key, n.value];
      n = next;
    }
  }

  *values(): IterableIterator<V> {
    for (const [, v] of this.entries()) yield v;
  }

  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries();
  }

  #unlink(n: Node<K, V>): void {
    if (n.prev) n.prev.next = n.next;
    else this.#head = n.next;
    if (n.next) n.next.prev = n.prev;
    else this.#tail = n.prev;
    n.prev = n.next = null;
  }
}

/**
 * A copy of `b` in an allocation of its own. Small Buffers come out of Node's shared 8 KiB pool,
 * and one kept for long pins its whole chunk; what a table keeps for minutes is copied out first.
 */
export function compact(b: Buffer): Buffer {
  const c = Buffer.allocUnsafeSlow(b.length);
  b.copy(c);
  return c;
}
