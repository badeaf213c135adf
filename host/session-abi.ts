/**
 * Typed access to the firmware's session exports (docs/abi.md). Names for states, errors and
 * counters mirror assembly/dtls/client.ts and assembly/dtls/counters.ts.
 */
import type { ModuleInstance } from './engines/engine.ts';

export const STATES = ['idle', 'wait-server-hello', 'wait-server-hello-done', 'wait-server-finished', 'connected', 'failed', 'closed'] as const;
export type StateName = (typeof STATES)[number];

export const ERRORS = [
  'none', 'handshake-timeout', 'alert-received', 'bad-server-finished', 'not-provisioned', 'not-seeded',
  'no-extended-master-secret', 'sequence-exhausted', 'closed-by-application',
] as const;
export type ErrorName = (typeof ERRORS)[number];

/** Counter names in ABI order (indexes are stable; new ones are appended). */
export const COUNTERS = [
  'rxDatagrams', 'rxRecordsOk',
  'dropShort', 'dropBadHeader', 'dropBadVersion', 'dropWrongEpoch', 'dropReplayed',
  'dropLengthBeyondDatagram', 'dropAuthFailed', 'dropUnexpectedMessage', 'dropMalformedMessage',
  'dropFragmentRefused', 'dropOutOfOrder', 'dropRxQueueFull',
  'txDatagrams', 'txRecords', 'handshakesStarted', 'handshakesCompleted', 'handshakesFailed',
  'flightRetransmissions', 'peerRetransmissions', 'alertsReceived', 'txQueueFull', 'rxAppRecords',
  'txAppRecords', 'fragmentsReassembled', 'dropUnknownCid',
] as const;
export type CounterName = (typeof COUNTERS)[number];
export type Counters = Record<CounterName, number>;
export const DROP_COUNTERS = COUNTERS.filter((c) => c.startsWith('drop')) as CounterName[];

export const CONFIG = {
  handshakeInitialTimeoutMs: 1,
  handshakeMaxTimeoutMs: 2,
  handshakeMaxTransmissions: 3,
  offerConnectionId: 4,
  requireExtendedMasterSecret: 5,
} as const;
export type ConfigName = keyof typeof CONFIG;

export class FirmwareClient {
  readonly io: number;
  readonly ioCapacity: number;

  constructor(readonly m: ModuleInstance) {
    this.io = Number(m.call('io_ptr'));
    this.ioCapacity = Number(m.call('io_capacity'));
  }

  private write(...parts: Uint8Array[]): void {
    let off = this.io;
    for (const p of parts) {
      this.m.writeMemory(off, p);
      off += p.length;
    }
  }

  provision(identity: Uint8Array, psk: Uint8Array): void {
    this.write(identity, psk);
    const rc = Number(this.m.call('provision', identity.length, psk.length));
    if (rc !== 0) throw new RangeError(`provision refused (${rc}): identity 1..128 bytes, PSK 1..64 bytes`);
  }

  seed(entropy: Uint8Array): void {
    this.write(entropy);
    const rc = Number(this.m.call('seed_entropy', entropy.length));
    if (rc !== 0) throw new RangeError(`seed_entropy refused (${rc}): at least 32 bytes of entropy`);
  }

  /** The CID the device offers (0..32 bytes); the server puts it in records to the device. */
  setConnectionId(cid: Uint8Array): void {
    this.write(cid);
    const rc = Number(this.m.call('set_connection_id', cid.length));
    if (rc !== 0) throw new RangeError(`set_connection_id refused (${rc}): 0..32 bytes`);
  }

  config(name: ConfigName, value: number | boolean): void {
    const rc = Number(this.m.call('config_set', CONFIG[name], BigInt(Number(value))));
    if (rc !== 0) throw new RangeError(`config_set ${name}=${value} refused (${rc === -1 ? 'unknown key' : 'out of range'})`);
  }

  connect(nowMs: number): void {
    const rc = Number(this.m.call('connect', BigInt(nowMs)));
    if (rc !== 0) throw new Error(`connect failed: ${this.lastError}`);
  }

  handleDatagram(nowMs: number, datagram: Uint8Array): StateName {
    if (datagram.length > this.ioCapacity) return this.state; // larger than any datagram we accept
    this.write(datagram);
    return STATES[Number(this.m.call('handle_datagram', BigInt(nowMs), datagram.length))];
  }

  handleTimeout(nowMs: number): StateName {
    return STATES[Number(this.m.call('handle_timeout', BigInt(nowMs)))];
  }

  /** Absolute ms when handleTimeout wants to run, or null. */
  nextTimeout(): number | null {
    const t = Number(this.m.call('next_timeout'));
    return t < 0 ? null : t;
  }

  pollTransmit(): Uint8Array | null {
    const n = Number(this.m.call('poll_transmit'));
    return n > 0 ? this.m.readMemory(this.io, n) : null;
  }

  /** All datagrams waiting to be sent. */
  drainTransmit(): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let d = this.pollTransmit(); d; d = this.pollTransmit()) out.push(d);
    return out;
  }

  send(data: Uint8Array): number {
    this.write(data);
    return Number(this.m.call('send', data.length));
  }

  recv(): Uint8Array | null {
    const n = Number(this.m.call('recv'));
    return n >= 0 ? this.m.readMemory(this.io, n) : null;
  }

  close(nowMs: number): StateName {
    return STATES[Number(this.m.call('close', BigInt(nowMs)))];
  }

  get state(): StateName {
    return STATES[Number(this.m.call('state'))];
  }

  get lastError(): ErrorName {
    return ERRORS[Number(this.m.call('last_error'))] ?? 'none';
  }

  get lastAlert(): number {
    return Number(this.m.call('last_alert'));
  }

  counters(): Counters {
    const n = Number(this.m.call('counters_read'));
    const bytes = this.m.readMemory(this.io, n * 4);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const out = {} as Counters;
    COUNTERS.forEach((name, i) => (out[name] = i < n ? view.getUint32(i * 4, true) : 0));
    return out;
  }
}
