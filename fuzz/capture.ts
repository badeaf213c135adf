/**
 * Captures the conversations the native fuzz targets start from: the firmware (V8) against the
 * cloud's sans-IO core, in virtual time, with fixed entropy, cloud secret and cloud randomness, so
 * the same run gives the same bytes every time. Output: one "transcript" per conversation — the
 * ABI calls in order (fuzz/harness/ops.h describes the encoding) with MARK ops where a fuzz target
 * may start. The native harness replays a transcript once at start-up and snapshots memory and
 * globals at each MARK (V8 cannot read the module's non-exported globals, so snapshots are made
 * natively from the same inputs).
 *
 * Usage: node --import tsx fuzz/capture.ts OUT_DIR [WASM]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SeededEntropy } from '../host/board/board.ts';
import { CloudCore } from '../host/cloud/core.ts';
import { DeviceRegistry } from '../host/cloud/devices.ts';
import { ServerKey, publicPointOf, scalarFromSeed } from '../host/cloud/p256.ts';
import { MemoryStore } from '../host/cloud/store.ts';
import { V8Engine } from '../host/engines/v8.ts';
import { readFirmware } from '../host/firmware.ts';
import { FirmwareClient, PROFILES, REGION_BYTES, type Profile } from '../host/session-abi.ts';
import { ECDHE_MARKS, MARKS, OP } from './ops.ts';

const DEVICE_ID = 'fuzz-device';
const IDENTITY = 'fuzz-identity';
/** Fixed PSK: the harness searches every transmitted datagram for it. */
export const FUZZ_PSK = Buffer.from('8f1e2d3c4b5a69788796a5b4c3d2e1f0', 'hex');
const DEVICE_ADDR = '10.0.0.1:5683';
/** Fixed ECDHE keys (derived from fixed seeds): the device's private key is injected so the cloud
 * can register its public key; the harness searches every transmitted datagram and the I/O buffer
 * after every call for it. The cloud's key is what the device pins. */
export const FUZZ_DEVICE_PRIVATE_KEY = scalarFromSeed(new SeededEntropy('fuzz-device-ecdhe-key').bytes(32));
export const FUZZ_SERVER_KEY = ServerKey.fromScalar(scalarFromSeed(new SeededEntropy('fuzz-server-ecdhe-key').bytes(32)));

function seeded(label: string): (n: number) => Buffer {
  const e = new SeededEntropy(label);
  return (n) => e.bytes(n);
}

/** Runs ABI calls on V8 and writes each one as an op. */
class Recorder {
  readonly ops: Buffer[] = [];
  fw!: FirmwareClient;
  flash = new Uint8Array(REGION_BYTES).fill(0xff);
  toCloud: Buffer[] = [];
  /** Every datagram the device was given, in order (the ECDHE server flight one message each). */
  readonly fed: Buffer[] = [];
  nowMs = 0;

  constructor(private readonly wasm: Uint8Array) {}

  async reset(): Promise<void> {
    this.fw?.m.dispose();
    this.fw = new FirmwareClient(await new V8Engine().load(this.wasm));
    this.ops.push(Buffer.from([OP.RESET]));
  }

  private drain(): void {
    for (let w = this.fw.pollStore(); w; w = this.fw.pollStore()) this.flash.set(w.bytes, w.offset);
    while (this.fw.pollEvent());
    for (const d of this.fw.drainTransmit()) this.toCloud.push(Buffer.from(d));
  }

  private op(code: number, ...parts: Buffer[]): void {
    this.ops.push(Buffer.concat([Buffer.from([code]), ...parts]));
  }

  /** Read through a call so TypeScript does not narrow it across the calls that change it. */
  state(): string {
    return this.fw.state;
  }

  session(): string {
    return this.fw.sessionState;
  }

  mark(name: (typeof MARKS)[number] | (typeof ECDHE_MARKS)[number]): void {
    const psk = (MARKS as readonly string[]).indexOf(name);
    this.op(OP.MARK, Buffer.from([psk >= 0 ? psk : MARKS.length + (ECDHE_MARKS as readonly string[]).indexOf(name)]));
  }

