/**
 * `sleepy-session device`: one device on a real UDP socket against a cloud, in real or accelerated
 * time. The firmware is reloaded at every wake (deep sleep loses RAM). With --flash FILE the
 * device survives restarts and kills of this process:
 *   - FILE is the persisted region (1280 bytes), written in place block by block and fsynced before
 *     any datagram goes out (the host contract, docs/abi.md) — a kill tears at most one block;
 *   - FILE.host keeps the host's own state, replaced atomically (temp, fsync, rename): the RTC
 *     anchor (host/board/rtc.ts: time keeps running across restarts) and the readings that wait
 *     for room in the firmware's outbox. A reading enters FILE.host before its wake boots and
 *     leaves it after `publish` returned (the firmware's outbox write is durable by then): a kill
 *     between the two publishes it again under a new event number — at least once, never lost;
 *   - FILE.lock.N locks FILE to this process from openFlash until exit (host/board/file-lock.ts):
 *     a second process on FILE is refused (exit 2, naming the holder's pid); a killed holder's lock
 *     is taken over at the next start.
 * Without --flash both live in this process only: a restart is a new, freshly provisioned device
 * (with ECDHE-ECDSA: a new key pair, to register again).
 *
 * ECDHE-ECDSA credentials (the default way to run a device) are the cloud's public key, pinned, and
 * the device's key pair, generated on the device from its DRBG at provisioning: the private key
 * never leaves the firmware and its flash; the public key is printed as a devices-file entry
 * (docs/protocol.md §9) at provisioning, at every start, and by `printDevicePublicKey`.
 */
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import { readFileSync, rmSync } from 'node:fs';
import { Board, ERASED_BYTE } from './board/board.ts';
import { FlashFile, writeFileDurably } from './board/flash-file.ts';
import { ScaledClock, type ClockAnchor } from './board/rtc.ts';
import { Device } from './device.ts';
import type { Engine } from './engines/engine.ts';
import { readFirmware } from './firmware.ts';
import {
  FirmwareClient, OutboxFullError, REGION_BYTES, type Credentials, type Profile, type SessionEvent, type StoreWrite,
} from './session-abi.ts';

export interface DeviceRunOptions {
  cloud: { host: string; port: number };
  id: string;
  /** PSK, or ECDHE-ECDSA with the cloud's public key (the device's key pair is generated at provisioning). */
  credentials: Credentials;
  profile: Profile;
  wakeEveryMs: number;
  publishEveryWake: boolean;
  /** Virtual milliseconds per wall millisecond (1 = real time). */
  speed: number;
  /** Stop after this many wakes (0 = run until interrupted). */
  wakes: number;
  appAwakeMs: number;
  /** Opened (and validated) with openFlash before anything starts; null = RAM only. */
  flash: FlashFile | null;
  engine: Engine;
  log: (line: string) => void;
}

/** A device that cannot start as asked; the message is one line naming the flag. */
export class DeviceStartError extends Error {}

/** Readings waiting for room in the firmware's outbox (6 events) beyond this are dropped, oldest first. */
export const HOST_QUEUE_READINGS = 32;

interface Reading {
  wake: number;
  data: string;
}

/** What FILE.host holds. */
interface HostState {
  format: 1;
  /** Virtual ms of the first start: log stamps count from here. */
  originMs: number;
  clock: ClockAnchor;
  /** Wakes so far, across restarts. */
  wakes: number;
  readings: Reading[];
}

/** Opens --flash FILE (creating an erased image when missing); a DeviceStartError names the problem. */
export function openFlash(path: string): FlashFile {
  try {
    return FlashFile.open(path, REGION_BYTES, ERASED_BYTE);
  } catch (e) {
    throw new DeviceStartError(`--flash ${path}: ${(e as Error).message}`);
  }
}

