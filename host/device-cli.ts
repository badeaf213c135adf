/**
 * `sleepy-session device`: one device on a real UDP socket against a cloud, in real or accelerated
 * time. The firmware is reloaded at every wake (deep sleep loses RAM); persistent memory lives in
 * a file when --flash is given, so the device also survives restarts of this process.
 */
import dgram from 'node:dgram';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { Board } from './board/board.ts';
import { Device } from './device.ts';
import type { Engine } from './engines/engine.ts';
import { REGION_BYTES, type Profile, type SessionEvent } from './session-abi.ts';

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
  flashPath: string | null;
  engine: Engine;
  log: (line: string) => void;
}

export async function runDevice(o: DeviceRunOptions): Promise<void> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '0.0.0.0', r));
  const t0 = Date.now();
  const now = (): number => Math.round((Date.now() - t0) * o.speed);
  const board = new Board(`device/${o.id}/${t0}`);
  const stamp = (): string => `${(now() / 1000).toFixed(1).padStart(8)}s`;
  const device = new Device({
    id: o.id, identity: o.identity, psk: o.psk, profile: o.profile, engine: o.engine, board,
    send: (d) => socket.send(d, o.cloud.port, o.cloud.host),
    onEvent: (e: SessionEvent) => o.log(`${stamp()} ${o.id} ${describeEvent(e)}`),
  });
  if (o.flashPath && existsSync(o.flashPath)) {
    const saved = readFileSync(o.flashPath);
    if (saved.length !== REGION_BYTES) throw new Error(`--flash ${o.flashPath}: expected ${REGION_BYTES} bytes, found ${saved.length}`);
    board.memory.bytes.set(saved);
  } else {
    await device.provision();
  }
  const saveFlash = (): void => {
    if (o.flashPath) writeFileSync(o.flashPath, board.memory.bytes);
  };
  let timer: NodeJS.Timeout | undefined;
  const armTimer = (): void => {
    clearTimeout(timer);
    const at = device.nextTimeout();
    if (at !== null) timer = setTimeout(() => {
      device.tick(now());
      armTimer();
    }, Math.max(0, (at - now()) / o.speed));
  };
  socket.on('message', (msg) => {
    device.receive(now(), msg);
    armTimer();
  });
  const wall = (virtualMs: number) => new Promise((r) => setTimeout(r, virtualMs / o.speed));
  try {
    for (let wake = 1; o.wakes === 0 || wake <= o.wakes; wake++) {
      const state = await device.wake(now());
      o.log(`${stamp()} ${o.id} wake ${wake}: ${state}`);
      if (o.publishEveryWake) {
        try {
          const seq = device.publish(now(), 'reading', Buffer.from(`wake ${wake}`));
          o.log(`${stamp()} ${o.id} published event #${seq}`);
        } catch (e) {
          o.log(`${stamp()} ${o.id} ${(e as Error).message}`);
        }
      }
      armTimer();
      await wall(o.appAwakeMs);
      for (let w = device.prepareSleep(now()); w > 0; w = device.prepareSleep(now())) {
        armTimer();
        await wall(w);
      }
      clearTimeout(timer);
      device.sleep();
      saveFlash();
      o.log(`${stamp()} ${o.id} sleeping ${o.wakeEveryMs / 1000}s`);
      if (o.wakes === 0 || wake < o.wakes) await wall(o.wakeEveryMs);
    }
  } finally {
    clearTimeout(timer);
    if (device.awake) device.sleep();
    saveFlash();
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
