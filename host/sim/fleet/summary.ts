/**
 * From the devices' outcomes to what a person reads: per profile, who was stuck and for how long,
 * which heal fired when, what happened to the events, what a stuck device costs on the air, and
 * when the cloud's alert rules (docs/protocol.md §10) would have fired. Also the series the report
 * draws. Pure: the same outcomes give the same summary.
 */
import type { Profile } from '../../session-abi.ts';
import type { DeviceOutcome, PartitionResult, TracedWake } from './outcome.ts';
import { APP_PATTERNS, DAY_MS, HOUR_MS, REPORTED_POINTS, calendar, cloudOf, endMs, may, type AppPattern, type FleetOptions, type Timeline } from './spec.ts';

/** A stuck device "had elevated data usage" when its bytes per day while stuck exceed this many times its own while healthy. */
export const ELEVATED_USAGE = 2;

/**
 * The legacy replay set beside the status page, as counts (not scaled onto a curve): the status
 * page counted ~500 devices stuck and 480 healed by the evening of May 8, of a fleet whose size it
 * did not give. What this fleet's stuck share implies for that fleet's size.
 */
export interface StatusPageComparison {
  reportedStuck: number;
  reportedHealedByMay8Evening: number;
  /** Legacy devices stuck, of the fleet, and that share. */
  stuck: number;
  devices: number;
  share: number;
  /** Devices the status page's ~500 imply, at this share (null: no device stuck). */
  impliedFleet: number | null;
  /** Of the legacy devices stuck, healed by May 8 20:00 (null: the replay ends before). */
  healedByMay8Evening: number | null;
  /** The status page's 480 of 500, as a share, and this replay's. */
  reportedHealedShare: number;
  healedShare: number | null;
}

export const MAY_8_EVENING = may(8, 20);

export function compareWithStatusPage(profiles: ProfileSummary[], legacyDevices: DeviceOutcome[] | null, o: Pick<FleetOptions, 'days'>): StatusPageComparison | null {
  const legacy = profiles.find((p) => p.profile === 'legacy');
  if (!legacy || !legacyDevices) return null;
  const reportedStuck = REPORTED_POINTS[0].stuck;
  const reportedHealed = reportedStuck - REPORTED_POINTS[1].stuck;
  const stuck = legacyDevices.filter((d) => d.stuckWakes > 0);
  const healed = endMs(o) > MAY_8_EVENING ? stuck.filter((d) => d.healedAtMs !== null && d.healedAtMs <= MAY_8_EVENING).length : null;
  return {
    reportedStuck,
    reportedHealedByMay8Evening: reportedHealed,
    stuck: stuck.length,
    devices: legacy.devices,
    share: legacy.stuck.share,
    impliedFleet: stuck.length ? Math.round(reportedStuck / legacy.stuck.share) : null,
    healedByMay8Evening: healed,
    reportedHealedShare: reportedHealed / reportedStuck,
    healedShare: healed === null || stuck.length === 0 ? null : healed / stuck.length,
  };
}

export const PROFILE_TITLES: Record<Profile, string> = {
  legacy: 'legacy (Device OS 1.1.0)',
  fixed: 'fixed (Device OS 1.2.x)',
  default: 'default (sleepy-session)',
};

/** The alert rules of docs/protocol.md §10, as the simulator evaluates them (every minute). */
export const ALERT_RULES = {
  sessionsLost: { name: 'SleepyCloudSessionsLost', windowMinutes: 10, minRecords: 5, shareOfDatagrams: 0.05 },
  deviceStuck: { name: 'SleepyCloudDeviceStuck', recordsPerHour: 3 },
} as const;