function loadHostState(path: string | null): HostState | null {
  if (!path) return null;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new DeviceStartError(`--flash: cannot read ${path} (${(e as NodeJS.ErrnoException).code})`);
  }
  try {
    const s = JSON.parse(text) as HostState;
    const finite = (n: unknown) => typeof n === 'number' && Number.isFinite(n);
    if (s.format !== 1 || !finite(s.originMs) || !finite(s.clock?.wallMs) || !finite(s.clock?.virtualMs) || !(s.clock?.speed > 0)
      || !Number.isInteger(s.wakes) || !Array.isArray(s.readings)
      || !s.readings.every((r) => Number.isInteger(r?.wake) && typeof r?.data === 'string' && Buffer.byteLength(r.data) <= 43)) {
      throw new Error('unexpected content');
    }
    return s;
  } catch (e) {
    throw new DeviceStartError(`--flash: ${path} (the host state next to the flash image) is damaged (${(e as Error).message}); move it away to start the clock and the reading queue afresh`);
  }
}

/** The credentials block's magic (docs/abi.md, "Persisted layout"): which kind of credentials it holds. */
const CREDS_MAGIC: Record<string, Credentials['suite']> = { CRD1: 'psk', CRK1: 'ecdhe' };
/** In an ECDHE-ECDSA block the bytes before the device's private key (at 120) follow from the flags. */
const ECDHE_FLAG_BYTES = 120;
/** Where the device id and its length are in the credentials block. */
const ID_LENGTH_AT = 5, ID_AT = 8;

type Match = 'erased' | 'same' | 'other-suite' | 'other';

function erased(block: Uint8Array): boolean {
  return block.every((b) => b === ERASED_BYTE);
}

function storedSuite(image: Uint8Array): Credentials['suite'] | null {
  return CREDS_MAGIC[Buffer.from(image.subarray(0, 4)).toString('latin1')] ?? null;
}

/**
 * The credentials block in the flash image (offset 0, docs/abi.md) against the one provisioning with
 * these flags writes: 'erased' (never provisioned), 'same', 'other-suite' (PSK where the flags say
 * ECDHE-ECDSA or the reverse) or 'other' (another device, key or profile, or damaged). With
 * ECDHE-ECDSA the device's private key is left out: provisioning generates a new one every time.
 * Provisioning's other writes (blank session slots) are not compared: the device has used them since.
 */
function credentialsMatch(image: Uint8Array, writes: StoreWrite[], suite: Credentials['suite']): Match {
  const creds = writes.find((w) => w.offset === 0);
  if (!creds) throw new Error('provisioning wrote no credentials block at offset 0 (docs/abi.md)');
  const stored = image.subarray(0, creds.bytes.length);
  if (erased(stored)) return 'erased';
  const held = storedSuite(stored);
  if (held !== null && held !== suite) return 'other-suite';
  const n = suite === 'ecdhe' ? ECDHE_FLAG_BYTES : creds.bytes.length;
  // Constant time: with a PSK both sides hold it.
  return crypto.timingSafeEqual(creds.bytes.subarray(0, n), stored.subarray(0, n)) ? 'same' : 'other';
}

function mismatchError(path: string, suite: Credentials['suite'], match: 'other-suite' | 'other'): DeviceStartError {
  if (match === 'other-suite') {
    const held = suite === 'psk' ? 'ECDHE-ECDSA credentials (provisioned with --server-key)' : 'PSK credentials (provisioned with --psk)';
    return new DeviceStartError(`--flash ${path}: holds ${held}; run it with those, or name another file for these (a provisioned file is not provisioned again: that would erase its session and queued events, docs/abi.md)`);
  }
  const flags = suite === 'psk' ? '--id, --identity, --psk and --profile' : '--id, --server-key and --profile';
  return new DeviceStartError(`--flash ${path}: holds the credentials of another device (${flags} must be the ones it was provisioned with) or damaged ones; use another file`);
}

