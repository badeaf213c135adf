/**
 * From the devices' outcomes to what a person reads: per profile, who was stuck and for how long,
 * which heal fired when, what happened to the events, what a stuck device costs on the air, and
 * when the cloud's alert rules (docs/protocol.md §10) would have fired. Also the series the report
 * draws. Pure: the same outcomes give the same summary.
 */
import type { Profile } from '../../session-abi.ts';
import type { DeviceOutcome, PartitionResult, TracedWake } from './outcome.ts';
import { DAY_MS, HOUR_MS, REPORTED_POINTS, calendar, cloudOf, endMs, type FleetOptions, type Timeline } from './spec.ts';

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
  /** Devices with at least one wake after the crash that did not reach the cloud. */
  stuck: { devices: number; sleepy: number; stillStuckAtEnd: number; wakes: number } & Percentiles;
  /** Every device with a wake after the crash: from that wake to the heal (still stuck: to the end). */
  timeToHeal: Percentiles & { devices: number };
  /** What ended the lost session, per mechanism (the firmware's discard reason; 'none': nothing to heal). */
  heals: { mechanism: string; devices: number; firstAtMs: number; lastAtMs: number }[];
  events: { published: number; delivered: number; duplicated: number; lost: number; pending: number };
  /** Bytes on the air (both ways) per device-day: stuck devices while stuck vs sleepy devices while healthy. */
  bytes: { perStuckDeviceDay: number | null; perHealthySleepyDeviceDay: number; ratio: number | null };
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
  reportedPoints: { atMs: number; stuck: number; label: string }[];
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
    ...t.rollout.map((s) => ({ atMs: s.atMs, label: `malformed-datagram ${s.label} (${Math.round(s.share * 100)}% of devices)` })),
    { atMs: t.inlineHealAtMs, label: `the heal answered inline by the front end (before: ${t.healDelayMs / 1000} s later)` },
  ].filter((e) => e.atMs < end);
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
      stillStuckAtEnd: stuckDevs.filter((d) => d.healedAtMs === null).length,
      wakes: sum(stuckDevs, (d) => d.stuckWakes),
      ...percentiles(stuckDevs.map(stuckDuration)),
    },
    timeToHeal: { devices: woke.length, ...percentiles(woke.map((d) => (d.healedAtMs ?? end) - d.firstWakeAfterCrashMs!)) },
    heals: [...heals].map(([mechanism, h]) => ({ mechanism, ...h })).sort((a, b) => b.devices - a.devices),
    events,
    bytes: { perStuckDeviceDay: perStuck, perHealthySleepyDeviceDay: perHealthy, ratio: perStuck === null || perHealthy === 0 ? null : perStuck / perHealthy },
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
    profiles,
    traceDevice,
  };
}

export { calendar };
