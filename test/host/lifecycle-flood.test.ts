// Spoofed floods against a `default` device, and keys destroyed before sleep (V8, cloud in process).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SLOT_MAGIC } from './fixtures/persisted.ts';
import crypto from 'node:crypto';
import { V8Engine } from '../../host/engines/v8.ts';
import { World } from '../../host/sim/world.ts';
import { deviceHandle } from '../../host/cloud/devices.ts';
import type { Device } from '../../host/device.ts';
import { contains } from './dtls-ref.ts';

const FLOOD = 10_000;

async function awakeDevice(seed: string): Promise<{ world: World; device: Device; downlink: Uint8Array[] }> {
  const world = new World({ seed });
  const [device] = await world.addDevices([{ id: 'dev-flood', identity: 'id-flood', profile: 'default', engine: new V8Engine() }]);
  const downlink: Uint8Array[] = [];
  const receive = device.receive.bind(device);
  device.receive = (now, d) => {
    downlink.push(Uint8Array.from(d));
    receive(now, d);
  };
  return { world, device, downlink };
}

/** Datagrams an attacker who sees the device's traffic (but has no key) can send. */
function spoof(rand: () => number, handle: Buffer, genuine: Uint8Array[]): Buffer {
  const header = (type: number, cid: Buffer | null, len: number) => {
    const h = Buffer.alloc(13 + (cid?.length ?? 0));
    h[0] = type;
    h.writeUInt16BE(0xfefd, 1);
    h.writeUInt16BE(1, 3);
    h.writeUIntBE(Math.floor(rand() * 2 ** 47), 5, 6);
    if (cid) cid.copy(h, 11);
    h.writeUInt16BE(len, 11 + (cid?.length ?? 0));
    return h;
  };
  switch (Math.floor(rand() * 5)) {
    case 0: return crypto.randomBytes(Math.floor(rand() * 200));
    case 1: return Buffer.concat([header(23, null, 64), crypto.randomBytes(16)]); // the 2019 truncated record
    case 2: return Buffer.concat([header(25, handle, 48), crypto.randomBytes(16)]); // truncated, with our CID
    case 3: { // a forged stateless reset: right shape, wrong token
      const body = crypto.randomBytes(16 + Math.floor(rand() * 24));
      return Buffer.concat([header(25, handle, body.length), body]);
    }
    default: return Buffer.from(genuine[Math.floor(rand() * genuine.length)]); // replayed records
  }
}

