// A device that is slow to compute its key exchange still gets a session. A 64 MHz Cortex-M4 under
// wasm3 spends 20–24 s between the cloud's ServerHelloDone and its own ClientKeyExchange flight
// (BENCHMARKS.md, ECDHE wake); slower parts or clocks take longer. Meanwhile the cloud retransmits
// its flight and may give the handshake up; if it drops the handshake before the device's flight
// arrives, the device retries into the same wall forever: stuck, the failure this project exists
// to prevent. The cloud keeps a handshake for handshakeLifetimeMs (60 s by default) from the
// ClientHello with a valid cookie, retransmitting or not (docs/cloud.md).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AbiHarness } from './fixtures/abi-harness.ts';
import { DEFAULT_CONFIG } from '../../host/cloud/core.ts';

async function untilConfirmed(h: AbiHarness, maxVirtualMs: number): Promise<boolean> {
  for (const end = h.nowMs + maxVirtualMs; h.nowMs < end;) {
    await h.converse(1);
    if (h.fw?.sessionState === 'confirmed') return true;
    await h.advance(850);
  }
  return false;
}

describe('a device slow to compute its ECDHE flight (a Cortex-M under an interpreter)', () => {
  // 24 s: the M4 under wasm3; 35 s: past the cloud's last retransmission (1+2+4+8+8 s and 8 s more);
  // 55 s: just inside the 60 s lifetime.
  for (const computeMs of [24_000, 35_000, 55_000]) {
    it(`${computeMs / 1000} s of computation: the handshake completes on the first try and an event is delivered`, async () => {
      const h = new AbiHarness({ seed: `slow-${computeMs}`, profile: 'default', handshakeComputeMs: computeMs });
      await h.provision();
      assert.equal(await h.boot(), 'handshaking');
      assert.ok(await untilConfirmed(h, 5 * 60_000), `no session after 5 min of virtual time (state ${h.fw?.sessionState})`);
      assert.equal(h.fw!.counters().handshakesFailed, 0, 'the first handshake completed');
      await h.publish('t', Buffer.from('slow'));
      await h.converse();
      assert.equal(h.ackedEvents.length, 1, 'the event was ACKed');
      h.check();
    });
  }

  it(`past the lifetime (${DEFAULT_CONFIG.handshakeLifetimeMs / 1000} s): the cloud has forgotten the handshake and the device does not get a session — the limit is documented, not silent`, async () => {
    const h = new AbiHarness({ seed: 'slow-past', profile: 'default', handshakeComputeMs: DEFAULT_CONFIG.handshakeLifetimeMs + 5_000 });
    await h.provision();
    await h.boot();
    assert.equal(await untilConfirmed(h, 3 * 60_000), false);
    assert.ok(h.cloud.stats.get('handshakes', 'timed_out') >= 1, 'the cloud counts the handshakes it gave up (sleepy_cloud_handshakes_total{result="timed_out"})');
  });
});

/**
 * One wake as the Cortex-M4 image's loop runs it (mcu/src/main.c one_wake): publish, then until
 * prepare_sleep says 0 — first ask to sleep once the application's time is up, then run a due
 * timer, then read one datagram (the network delivers in order, with no delay).
 */
async function imageWake(h: AbiHarness, appAwakeMs = 3_000, finishedLost = false): Promise<number> {
  await h.boot();
  const bootedAt = h.nowMs;
  await h.publish('t', Buffer.from('reading'));
  let awakeUntil = h.nowMs + appAwakeMs;
  for (let step = 0; step < 10_000 && h.fw; step++) {
    if (finishedLost && h.fw.state === 'wait-server-finished') {
      h.downlink.length = 0; // the server's Finished, and everything after it, is lost
      h.networkDown = true;
    }
    if (h.nowMs >= awakeUntil) {
      const wait = h.fw.prepareSleep(h.nowMs);
      if (wait <= 0) break;
      awakeUntil = h.nowMs + wait;
      continue;
    }
    const next = h.fw.nextTimeout();
    if (next !== null && h.nowMs >= next) {
      await h.advance(0);
      continue;
    }
    if (h.downlink.length > 0) await h.deliverNextGenuine();
    else await h.advance(Math.max(1, Math.min(100, awakeUntil - h.nowMs)));
  }
  h.powerOff();
  h.networkDown = false;
  return h.nowMs - bootedAt;
}

describe('a slow device that sleeps when its firmware lets it (the awake cap)', () => {
  // The default profile stays awake at most sleepWaitMaxMs (30 s) from boot for a handshake in
  // progress. A device whose computation ends past that cap has sent its flight but not yet heard
  // the server's Finished: sleeping then throws the handshake away, at every wake.
  for (const computeMs of [20_000, 35_000, 50_000]) {
    it(`${computeMs / 1000} s of computation: a session within three wakes`, async () => {
      const h = new AbiHarness({ seed: `slow-sleep-${computeMs}`, profile: 'default', handshakeComputeMs: computeMs });
      await h.provision();
      for (let wake = 0; wake < 3 && h.ackedEvents.length === 0; wake++) {
        await imageWake(h);
        h.nowMs += 15 * 60_000;
      }
      assert.ok(h.deviceEvents.some((e) => e.type === 'connected'), `no session in three wakes; events ${h.deviceEvents.map((e) => e.type).join(',')}`);
      assert.ok(h.ackedEvents.length >= 1, 'an event was delivered');
    });
  }

  it('the extra wait is bounded: a Finished that never comes keeps a 35 s device up 8 s past its flight, once', async () => {
    const h = new AbiHarness({ seed: 'slow-lost-finished', profile: 'default', handshakeComputeMs: 35_000 });
    await h.provision();
    const awakeMs = await imageWake(h, 3_000, true);
    assert.ok(awakeMs >= 35_000 + 8_000 && awakeMs <= 35_000 + 8_000 + 1_000, `awake ${awakeMs} ms: the flight went out at ~35 s, the wait ends 8 s later`);
    assert.equal(h.deviceEvents.some((e) => e.type === 'connected'), false);
  });

  it('legacy and fixed keep Device OS\'s rule: no extra wait past sleepWaitMaxMs', async () => {
    for (const [profile, capMs] of [['fixed', 15_000], ['legacy', 0]] as const) {
      const h = new AbiHarness({ seed: `slow-${profile}`, profile, handshakeComputeMs: 20_000 });
      await h.provision();
      const awakeMs = await imageWake(h, 3_000, true);
      assert.ok(awakeMs <= Math.max(capMs, 20_000 + 1_000), `${profile}: awake ${awakeMs} ms`);
    }
  });
});
