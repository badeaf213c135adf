/**
 * Typed access to the firmware's session exports (docs/abi.md). Names for states, errors and
 * counters mirror assembly/dtls/client.ts and assembly/dtls/counters.ts.
 */
import { IoBuffer } from './io-buffer.ts';

export const STATES = ['idle', 'wait-server-hello', 'wait-server-hello-done', 'wait-server-finished', 'connected', 'failed', 'closed'] as const;
export type StateName = (typeof STATES)[number];

export const ERRORS = [
  'none', 'handshake-timeout', 'alert-received', 'bad-server-finished', 'not-provisioned', 'not-seeded',
  'no-extended-master-secret', 'sequence-exhausted', 'closed-by-application', 'server-key-rejected',
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
  'sessionRestores', 'sessionDiscards', 'resetTokensReceived', 'resetsAccepted', 'truncatedFatal',
  'hintsActed', 'hintsIgnored', 'coapRetransmissions', 'coapGiveUps', 'eventsAcked', 'eventsDropped',
  'coapMalformed', 'storeWrites',
  'dropDatagramTooLong', 'dropRxTooLarge', 'coapStaleIgnored', 'coapNonIgnored', 'persistedRefused',
  'datagramsAccepted', 'datagramsRetransmitted', 'datagramsDropped', 'persistedSlotLost',
] as const;
export type CounterName = (typeof COUNTERS)[number];
export type Counters = Record<CounterName, number>;
export const DROP_COUNTERS = COUNTERS.filter((c) => c.startsWith('drop')) as CounterName[];
/** Every datagram handed to handle_datagram ends in exactly one of these (docs/abi.md). */
export const DATAGRAM_OUTCOMES = ['datagramsAccepted', 'datagramsRetransmitted', 'datagramsDropped'] as const satisfies readonly CounterName[];

export const CONFIG = {
  handshakeInitialTimeoutMs: 1,
  handshakeMaxTimeoutMs: 2,
  handshakeMaxTransmissions: 3,
  offerConnectionId: 4,
  requireExtendedMasterSecret: 5,
  coapAckTimeoutMs: 20,
  coapMaxRetransmit: 21,
  maxUnconfirmedRestores: 22,
  sleepWaitMaxMs: 23,
  maxSessionAgeMs: 24,
  maxRecordsPerKey: 25,
  maxFailedAuthPerKey: 26,
  truncatedHintWindowMs: 27,
} as const;

export const PROFILES = ['legacy', 'fixed', 'default'] as const;
export type Profile = (typeof PROFILES)[number];

export const SESSION_STATES = ['off', 'handshaking', 'resumed', 'confirmed', 'no-session'] as const;
export type SessionState = (typeof SESSION_STATES)[number];

export const DISCARD_REASONS = [
  'none', 'max-age', 'unconfirmed-restores', 'record-limit', 'failed-auth-limit', 'coap-rst', 'coap-give-up',
  'reset-token', 'truncated-record', 'credentials-changed', 'peer-closed', 'handshake-failed',
  'closed', 'reconnect', 'persisted-invalid', 'persisted-slot-lost', 'event-number-conflict',
] as const;
export type DiscardReason = (typeof DISCARD_REASONS)[number];

export type SessionEvent =
  | { type: 'resumed'; useCounter: number }
  | { type: 'handshake-started'; reason: DiscardReason }
  | { type: 'connected' }
  | { type: 'confirmed' }
  | { type: 'event-acked'; seq: number }
  | { type: 'session-discarded'; reason: DiscardReason }
  | { type: 'handshake-failed'; error: ErrorName }
  | { type: 'event-dropped'; seq: number }
  | { type: 'hint-ignored' };

/** A write the firmware wants in persistent memory. */
export interface StoreWrite {
  offset: number;
  bytes: Uint8Array;
}

/**
 * What a device is provisioned with: a PSK and its identity, or ECDHE-ECDSA keys — the cloud's
 * public key to pin (65 bytes) and the device's private key, generated on the device unless given
 * (simulators derive it from their seed).
 */
