// Regression tests for issue 9: each one failed on the firmware before the fix it names (checked by
// running it against that build, and kept honest by `npm run test:mutants`, which plants each bug
// again and expects a failure here or in the model-based test). The device talks to the cloud's
// core in process through fixtures/abi-harness.ts, whose invariants (no nonce twice, no destroyed
// key left, one outcome counter per datagram) are checked at the end of every test too.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AbiHarness, resumedDevice, truncatedRecord } from './fixtures/abi-harness.ts';
import { CRED, FLAG, OUTBOX_ENTRY, SLOT, SLOT_AT, newestSlot, resealCreds, resealSlot } from './fixtures/persisted.ts';
import { TestPeer, pump } from './dtls-peer.ts';
import { FirmwareClient, type SessionEvent } from '../../host/session-abi.ts';
import { V8Engine } from '../../host/engines/v8.ts';
import { World } from '../../host/sim/world.ts';
import { TEST_WASM, readFirmware } from '../../host/firmware.ts';

const CT_ALERT = 21;
const CT_APPLICATION_DATA = 23;
const COAP = { CON: 0, NON: 1, ACK: 2, RST: 3 } as const;

function coap(type: number, code: number, mid: number, payload?: Buffer): Buffer {
  const h = Buffer.from([0x40 | (type << 4), code, mid >> 8, mid & 0xff]);
  return payload ? Buffer.concat([h, Buffer.from([0xff]), payload]) : h;
}

/** The message ID of the last CoAP confirmable message the device sent. */
function lastConMid(h: AbiHarness): number {
  const opened = h.openedUplink().filter((r) => r && r.type === CT_APPLICATION_DATA && r.content.length >= 4 && (r.content[0] >> 4 & 3) === COAP.CON);
  const last = opened.at(-1);
  assert.ok(last, 'the device sent no confirmable message');
  return last.content.readUInt16BE(2);
}

function discarded(events: SessionEvent[], reason: string): boolean {
  return events.some((e) => e.type === 'session-discarded' && e.reason === reason);
}

function newEventsSince(h: AbiHarness, from: number): SessionEvent[] {
  return h.deviceEvents.slice(from);
}

describe('issue 9.1: no export bypasses the write reservation', () => {
  for (const op of ['connect', 'close'] as const) {
    it(`${op} after boot destroys the persisted keys; no later wake reuses a (key, sequence) pair`, async () => {
      const h = await resumedDevice(`res-${op}`);
      await h.converse();
      await h.publish('t', Buffer.from('before'));
      await h.converse();
      const old = h.sessionKeys();
      const mark = h.deviceEvents.length;
      await h.call((fw) => (op === 'connect' ? fw.connect(h.nowMs) : fw.close(h.nowMs)));
      assert.ok(discarded(newEventsSince(h, mark), op === 'connect' ? 'reconnect' : 'closed'), "discarded(newEventsSince(h, mark), op === 'connect' ? 'reconnect' : 'closed')");
      assert.deepEqual(h.holds(old.clientKey), { ram: false, flash: false }, 'old key left behind');
      if (op === 'close') {
        // close_notify went out under the old keys before they were destroyed
        assert.deepEqual(h.openedUplink().at(-1), { type: CT_ALERT, content: Buffer.from([1, 0]) });
        assert.equal(h.fw!.sessionState, 'no-session');
      }
      await h.converse();
      for (let wake = 0; wake < 3; wake++) {
        await h.sleepAndWake();
        await h.publish('t', Buffer.from(`after-${wake}`));
        await h.converse();
      }
      h.check(); // decrypts every record the device ever sent with every key it had
      assert.ok(h.ackedEvents.length >= 4, 'h.ackedEvents.length >= 4');
    });
  }

  it('raw-mode credentials and CID cannot be changed under a booted session', async () => {
    const h = await resumedDevice('raw-after-boot');
    assert.equal(await h.call((fw) => Number(fw.m.call('set_connection_id', 0))), -6);
    assert.equal(await h.call((fw) => Number(fw.m.call('provision', 1, 1))), -6);
  });
});

