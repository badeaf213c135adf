/**
 * Discrete-event virtual time with the cloud's sans-IO core and devices on a virtual network.
 * Deterministic: one clock, one ordered queue, seeded randomness everywhere.
 */
import { CloudCore, type CloudEvent, type CoreConfig, type HealFlags } from '../cloud/core.ts';
import { DeviceRegistry } from '../cloud/devices.ts';
import { MemoryStore, type SessionStore } from '../cloud/store.ts';
import { Device, type DeviceOptions } from '../device.ts';
import { SeededEntropy } from '../board/board.ts';
import { ServerKey, scalarFromSeed } from '../cloud/p256.ts';
import type { Suite } from '../session-abi.ts';

interface Scheduled {
  atMs: number;
  order: number;
  run: () => void | Promise<void>;
}

export interface WorldOptions {
  seed: string;
  /** One-way latency of the virtual network. */
  latencyMs?: number;
  heal?: HealFlags;
  store?: SessionStore;
  cloudConfig?: Partial<CoreConfig>;
  /**
   * The key exchange of devices added without their own credentials: 'ecdhe' (default, what every
   * profile uses: each device generates its key pair, the cloud's key is pinned) or 'psk'.
   */
  suite?: Suite;
}

export interface DeviceSpec extends Omit<DeviceOptions, 'send' | 'engine' | 'psk'> {
  psk?: Uint8Array;
  engine: DeviceOptions['engine'];
}

export class World {
  nowMs = 0;
  private queue: Scheduled[] = [];
  private order = 0;
  readonly latencyMs: number;
  readonly entropy: SeededEntropy;
  readonly store: SessionStore;
  cloud!: CloudCore;
  readonly devices = new Map<string, Device>();
  private readonly addressOf = new Map<Device, string>();
  private readonly deviceAt = new Map<string, Device>();
  readonly cloudEvents: { atMs: number; event: CloudEvent }[] = [];
  /** Every datagram a device sent (for nonce-reuse and wire checks). */
  readonly uplink: { atMs: number; from: string; data: Uint8Array }[] = [];
  private cloudTimerAt: number | null = null;
  /** Fault injection: while true, datagrams from devices are lost before the cloud. */
  uplinkDown = false;
  private specs: (DeviceSpec & { psk: Uint8Array })[] = [];
  private readonly publicKeys = new Map<string, Buffer>();
  /** The cloud's ECDHE key pair, from the world's seed. */
  readonly serverKey: ServerKey;
  readonly suite: Suite;

  constructor(readonly opts: WorldOptions) {
    this.latencyMs = opts.latencyMs ?? 50;
    this.entropy = new SeededEntropy(`world/${opts.seed}`);
    this.store = opts.store ?? new MemoryStore();
    this.suite = opts.suite ?? 'ecdhe';
    this.serverKey = serverKeyFrom(this.entropy);
  }

  /** Registers devices with the cloud and provisions their boards. Call once, before `start`. */
  async addDevices(specs: DeviceSpec[]): Promise<Device[]> {
    const full = specs.map((s) => ({
      ...s,
      psk: s.psk ?? this.entropy.bytes(16),
      credentials: s.credentials ?? (this.suite === 'ecdhe' ? { suite: 'ecdhe' as const, serverPublicKey: this.serverKey.publicPoint } : undefined),
    }));
    this.specs.push(...full);
    const out: Device[] = [];
    for (const s of full) {
      const address = `10.0.0.${this.devices.size + 1}:5683`;
      const device = new Device({ ...s, send: (d) => this.fromDevice(device, d) });
      const publicKey = await device.provision();
      if (publicKey) this.publicKeys.set(s.id, Buffer.from(publicKey));
      this.devices.set(s.id, device);
      this.addressOf.set(device, address);
      this.deviceAt.set(address, device);
      out.push(device);
    }
    const registry = new DeviceRegistry(this.specs.map((s) => (this.publicKeys.has(s.id)
      ? { id: s.id, publicKey: this.publicKeys.get(s.id)! }
      : { id: s.id, identity: s.identity, psk: Buffer.from(s.psk) })));
    this.cloud = new CloudCore({
      serverKey: this.serverKey,
      devices: registry,
      store: this.store,
      cloudSecret: this.entropy.bytes(32),
      heal: this.opts.heal,
      config: this.opts.cloudConfig,
      random: (n) => this.entropy.bytes(n),
    });
    return out;
  }

  schedule(atMs: number, run: () => void | Promise<void>): void {
    this.queue.push({ atMs: Math.max(atMs, this.nowMs), order: this.order++, run });
    this.queue.sort((a, b) => a.atMs - b.atMs || a.order - b.order);
  }

  private fromDevice(device: Device, data: Uint8Array): void {
    const from = this.addressOf.get(device)!;
    const copy = Uint8Array.from(data);
    this.uplink.push({ atMs: this.nowMs, from, data: copy });
    if (this.uplinkDown) return;
    this.schedule(this.nowMs + this.latencyMs, async () => this.deliverToCloud(Buffer.from(copy), from));
  }

  private async deliverToCloud(data: Buffer, from: string): Promise<void> {
    this.handleCloudOutput(await this.cloud.handleDatagram(data, from, this.nowMs));
  }

  private handleCloudOutput(out: Awaited<ReturnType<CloudCore['handleDatagram']>>): void {
    for (const e of out.events) this.cloudEvents.push({ atMs: this.nowMs, event: e });
    for (const t of out.transmits) {
      const device = this.deviceAt.get(t.to);
      if (device) this.schedule(this.nowMs + this.latencyMs, () => this.deliverToDevice(device, t.data));
    }
    this.armCloudTimer();
  }

  private deliverToDevice(device: Device, data: Uint8Array): void {
    device.receive(this.nowMs, data);
    this.armDeviceTimer(device);
  }

  private armCloudTimer(): void {
    const t = this.cloud.nextTimeoutMs();
    if (t === undefined || (this.cloudTimerAt !== null && this.cloudTimerAt <= t)) return;
    this.cloudTimerAt = t;
    this.schedule(t, async () => {
      if (this.cloudTimerAt !== t) return;
      this.cloudTimerAt = null;
      this.handleCloudOutput(await this.cloud.handleTimeout(this.nowMs));
    });
  }

  /** Schedules the device's next firmware timer. */
  armDeviceTimer(device: Device): void {
    const t = device.nextTimeout();
    if (t !== null) this.schedule(t, () => {
      device.tick(this.nowMs);
      this.armDeviceTimer(device);
    });
  }

  /** Runs every scheduled action up to `untilMs` (inclusive), advancing the clock. */
  async runUntil(untilMs: number): Promise<void> {
    while (this.queue.length > 0 && this.queue[0].atMs <= untilMs) {
      const next = this.queue.shift()!;
      this.nowMs = next.atMs;
      await next.run();
    }
    this.nowMs = Math.max(this.nowMs, untilMs);
  }

  /** Events the cloud delivered per (device, event seq): the exactly-once check reads this. */
  deliveredEvents(deviceId: string): number[] {
    return this.cloudEvents
      .filter((e) => e.event.kind === 'event' && e.event.deviceId === deviceId)
      .map((e) => (e.event as Extract<CloudEvent, { kind: 'event' }>).seq);
  }
}


function serverKeyFrom(entropy: SeededEntropy): ServerKey {
  return ServerKey.fromScalar(scalarFromSeed(entropy.bytes(32)));
}
