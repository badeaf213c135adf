/**
 * Runs one partition of the fleet under one profile, in virtual time, with ONE firmware instance
 * at a time: a device's whole state between wakes is its 1,280-byte persisted image (deep sleep
 * loses RAM anyway), so a wake is "instantiate, boot from the image, talk, sleep, keep the image".
 *
 * Wakes are taken in order of their start time and each runs to its end (the device asleep, its
 * last datagrams delivered, the cloud's timers for it drained) before the next one starts. The
 * cloud core is the real one (host/cloud), with the memory store. Devices never share cloud
 * state (per-device sessions, claims, per-address quotas; the cloud's randomness is drawn per
 * device), so a device's outcome does not depend on which devices share its partition: the
 * result is the same for any number of workers (test/host/fleet.test.ts checks it).
 */
import { Buffer } from 'node:buffer';
import { SeededEntropy } from '../../board/board.ts';
import { CloudCore, type CoreOutput } from '../../cloud/core.ts';
import { DeviceRegistry } from '../../cloud/devices.ts';
import { MALFORMED_LENGTH_FIELD, MALFORMED_PRESENT_BYTES } from '../../cloud/heal.ts';
import { MemoryStore } from '../../cloud/store.ts';
import { RECORD_HEADER_BYTES } from '../../cloud/wire.ts';
import type { Engine } from '../../engines/engine.ts';
import { FirmwareClient, OutboxFullError, REGION_BYTES, type Profile, type SessionEvent } from '../../session-abi.ts';
import type { CapturedDatagram, DeviceOutcome, PartitionResult, TracedWake } from './outcome.ts';
import { DAY_MS, HOUR_MS, deviceSpec, endMs, rolloutShare, type DeviceSpec, type FleetOptions } from './spec.ts';

/** Where the cloud listens (in captures). */
export const CLOUD_ADDRESS = '192.0.2.1:5684';
/** A wake never lasts longer than this (a watchdog: the firmware's own waits are far shorter). */
const MAX_WAKE_MS = 10 * 60_000;
/** After a wake, the cloud's timers for it run until this long after its end (retransmissions to a sleeping device). */
const CLOUD_DRAIN_MS = 5 * 60_000;
const MIN_MS = 60_000;
const PROGRESS_WAKES = 2000;

export interface PartitionTask {
  options: Omit<FleetOptions, 'workers'>;
  profile: Profile;
  /** Device indices of this partition. */
  indices: number[];
  /** Record the timeline of this device index (`--trace`). */
  traceIndex: number | null;
  /** Capture the datagrams of devices with an index below this (`--pcap-devices`). */
  captureBelow: number;
}

interface DeviceState {
  spec: DeviceSpec;
  image: Uint8Array;
  board: SeededEntropy;
  cloudRandom: SeededEntropy;
  out: DeviceOutcome;
  /** Published and not yet delivered or dropped. */
  open: Set<number>;
  dropped: Set<number>;
  lastDiscard: string | null;
  /** Minutes of this device's recent undecryptable records (for the per-device alert). */
  recentUndecryptable: number[];
  /** The cloud's undecryptable-records counter for this device, as last read. */
  seenUndecryptable: number;
  nextWakeMs: number;
}

interface Pending {
  atMs: number;
  order: number;
  run: () => void | Promise<void>;
}

export class PartitionRunner {
  readonly #task: PartitionTask;
  readonly #engine: Engine;
  readonly #wasm: Uint8Array;
  readonly #store = new MemoryStore(10_000_000);
  readonly #cloud: CloudCore;
  readonly #byId = new Map<string, DeviceState>();
  readonly #endMs: number;
  #current: DeviceState | null = null;
  #crashed = false;
  #healsSeen = 0;
  readonly #result: PartitionResult;

  /** Called every PROGRESS_WAKES wakes with the wakes done since the last call (benchmarks). */
  onProgress: ((wakes: number) => void) | null = null;