describe('issue 9.3: persisted bytes are checked, not trusted because the CRC matches', () => {
  const cases: [string, number, number][] = [
    ['peer CID length 255', SLOT.peerCidLen, 255],
    ['outbox count 255', SLOT.outboxCount, 255],
    ['outbox name length 255', SLOT.outbox + OUTBOX_ENTRY.nameLen, 255],
    ['outbox data length 255', SLOT.outbox + OUTBOX_ENTRY.dataLen, 255],
    ['unknown flag bits', SLOT.flags, FLAG.session | 0x40],
  ];
  for (const [what, at, value] of cases) {
    it(`a sealed slot with ${what} is refused: fresh handshake, keys erased from both slots, no older record used`, async () => {
      const h = new AbiHarness({ seed: `tamper-${at}`, profile: 'default' });
      await h.provision();
      await h.wakeAndConfirm();
      await h.publish('t', Buffer.from('x'));
      await h.sleep(); // both slots now hold this session (the older one with a lower reservation)
      const keys = h.sessionKeys();
      const n = newestSlot(h.memory.bytes)!;
      if (at === SLOT.outbox + OUTBOX_ENTRY.nameLen || at === SLOT.outbox + OUTBOX_ENTRY.dataLen) h.memory.bytes[n.at + SLOT.outboxCount] = 1;
      h.memory.bytes[n.at + at] = value;
      resealSlot(h.memory.bytes, n.at);
      const mark = h.deviceEvents.length;
      assert.equal(await h.boot(), 'handshaking');
      assert.ok(discarded(newEventsSince(h, mark), 'persisted-invalid'), "discarded(newEventsSince(h, mark), 'persisted-invalid')");
      assert.equal(h.fw!.counters().persistedRefused, 1);
      assert.deepEqual(h.holds(keys.clientKey), { ram: false, flash: false });
      await h.converse();
      assert.equal(h.fw!.sessionState, 'confirmed', 'the device reaches the cloud again');
      h.check();
    });
  }

  it('a refused slot is erased also when the older slot holds no session (nothing else would overwrite it)', async () => {
    const h = new AbiHarness({ seed: 'tamper-older-keyless', profile: 'default' });
    await h.provision();
    await h.wakeAndConfirm();
    await h.sleep();
    const keys = h.sessionKeys();
    const n = newestSlot(h.memory.bytes)!;
    const older = n.at === SLOT_AT[0] ? SLOT_AT[1] : SLOT_AT[0];
    h.memory.bytes.fill(0, older + SLOT.keys, older + SLOT.keys + 40); // a keyless older record, as after a destroy
    h.memory.bytes[older + SLOT.flags] = 0;
    resealSlot(h.memory.bytes, older);
    h.memory.bytes[n.at + SLOT.peerCidLen] = 200;
    resealSlot(h.memory.bytes, n.at);
    assert.equal(await h.boot(), 'handshaking');
    assert.deepEqual(h.holds(keys.clientKey), { ram: false, flash: false });
  });

  for (const [suite, field, value] of [
    ['psk', 'identityLen', 128], ['psk', 'identityLen', 0], ['psk', 'pskLen', 65], ['psk', 'idLen', 49], ['psk', 'profile', 3],
    ['ecdhe', 'identityLen', 1], ['ecdhe', 'pskLen', 32], ['ecdhe', 'idLen', 0], ['ecdhe', 'profile', 3],
  ] as const) {
    it(`${suite} credentials with ${field} = ${value} (CRC valid) are refused; no key leaves`, async () => {
      const h = new AbiHarness({ seed: `creds-${field}-${value}`, profile: 'default', suite });
      await h.provision();
      h.memory.bytes[CRED[field]] = value;
      resealCreds(h.memory.bytes);
      assert.match(await h.boot(), /no valid credentials/);
      assert.equal(h.uplink.length, 0);
    });
  }
});