export interface Percentiles {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface ProfileSummary {
  profile: Profile;
  title: string;
  devices: number;
  sleepy: number;
  wakes: number;
  /**
   * Devices with at least one wake after the crash that did not reach the cloud; `share` of the
   * fleet; per application pattern, devices and how many of them were stuck.
   */
  stuck: { devices: number; sleepy: number; share: number; stillStuckAtEnd: number; wakes: number; byPattern: { pattern: AppPattern; devices: number; stuck: number }[] } & Percentiles;
  /**
   * Devices never stuck whose session was dropped and replaced within their first wake after the
   * crash (e.g. the CoAP give-up of a device awake long enough): how long that wake took to heal.
   */
  healedInFirstWake: Percentiles & { devices: number };
  /** What ended the lost session, per mechanism (the firmware's discard reason; 'none': nothing to heal). */
  heals: { mechanism: string; devices: number; firstAtMs: number; lastAtMs: number }[];
  events: { published: number; delivered: number; duplicated: number; lost: number; pending: number };
  /**
   * Bytes on the air (both ways) per device-day: stuck devices while stuck vs sleepy devices while
   * healthy; `elevated`: stuck devices whose own bytes per day while stuck exceed ELEVATED_USAGE ×
   * their own bytes per day while healthy (the status page: "only a few had elevated data usage").
   */
  bytes: {
    perStuckDeviceDay: number | null; perHealthySleepyDeviceDay: number; ratio: number | null;
    /** The same per wake: what a replay shorter than a day (the live hour, whose wake intervals are compressed) reports. */
    perStuckWake: number | null; perHealthySleepyWake: number; wakeRatio: number | null;
    /** The unit the text and the report show: 'device-day' for a replay of a day or more, else 'wake'. */
    unit: 'device-day' | 'wake';
    elevated: number; elevatedByPattern: Partial<Record<AppPattern, number>>;
  };
  /**
   * The alert rules of docs/protocol.md §10, evaluated on the cloud's counters. `inCloud`: the
   * profile's cloud had the rule (ours); the 2019 cloud had none, so there it only "would have fired".
   */
  alarms: { rule: string; firedAtMs: number | null; afterCrashMs: number | null; inCloud: boolean }[];
  handshakes: number;
  cloudInternalErrors: number;
  series: {
    /** The step of the series (an hour for a replay of days; seriesStepMs). */
    stepMs: number;
    /** Per step (at its end): devices stuck, and the share of the fleet not stuck. */
    stuck: number[];
    healthyShare: number[];
    /** Per step: webhook deliveries, undecryptable records, heals sent. */
    deliveriesPerStep: number[];
    undecryptablePerStep: number[];
    healsSentPerStep: number[];
    /** Per day: bytes on the air per device. */
    bytesPerDeviceDay: number[];
  };
  verdict: string;
  trace: TracedWake[] | null;
}

export interface FleetResult {
  options: Omit<FleetOptions, 'workers'> & { workers: number };
  engine: string;
  /** Wall time of the replay (all profiles), wakes simulated, and their rate. */
  wallMs: number;
  wakes: number;
  wakesPerSecond: number;
  timeline: { atMs: number; label: string }[];
  /** The status page's own counts (not scaled: see statusPage). */
  reportedPoints: { atMs: number; stuck: number; label: string }[];
  statusPage: StatusPageComparison | null;
  profiles: ProfileSummary[];
  traceDevice: string | null;
}

function percentiles(values: number[]): Percentiles {
  if (values.length === 0) return { p50Ms: 0, p99Ms: 0, maxMs: 0 };
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
  return { p50Ms: at(0.5), p99Ms: at(0.99), maxMs: s[s.length - 1] };
}

export function timelineEvents(t: Timeline, days: number): { atMs: number; label: string }[] {
  const end = days * DAY_MS;
  return [
    { atMs: t.crashAtMs, label: 'session cache (Redis) crashes, restarts empty' },
    { atMs: t.customerReportAtMs, label: 'a customer reports missing webhooks' },
    ...t.rollout.map((s) => ({ atMs: s.atMs, label: `malformed-datagram ${s.label} (${Math.round(s.share * 100)}% of devices; 2019 cloud: legacy, fixed)` })),
    { atMs: t.inlineHealAtMs, label: `the heal answered inline by the front end (before: ${t.healDelayMs / 1000} s later)` },
    ...(t.cacheBackAfterMs !== undefined ? [{ atMs: t.crashAtMs + t.cacheBackAfterMs, label: 'what-if: the session cache comes back with its data' }] : []),
  ].sort((a, b) => a.atMs - b.atMs).filter((e) => e.atMs < end);
}

export function summarizeProfile(p: PartitionResult, o: Pick<FleetOptions, 'days' | 'timeline'>): ProfileSummary {
  const end = endMs(o);
  const crash = o.timeline.crashAtMs;
  const devs = p.devices;
  const stuckDevs = devs.filter((d) => d.stuckWakes > 0);
  const stuckDuration = (d: DeviceOutcome): number => (d.healedAtMs ?? end) - d.firstWakeAfterCrashMs!;
  const woke = devs.filter((d) => d.firstWakeAfterCrashMs !== null);

  const heals = new Map<string, { devices: number; firstAtMs: number; lastAtMs: number }>();
  for (const d of woke) {
    if (d.healedAtMs === null) continue;
    const m = d.healedBy ?? 'none';
    const h = heals.get(m) ?? { devices: 0, firstAtMs: Infinity, lastAtMs: -Infinity };
    h.devices++;
    h.firstAtMs = Math.min(h.firstAtMs, d.healedAtMs);
    h.lastAtMs = Math.max(h.lastAtMs, d.healedAtMs);
    heals.set(m, h);
  }

  const stepMs = p.stepMs;
  const hours = Math.ceil(end / stepMs);
  const stuckDiff = new Array(hours + 2).fill(0);
  for (const d of stuckDevs) {
    const from = Math.ceil(d.firstWakeAfterCrashMs! / stepMs);
    // Still stuck: counted to the end of the last step (hours + 1 is past it).
    const to = d.healedAtMs === null ? hours + 1 : Math.ceil(d.healedAtMs / stepMs);
    if (from < to) {
      stuckDiff[Math.min(from, hours)]++;
      stuckDiff[to]--;
    }
  }
  // stuck[h]: devices stuck at the end of step h.
  const stuckSeries: number[] = [];
  let running = 0;
  for (let h = 0; h < hours; h++) {
    running += stuckDiff[h + 1];
    stuckSeries.push(running);
  }

  const sleepy = devs.filter((d) => d.kind === 'sleepy');
  const stuckDays = stuckDevs.reduce((n, d) => n + stuckDuration(d) / DAY_MS, 0);
  const stuckBytes = stuckDevs.reduce((n, d) => n + d.bytesStuck, 0);
  const healthySleepyBytes = sleepy.reduce((n, d) => n + d.bytesUp + d.bytesDown - d.bytesStuck, 0);
  const healthySleepyDays = sleepy.reduce((n, d) => n + (end - (d.stuckWakes > 0 ? stuckDuration(d) : 0)) / DAY_MS, 0);
  const perStuck = stuckDays > 0 ? stuckBytes / stuckDays : null;
  const stuckWakes = sum(stuckDevs, (d) => d.stuckWakes);
  const healthySleepyWakes = sum(sleepy, (d) => d.wakes - d.stuckWakes);
  const perStuckWake = stuckWakes > 0 ? stuckBytes / stuckWakes : null;
  const perHealthyWake = healthySleepyWakes > 0 ? healthySleepyBytes / healthySleepyWakes : 0;
  const elevatedByPattern: Partial<Record<AppPattern, number>> = {};
  let elevated = 0;
  for (const d of stuckDevs) {
    const stuckMs = stuckDuration(d);
    const healthyMs = end - stuckMs;
    if (stuckMs <= 0 || healthyMs <= 0) continue;
    const own = (d.bytesUp + d.bytesDown - d.bytesStuck) / healthyMs;
    if (own > 0 && d.bytesStuck / stuckMs > ELEVATED_USAGE * own) {
      elevated++;
      elevatedByPattern[d.pattern] = (elevatedByPattern[d.pattern] ?? 0) + 1;
    }
  }
  const perHealthy = healthySleepyDays > 0 ? healthySleepyBytes / healthySleepyDays : 0;

  const events = {
    published: sum(devs, (d) => d.published),
    delivered: sum(devs, (d) => d.delivered),
    duplicated: sum(devs, (d) => d.duplicates),
    lost: sum(devs, (d) => d.lost),
    pending: sum(devs, (d) => d.pending),
  };

  const lostMinute = sessionsLostMinute(p.undecryptablePerMinute, p.datagramsInPerMinute);
  const alarm = (rule: string, minute: number): ProfileSummary['alarms'][number] => {
    const at = minute >= 0 ? minute * 60_000 : null;
    return { rule, firedAtMs: at, afterCrashMs: at === null ? null : at - crash, inCloud: cloudOf(p.profile) === 'ours' };
  };
  const alarms = [alarm(ALERT_RULES.sessionsLost.name, lostMinute), alarm(ALERT_RULES.deviceStuck.name, p.deviceStuckAlertMinute)];

  const summary: ProfileSummary = {
    profile: p.profile,
    title: PROFILE_TITLES[p.profile],
    devices: devs.length,
    sleepy: sleepy.length,
    wakes: p.wakes,
    stuck: {
      devices: stuckDevs.length,
      sleepy: stuckDevs.filter((d) => d.kind === 'sleepy').length,
      share: devs.length ? stuckDevs.length / devs.length : 0,
      stillStuckAtEnd: stuckDevs.filter((d) => d.healedAtMs === null).length,
      wakes: sum(stuckDevs, (d) => d.stuckWakes),
      byPattern: APP_PATTERNS.map((pattern) => {
        const of = devs.filter((d) => d.pattern === pattern);
        return { pattern, devices: of.length, stuck: of.filter((d) => d.stuckWakes > 0).length };
      }).filter((x) => x.devices > 0),
      ...percentiles(stuckDevs.map(stuckDuration)),
    },
    healedInFirstWake: (() => {
      const first = woke.filter((d) => d.stuckWakes === 0 && d.healedAtMs !== null && d.healedBy !== 'none');
      return { devices: first.length, ...percentiles(first.map((d) => d.healedAtMs! - d.firstWakeAfterCrashMs!)) };
    })(),
    heals: [...heals].map(([mechanism, h]) => ({ mechanism, ...h })).sort((a, b) => b.devices - a.devices),
    events,
    bytes: { perStuckDeviceDay: perStuck, perHealthySleepyDeviceDay: perHealthy, ratio: perStuck === null || perHealthy === 0 ? null : perStuck / perHealthy,
      perStuckWake, perHealthySleepyWake: perHealthyWake, wakeRatio: perStuckWake === null || perHealthyWake === 0 ? null : perStuckWake / perHealthyWake,
      unit: end >= DAY_MS ? 'device-day' : 'wake', elevated, elevatedByPattern },
    alarms,
    handshakes: sum(devs, (d) => d.handshakes),
    cloudInternalErrors: p.cloudInternalErrors,
    series: {
      stuck: stuckSeries,
      healthyShare: stuckSeries.map((s) => (devs.length ? 1 - s / devs.length : 1)),
      stepMs,
      deliveriesPerStep: p.deliveriesPerStep,
      undecryptablePerStep: p.undecryptablePerStep,
      healsSentPerStep: p.healsSentPerStep,
      // A partial last day is scaled to a whole one.
      bytesPerDeviceDay: p.bytesPerDay.map((b, day) => (devs.length ? b / devs.length / Math.min(1, (end - day * DAY_MS) / DAY_MS) : 0)),
    },
    verdict: '',
    trace: p.trace,
  };
  summary.verdict = verdictOf(summary);
  return summary;
}

/**
 * Bytes stuck vs healthy in the unit the replay supports: per device-day for a replay of a day or
 * more; per wake for a shorter one (the live hour: its wake intervals are compressed to minutes, so
 * a "device-day" scaled from it says nothing about a day of the real fleet).
 */
export function bytesShown(p: ProfileSummary): { unit: string; stuck: number | null; healthy: number; ratio: number | null } {
  const b = p.bytes;
  return b.unit === 'wake'
    ? { unit: 'wake', stuck: b.perStuckWake, healthy: b.perHealthySleepyWake, ratio: b.wakeRatio }
    : { unit: 'device-day', stuck: b.perStuckDeviceDay, healthy: b.perHealthySleepyDeviceDay, ratio: b.ratio };
}

/** First minute at which SleepyCloudSessionsLost holds over its 10-minute window, or -1. */
export function sessionsLostMinute(undecryptable: number[], datagramsIn: number[]): number {
  const { windowMinutes, minRecords, shareOfDatagrams } = ALERT_RULES.sessionsLost;
  let u = 0;
  let d = 0;
  for (let m = 0; m < undecryptable.length; m++) {
    u += undecryptable[m];
    d += datagramsIn[m];
    if (m >= windowMinutes) {
      u -= undecryptable[m - windowMinutes];
      d -= datagramsIn[m - windowMinutes];
    }
    if (u > minRecords && u > shareOfDatagrams * d) return m;
  }
  return -1;
}

function sum<T>(xs: T[], f: (x: T) => number): number {
  let n = 0;
  for (const x of xs) n += f(x);
  return n;
}

/** Human duration: "45 s", "3.2 h", "5.9 d". */
export function dur(ms: number): string {
  if (ms < 90_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 90 * 60_000) return `${Math.round(ms / 60_000)} min`;
  if (ms < 36 * HOUR_MS) return `${(ms / HOUR_MS).toFixed(1)} h`;
  return `${(ms / DAY_MS).toFixed(1)} d`;
}

/** The verdict, from the numbers (not from the profile's name). */
export function verdictOf(s: ProfileSummary): string {
  const e = s.events;
  const n = (x: number, one: string, many: string): string => `${x.toLocaleString('en-US')} ${x === 1 ? one : many}`;
  const lost = e.lost === 0 ? 'no event lost' : `${n(e.lost, 'event', 'events')} lost`;
  const mechanisms = s.heals.filter((h) => h.mechanism !== 'none').map((h) => `${h.mechanism} ${h.devices}`).join(', ');
  if (s.stuck.devices === 0) return `every device healed on its first wake after the crash (${mechanisms || 'nothing to heal'}); ${lost}`;
  const still = s.stuck.stillStuckAtEnd ? `, ${s.stuck.stillStuckAtEnd.toLocaleString('en-US')} still stuck at the end` : '';
  return `${n(s.stuck.devices, 'device', 'devices')} stuck (p50 ${dur(s.stuck.p50Ms)}, max ${dur(s.stuck.maxMs)}${still}); healed by ${mechanisms || 'nothing'}; ${lost}`;
}

export function summarizeFleet(parts: Map<Profile, PartitionResult>, o: FleetOptions, engine: string, wallMs: number, traceDevice: string | null): FleetResult {
  const profiles = o.profiles.map((p) => summarizeProfile(parts.get(p)!, o));
  const wakes = profiles.reduce((n, p) => n + p.wakes, 0);
  return {
    options: o,
    engine,
    wallMs,
    wakes,
    wakesPerSecond: wallMs > 0 ? (wakes * 1000) / wallMs : 0,
    timeline: timelineEvents(o.timeline, o.days),
    reportedPoints: REPORTED_POINTS.map((r) => ({ ...r })),
    statusPage: compareWithStatusPage(profiles, parts.get('legacy')?.devices ?? null, o),
    profiles,
    traceDevice,
  };
}

export { calendar };
