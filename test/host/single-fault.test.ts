// Regression tests for issue 17, items 1, 3, 4 and 5: each failed on the firmware before its fix
// (checked against the build of 27b6655). The device talks to the cloud's core in process through
// fixtures/abi-harness.ts, whose invariants (no (key, nonce) twice on the wire, no destroyed key
// left, every ACKed event delivered) are checked at the end of each test.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AbiHarness, confirmedDevice } from './fixtures/abi-harness.ts';
import { SLOT, newestSlot, readSlot, SLOT_AT, SLOT_BYTES } from './fixtures/persisted.ts';
import type { SessionEvent } from '../../host/session-abi.ts';
import { TEST_WASM, readFirmware } from '../../host/firmware.ts';
import { sealRecord } from './dtls-ref.ts';
import { deviceHandle } from '../../host/cloud/devices.ts';

const CT_APPLICATION_DATA = 23;

function discarded(events: SessionEvent[], reason: string): boolean {
  return events.some((e) => e.type === 'session-discarded' && e.reason === reason);
}

/** A CoAP message (RFC 7252 header only, no token). */
function coap(type: number, code: number, mid: number): Buffer {
  return Buffer.from([0x40 | (type << 4), code, mid >> 8, mid & 0xff]);
}

/** A confirmed device that has published, talked and slept: both slots hold its session. */
async function deviceAfterWakes(seed: string, wakes = 2): Promise<AbiHarness> {
  const h = await confirmedDevice(seed);
  for (let w = 0; w < wakes; w++) {
    await h.publish('t', Buffer.from(`wake-${w}`));
    await h.converse();
    await h.sleepAndWake();
    await h.converse();
  }
  await h.publish('t', Buffer.from('last'));
  await h.converse();
  await h.sleep();
  return h;
}

describe('issue 17.1: one bit flipped in the newest slot (no CRC forged)', () => {
  for (const at of [SLOT.generation, SLOT.writeReserved, SLOT.nextEventSeq, SLOT.outbox + 30, SLOT.crc]) {
    it(`at slot byte ${at}: no (key, nonce) twice, no claimed event number reused, the older slot's keys not resumed`, async () => {
      const h = await deviceAfterWakes(`flip-${at}`);
      // A wake whose first record moved the reservation: the newest slot reserves more than the older.
      assert.equal(await h.boot(), 'resumed');
      await h.publish('t', Buffer.from('sent under the newest slot'));
      h.powerOff();
      const newest = newestSlot(h.memory.bytes)!;
      assert.ok(newest.hasSession, 'newest.hasSession');
      const olderAt = SLOT_AT.find((a) => a !== newest.at)!;
      const older = readSlot(h.memory.bytes.subarray(olderAt, olderAt + SLOT_BYTES))!;
      assert.ok(older.hasSession && older.keys === newest.keys, 'the older slot holds the same keys (the dangerous case)');
      assert.ok(older.writeReserved < newest.writeReserved, 'the older slot reserves less');
      h.memory.bytes[newest.at + at] ^= 0x10;
      const mark = h.deviceEvents.length;
      assert.equal(await h.boot(), 'handshaking');
      assert.ok(discarded(h.deviceEvents.slice(mark), 'persisted-slot-lost'), 'the session of the surviving slot is not resumed');
      assert.equal(h.fw!.counters().persistedSlotLost, 1);
      assert.deepEqual(h.holds(Buffer.from(newest.keys.slice(0, 32), 'hex')), { ram: false, flash: false }, 'the old key is erased everywhere');
      await h.converse();
      await h.publish('t', Buffer.from('after the flip'));
      await h.converse();
      h.check(); // no nonce twice; every ACKed event delivered with its own data
      const next = newestSlot(h.memory.bytes)!;
      assert.equal(next.incarnation, newest.incarnation, 'same event stream: queued events keep their numbers');
      assert.ok(next.nextEventSeq > newest.nextEventSeq, `event numbers continue past the lost slot's (${next.nextEventSeq} > ${newest.nextEventSeq})`);
      const delivered = h.cloudEvents.filter((e) => e.kind === 'event').map((e) => (e as { data: Buffer }).data.toString());
      assert.ok(delivered.includes('after the flip'), 'the new event was delivered, not taken for a duplicate');
    });
  }

  it('a torn write of the newest slot is handled the same way (it cannot be told from rot)', async () => {
    const h = await deviceAfterWakes('torn');
    await h.boot();
    h.armPowerCut(100);
    await h.publish('t', Buffer.from('cut'));
    assert.equal(h.lastStepCut, true);
    const mark = h.deviceEvents.length;
    assert.equal(await h.boot(), 'handshaking');
    assert.ok(discarded(h.deviceEvents.slice(mark), 'persisted-slot-lost'), "discarded(h.deviceEvents.slice(mark), 'persisted-slot-lost')");
    await h.converse();
    h.check();
  });
});