describe('issue 9.4: queues', () => {
  it('an authenticated record too large for a CoAP message is dropped and counted, and the next one is read', async () => {
    const h = await resumedDevice('rx-too-large');
    await h.converse();
    await h.deliver(h.sealToDevice(CT_APPLICATION_DATA, Buffer.alloc(1100, 0x41), 10_000n));
    assert.equal(h.fw!.counters().dropRxTooLarge, 1);
    const before = h.uplink.length;
    await h.deliver(h.sealToDevice(CT_APPLICATION_DATA, coap(COAP.CON, 0, 0x7777), 10_001n)); // CoAP ping
    const answer = h.openedUplink().slice(-1)[0];
    assert.ok(h.uplink.length > before, 'the device answered the next message');
    assert.equal(answer?.content[0], 0x60, 'an empty ACK'); // ver 1, ACK, no token
    assert.equal(answer?.content.readUInt16BE(2), 0x7777);
  });

  it('boot empties the transmit and receive queues (the same instance booted again sends what a fresh one would)', async () => {
    const h = new AbiHarness({ seed: 'boot-queues', profile: 'default' });
    await h.provision();
    const region = h.memory.snapshot();
    const entropy = Buffer.alloc(48, 7);
    const bootOutput = async (prepare: (fw: FirmwareClient) => void) => {
      const fw = new FirmwareClient(await new V8Engine().load(readFirmware()));
      fw.seed(entropy);
      prepare(fw);
      fw.seed(entropy);
      fw.boot(0, region);
      while (fw.pollStore());
      return fw.drainTransmit().map((d) => Buffer.from(d).toString('hex'));
    };
    const fresh = await bootOutput(() => {});
    const reused = await bootOutput((fw) => {
      fw.provision(Buffer.from('stale'), Buffer.alloc(16, 1));
      fw.connect(0); // a ClientHello left in the transmit queue
    });
    assert.deepEqual(reused, fresh);
  });
});

describe('issue 9.5: re-provisioning', () => {
  it('provision_device erases the old session from both slots at once', async () => {
    const h = new AbiHarness({ seed: 'reprovision', profile: 'default' });
    await h.provision();
    await h.wakeAndConfirm();
    await h.sleep();
    const keys = h.sessionKeys();
    await h.provision('fixed');
    assert.equal(h.holds(keys.clientKey).flash, false, 'old keys still on flash after provisioning');
    assert.equal(await h.boot(), 'handshaking');
    await h.converse();
    h.check();
  });

  it('credentials changed behind the firmware (another tool wrote them): boot refuses and erases the session', async () => {
    const h = new AbiHarness({ seed: 'creds-changed', profile: 'default' });
    await h.provision();
    await h.wakeAndConfirm();
    await h.sleep();
    const keys = h.sessionKeys();
    h.memory.bytes[CRED.identity] ^= 0x20; // a different identity, sealed properly
    resealCreds(h.memory.bytes);
    const mark = h.deviceEvents.length;
    assert.equal(await h.boot(), 'handshaking');
    assert.ok(discarded(newEventsSince(h, mark), 'credentials-changed'), "discarded(newEventsSince(h, mark), 'credentials-changed')");
    assert.deepEqual(h.holds(keys.clientKey), { ram: false, flash: false });
  });

  it('a re-provisioned device starts a new event stream; the cloud takes its events although their numbers repeat', async () => {
    const h = new AbiHarness({ seed: 'reprovision-events', profile: 'default' });
    await h.provision();
    await h.wakeAndConfirm();
    await h.publish('t', Buffer.from('first life'));
    await h.converse();
    const first = newestSlot(h.memory.bytes)!.incarnation;
    await h.sleep();
    await h.provision();
    await h.wakeAndConfirm();
    assert.notEqual(newestSlot(h.memory.bytes)!.incarnation, first);
    assert.equal(await h.publish('t', Buffer.from('second life')), 0, 'numbering restarts');
    await h.converse();
    const delivered = h.cloudEvents.filter((e) => e.kind === 'event').map((e) => (e as { data: Buffer }).data.toString());
    assert.deepEqual(delivered, ['first life', 'second life']);
  });
});

describe('issue 9.6: a genuine confirming record and a forged truncated one in one datagram', () => {
  it('the session the genuine record confirmed is kept', async () => {
    const h = await resumedDevice('confirm-then-hint');
    await h.publish('t', Buffer.from('x')); // the cloud answers with an ACK: the confirming record
    assert.ok(h.downlink.length > 0, 'h.downlink.length > 0');
    const genuine = h.downlink.shift()!;
    const mark = h.deviceEvents.length;
    await h.deliver(Buffer.concat([genuine, truncatedRecord(h.id, 2 ** 40, 200, 20)]));
    const events = newEventsSince(h, mark);
    assert.ok(!discarded(events, 'truncated-record'), 'the forged record destroyed a confirmed session');
    assert.equal(h.fw!.sessionState, 'confirmed');
    assert.equal(h.fw!.counters().handshakesStarted, 0);
  });
});