/** The line a cloud's devices file takes for this device (docs/protocol.md §9). */
export function devicesFileEntry(id: string, publicKey: Uint8Array): string {
  return JSON.stringify({ id, publicKey: Buffer.from(publicKey).toString('hex') });
}

/**
 * The device's public key held in a provisioned ECDHE-ECDSA image, read as the device reads it: a
 * throwaway instance boots the image and answers device_public_key (what it writes or sends goes
 * nowhere; the private key never leaves the firmware).
 */
async function storedPublicKey(engine: Engine, image: Uint8Array, path: string): Promise<Uint8Array> {
  const fw = new FirmwareClient(await engine.load(readFirmware()));
  try {
    fw.seed(crypto.randomBytes(48));
    try {
      fw.boot(0, image);
      return fw.devicePublicKey();
    } catch {
      throw new DeviceStartError(`--flash ${path}: its ECDHE-ECDSA credentials are damaged (the firmware refuses them); use another file`);
    }
  } finally {
    fw.m.dispose();
  }
}

function pskHasNoPublicKey(path: string): DeviceStartError {
  return new DeviceStartError(`--flash ${path}: holds PSK credentials (provisioned with --psk): a PSK device has no public key`);
}

/** The devices-file entry of the device whose provisioned ECDHE-ECDSA region is `image` (read from `path`). */
export async function storedEntry(engine: Engine, image: Uint8Array, path: string): Promise<string> {
  if (storedSuite(image) === 'psk') throw pskHasNoPublicKey(path);
  const id = Buffer.from(image.subarray(ID_AT, ID_AT + image[ID_LENGTH_AT])).toString();
  return devicesFileEntry(id, await storedPublicKey(engine, image, path));
}

export interface PublicKeyEntryOptions {
  flashPath: string;
  /** With both, an erased (or missing) file is provisioned first; a provisioned one must hold these. */
  id?: string;
  serverPublicKey?: Uint8Array;
  profile: Profile;
  engine: Engine;
  /** Notes (the file was provisioned). */
  log: (line: string) => void;
}

/**
 * `device --flash FILE --print-public-key`: the devices-file entry of the device in FILE. A
 * provisioned file is only read (no lock: this works beside the device process running on it); an
 * erased or missing one is provisioned with --id and --server-key, the key pair generated on the
 * device now.
 */
export async function publicKeyEntry(o: PublicKeyEntryOptions): Promise<string> {
  const given = o.id !== undefined && o.serverPublicKey !== undefined;
  const credentials: Credentials | null = o.serverPublicKey ? { suite: 'ecdhe', serverPublicKey: o.serverPublicKey } : null;
  const provisioner = (flash: FlashFile | null) => {
    const board = new Board(`device/${o.id}/${crypto.randomBytes(16).toString('hex')}`);
    if (flash) {
      board.memory.bytes.set(flash.initial);
      board.memory.backing = flash;
    }
    return new Device({ id: o.id!, credentials: credentials!, profile: o.profile, engine: o.engine, board, send: () => {} });
  };
  const entryOf = async (image: Uint8Array): Promise<string> => {
    if (storedSuite(image) === 'psk') throw pskHasNoPublicKey(o.flashPath);
    if (given) {
      const writes = await provisioner(null).provisioningWrites();
      const match = credentialsMatch(image, writes, 'ecdhe');
      writes.forEach((w) => w.bytes.fill(0));
      if (match === 'other-suite' || match === 'other') throw mismatchError(o.flashPath, 'ecdhe', match);
    }
    return storedEntry(o.engine, image, o.flashPath);
  };
  if (o.id !== undefined && o.serverPublicKey === undefined) throw new DeviceStartError('--print-public-key: --id needs --server-key (both provision an erased file; a provisioned one needs neither)');
  if (o.id === undefined && o.serverPublicKey !== undefined) throw new DeviceStartError('--print-public-key: --server-key needs --id (both provision an erased file; a provisioned one needs neither)');
  let current: Buffer | null = null, missing = false;
  try {
    current = readFileSync(o.flashPath);
  } catch (e) {
    missing = (e as NodeJS.ErrnoException).code === 'ENOENT'; // otherwise openFlash below names the problem
  }
  if (current?.length === REGION_BYTES && !erased(current.subarray(0, ECDHE_FLAG_BYTES))) return entryOf(current);
  const notProvisioned = () => new DeviceStartError(`--flash ${o.flashPath}: ${missing ? 'no such file' : 'not provisioned yet'}; --id ID and --server-key HEX|FILE provision it (the key pair is generated on the device now)`);
  if (current?.length === REGION_BYTES && !given) throw notProvisioned(); // erased
  if (missing && !given) throw notProvisioned(); // nothing to create it for
  const flash = openFlash(o.flashPath);
  try {
    if (!erased(flash.initial)) return await entryOf(flash.initial);
    if (!given) throw notProvisioned();
    const device = provisioner(flash);
    const publicKey = await device.provision();
    // Host state beside an erased image belongs to an earlier device.
    rmSync(`${o.flashPath}.host`, { force: true });
    o.log(`provisioned ${o.flashPath} (profile ${o.profile}): the device generated its key pair; the private key stays in the file`);
    return devicesFileEntry(o.id!, publicKey!);
  } finally {
    flash.close();
  }
}

