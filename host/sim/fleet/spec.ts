/**
 * The fleet replay of May 2019: who is in the fleet, and what happens when (the timeline).
 * Everything here is a pure function of the options and the seed, so any worker can rebuild the
 * spec of any device from its index and the same device gets the same schedule under each profile.
 *
 * Virtual time is milliseconds since Thursday 2019-05-02 00:00 PDT (the status page's time zone).
 */
import crypto from 'node:crypto';
import { ServerKey, scalarFromSeed } from '../../cloud/p256.ts';
import { PROFILES, type Profile, type Suite } from '../../session-abi.ts';

export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;
/** 2019-05-02 00:00 PDT (UTC−7) as Unix ms: virtual time 0. */
export const EPOCH_UNIX_MS = Date.UTC(2019, 4, 2, 7, 0, 0);

/** Virtual time of "May D HH:MM" (PDT). */
export const may = (day: number, hour = 0, minute = 0): number => (day - 2) * DAY_MS + hour * HOUR_MS + minute * 60_000;

/** "May 7 16:00" for a virtual time. */
export function calendar(ms: number): string {
  const day = 2 + Math.floor(ms / DAY_MS);
  const inDay = ms - (day - 2) * DAY_MS;
  const h = Math.floor(inDay / HOUR_MS);
  const m = Math.floor((inDay % HOUR_MS) / 60_000);
  return `May ${day} ${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`;
}

/** A step of the malformed-datagram heal rollout: from `atMs`, `share` of the devices are behind the flag. */
export interface RolloutStep {
  atMs: number;
  share: number;
  label: string;
}

export interface Timeline {
  /** The Redis cluster holding the session cache crashes and restarts empty. */
  crashAtMs: number;
  /** A customer reports missing webhooks (annotation: how the 2019 incident was found). */
  customerReportAtMs: number;
  /** The malformed-datagram heal behind a flag, ramped (status page: May 7 low-risk, May 8 everyone). */
  rollout: RolloutStep[];
  /**
   * Until this time the heal is sent from a slower path, `healDelayMs` after the undecryptable record;
   * from it (the May 15 change) the front end answers at once. A device asleep by then misses it.
   */
  inlineHealAtMs: number;
  healDelayMs: number;
  /** What-if: the lost cache comes back with its data this long after the crash (absent: never, as in 2019). */
  cacheBackAfterMs?: number;
}

/** The reported points of the status page, for the report's legacy curve. */
export const REPORTED_POINTS = [
  { atMs: may(6), stuck: 500, label: 'May 6: ~500 devices affected' },
  { atMs: may(8, 20), stuck: 20, label: 'May 8 evening: 480 healed' },
  { atMs: may(15, 17), stuck: 0, label: 'May 15 afternoon: the rest healed' },
] as const;

export const DEFAULT_TIMELINE: Timeline = {
  crashAtMs: may(2, 10),
  customerReportAtMs: may(3, 11),
  rollout: [
    { atMs: may(7, 16), share: 0.1, label: 'heal behind a flag on low-risk infrastructure' },
    { atMs: may(8, 9), share: 0.25, label: 'heal rollout 25%' },
    { atMs: may(8, 11), share: 0.5, label: 'heal rollout 50%' },
    { atMs: may(8, 13), share: 1, label: 'heal rollout 100%' },
  ],
  inlineHealAtMs: may(15, 15),
  healDelayMs: 5000,
};

export type DeviceKind = 'sleepy' | 'always-connected';

/**
 * The cloud a profile runs against: the 2019 firmware (legacy, fixed) meets the cloud Particle ran
 * in 2019 — no reset tokens (none handed out at the handshake, none sent), no alert rules (they are
 * evaluated and shown as "would have fired"), the malformed-datagram heal as the timeline rolls it
 * out; `default` meets this project's cloud (reset tokens, alert rules, no malformed datagram).
 */
export type CloudEra = '2019' | 'ours';
export function cloudOf(profile: Profile): CloudEra {
  return profile === 'default' ? 'ours' : '2019';
}