  constructor(task: PartitionTask, engine: Engine, wasm: Uint8Array, cloudSecret: Buffer) {
    this.#task = task;
    this.#engine = engine;
    this.#wasm = wasm;
    this.#endMs = endMs(task.options);
    const specs = task.indices.map((i) => deviceSpec(task.options, i));
    this.#cloud = new CloudCore({
      devices: new DeviceRegistry(specs.map((s) => ({ id: s.id, identity: s.identity, psk: s.psk }))),
      store: this.#store,
      cloudSecret,
      // Per device, so the cloud's choices for a device do not depend on its partition.
      random: (n) => (this.#current ? this.#current.cloudRandom.bytes(n) : Buffer.alloc(n)),
      // Bounds above any partition's size, and no global heal budget: what a device meets must not
      // depend on how many other devices share its partition.
      config: { healGlobalPerSec: Number.MAX_SAFE_INTEGER, maxPendingHandshakes: 1_000_000, maxKeyedHandshakes: 1_000_000, maxFinalFlights: 1_000_000, cidDirectoryEntries: 10_000_000, healRateEntries: 10_000_000, keyCacheEntries: 1024 },
    });
    const hours = Math.ceil(this.#endMs / HOUR_MS);
    const minutes = Math.ceil(this.#endMs / MIN_MS);
    this.#result = {
      profile: task.profile, devices: [], deliveriesPerHour: new Array(hours).fill(0), bytesPerDay: new Array(Math.ceil(this.#endMs / DAY_MS)).fill(0),
      undecryptablePerMinute: new Array(minutes).fill(0), datagramsInPerMinute: new Array(minutes).fill(0), deviceStuckAlertMinute: -1, undecryptablePerHour: new Array(hours).fill(0),
      healsSentPerHour: new Array(hours).fill(0), wakes: 0, cloudInternalErrors: 0, trace: task.traceIndex !== null && task.indices.includes(task.traceIndex) ? [] : null, capture: [],
    };
    for (const spec of specs) {
      const out: DeviceOutcome = {
        index: spec.index, kind: spec.kind, wakeEveryMs: spec.wakeEveryMs, awakeMs: spec.awakeMs, wakes: 0,
        firstWakeAfterCrashMs: null, healedAtMs: null, healedBy: null, stuckWakes: 0, published: 0, delivered: 0,
        duplicates: 0, lost: 0, pending: 0, bytesUp: 0, bytesDown: 0, bytesStuck: 0, handshakes: 0,
      };
      this.#byId.set(spec.id, {
        spec, image: new Uint8Array(REGION_BYTES).fill(0xff), out, open: new Set(), dropped: new Set(), lastDiscard: null,
        board: new SeededEntropy(`fleet/${task.options.seed}/board/${spec.index}`),
        cloudRandom: new SeededEntropy(`fleet/${task.options.seed}/cloud/${task.profile}/${spec.index}`),
        recentUndecryptable: [], seenUndecryptable: 0, nextWakeMs: spec.firstWakeMs,
      });
    }
  }

  async #firmware(): Promise<FirmwareClient> {
    return new FirmwareClient(await this.#engine.load(this.#wasm));
  }