  provisionDeviceEcdhe(profile: Profile, id: string, serverPublicKey: Buffer, devicePrivateKey: Buffer): void {
    const i = Buffer.from(id);
    this.fw.provisionDeviceEcdhe(profile, id, serverPublicKey, devicePrivateKey);
    this.op(OP.PROVISION_DEVICE_ECDHE, Buffer.from([PROFILES.indexOf(profile), i.length, 1]), i, serverPublicKey, devicePrivateKey);
    this.drain();
  }

  provisionDevice(profile: Profile, id: string, identity: string, psk: Buffer): void {
    const i = Buffer.from(id), n = Buffer.from(identity);
    this.fw.provisionDevice(profile, id, n, psk);
    this.op(OP.PROVISION_DEVICE, Buffer.from([PROFILES.indexOf(profile), i.length, n.length, psk.length]), i, n, psk);
    this.drain();
  }

  seed(entropy: Buffer): void {
    this.fw.seed(entropy);
    this.op(OP.SEED, Buffer.from([entropy.length]), entropy);
    this.drain();
  }

  boot(): void {
    this.fw.boot(this.nowMs, this.flash);
    this.op(OP.BOOT, i64(this.nowMs));
    this.drain();
  }

  datagram(d: Buffer): void {
    this.fed.push(Buffer.from(d));
    this.fw.handleDatagram(this.nowMs, d);
    this.op(OP.DATAGRAM, i64(this.nowMs), u16(d.length), d);
    this.drain();
  }

  timeout(): void {
    this.fw.handleTimeout(this.nowMs);
    this.op(OP.TIMEOUT, i64(this.nowMs));
    this.drain();
  }

  publish(name: string, data: Buffer): void {
    const n = Buffer.from(name);
    this.fw.publish(this.nowMs, name, data);
    this.op(OP.PUBLISH, i64(this.nowMs), Buffer.from([n.length, data.length]), n, data);
    this.drain();
  }

  prepareSleep(): number {
    const w = this.fw.prepareSleep(this.nowMs);
    this.op(OP.PREPARE_SLEEP, i64(this.nowMs));
    this.drain();
    return w;
  }
}

function i64(v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(BigInt(v));
  return b;
}

function u16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return b;
}

/** Splits a datagram into its DTLS records (plaintext headers only: epoch 0 flights). */
function records(d: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at + 13 <= d.length; ) {
    const end = at + 13 + d.readUInt16BE(at + 11);
    out.push(d.subarray(at, end));
    at = end;
  }
  return out;
}

/** The cloud core of a captured conversation, delivering what the device sent and recording both ways. */
function cloudLink(rec: Recorder, cloud: CloudCore) {
  const cloudToDevice: Buffer[] = [];
  const deviceToCloud: Buffer[] = [];
  /** Delivers what the device sent; returns the cloud's datagrams to the device. */
  const toCloud = async (): Promise<Buffer[]> => {
    const replies: Buffer[] = [];
    for (const d of rec.toCloud.splice(0)) {
      deviceToCloud.push(d);
      const out = await cloud.handleDatagram(d, DEVICE_ADDR, rec.nowMs);
      for (const t of out.transmits) replies.push(Buffer.from(t.data));
    }
    cloudToDevice.push(...replies);
    return replies;
  };
  return { cloudToDevice, deviceToCloud, toCloud };
}

export interface Conversation {
  ops: Buffer;
  cloudToDevice: Buffer[];
  deviceToCloud: Buffer[];
  /** What the device was given, as the transcript's DATAGRAM ops (the harness's replay op picks from these). */
  fed: Buffer[];
  flash: Uint8Array;
}

/**
 * The lifecycle conversation (default profile) against the cloud core: first boot and full
 * handshake with a HelloVerifyRequest, a published event, sleep, a wake that resumes the stored
 * session, and the confirmation of that session by the cloud's ACK.
 */
