/**
 * Binds a firmware client to a real UDP socket: datagrams in and out, timers from the wall clock.
 * For tests and for trying the firmware by hand against a DTLS server.
 */
import dgram from 'node:dgram';
import { PersistentMemory } from './board/board.ts';
import { FirmwareClient, type StateName } from './session-abi.ts';

export interface UdpDriverOptions {
  host: string;
  port: number;
  /** Called with each application record received. */
  onData?: (data: Uint8Array) => void;
  /**
   * Where the firmware's persistent writes go (the host contract: before any datagram is sent).
   * Default: RAM only. The raw DTLS mode (`connect`) stores nothing until `boot`, which this
   * driver never calls; a booted client given here persists like any Device.
   */
  memory?: PersistentMemory;
}

export class UdpDriver {
  private socket = dgram.createSocket('udp4');
  private timer: NodeJS.Timeout | undefined;
  private waiters: { until: (s: StateName) => boolean; resolve: (s: StateName) => void }[] = [];
  readonly sentDatagrams: Uint8Array[] = [];
  readonly receivedDatagrams: Uint8Array[] = [];
  readonly memory: PersistentMemory;

  constructor(readonly client: FirmwareClient, private readonly opts: UdpDriverOptions) {
    this.memory = opts.memory ?? new PersistentMemory();
    this.socket.on('message', (msg) => {
      this.receivedDatagrams.push(new Uint8Array(msg));
      this.client.handleDatagram(Date.now(), msg);
      this.pump();
    });
  }

  async open(): Promise<void> {
    await new Promise<void>((resolve) => this.socket.bind(0, '127.0.0.1', resolve));
  }

  /** Starts the handshake and resolves with the state it ends in (connected, failed or closed). */
  async handshake(): Promise<StateName> {
    this.client.connect(Date.now());
    const done = this.waitFor((s) => s === 'connected' || s === 'failed' || s === 'closed');
    this.pump();
    return done;
  }

  send(data: Uint8Array): void {
    const rc = this.client.send(data);
    if (rc !== 0) throw new Error(`send refused (${rc}) in state ${this.client.state}`);
    this.pump();
  }

  /** Resolves when the connection state satisfies `until` (checked after every event). */
  waitFor(until: (s: StateName) => boolean): Promise<StateName> {
    const s = this.client.state;
    if (until(s)) return Promise.resolve(s);
    return new Promise((resolve) => this.waiters.push({ until, resolve }));
  }

  /** Persists, then sends what the firmware queued, delivers received data, re-arms the timer, wakes waiters. */
  private pump(): void {
    for (let w = this.client.pollStore(); w; w = this.client.pollStore()) this.memory.apply(w);
    for (const d of this.client.drainTransmit()) {
      this.sentDatagrams.push(d);
      this.socket.send(d, this.opts.port, this.opts.host);
    }
    for (let data = this.client.recv(); data; data = this.client.recv()) this.opts.onData?.(data);
    clearTimeout(this.timer);
    const at = this.client.nextTimeout();
    if (at !== null) {
      this.timer = setTimeout(() => {
        this.client.handleTimeout(Date.now());
        this.pump();
      }, Math.max(0, at - Date.now()));
    }
    const s = this.client.state;
    this.waiters = this.waiters.filter((w) => (w.until(s) ? (w.resolve(s), false) : true));
  }

  close(): void {
    clearTimeout(this.timer);
    this.socket.close();
  }
}