  async run(): Promise<PartitionResult> {
    const devices = [...this.#byId.values()];
    for (const d of devices) {
      const fw = await this.#firmware();
      fw.provisionDevice(this.#task.profile, d.spec.id, Buffer.from(d.spec.identity), d.spec.psk);
      for (let w = fw.pollStore(); w; w = fw.pollStore()) d.image.set(w.bytes, w.offset);
      fw.m.dispose();
    }
    // Wakes in start order: a binary heap on (nextWakeMs, index).
    const heap = new MinHeap<DeviceState>((a, b) => a.nextWakeMs - b.nextWakeMs || a.spec.index - b.spec.index);
    for (const d of devices) heap.push(d);
    while (heap.size > 0 && heap.peek()!.nextWakeMs < this.#endMs) {
      const d = heap.pop()!;
      if (!this.#crashed && d.nextWakeMs >= this.#task.options.timeline.crashAtMs) {
        await this.#store.wipe(); // the Redis crash: every session key is gone
        this.#crashed = true;
      }
      const sleptAt = await this.#wake(d, d.nextWakeMs);
      if (this.onProgress && this.#result.wakes % PROGRESS_WAKES === 0) this.onProgress(PROGRESS_WAKES);
      d.nextWakeMs = sleptAt + d.spec.wakeEveryMs;
      heap.push(d);
    }
    if (this.onProgress) this.onProgress(this.#result.wakes % PROGRESS_WAKES);
    return this.#finish();
  }

  #finish(): PartitionResult {
    const r = this.#result;
    for (const d of this.#byId.values()) {
      d.out.pending = d.open.size;
      r.devices.push(d.out);
    }
    r.cloudInternalErrors = this.#cloud.stats.get('internal_errors');
    return r;
  }

  /** One wake of one device, to its end. Returns when it fell asleep. */
  async #wake(d: DeviceState, t0: number): Promise<number> {
    const { options, traceIndex, captureBelow } = this.#task;
    const latencyMs = options.latencyMs;
    const timeline = options.timeline;
    const out = d.out;
    const afterCrash = t0 >= timeline.crashAtMs;
    if (afterCrash && out.firstWakeAfterCrashMs === null) out.firstWakeAfterCrashMs = t0;
    const healthyBefore = out.healedAtMs !== null || !afterCrash;
    out.wakes++;
    this.#result.wakes++;
    this.#current = d;
    const trace: TracedWake | null = traceIndex === d.spec.index
      ? { wake: out.wakes, atMs: t0, events: [], delivered: [], datagramsUp: 0, bytesUp: 0, datagramsDown: 0, bytesDown: 0, healSent: false }
      : null;
    if (trace) this.#result.trace!.push(trace);
    const capture = d.spec.index < captureBelow;
    let wakeBytes = 0;
    let reached = false;

    const queue: Pending[] = [];
    let order = 0;
    const schedule = (atMs: number, run: Pending['run']): void => {
      const p = { atMs, order: order++, run };
      let i = queue.length;
      while (i > 0 && (queue[i - 1].atMs > atMs)) i--;
      queue.splice(i, 0, p);
    };
    const onAir = (atMs: number, n: number): void => {
      const day = Math.floor(atMs / DAY_MS);
      if (day < this.#result.bytesPerDay.length) this.#result.bytesPerDay[day] += n;
      wakeBytes += n;
    };

    let fw: FirmwareClient | null = await this.#firmware();
    let nowMs = t0;
    const onEvent = (e: SessionEvent): void => {
      trace?.events.push(e);
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
      if ((e.type === 'connected' || e.type === 'confirmed' || e.type === 'event-acked') && afterCrash && out.healedAtMs === null) {
        out.healedAtMs = nowMs;
        out.healedBy = d.lastDiscard ?? 'none';
      }
      if (e.type === 'connected' || e.type === 'confirmed' || e.type === 'event-acked') reached = true;
    };
    const flush = (): void => {
      if (!fw) return;
      // Persistent writes first, then datagrams (the ABI's rule; here the image is the flash).
      for (let w = fw.pollStore(); w; w = fw.pollStore()) d.image.set(w.bytes, w.offset);
      for (let e = fw.pollEvent(); e; e = fw.pollEvent()) onEvent(e);
      for (const dg of fw.drainTransmit()) {
        const data = Buffer.from(dg);
        out.bytesUp += data.length;
        onAir(nowMs, data.length);
        if (trace) {
          trace.datagramsUp++;
          trace.bytesUp += data.length;
        }
        if (capture) this.#result.capture.push({ atMs: nowMs, src: d.spec.address, dst: CLOUD_ADDRESS, data });
        schedule(nowMs + latencyMs, () => this.#toCloud(d, data, nowMs, (to, bytes, delayMs) => {
          if (to !== d.spec.address) return; // a leftover for another (sleeping) device
          const sentAt = nowMs + delayMs;
          if (capture) this.#result.capture.push({ atMs: sentAt, src: CLOUD_ADDRESS, dst: d.spec.address, data: bytes });
          schedule(sentAt + latencyMs, () => toDevice(bytes));
        }, trace));
      }
    };
    const toDevice = (bytes: Buffer): void => {
      if (!fw) return; // asleep: the radio is off
      out.bytesDown += bytes.length;
      onAir(nowMs, bytes.length);
      if (trace) {
        trace.datagramsDown++;
        trace.bytesDown += bytes.length;
      }
      fw.handleDatagram(nowMs, bytes);
      flush();
    };

    fw.seed(d.board.bytes(48));
    fw.boot(t0, d.image);
    flush();
    try {
      const seq = fw.publish(t0, 'reading', Buffer.from(`wake ${out.wakes}`));
      out.published++;
      d.open.add(seq);
    } catch (e) {
      if (!(e instanceof OutboxFullError)) throw e;
      out.published++;
      out.lost++; // the reading had nowhere to go
    }
    flush();
    let sleptAt = -1;
    const trySleep = (): void => {
      if (!fw) return;
      const waitMs = nowMs - t0 >= MAX_WAKE_MS ? 0 : fw.prepareSleep(nowMs);
      flush();
      if (waitMs > 0) {
        schedule(nowMs + waitMs, trySleep);
        return;
      }
      fw.m.dispose();
      fw = null;
      sleptAt = nowMs;
    };
    schedule(t0 + d.spec.awakeMs, trySleep);

    // The wake's own loop: datagrams, the device's timers, the cloud's timers.
    for (;;) {
      const devT = fw ? fw.nextTimeout() : null;
      const cloudT = this.#cloud.nextTimeoutMs();
      const qT = queue.length ? queue[0].atMs : Infinity;
      const horizon = sleptAt >= 0 ? sleptAt + CLOUD_DRAIN_MS : Infinity;
      const next = Math.min(qT, devT ?? Infinity, cloudT !== undefined && cloudT <= horizon ? Math.max(cloudT, nowMs) : Infinity);
      if (next === Infinity) break;
      nowMs = Math.max(nowMs, next);
      if (qT <= next) {
        await queue.shift()!.run();
      } else if (devT !== null && devT <= next && fw) {
        fw.handleTimeout(nowMs);
        flush();
      } else {
        await this.#cloudOutput(d, await this.#cloud.handleTimeout(nowMs), nowMs, (to, bytes) => {
          if (to !== d.spec.address || !fw) return;
          if (capture) this.#result.capture.push({ atMs: nowMs, src: CLOUD_ADDRESS, dst: d.spec.address, data: bytes });
          schedule(nowMs + latencyMs, () => toDevice(bytes));
        }, trace);
      }
    }
    this.#current = null;
    if (afterCrash && !healthyBefore && !reached) {
      out.stuckWakes++;
      out.bytesStuck += wakeBytes;
    }
    return sleptAt >= 0 ? sleptAt : nowMs;
  }

  /** A datagram reaches the cloud: the heal flags as the rollout has them for this device now. */
  async #toCloud(d: DeviceState, data: Buffer, sentAtMs: number, send: (to: string, bytes: Buffer, delayMs: number) => void, trace: TracedWake | null): Promise<void> {
    const nowMs = sentAtMs + this.#task.options.latencyMs;
    const t = this.#task.options.timeline;
    this.#cloud.heal.malformed = d.spec.rolloutBucket < rolloutShare(t, nowMs);
    const minute = Math.floor(nowMs / MIN_MS);
    if (minute < this.#result.datagramsInPerMinute.length) this.#result.datagramsInPerMinute[minute]++;
    const out = await this.#cloud.handleDatagram(data, d.spec.address, nowMs);
    const healDelayMs = nowMs < t.inlineHealAtMs ? t.healDelayMs : 0;
    await this.#cloudOutput(d, out, nowMs, (to, bytes) => send(to, bytes, isMalformedHeal(bytes) ? healDelayMs : 0), trace);
  }

  async #cloudOutput(d: DeviceState, out: CoreOutput, nowMs: number, send: (to: string, bytes: Buffer) => void, trace: TracedWake | null): Promise<void> {
    const r = this.#result;
    const hour = Math.floor(nowMs / HOUR_MS);
    const stats = this.#cloud.stats;
    // The per-device counter behind the alert rules (docs/protocol.md §10), read after each call.
    const undecryptable = stats.get('undecryptable_records', d.spec.id);
    if (undecryptable > d.seenUndecryptable) {
      this.#noteUndecryptable(d, nowMs, undecryptable - d.seenUndecryptable);
      d.seenUndecryptable = undecryptable;
    }
    const heals = stats.get('heals_sent', 'malformed') + stats.get('heals_sent', 'reset-token');
    if (heals > this.#healsSeen) {
      if (hour < r.healsSentPerHour.length) r.healsSentPerHour[hour] += heals - this.#healsSeen;
      this.#healsSeen = heals;
      if (trace) trace.healSent = true;
    }
    for (const e of out.events) {
      if (e.kind !== 'event') continue;
      const owner = this.#byId.get(e.deviceId);
      if (!owner) continue;
      if (hour < r.deliveriesPerHour.length) r.deliveriesPerHour[hour]++;
      if (owner.open.delete(e.seq)) owner.out.delivered++;
      else if (owner.dropped.delete(e.seq)) {
        owner.out.lost--; // dropped by the device after it had reached the cloud: delivered after all
        owner.out.delivered++;
      } else owner.out.duplicates++;
      if (trace && owner === d) trace.delivered.push(e.seq);
    }
    for (const t of out.transmits) send(t.to, Buffer.from(t.data));
  }

  #noteUndecryptable(d: DeviceState, nowMs: number, n: number): void {
    const minute = Math.floor(nowMs / MIN_MS);
    const hour = Math.floor(nowMs / HOUR_MS);
    const r = this.#result;
    if (hour < r.undecryptablePerHour.length) r.undecryptablePerHour[hour] += n;
    if (minute < r.undecryptablePerMinute.length) r.undecryptablePerMinute[minute] += n;
    // SleepyCloudDeviceStuck: more than 3 in an hour.
    for (let i = 0; i < n; i++) d.recentUndecryptable.push(minute);
    while (d.recentUndecryptable.length && d.recentUndecryptable[0] <= minute - 60) d.recentUndecryptable.shift();
    if (d.recentUndecryptable.length > 3 && (r.deviceStuckAlertMinute < 0 || minute < r.deviceStuckAlertMinute)) r.deviceStuckAlertMinute = minute;
  }
}

/** The 2019 heal's shape (heal.ts): a full record header whose length field exceeds the bytes that follow. */
function isMalformedHeal(b: Buffer): boolean {
  return b.length === RECORD_HEADER_BYTES + MALFORMED_PRESENT_BYTES && b[0] === 23 && b.readUInt16BE(11) === MALFORMED_LENGTH_FIELD;
}

/** A binary min-heap. */
export class MinHeap<T> {
  readonly #a: T[] = [];
  constructor(private readonly less: (a: T, b: T) => number) {}
  get size(): number {
    return this.#a.length;
  }
  peek(): T | undefined {
    return this.#a[0];
  }
  push(x: T): void {
    const a = this.#a;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.less(a[i], a[p]) >= 0) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }
  pop(): T | undefined {
    const a = this.#a;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.less(a[l], a[m]) < 0) m = l;
        if (r < a.length && this.less(a[r], a[m]) < 0) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
}
