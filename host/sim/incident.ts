/**
 * A scripted one-device-per-profile incident for the lifecycle tests (the main job is the fleet
 * replay, host/sim/fleet). The cloud runs in process on a virtual network, in virtual time; one device per profile wakes
 * every `wakeEveryMs`, publishes a reading and goes back to sleep. The session cache is wiped (the
 * Redis crash), and later the cloud rolls out the 2019 "malformed datagram" heal.
 */
import type { Engine } from '../engines/engine.ts';
import { V8Engine } from '../engines/v8.ts';
import type { Device } from '../device.ts';
import { PROFILES, type Profile, type SessionEvent } from '../session-abi.ts';
import { startWakeCycle } from './wake-cycle.ts';
import { World } from './world.ts';

export interface IncidentOptions {
  seed: string;
  wakeEveryMs: number;
  appAwakeMs: number;
  /** When the session cache is wiped. */
  wipeAtMs: number;
  /** When the cloud starts answering lost sessions with the 2019 malformed datagram (null: never). */
  malformedAtMs: number | null;
  endMs: number;
  engine?: () => Engine;
}

export const DEFAULT_INCIDENT: IncidentOptions = {
  seed: 'may-2019',
  wakeEveryMs: 15 * 60_000,
  appAwakeMs: 3000,
  wipeAtMs: 40 * 60_000,
  malformedAtMs: 160 * 60_000,
  endMs: 215 * 60_000,
};

export interface WakeRecord {
  wake: number;
  atMs: number;
  events: SessionEvent[];
  /** Event sequence numbers the cloud delivered to the application during this wake. */
  delivered: number[];
  datagramsSent: number;
  bytesSent: number;
}

export interface ProfileResult {
  profile: Profile;
  deviceId: string;
  wakes: WakeRecord[];
  published: number;
  deliveredOnce: number;
  duplicates: number;
  lost: number[];
  handshakes: number;
  /** Wakes after the wipe before the device spoke to the cloud again (null: never). */
  stuckWakes: number | null;
  healedBy: string | null;
  verdict: string;
}

export interface IncidentResult {
  options: Omit<IncidentOptions, 'engine'>;
  engine: string;
  profiles: ProfileResult[];
}

export async function runIncident(opts: IncidentOptions = DEFAULT_INCIDENT): Promise<IncidentResult> {
  const world = new World({ seed: opts.seed });
  const engine = opts.engine ?? (() => new V8Engine());
  const devices = await world.addDevices(PROFILES.map((p) => ({ id: `dev-${p}`, identity: `id-${p}`, profile: p, engine: engine() })));
  const wakes = new Map<Device, WakeRecord[]>();
  devices.forEach((d, i) => {
    const list: WakeRecord[] = [];
    wakes.set(d, list);
    d.opts.onEvent = (e) => list.at(-1)?.events.push(e);
    startWakeCycle(world, d, {
      wakeEveryMs: opts.wakeEveryMs, appAwakeMs: opts.appAwakeMs, publishEveryWake: true,
      beforeWake: (_dev, wake, nowMs) => list.push({ wake, atMs: nowMs, events: [], delivered: [], datagramsSent: 0, bytesSent: 0 }),
    }, i * 1000);
  });
  const send = new Map<Device, Device['opts']['send']>();
  for (const d of devices) {
    const orig = d.opts.send;
    send.set(d, orig);
    d.opts.send = (data) => {
      const w = wakes.get(d)!.at(-1);
      if (w) {
        w.datagramsSent++;
        w.bytesSent += data.length;
      }
      orig(data);
    };
  }
  await world.runUntil(opts.wipeAtMs);
  await world.store.wipe();
  if (opts.malformedAtMs !== null) {
    await world.runUntil(opts.malformedAtMs);
    world.cloud.heal.malformed = true;
  }
  await world.runUntil(opts.endMs);

  const profiles = devices.map((d, i) => {
    const list = wakes.get(d)!;
    for (const e of world.cloudEvents) {
      if (e.event.kind !== 'event' || e.event.deviceId !== d.opts.id) continue;
      const w = [...list].reverse().find((x) => x.atMs <= e.atMs);
      w?.delivered.push(e.event.seq);
    }
    return summarize(PROFILES[i], d.opts.id, list, world.deliveredEvents(d.opts.id), opts);
  });
  const { engine: _e, ...options } = opts;
  return { options, engine: devices[0].opts.engine.name, profiles };
}

function summarize(profile: Profile, deviceId: string, wakes: WakeRecord[], delivered: number[], opts: IncidentOptions): ProfileResult {
  const published = wakes.length;
  const unique = new Set(delivered);
  const lost = Array.from({ length: published }, (_, i) => i).filter((s) => !unique.has(s));
  const handshakes = wakes.reduce((n, w) => n + w.events.filter((e) => e.type === 'handshake-started').length, 0);
  const after = wakes.filter((w) => w.atMs >= opts.wipeAtMs);
  const firstGood = after.findIndex((w) => w.delivered.length > 0 || w.events.some((e) => e.type === 'event-acked'));
  const stuckWakes = firstGood < 0 ? null : firstGood;
  let healedBy: string | null = null;
  if (firstGood >= 0) {
    const ended = after.slice(0, firstGood + 1).flatMap((w) => w.events).find((e) => e.type === 'session-discarded');
    healedBy = ended && ended.type === 'session-discarded' ? ended.reason : 'nothing to heal';
  }
  const lostText = lost.length ? `${lost.length} event(s) lost (#${lost.join(', #')})` : 'no event lost';
  let verdict: string;
  if (stuckWakes === null) verdict = `STUCK: ${after.length} wakes after the wipe without reaching the cloud; ${lostText}`;
  else if (healedBy === 'truncated-record' && profile === 'legacy') {
    verdict = `stuck ${stuckWakes} wakes, healed only by the cloud's malformed datagram; ${lostText}`;
  } else if (stuckWakes === 0) verdict = `healed on the first wake after the wipe (${healedBy}); ${lostText}`;
  else verdict = `healed after ${stuckWakes} stuck wake(s) (${healedBy}); ${lostText}`;
  return {
    profile, deviceId, wakes, published, deliveredOnce: unique.size, duplicates: delivered.length - unique.size,
    lost, handshakes, stuckWakes, healedBy, verdict,
  };
}
