// The session lifecycle against the real cloud core in process, in virtual time (V8 engine):
// the May 2019 cache wipe replayed for the three profiles.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { V8Engine } from '../../host/engines/v8.ts';
import { World } from '../../host/sim/world.ts';
import { startWakeCycle } from '../../host/sim/wake-cycle.ts';
import type { Device } from '../../host/device.ts';
import type { Profile, SessionEvent } from '../../host/session-abi.ts';

const MIN = 60_000;
const WAKE_EVERY_MS = 15 * MIN;
const APP_AWAKE_MS = 3000;

interface Run {
  world: World;
  devices: Record<Profile, Device>;
  /** Session events per device, tagged with the wake they happened in. */
  log: Record<string, { wake: number; atMs: number; event: SessionEvent }[]>;
  wakes: Record<string, number>;
  published: Record<string, number>;
}

async function incident(opts: { wipeAtMs: number; malformedAtMs?: number; endMs: number; seed: string }): Promise<Run> {
  const world = new World({ seed: opts.seed });
  const profiles: Profile[] = ['legacy', 'fixed', 'default'];
  const list = await world.addDevices(profiles.map((p) => ({ id: `dev-${p}`, identity: `id-${p}`, profile: p, engine: new V8Engine() })));
  const run: Run = { world, devices: {} as Run['devices'], log: {}, wakes: {}, published: {} };
  list.forEach((d, i) => {
    const id = d.opts.id;
    run.devices[profiles[i]] = d;
    run.log[id] = [];
    run.wakes[id] = 0;
    run.published[id] = 0;
    d.opts.onEvent = (event, atMs) => run.log[id].push({ wake: run.wakes[id], atMs, event });
    startWakeCycle(world, d, {
      wakeEveryMs: WAKE_EVERY_MS, appAwakeMs: APP_AWAKE_MS, publishEveryWake: true,
      beforeWake: () => {
        run.wakes[id]++;
        run.published[id]++;
      },
    }, i * 1000);
  });
  await world.runUntil(opts.wipeAtMs);
  await world.store.wipe(); // the Redis crash of 2 May 2019: every session key gone
  if (opts.malformedAtMs !== undefined) {
    await world.runUntil(opts.malformedAtMs);
    world.cloud.heal.malformed = true; // the heal rolled out on 7 May
  }
  await world.runUntil(opts.endMs);
  return run;
}

/** The number of the first wake that starts at or after `t`. */
function firstWakeAfter(run: Run, id: string, t: number): number {
  const e = run.log[id].find((x) => x.atMs >= t);
  return e ? e.wake : Infinity;
}

function handshakesIn(run: Run, id: string, wake: number): number {
  return run.log[id].filter((x) => x.wake === wake && x.event.type === 'handshake-started').length;
}

describe('cache wipe (May 2019) against the cloud in process', () => {
  it('default heals on its first wake after the wipe with exactly one handshake; every event reaches the cloud exactly once', async () => {
    const wipeAtMs = 40 * MIN;
    const run = await incident({ wipeAtMs, endMs: 160 * MIN, seed: 'default-heal' });
    const id = 'dev-default';
    const wake = firstWakeAfter(run, id, wipeAtMs);
    const inWake = run.log[id].filter((x) => x.wake === wake).map((x) => x.event.type);
    assert.deepEqual(inWake.slice(0, 3), ['resumed', 'session-discarded', 'handshake-started'], `wake ${wake}: ${inWake}`);
    assert.ok(run.log[id].some((x) => x.wake === wake && x.event.type === 'session-discarded' && x.event.reason === 'reset-token'));
    assert.equal(handshakesIn(run, id, wake), 1);
    // after the heal, no further handshakes
    assert.equal(run.log[id].filter((x) => x.wake > wake && x.event.type === 'handshake-started').length, 0);
    const delivered = run.world.deliveredEvents(id);
    assert.deepEqual([...delivered].sort((a, b) => a - b), Array.from({ length: run.published[id] }, (_, i) => i),
      'each published event exactly once');
  });

  it('fixed heals within 4 wakes by its use counter; legacy stays stuck until the 2019 malformed datagram', async () => {
    // Why the use counter and not the CoAP give-up: the fixed profile waits at most
    // sleepWaitMaxMs = 15 s before deep sleep, while the first CoAP give-up comes only after
    // 4 s + 8 s + 16 s + 32 s = 60 s (ACK_TIMEOUT 4 s doubling, MAX_RETRANSMIT 3, ×1..1.5). So it
    // sleeps first every time, and the third unconfirmed restore (maxUnconfirmedRestores = 3)
    // makes the fourth wake after the wipe discard the session and handshake.
    const wipeAtMs = 40 * MIN, malformedAtMs = 160 * MIN;
    const run = await incident({ wipeAtMs, malformedAtMs, endMs: 200 * MIN, seed: 'fixed-legacy' });
    const fixed = 'dev-fixed';
    const first = firstWakeAfter(run, fixed, wipeAtMs);
    const healed = run.log[fixed].find((x) => x.wake >= first && x.event.type === 'session-discarded');
    assert.ok(healed, 'fixed never healed');
    assert.equal(healed.event.type === 'session-discarded' && healed.event.reason, 'unconfirmed-restores');
    assert.ok(healed.wake - first + 1 <= 4, `fixed healed on wake ${healed.wake - first + 1} after the wipe`);
    assert.equal(run.log[fixed].filter((x) => x.event.type === 'event-dropped').length, 3, 'events of the 3 stuck wakes are lost (Device OS 1.2)');

    const legacy = 'dev-legacy';
    const lFirst = firstWakeAfter(run, legacy, wipeAtMs);
    const beforeHeal = run.log[legacy].filter((x) => x.wake >= lFirst && x.atMs < malformedAtMs);
    assert.ok(beforeHeal.length > 0);
    assert.equal(beforeHeal.filter((x) => x.event.type === 'handshake-started' || x.event.type === 'session-discarded').length, 0,
      'legacy never heals on its own');
    const stuckWakes = new Set(beforeHeal.map((x) => x.wake)).size;
    assert.ok(stuckWakes >= 7, `legacy stuck for ${stuckWakes} wakes`);
    const heal = run.log[legacy].find((x) => x.atMs >= malformedAtMs && x.event.type === 'session-discarded');
    assert.ok(heal && heal.event.type === 'session-discarded' && heal.event.reason === 'truncated-record', 'legacy healed by the malformed datagram');
    assert.equal(heal.wake, firstWakeAfter(run, legacy, malformedAtMs), 'on its first wake after the rollout');
  });
});
