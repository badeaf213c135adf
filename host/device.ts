/**
 * One device: the firmware module on a board. Every wake loads a fresh module instance (deep
 * sleep loses RAM), boots it from persistent memory and drives it; the host applies every
 * persistent write before it sends any datagram, as the ABI requires (durably when the board's
 * memory has a backing such as a FlashFile: `apply` returns only after the fsync).
 */
import type { Engine, ModuleInstance } from './engines/engine.ts';
import { readFirmware } from './firmware.ts';
import { Board } from './board/board.ts';
import {
  FirmwareClient, type ConfigName, type Credentials, type Profile, type SessionEvent, type SessionState, type StoreWrite,
} from './session-abi.ts';

export interface DeviceOptions {
  id: string;
  /** PSK credentials (ignored when `credentials` is given). */
  identity?: string;
  psk?: Uint8Array;
  /** What the device is provisioned with; default the PSK above. */
  credentials?: Credentials;
  profile: Profile;
  engine: Engine;
  board?: Board;
  /** Sends one datagram to the cloud. */
  send: (datagram: Uint8Array) => void;
  /** Firmware settings applied at every wake (before boot). */
  config?: Partial<Record<ConfigName, number>>;
  /** Called with every session event. */
  onEvent?: (e: SessionEvent, nowMs: number) => void;
}

export class Device {
  readonly board: Board;
  private fw: FirmwareClient | null = null;
  private wasm: Uint8Array;
  readonly events: { atMs: number; event: SessionEvent }[] = [];

  constructor(readonly opts: DeviceOptions) {
    this.board = opts.board ?? new Board(`device/${opts.id}`);
    this.wasm = readFirmware();
  }

  get awake(): boolean {
    return this.fw !== null;
  }

  get firmware(): FirmwareClient {
    if (!this.fw) throw new Error(`device ${this.opts.id} is asleep`);
    return this.fw;
  }

  private async load(): Promise<FirmwareClient> {
    const m: ModuleInstance = await this.opts.engine.load(this.wasm);
    return new FirmwareClient(m);
  }

  /** The device's ECDHE public key once provisioned with ECDHE credentials (register it with the cloud). */
  publicKey: Uint8Array | null = null;

  /** The credentials this device is provisioned with. */
  get credentials(): Credentials {
    if (this.opts.credentials) return this.opts.credentials;
    if (this.opts.identity === undefined || this.opts.psk === undefined) throw new Error(`device ${this.opts.id}: no credentials (identity and psk, or credentials)`);
    return { suite: 'psk', identity: this.opts.identity, psk: this.opts.psk };
  }

  /** Factory step: writes the credentials to persistent memory. Returns the ECDHE public key, or null. */
  async provision(): Promise<Uint8Array | null> {
    for (const w of await this.provisioningWrites()) {
      this.board.memory.apply(w);
      w.bytes.fill(0); // it holds the PSK or the private key
    }
    return this.publicKey;
  }

  /** What provisioning writes (the credentials block, PSK or private key included: wipe it after use). */
  async provisioningWrites(): Promise<StoreWrite[]> {
    const fw = await this.load();
    const creds = this.credentials;
    // A key pair generated on the device draws from its DRBG.
    if (creds.suite === 'ecdhe' && !creds.devicePrivateKey) fw.seed(this.board.entropy.bytes(48));
    this.publicKey = fw.provisionCredentials(this.opts.profile, this.opts.id, creds);
    const writes: StoreWrite[] = [];
    for (let w = fw.pollStore(); w; w = fw.pollStore()) writes.push(w);
    fw.m.dispose();
    return writes;
  }

  /** Power-up or wake from deep sleep. */
  async wake(nowMs: number): Promise<SessionState> {
    if (this.fw) throw new Error(`device ${this.opts.id} is already awake`);
    const fw = await this.load();
    this.fw = fw;
    fw.seed(this.board.entropy.bytes(48));
    for (const [k, v] of Object.entries(this.opts.config ?? {})) fw.config(k as ConfigName, v as number);
    const s = fw.boot(nowMs, this.board.memory.snapshot());
    this.flush(nowMs);
    return s;
  }

  receive(nowMs: number, datagram: Uint8Array): void {
    if (!this.fw) return; // asleep: the radio is off
    this.fw.handleDatagram(nowMs, datagram);
    this.flush(nowMs);
  }

  /** Runs the firmware's timers if due. */
  tick(nowMs: number): void {
    if (!this.fw) return;
    const t = this.fw.nextTimeout();
    if (t !== null && nowMs >= t) {
      this.fw.handleTimeout(nowMs);
      this.flush(nowMs);
    }
  }

  nextTimeout(): number | null {
    return this.fw ? this.fw.nextTimeout() : null;
  }

  publish(nowMs: number, name: string, data: Uint8Array): number {
    const seq = this.firmware.publish(nowMs, name, data);
    this.flush(nowMs);
    return seq;
  }

  /** Asks to sleep: ms to stay awake, or 0 after which `sleep` must be called. */
  prepareSleep(nowMs: number): number {
    const w = this.firmware.prepareSleep(nowMs);
    this.flush(nowMs);
    return w;
  }

  /** Deep sleep: RAM (the module instance) is gone. */
  sleep(): void {
    this.fw?.m.dispose();
    this.fw = null;
  }

  /** Persistent writes first, then datagrams: a reserved sequence number is on flash before use. */
  private flush(nowMs: number): void {
    const fw = this.fw!;
    for (let w = fw.pollStore(); w; w = fw.pollStore()) this.board.memory.apply(w);
    for (let e = fw.pollEvent(); e; e = fw.pollEvent()) {
      this.events.push({ atMs: nowMs, event: e });
      this.opts.onEvent?.(e, nowMs);
    }
    for (const d of fw.drainTransmit()) this.opts.send(d);
  }
}