export async function captureLifecycle(wasm: Uint8Array): Promise<Conversation> {
  const rec = new Recorder(wasm);
  const cloud = new CloudCore({
    devices: new DeviceRegistry([{ id: DEVICE_ID, identity: IDENTITY, psk: FUZZ_PSK }]),
    store: new MemoryStore(),
    cloudSecret: Buffer.alloc(32, 0x5a),
    random: seeded('fuzz-cloud'),
  });
  const { cloudToDevice, deviceToCloud, toCloud } = cloudLink(rec, cloud);
  const entropy = seeded('fuzz-device-entropy');

  await rec.reset();
  rec.provisionDevice('default', DEVICE_ID, IDENTITY, FUZZ_PSK);
  await rec.reset();
  rec.nowMs = 1_000;
  rec.seed(entropy(48));
  rec.mark('idle');
  rec.boot();
  rec.mark('client-hello');
  const [hvr] = await toCloud();
  if (!hvr) throw new Error('capture: the cloud did not answer the ClientHello');
  rec.nowMs += 20;
  rec.datagram(hvr);
  rec.mark('hello-verify');
  const flight4 = await toCloud();
  const f4records = flight4.flatMap(records);
  if (f4records.length < 2) throw new Error(`capture: server flight has ${f4records.length} records`);
  rec.nowMs += 20;
  rec.datagram(f4records[0]); // ServerHello alone: now waiting for ServerHelloDone
  if (rec.state() !== 'wait-server-hello-done') throw new Error(`capture: after ServerHello: ${rec.fw.state}`);
  rec.mark('wait-server-hello-done');
  rec.datagram(Buffer.concat(f4records.slice(1)));
  if (rec.state() !== 'wait-server-finished') throw new Error(`capture: after flight 4: ${rec.fw.state}`);
  rec.mark('wait-finished');
  const finished = await toCloud();
  rec.nowMs += 20;
  for (const d of finished) rec.datagram(d);
  if (rec.state() !== 'connected') throw new Error(`capture: after Finished: ${rec.fw.state}`);
  rec.mark('connected');
  rec.publish('temp', Buffer.from('21.5'));
  await pumpUntilQuiet(rec, toCloud);
  for (let i = 0; i < 10 && rec.prepareSleep() > 0; i++) {
    rec.nowMs += 200;
    await pumpUntilQuiet(rec, toCloud);
  }
  // Deep sleep: RAM lost; the next wake restores the persisted session.
  await rec.reset();
  rec.nowMs += 15 * 60_000;
  rec.seed(entropy(48));
  rec.boot();
  if (rec.session() !== 'resumed') throw new Error(`capture: wake: ${rec.fw.sessionState}`);
  rec.mark('resumed');
  rec.publish('temp', Buffer.from('22.0'));
  await pumpUntilQuiet(rec, toCloud);
  if (rec.session() !== 'confirmed') throw new Error(`capture: after the ACK: ${rec.fw.sessionState}`);
  rec.mark('confirmed');
  rec.fw.m.dispose();
  return { ops: Buffer.concat(rec.ops), cloudToDevice, deviceToCloud, fed: rec.fed, flash: Uint8Array.from(rec.flash) };
}

/** Handshake message types of the ECDHE server flight, in order (RFC 5246 §7.4). */
const SERVER_FLIGHT = [[2, 'ecdhe-server-hello'], [11, 'ecdhe-certificate'], [12, 'ecdhe-server-key-exchange'],
  [13, 'ecdhe-certificate-request'], [14, 'ecdhe-wait-finished']] as const;

/**
 * The ECDHE-ECDSA conversation (default profile, raw public keys): the device provisioned with
 * provision_device_ecdhe and an injected fixed private key, the cloud with a fixed ServerKey and
 * the device registered by its public key; the cloud's seeded randomness makes its ephemeral key
 * and ECDSA nonces, hence its signatures, the same every run. The server flight is fed one
 * message per datagram with a snapshot after each, up to the connected session.
 */
