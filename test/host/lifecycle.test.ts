// The session lifecycle against the real cloud core in process, in virtual time (V8 engine):
// the May 2019 cache wipe replayed for the three profiles (the same replay as `npm start`).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_INCIDENT, runIncident, type ProfileResult } from '../../host/sim/incident.ts';

const MIN = 60_000;

function wakesFrom(p: ProfileResult, t: number) {
  return p.wakes.filter((w) => w.atMs >= t);
}

describe('cache wipe (May 2019) against the cloud in process', () => {
  it('default heals on its first wake after the wipe with exactly one handshake; every event reaches the cloud exactly once', async () => {
    const wipeAtMs = 40 * MIN;
    const r = await runIncident({ ...DEFAULT_INCIDENT, seed: 'default-heal', wipeAtMs, malformedAtMs: null, endMs: 160 * MIN });
    const p = r.profiles.find((x) => x.profile === 'default')!;
    const [first, ...later] = wakesFrom(p, wipeAtMs);
    assert.deepEqual(first.events.slice(0, 3).map((e) => e.type), ['resumed', 'session-discarded', 'handshake-started']);
    assert.ok(first.events.some((e) => e.type === 'session-discarded' && e.reason === 'reset-token'), "first.events.some((e) => e.type === 'session-discarded' && e.reason === 'reset-token')");
    assert.equal(first.events.filter((e) => e.type === 'handshake-started').length, 1, 'exactly one handshake');
    assert.equal(later.flatMap((w) => w.events).filter((e) => e.type === 'handshake-started').length, 0);
    assert.deepEqual(p.lost, []);
    assert.equal(p.duplicates, 0);
    assert.equal(p.deliveredOnce, p.published, 'each published event exactly once');
  });

  it('fixed heals within 4 wakes by its use counter; legacy stays stuck until the 2019 malformed datagram', async () => {
    // Why the use counter and not the CoAP give-up: the fixed profile waits at most
    // sleepWaitMaxMs = 15 s before deep sleep, while the first CoAP give-up comes only after
    // 4 s + 8 s + 16 s + 32 s = 60 s (ACK_TIMEOUT 4 s doubling, MAX_RETRANSMIT 3, ×1..1.5). So it
    // sleeps first every time, and the third unconfirmed restore (maxUnconfirmedRestores = 3)
    // makes the fourth wake after the wipe discard the session and handshake.
    const wipeAtMs = 40 * MIN, malformedAtMs = 160 * MIN;
    const r = await runIncident({ ...DEFAULT_INCIDENT, seed: 'fixed-legacy', wipeAtMs, malformedAtMs, endMs: 200 * MIN });
    const fixed = r.profiles.find((x) => x.profile === 'fixed')!;
    const after = wakesFrom(fixed, wipeAtMs);
    const healIndex = after.findIndex((w) => w.events.some((e) => e.type === 'session-discarded'));
    assert.ok(healIndex >= 0, 'fixed never healed');
    assert.ok(healIndex + 1 <= 4, `fixed healed on wake ${healIndex + 1} after the wipe`);
    assert.ok(after[healIndex].events.some((e) => e.type === 'session-discarded' && e.reason === 'unconfirmed-restores'), "after[healIndex].events.some((e) => e.type === 'session-discarded' && e.reason === 'unconfirmed-r...");
    assert.equal(fixed.lost.length, healIndex, 'events of the stuck wakes are lost (Device OS 1.2 kept them in RAM)');

    const legacy = r.profiles.find((x) => x.profile === 'legacy')!;
    const stuck = legacy.wakes.filter((w) => w.atMs >= wipeAtMs && w.atMs < malformedAtMs);
    assert.ok(stuck.length >= 7, `legacy stuck for ${stuck.length} wakes`);
    for (const w of stuck) {
      assert.ok(!w.events.some((e) => e.type === 'handshake-started' || e.type === 'session-discarded'), 'legacy healed on its own');
      assert.equal(w.delivered.length, 0);
    }
    const [healWake] = wakesFrom(legacy, malformedAtMs);
    assert.ok(healWake.events.some((e) => e.type === 'session-discarded' && e.reason === 'truncated-record'),
      'legacy healed by the malformed datagram on its first wake after the rollout');
    assert.ok(healWake.delivered.length > 0, 'healWake.delivered.length > 0');
  });
});