export type Credentials =
  | { suite: 'psk'; identity: string; psk: Uint8Array }
  | { suite: 'ecdhe'; serverPublicKey: Uint8Array; devicePrivateKey?: Uint8Array };

export const SUITES = ['ecdhe', 'psk'] as const;
export type Suite = (typeof SUITES)[number];

/** Size of the persisted region (docs/abi.md, "Persisted layout"). */
export const REGION_BYTES = 1280;
export type ConfigName = keyof typeof CONFIG;

export class FirmwareClient extends IoBuffer {
  provision(identity: Uint8Array, psk: Uint8Array): void {
    this.put(identity, psk);
    const rc = Number(this.m.call('provision', identity.length, psk.length));
    if (rc !== 0) throw new RangeError(`provision refused (${rc}): identity 1..128 bytes, PSK 1..64 bytes`);
  }

  /**
   * Raw-mode ECDHE-ECDSA credentials: the server's public key to pin (65 bytes, 0x04 ‖ X ‖ Y) and
   * the device's private key (32 bytes).
   */
  provisionEcdhe(serverPublicKey: Uint8Array, devicePrivateKey: Uint8Array): void {
    if (serverPublicKey.length !== 65 || devicePrivateKey.length !== 32) {
      throw new RangeError('provision_ecdhe: server public key 65 bytes (0x04 || X || Y), device private key 32 bytes');
    }
    this.put(serverPublicKey, devicePrivateKey);
    const rc = Number(this.m.call('provision_ecdhe'));
    if (rc !== 0) throw new RangeError(`provision_ecdhe refused (${rc}): the server key must be a P-256 point, the private key in [1, n-1], before boot`);
  }

  seed(entropy: Uint8Array): void {
    this.put(entropy);
    const rc = Number(this.m.call('seed_entropy', entropy.length));
    if (rc !== 0) throw new RangeError(`seed_entropy refused (${rc}): at least 32 bytes of entropy`);
  }

  /** The CID the device offers (0..32 bytes); the server puts it in records to the device. */
  setConnectionId(cid: Uint8Array): void {
    this.put(cid);
    const rc = Number(this.m.call('set_connection_id', cid.length));
    if (rc !== 0) throw new RangeError(`set_connection_id refused (${rc}): 0..32 bytes`);
  }

  /** Factory provisioning: queues the credentials block (drain it with pollStore). */
  provisionDevice(profile: Profile, deviceId: string, identity: Uint8Array, psk: Uint8Array): void {
    const id = Buffer.from(deviceId);
    this.put(id, identity, psk);
    const rc = Number(this.m.call('provision_device', PROFILES.indexOf(profile), id.length, identity.length, psk.length));
    if (rc !== 0) throw new RangeError(`provision_device refused (${rc}): id 1..48 bytes, identity 1..64, PSK 1..64, profile one of ${PROFILES.join(', ')}`);
  }

  /**
   * Factory provisioning with ECDHE-ECDSA credentials: the server's public key to pin (65 bytes)
   * and the device's key pair, generated on the device (seed it first) unless `devicePrivateKey`
   * is given. Returns the device's public key (65 bytes) to register with the cloud.
   */
  provisionDeviceEcdhe(profile: Profile, deviceId: string, serverPublicKey: Uint8Array, devicePrivateKey?: Uint8Array): Uint8Array {
    const id = Buffer.from(deviceId);
    if (serverPublicKey.length !== 65) throw new RangeError('provision_device_ecdhe: the server public key is 65 bytes (0x04 || X || Y)');
    if (devicePrivateKey !== undefined && devicePrivateKey.length !== 32) throw new RangeError('provision_device_ecdhe: the device private key is 32 bytes');
    if (devicePrivateKey) this.put(id, serverPublicKey, devicePrivateKey);
    else this.put(id, serverPublicKey);
    const rc = Number(this.m.call('provision_device_ecdhe', PROFILES.indexOf(profile), id.length, devicePrivateKey ? 1 : 0));
    if (rc === -5) throw new Error('provision_device_ecdhe: seed entropy first (the key pair is generated on the device)');
    if (rc !== 0) throw new RangeError(`provision_device_ecdhe refused (${rc}): id 1..48 bytes, a server key on P-256, a private key in [1, n-1], profile one of ${PROFILES.join(', ')}`);
    return this.devicePublicKey();
  }