describe('issue 17.3: the persisted read window never lags an authenticated record', () => {
  it('a record from the previous wake replayed at the next one does not confirm the restored session', async () => {
    const h = await confirmedDevice('replay-confirm');
    assert.equal(await h.sleepAndWake(), 'resumed');
    await h.converse();
    assert.equal(h.fw!.sessionState, 'confirmed');
    // After the confirmation: a cloud record that changes nothing else (a NON the device ignores).
    const record = h.sealToDevice(CT_APPLICATION_DATA, coap(1, 0x45, 0x7000), 5000n);
    await h.deliver(record);
    assert.equal(h.fw!.counters().coapNonIgnored, 1);
    await h.sleep();
    await h.wipeCloudCache(); // the cloud lost the session: only an attacker answers now
    h.nowMs += 15 * 60_000;
    assert.equal(await h.boot(), 'resumed');
    await h.deliver(record);
    assert.equal(h.fw!.sessionState, 'resumed', 'the replayed record confirmed the session');
    assert.equal(h.fw!.counters().dropReplayed, 1);
    h.check();
  });
});

describe('issue 17.4: the failed-authentication limit holds as failures arrive', () => {
  /** `n` records under the session's CID whose tag does not verify, packed into datagrams. */
  function forged(h: AbiHarness, n: number, firstSeq: bigint): Buffer[] {
    const out: Buffer[] = [];
    let batch: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      const r = h.sealToDevice(CT_APPLICATION_DATA, coap(0, 1, i & 0xffff), firstSeq + BigInt(i));
      r[r.length - 1] ^= 1;
      batch.push(r);
      if (batch.length === 40) {
        out.push(Buffer.concat(batch));
        batch = [];
      }
    }
    if (batch.length) out.push(Buffer.concat(batch));
    return out;
  }

  it('reaching the limit within one wake discards the session at once; nothing more is answered under the key', async () => {
    const h = await confirmedDevice('auth-limit', { config: { maxFailedAuthPerKey: 50 } });
    const keys = h.sessionKeys();
    const genuine = h.sealToDevice(CT_APPLICATION_DATA, coap(0, 0, 0x7100), 9000n);
    const mark = h.deviceEvents.length;
    for (const d of forged(h, 50, 100n)) await h.deliver(d);
    assert.ok(discarded(h.deviceEvents.slice(mark), 'failed-auth-limit'), 'the limit was not enforced while awake');
    const sentBefore = h.uplink.length;
    await h.deliver(genuine);
    const answered = h.openedUplink().slice(sentBefore).filter((r) => r !== null);
    assert.equal(answered.length, 0, 'a record was answered under the old key');
    assert.deepEqual(h.holds(keys.clientKey), { ram: false, flash: false });
    h.check();
  });

  it('a count persisted under a higher limit retires the key at the next restore once the limit is lower', async () => {
    const config = { maxFailedAuthPerKey: 100 };
    const h = await confirmedDevice('auth-lowered', { config });
    for (const d of forged(h, 5, 100n)) await h.deliver(d);
    await h.sleep(); // the 5 failures are folded into the record at sleep
    config.maxFailedAuthPerKey = 5;
    h.nowMs += 15 * 60_000;
    const mark = h.deviceEvents.length;
    assert.equal(await h.boot(), 'handshaking');
    assert.ok(discarded(h.deviceEvents.slice(mark), 'failed-auth-limit'), "discarded(h.deviceEvents.slice(mark), 'failed-auth-limit')");
  });

  it('failures are persisted as they accumulate: a power cut does not reset the count', async () => {
    const h = await confirmedDevice('auth-persist');
    for (const d of forged(h, 1100, 100n)) await h.deliver(d);
    h.powerOff(); // no prepare_sleep: RAM is lost
    const slot = newestSlot(h.memory.bytes)!;
    const failed = Buffer.from(h.memory.bytes.subarray(slot.at + SLOT.failedAuth, slot.at + SLOT.failedAuth + 4)).readUInt32LE(0);
    assert.ok(failed >= 1024, `persisted failed authentications ${failed} after 1100 forged records`);
  });
});

