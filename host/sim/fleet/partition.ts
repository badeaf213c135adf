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
import { publicPointOf, type ServerKey } from '../../cloud/p256.ts';
import { MALFORMED_LENGTH_FIELD, MALFORMED_PRESENT_BYTES } from '../../cloud/heal.ts';
import { CrashableStore } from './cache.ts';
import { RECORD_HEADER_BYTES } from '../../cloud/wire.ts';
import type { Engine } from '../../engines/engine.ts';
import { FirmwareClient, OutboxFullError, REGION_BYTES, type Profile, type SessionEvent } from '../../session-abi.ts';
import { Ledger, type DeviceBook } from './ledger.ts';
import type { PartitionResult, TracedWake } from './outcome.ts';
import { cloudOf, deviceSpec, endMs, fleetServerKey, rolloutShare, type DeviceSpec, type FleetOptions } from './spec.ts';

/** Where the cloud listens (in captures). */
export const CLOUD_ADDRESS = '192.0.2.1:5684';
/** A wake never lasts longer than this (a watchdog: the firmware's own waits are far shorter). */
const MAX_WAKE_MS = 10 * 60_000;
/** After a wake, the cloud's timers for it run until this long after its end (retransmissions to a sleeping device). */
const CLOUD_DRAIN_MS = 5 * 60_000;
const PROGRESS_WAKES = 500;

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
  book: DeviceBook;
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
  readonly #store = new CrashableStore(10_000_000);
  readonly #cloud: CloudCore;
  readonly #serverKey: ServerKey;
  readonly #byId = new Map<string, DeviceState>();
  readonly #endMs: number;
  #current: DeviceState | null = null;
  #crashed = false;
  #healsSeen = { malformed: 0, 'reset-token': 0 };
  readonly #era: ReturnType<typeof cloudOf>;
  readonly #ledger: Ledger;

  /** Called every PROGRESS_WAKES wakes with the wakes done since the last call (benchmarks). */
  onProgress: ((wakes: number) => void) | null = null;

  constructor(task: PartitionTask, engine: Engine, wasm: Uint8Array, cloudSecret: Buffer) {
    this.#task = task;
    this.#engine = engine;
    this.#wasm = wasm;
    this.#endMs = endMs(task.options);
    const specs = task.indices.map((i) => deviceSpec(task.options, i));
    this.#era = cloudOf(task.profile);
    const ecdhe = (task.options.suite ?? 'ecdhe') === 'ecdhe';
    this.#serverKey = fleetServerKey(task.options.seed);
    this.#cloud = new CloudCore({
      devices: new DeviceRegistry(specs.map((s) => (ecdhe
        ? { id: s.id, publicKey: publicPointOf(s.devicePrivateKey) }
        : { id: s.id, identity: s.identity, psk: s.psk }))),
      serverKey: this.#serverKey,
      store: this.#store,
      cloudSecret,
      // Per device, so the cloud's choices for a device do not depend on its partition.
      random: (n) => {
        if (!this.#current) throw new Error('fleet: the cloud asked for randomness outside a wake');
        return this.#current.cloudRandom.bytes(n);
      },
      // Bounds above any partition's size, and no global heal budget: what a device meets must not
      // depend on how many other devices share its partition.
      // The 2019 cloud: no reset tokens at all; the malformed heal per device as the rollout goes (#toCloud).
      heal: this.#era === '2019' ? { resetToken: false, malformed: false } : { resetToken: true, malformed: false },
      config: { issueResetTokens: this.#era === 'ours', healGlobalPerSec: Number.MAX_SAFE_INTEGER, maxPendingHandshakes: 1_000_000, maxKeyedHandshakes: 1_000_000, maxFinalFlights: 1_000_000, cidDirectoryEntries: 10_000_000, healRateEntries: 10_000_000, keyCacheEntries: 1024 },
    });
    this.#ledger = new Ledger(task.profile, this.#endMs, task.traceIndex !== null && task.indices.includes(task.traceIndex));
    for (const spec of specs) {
      this.#byId.set(spec.id, {
        spec, image: new Uint8Array(REGION_BYTES).fill(0xff), book: this.#ledger.device(spec),
        board: new SeededEntropy(`fleet/${task.options.seed}/board/${spec.index}`),
        cloudRandom: new SeededEntropy(`fleet/${task.options.seed}/cloud/${task.profile}/${spec.index}`),
        nextWakeMs: spec.firstWakeMs,
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
      fw.provisionCredentials(this.#task.profile, d.spec.id, (this.#task.options.suite ?? 'ecdhe') === 'ecdhe'
        ? { suite: 'ecdhe', serverPublicKey: this.#serverKey.publicPoint, devicePrivateKey: d.spec.devicePrivateKey }
        : { suite: 'psk', identity: d.spec.identity, psk: d.spec.psk });
      for (let w = fw.pollStore(); w; w = fw.pollStore()) d.image.set(w.bytes, w.offset);
      fw.m.dispose();
    }
    // Wakes in start order: a binary heap on (nextWakeMs, index).
    const heap = new MinHeap<DeviceState>((a, b) => a.nextWakeMs - b.nextWakeMs || a.spec.index - b.spec.index);
    for (const d of devices) heap.push(d);
    while (heap.size > 0 && heap.peek()!.nextWakeMs < this.#endMs) {
      const d = heap.pop()!;
      if (!this.#crashed && d.nextWakeMs >= this.#task.options.timeline.crashAtMs) {
        // The Redis crash: every session key is gone (what-if: back with its data some hours later).
        this.#store.crash(this.#task.options.timeline.crashAtMs + (this.#task.options.timeline.cacheBackAfterMs ?? Infinity));
        this.#crashed = true;
      }
      const sleptAt = await this.#wake(d, d.nextWakeMs);
      if (this.onProgress && this.#ledger.result.wakes % PROGRESS_WAKES === 0) this.onProgress(PROGRESS_WAKES);
      d.nextWakeMs = sleptAt + d.spec.wakeEveryMs;
      heap.push(d);
    }
    if (this.onProgress) this.onProgress(this.#ledger.result.wakes % PROGRESS_WAKES);
    return this.#ledger.finish(this.#cloud.stats.get('internal_errors'));
  }

  /** One wake of one device, to its end. Returns when it fell asleep. */
  async #wake(d: DeviceState, t0: number): Promise<number> {
    const { options, traceIndex, captureBelow } = this.#task;
    const latencyMs = options.latencyMs;
    const result = this.#ledger.result;
    const wake = this.#ledger.beginWake(d.book, t0, options.timeline.crashAtMs);
    this.#current = d;
    const trace: TracedWake | null = traceIndex === d.spec.index
      ? { wake: d.book.out.wakes, atMs: t0, events: [], delivered: [], datagramsUp: 0, bytesUp: 0, datagramsDown: 0, bytesDown: 0, healsSent: [] }
      : null;
    if (trace) result.trace!.push(trace);
    const capture = d.spec.index < captureBelow;

    const queue: Pending[] = [];
    let order = 0;
    const schedule = (atMs: number, run: Pending['run']): void => {
      const p = { atMs, order: order++, run };
      let i = queue.length;
      while (i > 0 && (queue[i - 1].atMs > atMs)) i--;
      queue.splice(i, 0, p);
    };

    let fw: FirmwareClient | null = await this.#firmware();
    let nowMs = t0;
    const onEvent = (e: SessionEvent): void => {
      trace?.events.push(e);
      wake.event(e, nowMs);
    };
    const flush = (): void => {
      if (!fw) return;
      // Persistent writes first, then datagrams (the ABI's rule; here the image is the flash).
      for (let w = fw.pollStore(); w; w = fw.pollStore()) d.image.set(w.bytes, w.offset);
      for (let e = fw.pollEvent(); e; e = fw.pollEvent()) onEvent(e);
      for (const dg of fw.drainTransmit()) {
        const data = Buffer.from(dg);
        wake.onAir(nowMs, data.length, 'up');
        if (trace) {
          trace.datagramsUp++;
          trace.bytesUp += data.length;
        }
        if (capture) result.capture.push({ atMs: nowMs, src: d.spec.address, dst: CLOUD_ADDRESS, data });
        // Runs when the datagram arrives: `nowMs` is then the arrival time (the loop's clock).
        schedule(nowMs + latencyMs, () => this.#toCloud(d, data, nowMs, (to, bytes, delayMs) => {
          if (to !== d.spec.address) return; // a leftover for another (sleeping) device
          const sentAt = nowMs + delayMs;
          if (capture) result.capture.push({ atMs: sentAt, src: CLOUD_ADDRESS, dst: d.spec.address, data: bytes });
          schedule(sentAt + latencyMs, () => toDevice(bytes));
        }, trace));
      }
    };
    const toDevice = (bytes: Buffer): void => {
      if (!fw) return; // asleep: the radio is off
      wake.onAir(nowMs, bytes.length, 'down');
      if (trace) {
        trace.datagramsDown++;
        trace.bytesDown += bytes.length;
      }
      fw.handleDatagram(nowMs, bytes);
      flush();
    };

    fw.seed(d.board.bytes(48));
    if (options.coapAckTimeoutMs !== undefined) fw.config('coapAckTimeoutMs', options.coapAckTimeoutMs);
    fw.boot(t0, d.image);
    flush();
    try {
      wake.published(fw.publish(t0, 'reading', Buffer.from(`wake ${d.book.out.wakes}`)));
    } catch (e) {
      if (!(e instanceof OutboxFullError)) throw e;
      wake.published(null);
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
          if (capture) result.capture.push({ atMs: nowMs, src: CLOUD_ADDRESS, dst: d.spec.address, data: bytes });
          schedule(nowMs + latencyMs, () => toDevice(bytes));
        }, trace);
      }
    }
    this.#current = null;
    wake.end();
    return sleptAt >= 0 ? sleptAt : nowMs;
  }

  /** A datagram reaches the cloud: the heal flags as the rollout has them for this device now. */
  async #toCloud(d: DeviceState, data: Buffer, nowMs: number, send: (to: string, bytes: Buffer, delayMs: number) => void, trace: TracedWake | null): Promise<void> {
    const t = this.#task.options.timeline;
    if (this.#era === '2019') this.#cloud.heal.malformed = d.spec.rolloutBucket < rolloutShare(t, nowMs);
    this.#ledger.datagramIn(nowMs);
    const out = await this.#cloud.handleDatagram(data, d.spec.address, nowMs);
    const healDelayMs = nowMs < t.inlineHealAtMs ? t.healDelayMs : 0;
    await this.#cloudOutput(d, out, nowMs, (to, bytes) => send(to, bytes, isMalformedHeal(bytes) ? healDelayMs : 0), trace);
  }

  async #cloudOutput(d: DeviceState, out: CoreOutput, nowMs: number, send: (to: string, bytes: Buffer) => void, trace: TracedWake | null): Promise<void> {
    const stats = this.#cloud.stats;
    // The per-device counter behind the alert rules (docs/protocol.md §10), read after each call.
    this.#ledger.undecryptableTotal(d.book, nowMs, stats.get('undecryptable_records', d.spec.id));
    for (const kind of ['malformed', 'reset-token'] as const) {
      const heals = stats.get('heals_sent', kind);
      if (heals > this.#healsSeen[kind]) {
        this.#ledger.healsSent(nowMs, heals - this.#healsSeen[kind]);
        this.#healsSeen[kind] = heals;
        if (trace && !trace.healsSent.includes(kind)) trace.healsSent.push(kind);
      }
    }
    for (const e of out.events) {
      if (e.kind !== 'event') continue;
      const owner = this.#byId.get(e.deviceId);
      if (!owner) continue;
      this.#ledger.delivered(owner.book, e.seq, nowMs);
      if (trace && owner === d) trace.delivered.push(e.seq);
    }
    for (const t of out.transmits) send(t.to, Buffer.from(t.data));
  }
}

/** The 2019 heal's shape (heal.ts): a full record header whose length field exceeds the bytes that follow. */
export function isMalformedHeal(b: Buffer): boolean {
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

