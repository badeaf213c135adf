/**
 * Deterministic randomness for conformance scenarios: SHA-256 in counter mode over
 * (label, seed). Everything random in a scenario — the firmware's entropy, the peer's server random
 * and cookie, keys, payloads, loss patterns, hostile datagrams — is drawn from one of these, so a
 * scenario replays byte for byte for the same seed on every engine.
 */
import crypto from 'node:crypto';

export class SeededRandom {
  private counter = 0;
  private pool = Buffer.alloc(0);

  constructor(readonly label: string) {}

  /** A generator for the same scenario and seed, independent of this one's draws. */
  static for(scenario: string, seed: number): SeededRandom {
    return new SeededRandom(`${scenario}#${seed}`);
  }

  /** An independent stream (e.g. the peer's), so adding draws to one does not shift the other. */
  fork(name: string): SeededRandom {
    return new SeededRandom(`${this.label}/${name}`);
  }

  bytes(n: number): Buffer {
    while (this.pool.length < n) {
      const block = crypto.createHash('sha256').update(`${this.label}:${this.counter++}`).digest();
      this.pool = Buffer.concat([this.pool, block]);
    }
    const out = Buffer.from(this.pool.subarray(0, n));
    this.pool = this.pool.subarray(n);
    return out;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 2 ** 32) throw new RangeError(`int(${n})`);
    return Math.floor((this.bytes(4).readUInt32BE(0) / 2 ** 32) * n);
  }

  /** An integer in [min, max]. */
  range(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  chance(p: number): boolean {
    return this.int(1_000_000) < p * 1_000_000;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }

  /** A `(n) => Buffer` for APIs that take a randomBytes-like function (TestPeer's `random`). */
  source(): (n: number) => Buffer {
    return (n) => this.bytes(n);
  }
}