export async function captureEcdhe(wasm: Uint8Array): Promise<Conversation> {
  const rec = new Recorder(wasm);
  const cloud = new CloudCore({
    devices: new DeviceRegistry([{ id: DEVICE_ID, publicKey: publicPointOf(FUZZ_DEVICE_PRIVATE_KEY) }]),
    serverKey: FUZZ_SERVER_KEY,
    store: new MemoryStore(),
    cloudSecret: Buffer.alloc(32, 0x5b),
    random: seeded('fuzz-cloud-ecdhe'),
  });
  const { cloudToDevice, deviceToCloud, toCloud } = cloudLink(rec, cloud);
  const entropy = seeded('fuzz-device-entropy-ecdhe');

  await rec.reset();
  rec.provisionDeviceEcdhe('default', DEVICE_ID, FUZZ_SERVER_KEY.publicPoint, FUZZ_DEVICE_PRIVATE_KEY);
  await rec.reset();
  rec.nowMs = 1_000;
  rec.seed(entropy(48));
  rec.boot();
  rec.mark('ecdhe-client-hello');
  const [hvr] = await toCloud();
  if (!hvr) throw new Error('capture: the cloud did not answer the ECDHE ClientHello');
  rec.nowMs += 20;
  rec.datagram(hvr);
  rec.mark('ecdhe-hello-verify');
  const messages = (await toCloud()).flatMap(records).flatMap(messageRecords);
  const types = messages.map((m) => m[13]);
  if (types.join() !== SERVER_FLIGHT.map(([t]) => t).join()) throw new Error(`capture: ECDHE server flight has messages ${types.join()}`);
  rec.nowMs += 20;
  messages.forEach((m, i) => {
    rec.datagram(m);
    const want = i < messages.length - 1 ? 'wait-server-hello-done' : 'wait-server-finished';
    if (rec.state() !== want) throw new Error(`capture: after ECDHE message ${types[i]}: ${rec.fw.state}`);
    rec.mark(SERVER_FLIGHT[i][1]);
  });
  const finished = await toCloud();
  rec.nowMs += 20;
  for (const d of finished) rec.datagram(d);
  if (rec.state() !== 'connected') throw new Error(`capture: after the ECDHE Finished: ${rec.fw.state}`);
  rec.mark('ecdhe-connected');
  rec.publish('temp', Buffer.from('21.5'));
  await pumpUntilQuiet(rec, toCloud);
  rec.fw.m.dispose();
  return { ops: Buffer.concat(rec.ops), cloudToDevice, deviceToCloud, fed: rec.fed, flash: Uint8Array.from(rec.flash) };
}

/** One epoch-0 handshake record per handshake message (a record may carry several). */
function messageRecords(rec: Buffer): Buffer[] {
  if (rec[0] !== 22) return [rec];
  const out: Buffer[] = [];
  for (let at = 13; at + 12 <= rec.length; ) {
    const end = at + 12 + rec.readUIntBE(at + 9, 3);
    const body = rec.subarray(at, end);
    const hdr = Buffer.from(rec.subarray(0, 13));
    hdr.writeUInt16BE(body.length, 11);
    out.push(Buffer.concat([hdr, body]));
    at = end;
  }
  return out;
}

/** Exchanges datagrams until neither side has anything to send, running due timers. */
async function pumpUntilQuiet(rec: Recorder, toCloud: () => Promise<Buffer[]>): Promise<void> {
  for (let round = 0; round < 20; round++) {
    const t = rec.fw.nextTimeout();
    if (rec.toCloud.length === 0 && t !== null && t <= rec.nowMs + 200) {
      rec.nowMs = Math.max(rec.nowMs, t);
      rec.timeout();
    }
    if (rec.toCloud.length === 0) return;
    const replies = await toCloud();
    rec.nowMs += 20;
    for (const d of replies) rec.datagram(d);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const outDir = process.argv[2];
  if (!outDir) {
    console.error('usage: node --import tsx fuzz/capture.ts OUT_DIR');
    process.exit(2);
  }
  mkdirSync(outDir, { recursive: true });
  const wasm = readFirmware(process.argv[3]);
  const life = await captureLifecycle(wasm);
  const ecdhe = await captureEcdhe(wasm);
  writeFileSync(join(outDir, 'lifecycle.ops'), life.ops);
  writeFileSync(join(outDir, 'ecdhe.ops'), ecdhe.ops);
  writeFileSync(join(outDir, 'psk.bin'), FUZZ_PSK);
  writeFileSync(join(outDir, 'device-key.bin'), FUZZ_DEVICE_PRIVATE_KEY);
  writeFileSync(join(outDir, 'server-point.bin'), FUZZ_SERVER_KEY.publicPoint);
  console.log(`capture: lifecycle transcript ${life.ops.length} bytes, ${life.cloudToDevice.length} cloud datagrams; ` +
    `ECDHE transcript ${ecdhe.ops.length} bytes, ${ecdhe.cloudToDevice.length} cloud datagrams`);
}