export interface FleetOptions {
  devices: number;
  /** Share of sleepy devices (the rest are always connected). */
  sleepyShare: number;
  /** Length of the replay from May 2 00:00. */
  days: number;
  seed: string;
  profiles: Profile[];
  workers: number;
  engine: 'v8' | 'wasm3';
  timeline: Timeline;
  /** One-way latency of the cellular network. */
  latencyMs: number;
  /** Wake intervals and awake times (default FLEET_SCHEDULE; the live mode compresses the intervals to minutes). */
  schedule?: DeviceSchedule;
  /**
   * What-if: the firmware's CoAP ACK timeout (Device OS: 4,000 ms), set at every boot. The give-up
   * that wipes a dead session comes after 1 + 2 + 4 + 8 = 15 ACK timeouts (× up to 1.5, random).
   */
  coapAckTimeoutMs?: number;
  /**
   * The key exchange every profile's handshake uses: 'ecdhe' (ECDHE-ECDSA P-256 with raw public
   * keys, what Device OS 1.1.0–1.4.x used; the default) or 'psk' (docs/fleet.md).
   */
  suite?: Suite;
}

/**
 * The distributions deviceSpec draws from, per device class (docs/fleet.md, "The fleet", says
 * where each number comes from). Intervals are log-uniform, awake times uniform or log-uniform.
 */
export interface DeviceSchedule {
  /** Sleepy periodic reporters: time between wakes (log-uniform). */
  sleepyWakeEveryMs: [number, number];
  /** Share of sleepy devices that report rarely, and their interval (log-uniform). */
  infrequentShare: number;
  infrequentWakeEveryMs: [number, number];
  /** publish-and-wait (every sleepy device not in another pattern): awake after the wake, uniform. */
  sleepyAwakeMs: [number, number];
  /** quick sleepers: sleep within seconds of the publish (uniform). */
  quickSleeperShare: number;
  quickAwakeMs: [number, number];
  /** update window: stay connected a while so OTA updates and function calls can reach them (log-uniform). */
  updateWindowShare: number;
  updateWindowAwakeMs: [number, number];
  alwaysConnectedEveryMs: [number, number];
  alwaysConnectedAwakeMs: number;
}

export const DEFAULT_FLEET: FleetOptions = {
  devices: 150,
  sleepyShare: 0.5,
  days: 14,
  seed: 'may-2019',
  profiles: [...PROFILES],
  workers: 2,
  engine: 'v8',
  timeline: DEFAULT_TIMELINE,
  latencyMs: 400,
};

/** The devices' UDP source port (the first of the dynamic range, RFC 6335). */
export const DEVICE_PORT = 49152;

/** What a device's application does at each wake (docs/fleet.md). */
export type AppPattern = 'quick-sleeper' | 'publish-and-wait' | 'update-window' | 'always-connected';
export const APP_PATTERNS: AppPattern[] = ['quick-sleeper', 'publish-and-wait', 'update-window', 'always-connected'];

export interface DeviceSpec {
  index: number;
  id: string;
  identity: string;
  psk: Buffer;
  /** The device's ECDHE private key (from the seed: the replay is reproducible), injected at provisioning. */
  devicePrivateKey: Buffer;
  kind: DeviceKind;
  pattern: AppPattern;
  /** Time between wakes (sleepy) or between keepalive rounds (always connected). */
  wakeEveryMs: number;
  /** How long the application stays awake at each wake before it asks to sleep. */
  awakeMs: number;
  firstWakeMs: number;
  /** Position in the heal rollout: the flag covers the device once the rollout share exceeds it. */
  rolloutBucket: number;
  address: string;
}

/** Uniform [0, 1) numbers from (seed, label): the same for every worker and every profile. */
export class Draw {
  private counter = 0;
  constructor(private readonly key: string) {}
  next(): number {
    const h = crypto.createHash('sha256').update(`${this.key}/${this.counter++}`).digest();
    return h.readUIntBE(0, 6) / 2 ** 48;
  }
  logUniform(lo: number, hi: number): number {
    return Math.exp(Math.log(lo) + this.next() * (Math.log(hi) - Math.log(lo)));
  }
  uniform(lo: number, hi: number): number {
    return lo + this.next() * (hi - lo);
  }
}

const MIN = 60_000;
/** Always-connected devices: awake long enough for the CoAP give-up (~60–93 s) at every round. */
export const ALWAYS_CONNECTED_AWAKE_MS = 120_000;

/** The replay's fleet (docs/fleet.md, "The fleet": sources and assumptions of each number). */
export const FLEET_SCHEDULE: DeviceSchedule = {
  sleepyWakeEveryMs: [30 * MIN, 24 * 60 * MIN],
  infrequentShare: 0.1,
  infrequentWakeEveryMs: [DAY_MS, 7 * DAY_MS],
  sleepyAwakeMs: [6000, 30_000],
  quickSleeperShare: 0.04,
  quickAwakeMs: [1500, 4500],
  updateWindowShare: 0.3,
  updateWindowAwakeMs: [30_000, 300_000],
  alwaysConnectedEveryMs: [60 * MIN, 6 * 60 * MIN],
  alwaysConnectedAwakeMs: ALWAYS_CONNECTED_AWAKE_MS,
};

