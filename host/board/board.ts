/**
 * What a real board gives the firmware: an RTC that keeps running through deep sleep, persistent
 * memory (flash or retained RAM) that a power cut can interrupt at any byte of a write, and a
 * hardware random source. Deterministic for a given seed.
 */
import crypto from 'node:crypto';
import { REGION_BYTES, type StoreWrite } from '../session-abi.ts';

/** A write cut short by power loss: only the first `bytesWritten` bytes reached the medium. */
export class PowerCut extends Error {
  constructor(readonly writeIndex: number, readonly bytesWritten: number) {
    super(`power cut during write #${writeIndex} after ${bytesWritten} bytes`);
    this.name = 'PowerCut';
  }
}

/** Where a board keeps its persistent memory beyond this process (e.g. a FlashFile). */
export interface PersistentBacking {
  /** Must return only once the bytes are durable: the host sends datagrams right after. */
  write(offset: number, bytes: Uint8Array): void;
}

/** Erased flash reads as 0xff. */
export const ERASED_BYTE = 0xff;

/**
 * The persisted region on a board with retained RAM (issue 20; docs/engines.md, "Where the session
 * lives"): the credentials block — the first CREDENTIALS_BYTES, written once at provisioning — in
 * flash, the two session slots after it in retained RAM (STM32F4 BKPSRAM on its backup domain,
 * nRF52840 RAM sections kept in System ON idle). A wake writes only the slots, so no flash page is
 * erased per wake. A power loss that takes the retained RAM takes both slots together: the session,
 * its keys and its write reservation are gone at once and the next boot starts a handshake; the
 * credentials survive in flash.
 */
export const CREDENTIALS_BYTES = 192;

/** Whether a persisted write lands in flash on that board (the credentials block). */
export function writesFlash(w: StoreWrite): boolean {
  return w.offset < CREDENTIALS_BYTES;
}

/**
 * The retained RAM lost with the power: the slots hold `fill` (what SRAM powers up with: zeros,
 * or whatever noise) and nothing of what was there.
 */
export function loseRetainedRam(memory: PersistentMemory, fill: Uint8Array): void {
  if (fill.length !== REGION_BYTES - CREDENTIALS_BYTES) throw new RangeError(`retained RAM is ${REGION_BYTES - CREDENTIALS_BYTES} bytes`);
  memory.bytes.set(fill, CREDENTIALS_BYTES);
}

export class PersistentMemory {
  readonly bytes = new Uint8Array(REGION_BYTES).fill(ERASED_BYTE);
  /** When set, every write goes to it (durably) before it counts as applied. */
  backing: PersistentBacking | null = null;
  /** Every write applied, in order (for tests that replay or cut them). */
  readonly log: StoreWrite[] = [];
  /** Fault injection: cut power during write number `writeIndex` after `afterBytes` bytes. */
  cut: { writeIndex: number; afterBytes: number } | null = null;

  apply(w: StoreWrite): void {
    if (w.offset < 0 || w.offset + w.bytes.length > this.bytes.length) {
      throw new RangeError(`firmware wrote outside the persisted region: ${w.offset}+${w.bytes.length}`);
    }
    const index = this.log.length;
    if (this.cut && this.cut.writeIndex === index) {
      const n = Math.min(this.cut.afterBytes, w.bytes.length);
      this.backing?.write(w.offset, w.bytes.subarray(0, n));
      this.bytes.set(w.bytes.subarray(0, n), w.offset);
      this.cut = null;
      throw new PowerCut(index, n);
    }
    this.backing?.write(w.offset, w.bytes);
    this.bytes.set(w.bytes, w.offset);
    this.log.push({ offset: w.offset, bytes: Uint8Array.from(w.bytes) });
  }

  snapshot(): Uint8Array {
    return Uint8Array.from(this.bytes);
  }
}

/** A seeded random source (SHA-256 in counter mode): the board's TRNG in simulation. */
export class SeededEntropy {
  private counter = 0;
  constructor(private readonly seed: string) {}

  bytes(n: number): Buffer {
    const out: Buffer[] = [];
    let have = 0;
    while (have < n) {
      const block = crypto.createHash('sha256').update(`${this.seed}/${this.counter++}`).digest();
      out.push(block);
      have += block.length;
    }
    return Buffer.concat(out).subarray(0, n);
  }
}

export class Board {
  readonly memory = new PersistentMemory();
  readonly entropy: SeededEntropy;
  constructor(seed: string) {
    this.entropy = new SeededEntropy(seed);
  }
}