describe('issue 9.7 and the key limits', () => {
  async function forgedRecords(h: AbiHarness, n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      const r = h.sealToDevice(CT_APPLICATION_DATA, coap(COAP.NON, 0, i), BigInt(50_000 + i));
      r[r.length - 1] ^= 1; // the tag no longer matches
      await h.deliver(r);
    }
  }

  it('prepare_sleep called again after it returned 0 does not count failed authentications twice', async () => {
    const h = await resumedDevice('failed-auth-once', { config: { maxFailedAuthPerKey: 3 } });
    await h.converse();
    await forgedRecords(h, 2);
    for (let i = 0; i < 3; i++) assert.equal(await h.call((fw) => fw.prepareSleep(h.nowMs + 60_000)), 0);
    assert.equal(await h.sleepAndWake(), 'resumed', '2 failures of 3 allowed: the session stays');
  });

  it('failed authentications reaching the limit retire the key as the last one arrives (failed-auth-limit)', async () => {
    const h = await resumedDevice('failed-auth-limit', { config: { maxFailedAuthPerKey: 3 } });
    await h.converse();
    const old = h.sessionKeys();
    const mark = h.deviceEvents.length;
    await forgedRecords(h, 2);
    assert.ok(!discarded(newEventsSince(h, mark), 'failed-auth-limit'), '2 failures of 3 allowed');
    await forgedRecords(h, 1);
    assert.ok(discarded(newEventsSince(h, mark), 'failed-auth-limit'), 'not retired while awake (issue 17.4)');
    assert.equal(h.fw!.sessionState, 'handshaking');
    assert.deepEqual(h.holds(old.clientKey), { ram: false, flash: false });
  });

  it('records sent under one key reaching the limit retire it (record-limit)', async () => {
    const h = await resumedDevice('record-limit', { config: { maxRecordsPerKey: 64 } });
    await h.converse();
    for (let i = 0; i < 70; i++) await h.call((fw) => fw.send(Buffer.from([i])));
    const mark = h.deviceEvents.length;
    await h.sleep();
    assert.ok(discarded(newEventsSince(h, mark), 'record-limit'), "discarded(newEventsSince(h, mark), 'record-limit')");
    assert.equal(await h.boot(), 'handshaking');
  });

  it('the replay window refuses a record 64 or more behind the newest (a jump of ≥ 64)', async () => {
    const h = await resumedDevice('replay-jump');
    await h.converse();
    await h.deliver(h.sealToDevice(CT_APPLICATION_DATA, coap(COAP.NON, 0, 1), 1_000n));
    const c = h.fw!.counters();
    await h.deliver(h.sealToDevice(CT_APPLICATION_DATA, coap(COAP.NON, 0, 2), 900n));
    const d = h.fw!.counters();
    assert.equal(d.dropReplayed - c.dropReplayed, 1);
    assert.equal(d.rxRecordsOk, c.rxRecordsOk);
  });
});

describe('persistence rules', () => {
  it('records beyond the reservation are reserved on flash before they leave (40 raw records, then power lost)', async () => {
    const h = await resumedDevice('reserve-ahead');
    await h.converse();
    for (let i = 0; i < 40; i++) await h.call((fw) => fw.send(Buffer.from([i])));
    h.powerOff(); // no prepare_sleep: what is on flash now is all the next wake has
    assert.equal(await h.boot(), 'resumed');
    await h.publish('t', Buffer.from('after'));
    await h.converse();
    h.check();
  });

  it('a full outbox refuses the seventh event and keeps the six', async () => {
    const h = await resumedDevice('outbox-full');
    const seqs: unknown[] = [];
    for (let i = 0; i < 7; i++) {
      seqs.push(await h.publish('t', Buffer.from(`e${i}`)));
      h.downlink.length = 0; // no ACK arrives
    }
    assert.equal(seqs[6], 'full');
    h.powerOff();
    assert.equal(newestSlot(h.memory.bytes)!.outbox, 6);
    assert.equal(await h.boot(), 'resumed');
    await h.converse(40);
    const delivered = h.cloudEvents.filter((e) => e.kind === 'event').map((e) => (e as { data: Buffer }).data.toString());
    assert.deepEqual(delivered, ['e0', 'e1', 'e2', 'e3', 'e4', 'e5']);
  });

  for (const profile of ['legacy', 'fixed'] as const) {
    it(`${profile}: the 2019 truncated record is fatal even for a confirmed session (as Device OS ${profile === 'legacy' ? '1.1' : '1.2'})`, async () => {
      const h = new AbiHarness({ seed: `fatal-${profile}`, profile });
      await h.provision();
      await h.wakeAndConfirm();
      assert.equal(h.fw!.sessionState, 'confirmed');
      const mark = h.deviceEvents.length;
      await h.deliver(truncatedRecord(h.id, 2 ** 40, 300, 10));
      assert.ok(discarded(newEventsSince(h, mark), 'truncated-record'), "discarded(newEventsSince(h, mark), 'truncated-record')");
    });
  }
});

