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
 * Without --flash both live in this process only: a restart is a new, freshly provisioned device.
 */
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { Board, ERASED_BYTE } from './board/board.ts';
import { FlashFile, writeFileDurably } from './board/flash-file.ts';
import { ScaledClock, type ClockAnchor } from './board/rtc.ts';
import { Device } from './device.ts';
import type { Engine } from './engines/engine.ts';
import { OutboxFullError, REGION_BYTES, type Profile, type SessionEvent, type StoreWrite } from './session-abi.ts';

export interface DeviceRunOptions {
  cloud: { host: string; port: number };
  id: string;
  identity: string;
  psk: Buffer;
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

/**
 * The credentials block in the flash image (offset 0, docs/abi.md) against the one provisioning with
 * these flags writes: 'erased' (never provisioned), 'same', or 'other' (another device, PSK or
 * profile, or damaged). Provisioning's other writes (blank session slots) are not compared: the
 * device has used them since.
 */
function credentialsMatch(image: Uint8Array, writes: StoreWrite[]): 'erased' | 'same' | 'other' {
  const creds = writes.find((w) => w.offset === 0);
  if (!creds) throw new Error('provisioning wrote no credentials block at offset 0 (docs/abi.md)');
  const stored = image.subarray(0, creds.bytes.length);
  if (stored.every((b) => b === ERASED_BYTE)) return 'erased';
  // Constant time: both sides hold the PSK.
  return crypto.timingSafeEqual(creds.bytes, stored) ? 'same' : 'other';
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
    id: o.id, identity: o.identity, psk: o.psk, profile: o.profile, engine: o.engine, board,
    send: (d) => socket.send(d, o.cloud.port, o.cloud.host),
    onEvent: (e: SessionEvent) => {
      if (e.type === 'event-acked') acked = true;
      o.log(`${stamp()} ${o.id} ${describeEvent(e)}`);
    },
  });
  if (o.flash) {
    const writes = await device.provisioningWrites();
    const match = credentialsMatch(o.flash.initial, writes);
    if (match === 'other') {
      writes.forEach((w) => w.bytes.fill(0));
      o.flash.close();
      throw new DeviceStartError(`--flash ${o.flash.path}: holds the credentials of another device (--id, --identity, --psk and --profile must be the ones it was provisioned with) or damaged ones; use another file`);
    }
    board.memory.bytes.set(o.flash.initial);
    board.memory.backing = o.flash;
    for (const w of writes) {
      if (match === 'erased') board.memory.apply(w);
      w.bytes.fill(0);
    }
    if (match === 'erased') o.log(`${stamp()} ${o.id} provisioned into ${o.flash.path}`);
  } else {
    await device.provision();
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