function seeded(seed: number): () => number {
  let x = seed >>> 0;
  return () => ((x = (Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32);
}

describe('spoofed floods against a default device', () => {
  it(`${FLOOD} spoofed datagrams against an established session lose nothing`, async () => {
    const { world, device, downlink } = await awakeDevice('flood-established');
    await device.wake(0);
    device.publish(0, 'reading', Buffer.from('before'));
    world.armDeviceTimer(device);
    await world.runUntil(5000);
    assert.equal(device.firmware.sessionState, 'confirmed');
    assert.ok(device.firmware.counters().resetTokensReceived >= 1, 'device.firmware.counters().resetTokensReceived >= 1');
    const genuine = downlink.slice();
    const rand = seeded(7);
    const handle = deviceHandle('dev-flood');
    let now = 5000;
    for (let i = 0; i < FLOOD; i++) device.receive(now++, spoof(rand, handle, genuine));
    await world.runUntil(now + 5000);
    const k = device.firmware.counters();
    assert.equal(device.events.filter((e) => e.event.type === 'session-discarded').length, 0, 'session lost');
    assert.equal(device.events.filter((e) => e.event.type === 'handshake-started').length, 1, 'only the first handshake');
    assert.equal(k.resetsAccepted, 0);
    assert.ok(k.hintsIgnored > 1000, `${k.hintsIgnored} truncated records ignored`);
    assert.ok(k.dropAuthFailed > 1000 && k.dropReplayed > 1000, 'forgeries and replays were dropped');
    // and the session still carries events both ways
    device.publish(world.nowMs, 'reading', Buffer.from('after'));
    world.armDeviceTimer(device);
    await world.runUntil(world.nowMs + 5000);
    assert.deepEqual(world.deliveredEvents('dev-flood').sort(), [0, 1]);
  });

  it('against an unconfirmed session, at most one hint-triggered handshake per rate-limit window', async () => {
    const { world, device, downlink } = await awakeDevice('flood-unconfirmed');
    await device.wake(0);
    world.armDeviceTimer(device);
    await world.runUntil(5000);
    while (device.prepareSleep(world.nowMs) > 0) await world.runUntil(world.nowMs + 1000);
    device.sleep();
    const genuine = downlink.slice();
    world.uplinkDown = true; // the device's records never reach the cloud: it stays unconfirmed
    const wakeAt = 15 * 60_000;
    await world.runUntil(wakeAt);
    await device.wake(wakeAt);
    assert.equal(device.firmware.sessionState, 'resumed');
    const windowMs = 10 * 60_000; // truncatedHintWindowMs default
    const rand = seeded(11);
    const handle = deviceHandle('dev-flood');
    const spacingMs = 180; // 10,000 datagrams over 30 minutes: three windows
    let now = wakeAt;
    for (let i = 0; i < FLOOD; i++) {
      now += spacingMs;
      await world.runUntil(now);
      device.tick(now);
      device.receive(now, spoof(rand, handle, genuine));
    }
    const acted = device.events.filter((e) => e.event.type === 'handshake-started' && e.event.reason === 'truncated-record');
    const windows = Math.ceil((now - wakeAt) / windowMs);
    assert.ok(acted.length >= 1, 'the hint is honoured while unconfirmed');
    assert.ok(acted.length <= windows, `${acted.length} hint handshakes in ${windows} windows`);
    for (let i = 1; i < acted.length; i++) assert.ok(acted[i].atMs - acted[i - 1].atMs >= windowMs, 'two hint handshakes in one window');
  });
});

describe('keys destroyed before sleep', () => {
  it('prepare_sleep destroys an expired session in RAM and in both persisted slots', async () => {
    const world = new World({ seed: 'destroy' });
    const [device] = await world.addDevices([{
      id: 'dev-old', identity: 'id-old', profile: 'default', engine: new V8Engine(),
      config: { maxSessionAgeMs: 20 * 60_000 }, // expire after 20 minutes instead of 3 days
    }]);
    await device.wake(0);
    world.armDeviceTimer(device);
    await world.runUntil(5000);
    while (device.prepareSleep(world.nowMs) > 0) await world.runUntil(world.nowMs + 1000);
    device.sleep();
    // The session keys as persisted (slot layout: docs/abi.md).
    const mem = device.board.memory.bytes;
    const slots = [192, 192 + 544].map((at) => Buffer.from(mem.subarray(at, at + 544)));
    const withSession = slots.filter((s) => s.readUInt32LE(0) === SLOT_MAGIC && (s[12] & 1));
    assert.ok(withSession.length >= 1, 'withSession.length >= 1');
    const keys = [0, 16].map((o) => Buffer.from(withSession[0].subarray(20 + o, 36 + o)));
    // Wake while the session is still young (15 min), work until it is older than its limit
    // (21 min), then ask to sleep: prepare_sleep must destroy it before the device sleeps.
    await world.runUntil(15 * 60_000);
    await device.wake(15 * 60_000);
    assert.equal(device.firmware.sessionState, 'resumed');
    world.armDeviceTimer(device);
    await world.runUntil(21 * 60_000);
    let wait = device.prepareSleep(world.nowMs);
    while (wait > 0) {
      await world.runUntil(world.nowMs + wait);
      wait = device.prepareSleep(world.nowMs);
    }
    assert.ok(device.events.some((e) => e.event.type === 'session-discarded' && e.event.reason === 'max-age'), "device.events.some((e) => e.event.type === 'session-discarded' && e.event.reason === 'max-age')");
    const ram = device.firmware.m.memory();
    for (const k of keys) {
      assert.ok(!contains(ram, k), 'key still in RAM');
      assert.ok(!contains(device.board.memory.bytes, k), 'key still in persistent memory');
    }
    device.sleep();
    // Next wake: no session to restore, a fresh handshake.
    await device.wake(40 * 60_000);
    assert.equal(device.firmware.sessionState, 'handshaking');
  });
});