describe('issue 17.5: re-provisioning a booted module', () => {
  it('leaves neither the old PSK nor the old identity in RAM; a raw connect uses the new credentials', async () => {
    const h = await confirmedDevice('reprovision');
    const oldPsk = Buffer.from(h.psk);
    const newPsk = Buffer.alloc(16, 0x5a);
    const oldIdentity = Buffer.from(h.identity);
    await h.call((fw) => fw.provisionDevice('default', h.id, Buffer.from('new-identity-x'), newPsk));
    const ram = Buffer.from(h.fw!.m.memory());
    assert.equal(ram.indexOf(oldPsk), -1, 'the old PSK is still in RAM');
    assert.equal(ram.indexOf(oldIdentity), -1, 'the old identity is still in RAM');
    const before = h.uplink.length;
    await h.call((fw) => fw.connect(h.nowMs));
    await h.converse();
    const sent = Buffer.concat(h.uplink.slice(before));
    assert.equal(sent.indexOf(oldIdentity), -1, 'the old identity went out');
    assert.notEqual(sent.indexOf(Buffer.from('new-identity-x')), -1, 'the ClientKeyExchange carries the new identity');
    assert.notEqual(h.fw!.state, 'connected', 'a handshake completed with the old PSK');
  });
});

describe("the session's guard over the persisted keys (issue 17, mutation audit)", () => {
  it('a connection ended behind the session (test-only export) has its persisted keys destroyed at the next export', async () => {
    const h = await confirmedDevice('guard', { wasm: readFirmware(TEST_WASM) });
    const keys = h.sessionKeys();
    const mark = h.deviceEvents.length;
    await h.call((fw) => fw.m.call('selftest_end_connection'));
    await h.call((fw) => fw.handleTimeout(h.nowMs)); // any export ends in the session's commit
    assert.ok(discarded(h.deviceEvents.slice(mark), 'closed'), 'the guard did not notice');
    assert.deepEqual(h.holds(keys.clientKey), { ram: false, flash: false });
    assert.equal(h.fw!.sessionState, 'no-session');
    h.check();
  });
});

describe('a 4.09 Conflict to an event: the device numbers went back in time (rollback, two hosts on one flash)', () => {
  it('moves the outbox to a new event stream and replaces the session; the event is delivered under the new numbers', async () => {
    const h = await confirmedDevice('conflict');
    const before = newestSlot(h.memory.bytes)!;
    const oldKey = h.sessionKeys().clientKey;
    await h.publish('t', Buffer.from('reading'));
    const con = h.openedUplink().filter((r) => r && r.type === CT_APPLICATION_DATA && (r.content[0] >> 4 & 3) === 0).at(-1)!;
    const mid = con.content.readUInt16BE(2);
    const token = con.content.subarray(4, 4 + (con.content[0] & 0x0f));
    const conflict = Buffer.concat([Buffer.from([0x60 | token.length, 0x89, mid >> 8, mid & 0xff]), token]);
    const mark = h.deviceEvents.length;
    h.downlink.length = 0; // the cloud's own answer is not delivered
    await h.deliver(h.sealToDevice(CT_APPLICATION_DATA, conflict, 100_000n));
    assert.ok(discarded(h.deviceEvents.slice(mark), 'event-number-conflict'), "discarded(h.deviceEvents.slice(mark), 'event-number-conflict')");
    assert.ok(!h.deviceEvents.slice(mark).some((e) => e.type === 'event-acked'), 'a conflict is not a delivery');
    const after = newestSlot(h.memory.bytes)!;
    assert.notEqual(after.incarnation, before.incarnation, 'a new event stream');
    assert.equal(after.outbox, 1, 'the event stays queued');
    assert.deepEqual(h.holds(oldKey), { ram: false, flash: false });
    await h.converse();
    assert.equal(h.fw!.sessionState, 'confirmed');
    const delivered = h.cloudEvents.filter((e) => e.kind === 'event').map((e) => (e as { incarnation: string | null; data: Buffer }));
    const stream = Buffer.alloc(4);
    stream.writeUInt32LE(after.incarnation); // the option carries the persisted bytes as they are
    assert.ok(delivered.some((e) => e.data.toString() === 'reading' && e.incarnation === stream.toString('hex')), 'delivered under the new stream');
  });
});