  /** Factory provisioning with either kind of credentials; the device's public key for ECDHE, else null. */
  provisionCredentials(profile: Profile, deviceId: string, credentials: Credentials): Uint8Array | null {
    if (credentials.suite === 'psk') {
      this.provisionDevice(profile, deviceId, Buffer.from(credentials.identity), credentials.psk);
      return null;
    }
    return this.provisionDeviceEcdhe(profile, deviceId, credentials.serverPublicKey, credentials.devicePrivateKey);
  }

  /** The device's ECDHE public key (65 bytes, 0x04 || X || Y). */
  devicePublicKey(): Uint8Array {
    const n = Number(this.m.call('device_public_key'));
    if (n !== 65) throw new Error('device_public_key: the device has no ECDHE-ECDSA credentials');
    return this.m.readMemory(this.io, 65);
  }

  /** Cold start from the persisted region image. Returns the session state. */
  boot(nowMs: number, region: Uint8Array): SessionState {
    this.put(region);
    const rc = Number(this.m.call('boot', BigInt(nowMs), region.length));
    if (rc === -1) throw new Error('boot: no valid credentials in the persisted region (provision the device first)');
    if (rc === -5) throw new Error('boot: seed entropy first');
    if (rc < 0) throw new Error(`boot failed (${rc})`);
    return SESSION_STATES[rc];
  }

  get sessionState(): SessionState {
    return SESSION_STATES[Number(this.m.call('session_state'))];
  }

  /** Queues an event; returns its sequence number. Throws when the outbox is full. */
  publish(nowMs: number, name: string, data: Uint8Array): number {
    const n = Buffer.from(name);
    this.put(n, data);
    const rc = Number(this.m.call('publish', BigInt(nowMs), n.length, data.length));
    if (rc === -3) throw new OutboxFullError('publish: the outbox is full (6 unconfirmed events); nothing was overwritten');
    if (rc < 0) throw new RangeError(`publish refused (${rc}): name 1..15 bytes, data 0..43 bytes, after boot`);
    return rc;
  }

  /** Milliseconds to stay awake, or 0 when the device may sleep (expired keys are gone). */
  prepareSleep(nowMs: number): number {
    return Number(this.m.call('prepare_sleep', BigInt(nowMs)));
  }

  pollStore(): StoreWrite | null {
    const n = Number(this.m.call('poll_store'));
    if (n <= 0) return null;
    const b = this.m.readMemory(this.io, n);
    return { offset: new DataView(b.buffer, b.byteOffset).getUint32(0, true), bytes: b.subarray(4) };
  }

  pollEvent(): SessionEvent | null {
    const n = Number(this.m.call('poll_event'));
    if (n <= 0) return null;
    const b = this.m.readMemory(this.io, n);
    const v = new DataView(b.buffer, b.byteOffset);
    return decodeEvent(b[0], v.getUint32(4, true));
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
    // Larger than the I/O buffer: the firmware counts it as dropped without reading it.
    if (datagram.length <= this.ioCapacity) this.put(datagram);
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
    this.put(data);
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

export class OutboxFullError extends Error {}

/** An event from its type byte and its `a` field (docs/abi.md, "Events"). */
export function decodeEvent(type: number, a: number): SessionEvent {
  switch (type) {
    case 1: return { type: 'resumed', useCounter: a };
    case 2: return { type: 'handshake-started', reason: DISCARD_REASONS[a] ?? 'none' };
    case 3: return { type: 'connected' };
    case 4: return { type: 'confirmed' };
    case 5: return { type: 'event-acked', seq: a };
    case 6: return { type: 'session-discarded', reason: DISCARD_REASONS[a] ?? 'none' };
    case 7: return { type: 'handshake-failed', error: ERRORS[a] ?? 'none' };
    case 8: return { type: 'event-dropped', seq: a };
    default: return { type: 'hint-ignored' };
  }
}
