/**
 * The live mode's defaults: the May 2019 replay compressed to one virtual hour, so ~100 devices
 * per profile run over real UDP, a real cloud process and a real Redis in about a minute of wall
 * time. Wake intervals shrink from hours to minutes; awake times stay as they are, because the
 * firmware's own timers (CoAP give-up 60–93 s, sleep waits of 15/30 s) are what the verdicts rest
 * on. The same options run in-process (runFleet) give the same verdicts (test/host/fleet-live.test.ts).
 */
import { ALWAYS_CONNECTED_AWAKE_MS, DAY_MS, DEFAULT_FLEET, type DeviceSchedule, type FleetOptions, type Timeline } from '../fleet/spec.ts';

const MIN = 60_000;

export const LIVE_SCHEDULE: DeviceSchedule = {
  sleepyWakeEveryMs: [2 * MIN, 5 * MIN],
  // One hour has no room for devices that wake every few days, nor for update windows of minutes
  // (their next wake would come after the heal): the live fleet's sleepy devices publish and sleep.
  infrequentShare: 0,
  infrequentWakeEveryMs: [2 * MIN, 5 * MIN],
  sleepyAwakeMs: [6000, 30_000],
  quickSleeperShare: 0.04,
  quickAwakeMs: [1500, 4500],
  updateWindowShare: 0,
  updateWindowAwakeMs: [30_000, 300_000],
  alwaysConnectedEveryMs: [4 * MIN, 8 * MIN],
  alwaysConnectedAwakeMs: ALWAYS_CONNECTED_AWAKE_MS,
};

/**
 * Crash at 0:15 (every device has woken before it), the heal for everyone at 0:40 (one step: one
 * cloud flag, after a fixed device's 4th wake after the crash at the latest), answered inline from
 * 0:50, end at 1:00.
 */
export const LIVE_TIMELINE: Timeline = {
  crashAtMs: 15 * MIN,
  customerReportAtMs: 25 * MIN,
  rollout: [{ atMs: 40 * MIN, share: 1, label: 'heal for every device at once (live: the front ends restart with it)' }],
  inlineHealAtMs: 50 * MIN,
  healDelayMs: 5000,
};

export const LIVE_FLEET: FleetOptions = {
  ...DEFAULT_FLEET,
  devices: 100,
  days: (60 * MIN) / DAY_MS,
  timeline: LIVE_TIMELINE,
  schedule: LIVE_SCHEDULE,
};

/** Virtual ms per wall ms: one virtual hour in a minute. */
export const LIVE_SPEED = 60;

/** One UDP socket per device and profile: beyond this the machine, not the replay, is what is measured. */
export const LIVE_MAX_DEVICES = 1000;