describe('found while auditing (issue 17)', () => {
  it("the server's Finished and a close_notify in one datagram: the session does not stay handshaking without a timer", async () => {
    // Two harnesses with one seed make the same handshake: the first one's persisted keys seal a
    // close_notify that the second receives right behind the server's Finished.
    const a = await confirmedDevice('finished-close');
    const keys = a.sessionKeys();
    const b = new AbiHarness({ seed: 'finished-close', profile: 'default' });
    await b.provision();
    await b.boot();
    for (let i = 0; i < 40 && b.fw!.sessionState === 'handshaking'; i++) {
      const d = b.downlink.shift();
      if (!d) {
        await b.advance(150);
        continue;
      }
      const lastFlight = d.includes(20) && d[0] === 20; // ChangeCipherSpec opens the server's last flight
      const close = sealRecord({ type: 21, epoch: 1, seq: 100n, key: keys.serverKey, iv: keys.serverIv, cid: deviceHandle(b.id) }, Buffer.from([1, 0]));
      await b.deliver(lastFlight ? Buffer.concat([d, close]) : d);
      if (lastFlight) break;
    }
    const state = b.fw!.sessionState;
    assert.ok(state !== 'handshaking' || b.fw!.nextTimeout() !== null, `session ${state}, DTLS ${b.fw!.state}, no timer armed`);
    assert.equal(state, 'no-session');
    await b.sleepAndWake();
    await b.converse();
    assert.equal(b.fw!.sessionState, 'confirmed', 'the next wake handshakes again');
    b.check();
  });
});

describe('issue 17.1: keys in a slot that rotted', () => {
  for (const both of [false, true]) {
    it(`are overwritten at the next boot (${both ? 'both slots rotten' : 'the newest slot rotten'})`, async () => {
      const h = await deviceAfterWakes(`rot-keys-${both}`, 1);
      const newest = newestSlot(h.memory.bytes)!;
      const key = Buffer.from(newest.keys.slice(0, 32), 'hex');
      for (const at of both ? SLOT_AT : [newest.at]) h.memory.bytes[at + SLOT.outboxCount + 300] ^= 4;
      assert.equal(await h.boot(), 'handshaking');
      assert.deepEqual(h.holds(key), { ram: false, flash: false }, 'the lost session key is still in flash');
    });
  }
});

describe('rollback within the CoAP exchange lifetime (247 s): an answer must belong to its own request', () => {
  it('the cloud reads a reused message ID with other content as a new request; the reading is delivered', async () => {
    const h = await confirmedDevice('quick-rollback');
    await h.sleep();
    const older = h.memory.snapshot();
    h.nowMs += 5_000;
    await h.boot();
    await h.converse();
    await h.publish('t', Buffer.from('one'));
    await h.converse();
    await h.sleep();
    h.memory.bytes.set(older); // written back seconds later: same next message ID, same event number
    h.nowMs += 5_000;
    await h.boot();
    await h.converse();
    await h.publish('t', Buffer.from('two'));
    // Its records carry sequence numbers the cloud has seen (dropped as replays) until the CoAP
    // give-up's handshake: about a minute.
    for (let i = 0; i < 40; i++) {
      await h.deliverAllGenuine();
      await h.advance(3_000);
    }
    const delivered = h.cloudEvents.filter((e) => e.kind === 'event').map((e) => (e as { data: Buffer }).data.toString());
    assert.deepEqual(delivered.sort(), ['one', 'two'], 'a reading was answered from the cache of another request');
  });

  it('an ACK with the in-flight message ID but another token is not taken for the event', async () => {
    const h = await confirmedDevice('stale-token');
    await h.publish('t', Buffer.from('reading'));
    const con = h.openedUplink().filter((r) => r && r.type === CT_APPLICATION_DATA && (r.content[0] >> 4 & 3) === 0).at(-1)!;
    const mid = con.content.readUInt16BE(2);
    h.downlink.length = 0;
    const mark = h.deviceEvents.length;
    const before = h.fw!.counters().coapStaleIgnored;
    const otherToken = Buffer.from([0, 0, 0, 0]);
    await h.deliver(h.sealToDevice(CT_APPLICATION_DATA, Buffer.concat([Buffer.from([0x64, 0x44, mid >> 8, mid & 0xff]), otherToken]), 100_000n));
    assert.ok(!h.deviceEvents.slice(mark).some((e) => e.type === 'event-acked'), 'taken as the ACK of the event');
    assert.equal(h.fw!.counters().coapStaleIgnored, before + 1);
    assert.equal(newestSlot(h.memory.bytes)!.outbox, 1);
  });
});