export async function runDevice(o: DeviceRunOptions): Promise<void> {
  const statePath = o.flash ? `${o.flash.path}.host` : null;
  // A flash image created just now is a new device: host state left by an older one is not its own.
  const saved = o.flash?.created ? null : loadHostState(statePath);
  const clock = new ScaledClock(saved?.clock ?? null, o.speed);
  const state: HostState = saved
    ? { ...saved, clock: clock.mark() }
    : { format: 1, originMs: clock.now(), clock: clock.mark(), wakes: 0, readings: [] };
  const persistState = (): void => {
    state.clock = clock.mark();
    if (statePath) writeFileDurably(statePath, JSON.stringify(state));
  };
  const now = (): number => clock.now();
  const stamp = (): string => `${((now() - state.originMs) / 1000).toFixed(1).padStart(8)}s`;
  let acked = false;
  const board = new Board(`device/${o.id}/${crypto.randomBytes(16).toString('hex')}`);
  const socket = dgram.createSocket('udp4');
  const device = new Device({
    id: o.id, credentials: o.credentials, profile: o.profile, engine: o.engine, board,
    send: (d) => socket.send(d, o.cloud.port, o.cloud.host),
    onEvent: (e: SessionEvent) => {
      if (e.type === 'event-acked') acked = true;
      o.log(`${stamp()} ${o.id} ${describeEvent(e)}`);
    },
  });
  const register = 'register its public key with the cloud (devices file entry):';
  if (o.flash) {
    const flash = o.flash;
    const writes = await device.provisioningWrites();
    const match = credentialsMatch(flash.initial, writes, o.credentials.suite);
    let publicKey = device.publicKey;
    try {
      if (match === 'other-suite' || match === 'other') throw mismatchError(flash.path, o.credentials.suite, match);
      if (match === 'same' && o.credentials.suite === 'ecdhe') publicKey = await storedPublicKey(o.engine, flash.initial, flash.path);
    } catch (e) {
      writes.forEach((w) => w.bytes.fill(0));
      flash.close();
      throw e;
    }
    board.memory.bytes.set(flash.initial);
    board.memory.backing = flash;
    for (const w of writes) {
      if (match === 'erased') board.memory.apply(w);
      w.bytes.fill(0);
    }
    const entry = publicKey ? devicesFileEntry(o.id, publicKey) : null;
    if (match === 'erased') o.log(`${stamp()} ${o.id} provisioned into ${flash.path}${entry ? `; ${register} ${entry}` : ''}`);
    else if (entry) o.log(`${stamp()} ${o.id} from ${flash.path}; its public key (devices file entry): ${entry}`);
  } else {
    const publicKey = await device.provision();
    if (publicKey) o.log(`${stamp()} ${o.id} provisioned in RAM (no --flash: a new key pair at every run); ${register} ${devicesFileEntry(o.id, publicKey)}`);
  }
  persistState();
  await new Promise<void>((r) => socket.bind(0, '0.0.0.0', r));

  /** Publishes waiting readings while the outbox has room (after wake and after every ACK). */
  const publishWaiting = (): void => {
    acked = false;
    while (device.awake && state.readings.length > 0) {
      const r = state.readings[0];
      try {
        const seq = device.publish(now(), 'reading', Buffer.from(r.data));
        state.readings.shift();
        persistState();
        o.log(`${stamp()} ${o.id} published event #${seq} (reading of wake ${r.wake})`);
      } catch (e) {
        if (e instanceof OutboxFullError) o.log(`${stamp()} ${o.id} outbox full: ${state.readings.length} reading(s) wait on the host`);
        else o.log(`${stamp()} ${o.id} ${(e as Error).message}`);
        return;
      }
    }
  };
  let timer: NodeJS.Timeout | undefined;
  const armTimer = (): void => {
    clearTimeout(timer);
    const at = device.nextTimeout();
    if (at !== null) timer = setTimeout(() => {
      device.tick(now());
      if (acked) publishWaiting();
      armTimer();
    }, clock.wallMsUntil(at));
  };
  socket.on('message', (msg) => {
    device.receive(now(), msg);
    if (acked) publishWaiting();
    armTimer();
  });
  const wall = (virtualMs: number) => new Promise((r) => setTimeout(r, virtualMs / o.speed));
  try {
    for (let run = 1; o.wakes === 0 || run <= o.wakes; run++) {
      const wake = ++state.wakes;
      if (o.publishEveryWake) {
        state.readings.push({ wake, data: `wake ${wake}` });
        const dropped = state.readings.splice(0, Math.max(0, state.readings.length - HOST_QUEUE_READINGS));
        for (const r of dropped) o.log(`${stamp()} ${o.id} reading of wake ${r.wake} dropped: ${HOST_QUEUE_READINGS} readings already wait on the host`);
      }
      persistState();
      const s = await device.wake(now());
      o.log(`${stamp()} ${o.id} wake ${wake}: ${s}`);
      publishWaiting();
      armTimer();
      await wall(o.appAwakeMs);
      for (let w = device.prepareSleep(now()); w > 0; w = device.prepareSleep(now())) {
        armTimer();
        await wall(w);
      }
      clearTimeout(timer);
      device.sleep();
      o.log(`${stamp()} ${o.id} sleeping ${o.wakeEveryMs / 1000}s`);
      if (o.wakes === 0 || run < o.wakes) await wall(o.wakeEveryMs);
    }
  } finally {
    clearTimeout(timer);
    if (device.awake) device.sleep();
    o.flash?.close();
    socket.close();
  }
}

/** One line for a session event, as the device commands print it. */
export function describeEvent(e: SessionEvent): string {
  switch (e.type) {
    case 'resumed': return `resumed the stored session (unconfirmed restores: ${e.useCounter})`;
    case 'handshake-started': return `handshake${e.reason !== 'none' ? ` (previous session: ${e.reason})` : ''}`;
    case 'connected': return 'connected';
    case 'confirmed': return 'cloud answered: session confirmed';
    case 'event-acked': return `event #${e.seq} acknowledged`;
    case 'session-discarded': return `session destroyed: ${e.reason}`;
    case 'handshake-failed': return `handshake failed: ${e.error}`;
    case 'event-dropped': return `event #${e.seq} lost at sleep`;
    case 'hint-ignored': return 'truncated record ignored (session confirmed or rate-limited)';
  }
}