/**
 * The device at `index`, drawn from `o.schedule` (default FLEET_SCHEDULE): its kind (sleepy with
 * `sleepyShare`), its application pattern, its wake interval and its awake time per wake. An
 * always-connected device is modelled as keepalive/publish rounds (its RAM holds nothing the session
 * needs between them). Every draw is made for every device, so changing one share moves only the
 * devices it concerns (a what-if compares like with like).
 */
export function deviceSpec(o: Pick<FleetOptions, 'seed' | 'sleepyShare' | 'timeline' | 'schedule'>, index: number): DeviceSpec {
  const d = new Draw(`fleet/${o.seed}/device/${index}`);
  const s = o.schedule ?? FLEET_SCHEDULE;
  const kindDraw = d.next();
  const patternDraw = d.next();
  const rareDraw = d.next();
  const intervalDraw = d.next();
  const awakeDraw = d.next();
  const kind: DeviceKind = kindDraw < o.sleepyShare ? 'sleepy' : 'always-connected';
  const logUniform = (u: number, [lo, hi]: [number, number]): number => Math.exp(Math.log(lo) + u * (Math.log(hi) - Math.log(lo)));
  const uniform = (u: number, [lo, hi]: [number, number]): number => lo + u * (hi - lo);
  let pattern: AppPattern;
  let wakeEveryMs: number;
  let awakeMs: number;
  if (kind === 'sleepy') {
    wakeEveryMs = Math.round(logUniform(intervalDraw, rareDraw < s.infrequentShare ? s.infrequentWakeEveryMs : s.sleepyWakeEveryMs));
    if (patternDraw < s.quickSleeperShare) {
      pattern = 'quick-sleeper';
      awakeMs = Math.round(uniform(awakeDraw, s.quickAwakeMs));
    } else if (patternDraw < s.quickSleeperShare + s.updateWindowShare) {
      pattern = 'update-window';
      awakeMs = Math.round(logUniform(awakeDraw, s.updateWindowAwakeMs));
    } else {
      pattern = 'publish-and-wait';
      awakeMs = Math.round(uniform(awakeDraw, s.sleepyAwakeMs));
    }
  } else {
    pattern = 'always-connected';
    wakeEveryMs = Math.round(logUniform(intervalDraw, s.alwaysConnectedEveryMs));
    awakeMs = s.alwaysConnectedAwakeMs;
  }
  // Every device has woken at least once (holds a session) before the crash.
  const firstWakeMs = Math.round(d.next() * Math.min(wakeEveryMs, o.timeline.crashAtMs - 10 * MIN));
  const rolloutBucket = d.next();
  const psk = crypto.createHash('sha256').update(`fleet/${o.seed}/psk/${index}`).digest().subarray(0, 16);
  const devicePrivateKey = scalarFromSeed(crypto.createHash('sha256').update(`fleet/${o.seed}/device-key/${index}`).digest());
  const id = `dev-${String(index).padStart(6, '0')}`;
  // 10.x.y.z: one address per device (the cloud's per-address quotas see distinct devices); an
  // ephemeral port, as a device's socket has, so Wireshark dissects the cloud's port (5684, DTLS).
  const address = `10.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}:${DEVICE_PORT}`;
  return { index, id, identity: id, psk, devicePrivateKey, kind, pattern, wakeEveryMs, awakeMs, firstWakeMs, rolloutBucket, address };
}

/** Share of the fleet behind the malformed-heal flag at `atMs`. */
export function rolloutShare(t: Timeline, atMs: number): number {
  let share = 0;
  for (const s of t.rollout) if (atMs >= s.atMs) share = s.share;
  return share;
}

export function endMs(o: Pick<FleetOptions, 'days'>): number {
  return o.days * DAY_MS;
}

/**
 * The step of the time series (deliveries, heals, undecryptable records, devices stuck): an hour
 * for a replay of days, 10 minutes for one of hours, a minute for the live hour.
 */
export function seriesStepMs(replayMs: number): number {
  if (replayMs >= 2 * DAY_MS) return HOUR_MS;
  if (replayMs > 2 * HOUR_MS) return 10 * MIN;
  return MIN;
}

/** The cloud's key pair, from the replay's seed (every partition, worker and cloud process derives the same). */
export function fleetServerKey(seed: string): ServerKey {
  return ServerKey.fromScalar(scalarFromSeed(crypto.createHash('sha256').update(`fleet/${seed}/cloud-key`).digest()));
}
