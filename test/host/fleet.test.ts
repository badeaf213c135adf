// The fleet replay (host/sim/fleet): on a small fleet, the verdicts follow the firmware's rules
// (who is stuck follows from awake time against the CoAP give-up), the 2019 firmware meets the 2019
// cloud (no reset tokens; alert rules only "would have fired"), every published event is accounted
// for, and the result does not depend on how many worker threads share the fleet.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runFleet, type FleetRun } from '../../host/sim/fleet/run.ts';
import { DEFAULT_FLEET, FLEET_SCHEDULE, HOUR_MS, deviceSpec, type FleetOptions } from '../../host/sim/fleet/spec.ts';
import type { DeviceOutcome } from '../../host/sim/fleet/outcome.ts';
import { sessionsLostMinute } from '../../host/sim/fleet/summary.ts';
import { describeWake, formatFleet } from '../../host/sim/fleet/format.ts';
import type { Profile } from '../../host/session-abi.ts';
import { wasm3Available } from '../../host/engines/wasm3/index.ts';
import { skipOrFail } from './engines.ts';

const OPTIONS: FleetOptions = { ...DEFAULT_FLEET, devices: 16, sleepyShare: 0.5, seed: 'fleet-test', workers: 2 };
const t = OPTIONS.timeline;

describe('fleet replay of May 2019 (16 devices, 14 days)', () => {
  let run: FleetRun;
  const devs = (p: Profile): DeviceOutcome[] => run.devices.get(p)!;
  const summary = (p: Profile) => run.result.profiles.find((x) => x.profile === p)!;

  before(async () => {
    run = await runFleet(OPTIONS);
  });

  it('has sleepy and always-connected devices, and every device woke after the crash', () => {
    for (const p of OPTIONS.profiles) {
      const d = devs(p);
      assert.equal(d.length, OPTIONS.devices);
      assert.ok(d.some((x) => x.kind === 'sleepy') && d.some((x) => x.kind === 'always-connected'), "d.some((x) => x.kind === 'sleepy') && d.some((x) => x.kind === 'always-connected')");
      for (const x of d) assert.notEqual(x.firstWakeAfterCrashMs, null, `device ${x.index} (${p}) never woke after the crash`);
    }
  });

  it('default: every device heals on its first wake after the crash, no event lost or duplicated', () => {
    for (const x of devs('default')) {
      assert.equal(x.stuckWakes, 0, `device ${x.index}`);
      assert.ok(x.healedAtMs !== null && x.healedAtMs - x.firstWakeAfterCrashMs! < 5 * 60_000, `device ${x.index} healed in its first wake`);
      assert.ok(['reset-token', 'none'].includes(x.healedBy!), `device ${x.index} healed by ${x.healedBy}`);
      assert.equal(x.lost, 0);
      assert.equal(x.duplicates, 0);
    }
    assert.equal(summary('default').stuck.devices, 0);
    assert.match(summary('default').verdict, /every device healed on its first wake after the crash.*no event lost/);
  });

  // Whether a device is stuck is decided by its awake time against the firmware's own CoAP give-up
  // (4 s ACK timeout doubling, 3 retransmissions: 60 s, up to ~93 s with the random factor), not by its class.
  const GIVE_UP_MIN_MS = 60_000;
  const GIVE_UP_MAX_MS = 95_000;
  const beforeRollout = (x: DeviceOutcome, wakes: number) => x.firstWakeAfterCrashMs! + wakes * (x.wakeEveryMs + x.awakeMs) < t.rollout[0].atMs;

  it('fixed: a device asleep before the give-up is stuck at most 3 wakes and healed by the use counter; one awake past it heals in its first wake', () => {
    let short = 0;
    for (const x of devs('fixed')) {
      if (x.awakeMs < GIVE_UP_MIN_MS && beforeRollout(x, 4)) {
        short++;
        assert.equal(x.healedBy, 'unconfirmed-restores', `device ${x.index}`);
        assert.ok(x.stuckWakes >= 1 && x.stuckWakes <= 3, `device ${x.index}: ${x.stuckWakes} stuck wakes`);
      } else if (x.awakeMs >= GIVE_UP_MAX_MS) {
        assert.equal(x.stuckWakes, 0, `device ${x.index} (${x.pattern}, awake ${x.awakeMs} ms)`);
        assert.equal(x.healedBy, 'coap-give-up', `device ${x.index}`);
      }
    }
    assert.ok(short > 0, 'short > 0');
  });

  it('legacy: a device asleep before the give-up stays stuck until the malformed heal reaches it, losing events; one awake past it gives up and heals', () => {
    const firstRollout = t.rollout[0].atMs;
    let short = 0;
    for (const x of devs('legacy')) {
      if (x.awakeMs < GIVE_UP_MIN_MS && beforeRollout(x, 1)) {
        short++;
        assert.equal(x.healedBy, 'truncated-record', `device ${x.index}`);
        assert.ok(x.healedAtMs! >= firstRollout, `device ${x.index} healed before the heal existed`);
        assert.ok(x.lost > 0, `device ${x.index} lost no event`);
        // A device that goes back to sleep within the slow heal's delay is reached only by the May 15 change.
        if (x.awakeMs < t.healDelayMs + 2 * OPTIONS.latencyMs) assert.ok(x.healedAtMs! >= t.inlineHealAtMs, `quick sleeper ${x.index} healed before May 15`);
      } else if (x.awakeMs >= GIVE_UP_MAX_MS) {
        assert.equal(x.healedBy, 'coap-give-up', `device ${x.index}`);
        assert.equal(x.stuckWakes, 0);
      }
    }
    assert.ok(short > 0, 'short > 0');
    assert.ok(summary('legacy').events.lost > 0, "summary('legacy').events.lost > 0");
  });

  it('the stuck share is an output: sleepy devices awake past the give-up are never stuck, those asleep before it are', async () => {
    const base = { ...OPTIONS, devices: 12, days: 3, profiles: ['legacy'] as Profile[] };
    const long = await runFleet({ ...base, schedule: { ...FLEET_SCHEDULE, quickSleeperShare: 0, updateWindowShare: 1, updateWindowAwakeMs: [120_000, 120_000] } });
    const short = await runFleet({ ...base, schedule: { ...FLEET_SCHEDULE, infrequentShare: 0, quickSleeperShare: 0, updateWindowShare: 0 } });
    const l = long.result.profiles[0];
    const sh = short.result.profiles[0];
    assert.equal(l.stuck.devices, 0);
    assert.ok(l.healedInFirstWake.devices === base.devices, 'every device healed by its own give-up in its first wake');
    assert.ok(l.healedInFirstWake.p50Ms >= GIVE_UP_MIN_MS, `${l.healedInFirstWake.p50Ms}`);
    assert.equal(sh.stuck.devices, sh.sleepy);
    assert.ok(sh.stuck.devices > 0, 'sh.stuck.devices > 0');
    assert.equal(sh.stuck.share, sh.stuck.devices / base.devices);
    // The comparison with the status page: counts and the fleet size they imply, never a scaled curve.
    const c = short.result.statusPage!;
    assert.equal(c.impliedFleet, Math.round(500 / sh.stuck.share));
    assert.equal(long.result.statusPage!.impliedFleet, null);
  });

  it('the summary splits stuck devices by application pattern, and "healed in the first wake" counts only devices never stuck', () => {
    for (const p of OPTIONS.profiles) {
      const s = summary(p);
      assert.equal(s.stuck.byPattern.reduce((n, b) => n + b.devices, 0), OPTIONS.devices);
      assert.equal(s.stuck.byPattern.reduce((n, b) => n + b.stuck, 0), s.stuck.devices);
      const first = devs(p).filter((x) => x.stuckWakes === 0 && x.healedAtMs !== null && x.healedBy !== 'none');
      assert.equal(s.healedInFirstWake.devices, first.length, p);
    }
    assert.ok(summary('legacy').stuck.byPattern.find((b) => b.pattern === 'always-connected')!.stuck === 0, "summary('legacy').stuck.byPattern.find((b) => b.pattern === 'always-connected')!.stuck === 0");
  });

  it('every published event is delivered, lost or still queued, and no profile delivers one twice', () => {
    for (const p of OPTIONS.profiles) {
      for (const x of devs(p)) assert.equal(x.delivered + x.lost + x.pending, x.published, `${p} device ${x.index}`);
      const s = summary(p);
      assert.equal(s.events.duplicated, 0, p);
      const perStep = s.series.deliveriesPerStep.reduce((a, b) => a + b, 0);
      assert.equal(perStep, s.events.delivered + s.events.duplicated, `${p}: deliveries per step add up`);
      assert.equal(s.cloudInternalErrors, 0, p);
    }
  });

  it("the DeviceStuck rule would have fired within the hour of the crash for the firmware that gets stuck (2019 had no such rule), never fires for the default", () => {
    for (const p of ['legacy', 'fixed'] as const) {
      const a = summary(p).alarms.find((x) => x.rule === 'SleepyCloudDeviceStuck')!;
      assert.equal(a.inCloud, false);
      assert.ok(a.afterCrashMs !== null && a.afterCrashMs >= 0 && a.afterCrashMs <= HOUR_MS, `${p}: ${a.afterCrashMs}`);
    }
    assert.equal(summary('default').alarms.find((x) => x.rule === 'SleepyCloudDeviceStuck')!.firedAtMs, null);
  });

  it('SleepyCloudSessionsLost fires after the crash where devices stay stuck, and never before the crash', () => {
    for (const p of ['legacy', 'fixed'] as const) {
      const a = summary(p).alarms.find((x) => x.rule === 'SleepyCloudSessionsLost')!;
      assert.ok(a.afterCrashMs !== null && a.afterCrashMs >= 0 && a.afterCrashMs <= 6 * HOUR_MS, `${p}: ${a.afterCrashMs}`);
    }
    // 16 devices that each heal with one undecryptable record never make 6 within 10 minutes.
    const d = summary('default').alarms.find((x) => x.rule === 'SleepyCloudSessionsLost')!;
    assert.ok(d.afterCrashMs === null || d.afterCrashMs >= 0, 'd.afterCrashMs === null || d.afterCrashMs >= 0');
  });

  it('the 2019 cloud for the 2019 firmware: no reset token ever reaches legacy or fixed, a stuck wake gets no answer until the rollout; default meets our cloud', async () => {
    // A sleepy device that sleeps before the CoAP give-up and before the slow heal's delay runs out.
    const sleepy = Array.from({ length: 40 }, (_, i) => deviceSpec(OPTIONS, i)).find((d) => d.kind === 'sleepy' && d.awakeMs < 30_000 && d.awakeMs > 8000 && d.wakeEveryMs < 6 * HOUR_MS)!;
    const r = await runFleet({ ...OPTIONS, devices: sleepy.index + 1, days: 9, workers: 1 }, { traceIndex: sleepy.index });
    const firstRollout = t.rollout[0].atMs;
    for (const p of ['legacy', 'fixed'] as const) {
      const s = r.result.profiles.find((x) => x.profile === p)!;
      const wakes = s.trace!;
      assert.ok(wakes.length > 10, p);
      for (const w of wakes) assert.ok(!w.healsSent.includes('reset-token'), `${p} wake ${w.wake}: the 2019 cloud sent a reset token`);
      // No heal of any kind before the malformed datagram exists.
      const stepMs = s.series.stepMs;
      assert.equal(s.series.healsSentPerStep.slice(0, Math.floor(firstRollout / stepMs)).reduce((a, b) => a + b, 0), 0, `${p}: heals before the rollout`);
      for (const a of s.alarms) assert.equal(a.inCloud, false, `${p}: ${a.rule} is not a rule of the 2019 cloud`);
    }
    // A stuck legacy wake before the rollout: the cloud cannot decrypt and says nothing.
    const legacy = r.result.profiles.find((x) => x.profile === 'legacy')!.trace!;
    const stuck = legacy.filter((w) => w.atMs >= t.crashAtMs && w.atMs < firstRollout);
    assert.ok(stuck.length > 0, 'stuck.length > 0');
    for (const w of stuck) {
      assert.equal(w.datagramsDown, 0, `legacy wake ${w.wake} got an answer`);
      assert.doesNotMatch(describeWake(w), /reset token|heal/);
    }
    assert.ok(legacy.some((w) => w.healsSent.includes('malformed')), 'the malformed datagram reached the legacy device');
    assert.ok(legacy.filter((w) => w.healsSent.includes('malformed')).every((w) => w.atMs >= firstRollout - HOUR_MS), "legacy.filter((w) => w.healsSent.includes('malformed')).every((w) => w.atMs >= firstRollout - HOU...");
    const def = r.result.profiles.find((x) => x.profile === 'default')!;
    assert.ok(def.trace!.some((w) => w.healsSent.includes('reset-token')), 'our cloud sends reset tokens');
    assert.ok(def.trace!.every((w) => !w.healsSent.includes('malformed')), 'our cloud sends no malformed datagram');
    for (const a of def.alarms) assert.equal(a.inCloud, true);
    const text = formatFleet(r.result);
    assert.match(text, /would have fired May 2/);
    assert.match(text, /the 2019 cloud had no such alert rule/);
  });

  it('the SessionsLost rule holds over a sliding 10-minute window: more than 5 records and more than 5 % of the datagrams', () => {
    const z = (n: number) => new Array(n).fill(0);
    const u = z(30);
    const d = z(30).map(() => 100);
    u[3] = 3;
    u[12] = 3; // 6 records, but 9 minutes apart from minute 3 only at minute 12: window 3..12
    assert.equal(sessionsLostMinute(u, d), -1, '6 records are 0.6 % of 1,000 datagrams');
    const d2 = z(30).map(() => 10);
    assert.equal(sessionsLostMinute(u, d2), 12, '6 records > 5 and > 5 % of 100 datagrams at minute 12');
    u[12] = 0;
    u[14] = 3;
    assert.equal(sessionsLostMinute(u, d2), -1, 'minute 3 has left the window when minute 14 comes');
  });

  it('the stuck series counts the stuck devices hour by hour', () => {
    const s = summary('legacy');
    const crashHour = Math.floor(t.crashAtMs / HOUR_MS);
    assert.equal(s.series.stuck[crashHour - 1], 0);
    const peak = Math.max(...s.series.stuck);
    assert.ok(peak > 0 && peak <= s.stuck.devices, 'peak > 0 && peak <= s.stuck.devices');
    assert.equal(s.series.stuck.at(-1), s.stuck.stillStuckAtEnd);
  });

  it('a legacy device that sleeps within the slow heal\'s delay is healed only by the May 15 change', async () => {
    // Find a seed whose first 6 devices include a quick sleeper (4 % of sleepy devices).
    let seed = '';
    let quick = -1;
    for (let k = 0; quick < 0; k++) {
      seed = `quick-${k}`;
      for (let i = 0; i < 6 && quick < 0; i++) {
        const d = deviceSpec({ ...OPTIONS, seed }, i);
        if (d.kind === 'sleepy' && d.awakeMs < t.healDelayMs && d.wakeEveryMs < 6 * HOUR_MS) quick = i;
      }
    }
    const r = await runFleet({ ...OPTIONS, seed, devices: 6, profiles: ['legacy'], workers: 1 });
    const x = r.devices.get('legacy')![quick];
    assert.equal(x.healedBy, 'truncated-record');
    assert.ok(x.healedAtMs! >= t.inlineHealAtMs, `healed ${x.healedAtMs} before the inline heal ${t.inlineHealAtMs}`);
    // ... while the other sleepy devices were healed by the rollout of May 7–8.
    for (const y of r.devices.get('legacy')!) {
      if (y.kind === 'sleepy' && y.awakeMs > t.healDelayMs + 2 * OPTIONS.latencyMs) assert.ok(y.healedAtMs! < t.inlineHealAtMs, `device ${y.index}`);
    }
  });

  it('gives the same result with 1 and 3 workers (devices do not interact through the partition)', async () => {
    const strip = (r: FleetRun) => JSON.stringify({ ...r.result, wallMs: 0, wakesPerSecond: 0, options: { ...r.result.options, workers: 0 } });
    const one = await runFleet({ ...OPTIONS, workers: 1, days: 4 });
    const three = await runFleet({ ...OPTIONS, workers: 3, days: 4 });
    assert.equal(strip(one), strip(three));
    assert.ok(one.result.wakes > 0, 'one.result.wakes > 0');
  });

  it('gives the same result under wasm3 as under V8 (4 devices, 3 days)', async (t) => {
    if (!wasm3Available()) return skipOrFail(t, 'build/wasm3.node not built (npm run build:wasm3; needs cargo)');
    const strip = (r: FleetRun) => JSON.stringify({ ...r.result, wallMs: 0, wakesPerSecond: 0, engine: '', options: { ...r.result.options, engine: 'v8' } });
    const small = { ...OPTIONS, devices: 4, days: 3, workers: 1 };
    const v8 = await runFleet({ ...small, engine: 'v8' });
    const wasm3 = await runFleet({ ...small, engine: 'wasm3' });
    assert.equal(wasm3.result.engine, 'wasm3');
    assert.equal(strip(v8), strip(wasm3));
  });
});