describe('issue 9.9 and every discard reason', () => {
  it('a CoAP RST for the message in flight destroys the session (coap-rst)', async () => {
    const h = await resumedDevice('coap-rst');
    await h.publish('t', Buffer.from('x'));
    h.downlink.length = 0; // the cloud's answer is lost; the RST below answers instead
    const mark = h.deviceEvents.length;
    await h.deliver(h.sealToDevice(CT_APPLICATION_DATA, coap(COAP.RST, 0, lastConMid(h)), 20_000n));
    assert.ok(discarded(newEventsSince(h, mark), 'coap-rst'), "discarded(newEventsSince(h, mark), 'coap-rst')");
  });

  it('no answer to the retransmitted message gives up and destroys the session (coap-give-up)', async () => {
    const h = await resumedDevice('coap-give-up');
    await h.publish('t', Buffer.from('x'));
    const mark = h.deviceEvents.length;
    for (let t = 0; t < 120 && !discarded(newEventsSince(h, mark), 'coap-give-up'); t++) {
      h.downlink.length = 0; // nothing from the cloud arrives
      await h.advance(1_000);
    }
    assert.ok(discarded(newEventsSince(h, mark), 'coap-give-up'), "discarded(newEventsSince(h, mark), 'coap-give-up')");
    assert.equal(h.fw!.counters().coapGiveUps, 1);
  });

  it('close_notify from the cloud ends the session (peer-closed)', async () => {
    const h = await resumedDevice('peer-closed');
    await h.converse();
    const mark = h.deviceEvents.length;
    await h.deliver(h.sealToDevice(CT_ALERT, Buffer.from([1, 0]), 30_000n));
    assert.ok(discarded(newEventsSince(h, mark), 'peer-closed'), "discarded(newEventsSince(h, mark), 'peer-closed')");
  });

  it('stale ACKs and NON messages are counted', async () => {
    const h = await resumedDevice('coap-counters');
    await h.converse();
    await h.deliver(h.sealToDevice(CT_APPLICATION_DATA, coap(COAP.ACK, 0, 0x1234), 40_000n));
    await h.deliver(h.sealToDevice(CT_APPLICATION_DATA, coap(COAP.NON, 0x02, 0x1235), 40_001n));
    const c = h.fw!.counters();
    assert.equal(c.coapStaleIgnored, 1);
    assert.equal(c.coapNonIgnored, 1);
  });

  it('a datagram longer than the I/O buffer is counted (rxDatagrams, dropDatagramTooLong, datagramsDropped)', async () => {
    const h = await resumedDevice('too-long');
    await h.deliver(new Uint8Array(4096));
    const c = h.fw!.counters();
    assert.equal(c.dropDatagramTooLong, 1);
    assert.equal(c.datagramsDropped, 1);
  });

  it("the reset token's plaintext does not outlive the session it belonged to", async () => {
    const h = new AbiHarness({ seed: 'token-residue', profile: 'default' });
    await h.provision();
    await h.wakeAndConfirm();
    const { resetToken } = h.sessionKeys();
    assert.ok(resetToken.some((b) => b !== 0), 'the cloud issued a token');
    await h.sleep();
    await h.wipeCloudCache();
    await h.boot();
    await h.publish('t', Buffer.from('x'));
    // Deliver only until the reset token has ended the session (before a new token arrives).
    for (let i = 0; i < 8 && !discarded(h.deviceEvents, 'reset-token'); i++) await h.deliverNextGenuine();
    assert.ok(discarded(h.deviceEvents, 'reset-token'), "discarded(h.deviceEvents, 'reset-token')");
    assert.deepEqual(h.holds(resetToken), { ram: false, flash: false });
    // The same wake that received a token (CoAP scratch, the I/O buffer) ends its session.
    await h.converse();
    const second = h.sessionKeys().resetToken;
    assert.ok(second.some((b) => b !== 0) && !second.equals(resetToken), 'a new token came with the new session');
    await h.call((fw) => fw.close(h.nowMs));
    assert.deepEqual(h.holds(second), { ram: false, flash: false });
  });

  it('the truncated-record hint window survives sleep: one hint acted on per window, not one per wake', async () => {
    const h = await resumedDevice('hint-window');
    const hint = () => truncatedRecord(h.id, 2 ** 40, 300, 10);
    let mark = h.deviceEvents.length;
    await h.deliver(hint());
    assert.ok(discarded(newEventsSince(h, mark), 'truncated-record'), 'the first hint is acted on');
    await h.converse();
    assert.equal(h.fw!.sessionState, 'confirmed');
    assert.equal(await h.sleepAndWake(60_000), 'resumed'); // within the 10-minute window
    mark = h.deviceEvents.length;
    await h.deliver(hint());
    const events = newEventsSince(h, mark);
    assert.ok(!discarded(events, 'truncated-record'), 'a second hint in the same window was acted on');
    assert.ok(events.some((e) => e.type === 'hint-ignored'), "events.some((e) => e.type === 'hint-ignored')");
  });

  it('the default profile refuses a server without the extended master secret; legacy accepts it', async () => {
    for (const [profile, expected] of [['default', 'no-extended-master-secret'], ['legacy', null]] as const) {
      const h = new AbiHarness({ seed: `ems-${profile}`, profile, suite: 'psk' });
      await h.provision();
      const fw = new FirmwareClient(await new V8Engine().load(readFirmware()));
      fw.seed(Buffer.alloc(48, 3));
      fw.boot(0, h.memory.snapshot());
      while (fw.pollStore());
      pump(fw, new TestPeer({ psk: h.psk, helloVerify: false, ems: false }));
      const events: SessionEvent[] = [];
      for (let e = fw.pollEvent(); e; e = fw.pollEvent()) events.push(e);
      const failed = events.find((e) => e.type === 'handshake-failed');
      if (expected) assert.deepEqual(failed, { type: 'handshake-failed', error: expected });
      else assert.ok(events.some((e) => e.type === 'connected'), `${profile}: ${JSON.stringify(events)}`);
    }
  });
});

