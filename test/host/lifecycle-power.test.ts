// Power loss: a scripted lifecycle (handshake, 24 sleep/wake cycles, a cache wipe and its heal) is
// cut at every byte of every persisted write. Every boot must find the old record or the new one,
// never a torn one, and no (key, nonce) pair may ever be sent twice, also after a cut.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { V8Engine } from '../../host/engines/v8.ts';
import { World } from '../../host/sim/world.ts';
import { startWakeCycle } from '../../host/sim/wake-cycle.ts';
import { FirmwareClient, REGION_BYTES, type StoreWrite } from '../../host/session-abi.ts';
import { readFirmware } from '../../host/firmware.ts';
import { parseDatagram } from './dtls-ref.ts';
import { SERVER_CID_BYTES } from '../../host/cloud/wire.ts';
import { SLOT_AT, SLOT_BYTES, newestSlot, readSlot } from './fixtures/persisted.ts';

const MIN = 60_000;
const newest = newestSlot;

function applied(image: Uint8Array, w: StoreWrite): Uint8Array {
  const img = Uint8Array.from(image);
  img.set(w.bytes, w.offset);
  return img;
}

/**
 * (key, nonce) identities of the protected records in a datagram: (server CID, epoch, seq). The
 * device's records carry the CID the cloud issued (SERVER_CID_BYTES, its config): the split is
 * strict, so a wrong length throws instead of reading a record length from inside the CID.
 */
function nonces(d: Uint8Array): string[] {
  return parseDatagram(d, SERVER_CID_BYTES).filter((r) => r.epoch > 0).map((r) => `${r.cid.toString('hex')}/${r.epoch}/${r.seq}`);
}

describe('power loss during persisted writes', () => {
  it('every cut at every byte boots to the old or the new record, and no nonce is ever reused', async () => {
    const world = new World({ seed: 'power-cut' });
    const [device] = await world.addDevices([{ id: 'dev-pc', identity: 'id-pc', profile: 'default', engine: new V8Engine() }]);
    // One ordered history of what reached flash and what left on the radio.
    const history: ({ kind: 'write'; w: StoreWrite } | { kind: 'send'; d: Uint8Array })[] = [];
    for (const w of device.board.memory.log) history.push({ kind: 'write', w });
    const apply = device.board.memory.apply.bind(device.board.memory);
    device.board.memory.apply = (w) => {
      apply(w);
      history.push({ kind: 'write', w: { offset: w.offset, bytes: Uint8Array.from(w.bytes) } });
    };
    const send = device.opts.send;
    device.opts.send = (d) => {
      history.push({ kind: 'send', d: Uint8Array.from(d) });
      send(d);
    };
    let wakes = 0;
    startWakeCycle(world, device, { wakeEveryMs: 15 * MIN, appAwakeMs: 2000, publishEveryWake: true, beforeWake: () => wakes++ }, 0);
    await world.runUntil(10 * 15 * MIN + MIN);
    await world.store.wipe();
    await world.runUntil(25 * 15 * MIN + MIN);
    assert.ok(wakes >= 25, `${wakes} wakes`);
    assert.ok(device.events.some((e) => e.event.type === 'session-discarded' && e.event.reason === 'reset-token'), 'the heal happened');

    // No (key, nonce) pair twice in the run itself.
    const sent = history.filter((h) => h.kind === 'send').flatMap((h) => nonces((h as { d: Uint8Array }).d));
    assert.equal(new Set(sent).size, sent.length, 'nonce reused in the uncut run');

    const probe = new FirmwareClient(await new V8Engine().load(readFirmware()));
    const heapBefore = probe.m.call('heap_offset');
    let image = new Uint8Array(REGION_BYTES).fill(0xff);
    const seen = new Set<string>();
    let writes = 0, boots = 0, continuations = 0;
    for (const h of history) {
      if (h.kind === 'send') {
        for (const n of nonces(h.d)) seen.add(n);
        continue;
      }
      const w = h.w;
      writes++;
      const before = newest(image);
      for (let cut = 0; cut <= w.bytes.length; cut++) {
        const img = Uint8Array.from(image);
        img.set(w.bytes.subarray(0, cut), w.offset);
        probe.seed(Buffer.alloc(32, cut & 0xff));
        if (w.offset === 0) {
          // The factory write of the credentials: until its CRC (bytes 184..187) is on flash
          // there is nothing to boot.
          if (cut < 188) assert.throws(() => probe.boot(0, img), /no valid credentials/, `creds cut at ${cut} of ${w.bytes.length}`);
          continue;
        }
        const expected = newest(img);
        if (cut < w.bytes.length) {
          // The remaining old bytes may happen to equal the new ones: then the slot IS the new record.
          const whole = Buffer.from(img.subarray(w.offset, w.offset + w.bytes.length)).equals(Buffer.from(w.bytes));
          assert.deepEqual(expected, whole ? newest(applied(image, w)) : before,
            `write ${writes}: a torn slot validated at byte ${cut}`);
        }
        const state = probe.boot(world.nowMs, img);
        boots++;
        const first = probe.pollStore();
        if (!first) {
          // Nothing changed at boot: only possible when there was no session to restore.
          assert.equal(state, 'handshaking');
          assert.ok(expected && !expected.hasSession, `write ${writes} cut ${cut}: boot wrote nothing`);
        } else {
          const record = readSlot(first.bytes);
          assert.ok(record, 'boot wrote a valid slot');
          const bootedFrom = SLOT_AT.find((at) => expected !== null && readSlot(img.subarray(at, at + SLOT_BYTES))?.generation === expected.generation);
          assert.notEqual(first.offset, bootedFrom, 'boot never overwrites the record it booted from');
          if (expected?.hasSession && state === 'resumed') {
            assert.equal(record.keys, expected.keys, 'restored keys are the newest valid record');
            assert.equal(record.created, expected.created);
          } else {
            assert.equal(state, 'handshaking');
            assert.equal(record.hasSession, false);
          }
          if (expected) assert.equal(record.outbox, expected.outbox, 'the outbox survives');
        }
        // Continue after a few of the cuts: what the device sends must use fresh nonces.
        if (state === 'resumed' && (cut === 0 || cut === w.bytes.length >> 1 || cut === w.bytes.length)) {
          for (let s = probe.pollStore(); s; s = probe.pollStore());
          probe.publish(world.nowMs, 'after-cut', Buffer.from('x'));
          for (const d of probe.drainTransmit()) {
            for (const n of nonces(d)) assert.ok(!seen.has(n), `write ${writes} cut at ${cut}: nonce ${n} reused`);
          }
          continuations++;
        }
        while (probe.pollStore());
        probe.drainTransmit();
        while (probe.pollEvent());
      }
      image.set(w.bytes, w.offset);
    }
    assert.ok(writes > 40, `${writes} writes`);
    assert.ok(boots > 20_000, `${boots} boots`);
    assert.ok(continuations > 30, `${continuations} continuations`);
    // Tens of thousands of boots, restores, publishes and persists later: not one allocation.
    assert.equal(probe.m.call('heap_offset'), heapBefore);
  });
});
