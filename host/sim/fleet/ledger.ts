/**
 * The fleet replay's per-device accounting, shared by the in-process runner (partition.ts) and the
 * live one (host/sim/live): what a device's firmware events, its published readings, its bytes on
 * the air, the cloud's webhook deliveries and the cloud's undecryptable-records counter mean for
 * the device's outcome and for the partition's series. A runner only reports what happened, and
 * when (virtual ms); the rules for "healed", "stuck", "lost" and the alert inputs live here once.
 */
import type { SessionEvent, Profile } from '../../session-abi.ts';
import type { DeviceOutcome, PartitionResult } from './outcome.ts';
import { DAY_MS, seriesStepMs, type DeviceSpec } from './spec.ts';

const MIN_MS = 60_000;

/** One device's book: its outcome and what is still open. */
export class DeviceBook {
  readonly out: DeviceOutcome;
  /** Published and not yet delivered or dropped. */
  readonly open = new Set<number>();
  readonly dropped = new Set<number>();
  lastDiscard: string | null = null;
  /** Minutes of this device's recent undecryptable records (for the per-device alert). */
  readonly recentUndecryptable: number[] = [];
  /** The cloud's undecryptable-records counter for this device, as last read. */
  seenUndecryptable = 0;

  constructor(readonly spec: DeviceSpec) {
    this.out = {
      index: spec.index, kind: spec.kind, pattern: spec.pattern, wakeEveryMs: spec.wakeEveryMs, awakeMs: spec.awakeMs, wakes: 0,
      firstWakeAfterCrashMs: null, healedAtMs: null, healedBy: null, stuckWakes: 0, published: 0, delivered: 0,
      duplicates: 0, lost: 0, pending: 0, bytesUp: 0, bytesDown: 0, bytesStuck: 0, handshakes: 0,
    };
  }
}

/** One wake of one device: started by `Ledger.beginWake`, closed by `end()`. */
export class WakeBook {
  readonly afterCrash: boolean;
  readonly #healthyBefore: boolean;
  readonly #ledger: Ledger;
  #bytes = 0;
  #reached = false;

  constructor(readonly book: DeviceBook, ledger: Ledger, t0: number, crashAtMs: number) {
    this.#ledger = ledger;
    const out = book.out;
    this.afterCrash = t0 >= crashAtMs;
    if (this.afterCrash && out.firstWakeAfterCrashMs === null) out.firstWakeAfterCrashMs = t0;
    this.#healthyBefore = out.healedAtMs !== null || !this.afterCrash;
    out.wakes++;
  }

  /** A firmware event at `nowMs`. */
  event(e: SessionEvent, nowMs: number): void {
    const d = this.book;
    const out = d.out;
    switch (e.type) {
      case 'session-discarded': d.lastDiscard = e.reason; break;
      case 'handshake-started': out.handshakes++; break;
      case 'event-dropped':
        if (d.open.delete(e.seq)) {
          d.dropped.add(e.seq);
          out.lost++;
        }
        break;
      default: break;
    }
    // Back in a session the cloud has: the first authenticated exchange after the crash.
    if (e.type === 'connected' || e.type === 'confirmed' || e.type === 'event-acked') {
      if (this.afterCrash && out.healedAtMs === null) {
        out.healedAtMs = nowMs;
        // Stuck and back without dropping its session: the cloud has that session again (what-if: the cache came back).
        out.healedBy = d.lastDiscard ?? (out.stuckWakes > 0 ? 'cache-back' : 'none');
      }
      this.#reached = true;
    }
  }

  /** A reading published: its sequence number, or null when the outbox refused it (lost). */
  published(seq: number | null): void {
    const d = this.book;
    d.out.published++;
    if (seq === null) d.out.lost++; // the reading had nowhere to go
    else d.open.add(seq);
  }

  /** A datagram of `n` bytes sent ('up') or received ('down') at `atMs`. */
  onAir(atMs: number, n: number, direction: 'up' | 'down'): void {
    if (direction === 'up') this.book.out.bytesUp += n;
    else this.book.out.bytesDown += n;
    this.#ledger.onAir(atMs, n);
    this.#bytes += n;
  }

  /** The wake is over (the device asleep, its datagrams delivered or lost). */
  end(): void {
    const out = this.book.out;
    if (this.afterCrash && !this.#healthyBefore && !this.#reached) {
      out.stuckWakes++;
      out.bytesStuck += this.#bytes;
    }
  }
}

/** The books of one partition (or one live fleet) under one profile. */
export class Ledger {
  readonly result: PartitionResult;
  readonly #books: DeviceBook[] = [];
  readonly #stepMs: number;