describe('issue 9.8: test-only exports are not in the production module', () => {
  it('build/session.wasm exports no crypto_* or selftest_*; the test build checks its arguments without i32 overflow', async () => {
    const names = WebAssembly.Module.exports(new WebAssembly.Module(Buffer.from(readFirmware()))).map((e) => e.name);
    assert.deepEqual(names.filter((n) => n.startsWith('crypto_') || n.startsWith('selftest')), []);
    const test = await new V8Engine().load(readFirmware(TEST_WASM));
    assert.equal(Number(test.call('crypto_ccm_open', 7, 2 ** 31 - 1, 2 ** 31 - 1, 16)), -2);
    assert.equal(Number(test.call('crypto_ccm_seal', 7, 2 ** 31 - 1, 2 ** 31 - 1, 16)), -2);
    assert.equal(Number(test.call('crypto_tls_prf', 2 ** 31 - 1, 2, 2, 2 ** 31 - 1)), -2);
  });
});

describe('the cookie exchange when the first ClientHello was retransmitted', () => {
  it('a second HelloVerifyRequest answering the first ClientHello starts no second cookie round (the device still connects)', async () => {
    // Found with `sleepy-session device --speed 600`: the retransmitted first ClientHello was
    // answered twice; the second answer moved the client on to a ClientHello the cloud's flight did
    // not answer, and the handshake timed out although nothing was lost.
    const world = new World({ seed: 'hvr', latencyMs: 50 });
    const [device] = await world.addDevices([{
      id: 'dev-hvr', identity: 'id-hvr', profile: 'default', engine: new V8Engine(), config: { handshakeInitialTimeoutMs: 60 },
    }]);
    await device.wake(0);
    world.armDeviceTimer(device);
    await world.runUntil(10_000);
    const types = device.events.map((e) => e.event.type);
    assert.ok(types.includes('connected'), `events: ${types.join(', ')}`);
    assert.ok(!types.includes('handshake-failed'), "!types.includes('handshake-failed')");
    assert.ok(device.firmware.counters().flightRetransmissions >= 1, 'the first ClientHello was retransmitted');
  });
});