  constructor(profile: Profile, endMs: number, trace: boolean) {
    this.#stepMs = seriesStepMs(endMs);
    const steps = Math.ceil(endMs / this.#stepMs);
    const minutes = Math.ceil(endMs / MIN_MS);
    this.result = {
      profile, devices: [], stepMs: this.#stepMs, deliveriesPerStep: new Array(steps).fill(0), bytesPerDay: new Array(Math.ceil(endMs / DAY_MS)).fill(0),
      undecryptablePerMinute: new Array(minutes).fill(0), datagramsInPerMinute: new Array(minutes).fill(0), deviceStuckAlertMinute: -1, undecryptablePerStep: new Array(steps).fill(0),
      healsSentPerStep: new Array(steps).fill(0), wakes: 0, cloudInternalErrors: 0, trace: trace ? [] : null, capture: [],
    };
  }

  /** The series step of `atMs`; what happens after the end (a live webhook catching up) counts in the last step. */
  #step(atMs: number, series: number[]): number {
    return Math.max(0, Math.min(series.length - 1, Math.floor(atMs / this.#stepMs)));
  }

  device(spec: DeviceSpec): DeviceBook {
    const b = new DeviceBook(spec);
    this.#books.push(b);
    return b;
  }

  beginWake(d: DeviceBook, t0: number, crashAtMs: number): WakeBook {
    this.result.wakes++;
    return new WakeBook(d, this, t0, crashAtMs);
  }

  onAir(atMs: number, n: number): void {
    const day = Math.floor(atMs / DAY_MS);
    if (day < this.result.bytesPerDay.length) this.result.bytesPerDay[day] += n;
  }

  /** A datagram reached the cloud at `atMs` (the SleepyCloudSessionsLost rule compares undecryptable records with these). */
  datagramIn(atMs: number): void {
    const minute = Math.floor(atMs / MIN_MS);
    if (minute < this.result.datagramsInPerMinute.length) this.result.datagramsInPerMinute[minute]++;
  }

  /** The cloud delivered event `seq` of `owner` to the webhook at `atMs`: first delivery, late delivery of a dropped one, or duplicate. */
  delivered(owner: DeviceBook, seq: number, atMs: number): void {
    const r = this.result;
    r.deliveriesPerStep[this.#step(atMs, r.deliveriesPerStep)]++;
    const out = owner.out;
    if (owner.open.delete(seq)) out.delivered++;
    else if (owner.dropped.delete(seq)) {
      out.lost--; // dropped by the device after it had reached the cloud: delivered after all
      out.delivered++;
    } else out.duplicates++;
  }

  /** The cloud sent `n` heals (reset tokens, malformed datagrams) at `atMs`. */
  healsSent(atMs: number, n: number): void {
    const r = this.result;
    r.healsSentPerStep[this.#step(atMs, r.healsSentPerStep)] += n;
  }

  /** The cloud's undecryptable-records counter for `d` reads `total` at `atMs` (counted since the last reading). */
  undecryptableTotal(d: DeviceBook, atMs: number, total: number): void {
    // A counter never goes down; a reading older than the last one (a slow scrape) adds nothing.
    if (total <= d.seenUndecryptable) return;
    this.undecryptable(d, atMs, total - d.seenUndecryptable);
    d.seenUndecryptable = total;
  }

  /** `n` records of `d` the cloud could not decrypt, at `atMs`: the inputs of the alert rules (docs/protocol.md §10). */
  undecryptable(d: DeviceBook, atMs: number, n: number): void {
    const minute = Math.floor(atMs / MIN_MS);
    const r = this.result;
    r.undecryptablePerStep[this.#step(atMs, r.undecryptablePerStep)] += n;
    if (minute < r.undecryptablePerMinute.length) r.undecryptablePerMinute[minute] += n;
    // SleepyCloudDeviceStuck: more than 3 in an hour.
    for (let i = 0; i < n; i++) d.recentUndecryptable.push(minute);
    while (d.recentUndecryptable.length && d.recentUndecryptable[0] <= minute - 60) d.recentUndecryptable.shift();
    if (d.recentUndecryptable.length > 3 && (r.deviceStuckAlertMinute < 0 || minute < r.deviceStuckAlertMinute)) r.deviceStuckAlertMinute = minute;
  }

  /** The partition's result: outcomes in the order the devices were added, pending events counted. */
  finish(cloudInternalErrors: number): PartitionResult {
    const r = this.result;
    for (const d of this.#books) {
      d.out.pending = d.open.size;
      r.devices.push(d.out);
    }
    r.cloudInternalErrors = cloudInternalErrors;
    return r;
  }
}
