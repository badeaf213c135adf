// Issue 17, mutation part: an outside mutation audit planted bugs the tests let through. Each test
// here kills one of them (scripts/mutants.mjs plants it again: `npm run test:mutants -- ID`) and
// drives the real firmware through the ABI (fixtures/abi-harness.ts, the cloud's core in process).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AbiHarness, resumedDevice, truncatedRecord } from './fixtures/abi-harness.ts';
import { SLOT, newestSlot } from './fixtures/persisted.ts';
import { openRecord, parseDatagram, parseRecords } from './dtls-ref.ts';
import { SERVER_CID_BYTES } from '../../host/cloud/wire.ts';

const CT_APPLICATION_DATA = 23;
/** A CoAP NON with an empty code: authenticated, counted (coapNonIgnored), otherwise ignored. */
const coapNon = (mid: number) => Buffer.from([0x50, 0, (mid >> 8) & 0xff, mid & 0xff]);

/** Delivers a record the cloud seals under the session's keys; true when the firmware accepted it. */
async function accepted(h: AbiHarness, seq: bigint): Promise<boolean> {
  const before = h.fw!.counters();
  await h.deliver(h.sealToDevice(CT_APPLICATION_DATA, coapNon(Number(seq & 0xffffn)), seq));
  const after = h.fw!.counters();
  const ok = after.rxRecordsOk - before.rxRecordsOk;
  const replayed = after.dropReplayed - before.dropReplayed;
  assert.equal(ok + replayed, 1, `record ${seq}: neither accepted nor refused as a replay`);
  return ok === 1;
}

/** RFC 6347 §4.1.2.6 anti-replay window of 64, written independently of the firmware. */
class ReferenceWindow {
  private max = -1n;
  private readonly seen = new Set<bigint>();
  /** Accepts `seq` when it is new and not 64 or more behind the highest; records it. */
  offer(seq: bigint): boolean {
    if (this.max >= 0n && (seq + 64n <= this.max || this.seen.has(seq))) return false;
    this.seen.add(seq);
    if (seq > this.max) this.max = seq;
    return true;
  }
}

describe('issue 17: the replay window after a jump of 64 or more', () => {
  it('records 10, 50, 114, 74 (offsets) are all accepted: no stale bit survives the jump of 64 onto record 74', async () => {
    const h = await resumedDevice('gap-replay-jump');
    await h.converse();
    // Far above anything the cloud sent: the window starts over at base + 10.
    const base = 1_000_000n;
    const got: boolean[] = [];
    // After 50 the bit of 10 sits 40 below the top; 114 is exactly 64 ahead, so a shift that wraps
    // (64 mod 64 = 0) would keep that bit, now meaning 114 - 40 = 74: a fresh record refused.
    for (const off of [10n, 50n, 114n, 74n]) got.push(await accepted(h, base + off));
    assert.deepEqual(got, [true, true, true, true]);
    // And the window still refuses what it has seen.
    assert.equal(await accepted(h, base + 74n), false);
    assert.equal(await accepted(h, base + 114n), false);
  });

  it('agrees with a reference window on random jumps forward (1..200) and looks back (0..70)', async () => {
    const h = await resumedDevice('gap-replay-model');
    await h.converse();
    let base = 10_000_000n;
    const step = fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 200 }), fc.integer({ min: 0, max: 70 }));
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 2, maxLength: 12 }), async (steps) => {
        base += 10_000n; // each run far above the last: a jump that empties both windows
        const ref = new ReferenceWindow();
        let top = base;
        assert.equal(await accepted(h, top), ref.offer(top));
        for (const [i, [forward, ahead, back]] of steps.entries()) {
          const seq = forward ? top + BigInt(ahead) : top - BigInt(back);
          if (seq > top) top = seq;
          assert.equal(await accepted(h, seq), ref.offer(seq), `step ${i}: record ${seq - base} (steps ${JSON.stringify(steps)})`);
        }
      }),
      { numRuns: Math.min(60, Number(process.env.FC_RUNS ?? 60)), seed: 17 },
    );
  });
});

describe('issue 17: the truncated-record hint when the RTC went backwards', () => {
  it('a clock set back before the last hint opens the window (the hint is acted on), it does not close it until the clock catches up', async () => {
    const h = await resumedDevice('gap-hint-clock-back');
    const hint = () => truncatedRecord(h.id, 2 ** 40, 300, 10);
    let mark = h.deviceEvents.length;
    const actedAt = h.nowMs;
    await h.deliver(hint());
    assert.ok(h.deviceEvents.slice(mark).some((e) => e.type === 'session-discarded' && e.reason === 'truncated-record'), 'the first hint is acted on');
    await h.converse();
    assert.equal(h.fw!.sessionState, 'confirmed');
    await h.sleep();
    // The RTC lost its time and restarted: now is ten minutes before the hint that was acted on.
    h.nowMs = actedAt - 10 * 60_000;
    assert.ok(h.nowMs > 0, 'h.nowMs > 0');
    assert.equal(await h.boot(), 'resumed');
    mark = h.deviceEvents.length;
    await h.deliver(hint());
    const events = h.deviceEvents.slice(mark);
    assert.ok(!events.some((e) => e.type === 'hint-ignored'), 'the hint was ignored because the clock went backwards');
    assert.ok(events.some((e) => e.type === 'session-discarded' && e.reason === 'truncated-record'), "events.some((e) => e.type === 'session-discarded' && e.reason === 'truncated-record')");
    h.check();
  });
});

describe('issue 17: after a wake every record up to the persisted highest is a replay', () => {
  it("the cloud's records from before sleep, and any record 0..63 behind the persisted highest, neither get in nor confirm the session", async () => {
    const h = new AbiHarness({ seed: 'gap-restore-window', profile: 'default' });
    await h.provision();
    await h.wakeAndConfirm();
    // Enough exchanges that the cloud's sequence numbers pass 64 (one ACK record per event).
    for (let i = 0; i < 72; i++) {
      await h.publish('t', Buffer.from([i]));
      await h.deliverAllGenuine();
    }
    assert.equal(h.fw!.sessionState, 'confirmed');
    const before = [...h.deliveredDownlink];
    await h.sleep();
    const slot = newestSlot(h.memory.bytes)!;
    const readMax = Buffer.from(h.memory.bytes).readBigUInt64LE(slot.at + SLOT.readMax);
    assert.ok(readMax >= 64n, `the persisted highest received is ${readMax}: too low to test 63 behind`);
    await h.wipeCloudCache(); // the cloud lost the session: nothing it sent before may confirm it
    h.nowMs += 15 * 60_000;
    assert.equal(await h.boot(), 'resumed');
    h.downlink.length = 0;
    const mark = h.deviceEvents.length;
    const c0 = h.fw!.counters();
    for (const d of before) await h.deliver(d); // replayed by anyone on the path
    const c1 = h.fw!.counters();
    assert.equal(c1.rxRecordsOk, c0.rxRecordsOk, 'a record from before sleep was accepted after the wake');
    for (let behind = 0n; behind < 64n; behind++) {
      assert.equal(await accepted(h, readMax - behind), false, `a record ${behind} behind the persisted highest was accepted`);
    }
    assert.equal(h.fw!.sessionState, 'resumed');
    assert.ok(!h.deviceEvents.slice(mark).some((e) => e.type === 'confirmed'), 'an old record confirmed the session');
    // The window is right, not closed: the next new record gets in and confirms.
    assert.equal(await accepted(h, readMax + 1n), true);
    assert.equal(h.fw!.sessionState, 'confirmed');
  });
});

describe('record parsers take the CID length from the session, not a fixed 8', () => {
  it("two of the device's records in one datagram: both parsed with the cloud's 12-byte CID, and both open", async () => {
    const h = await resumedDevice('gap-two-records');
    await h.converse();
    const from = h.uplink.length;
    for (const text of ['first', 'second record']) await h.call((fw) => fw.send(Buffer.from(text)));
    const [a, b] = h.uplink.slice(from);
    assert.ok(a && b, 'the device sent two datagrams');
    const datagram = Buffer.concat([a, b]);
    const peerCid = newestSlot(h.memory.bytes)!.peerCid;
    const cidLength = peerCid.length;
    assert.equal(cidLength, SERVER_CID_BYTES, 'the session holds the CID the cloud issued');
    const records = parseDatagram(datagram, cidLength);
    assert.equal(records.length, 2);
    const k = h.sessionKeys();
    const seqs = parseDatagram(a, cidLength).concat(parseDatagram(b, cidLength)).map((r) => r.seq);
    assert.deepEqual(records.map((r) => r.seq), seqs);
    assert.deepEqual(records.map((r) => r.cid.toString('hex')), [peerCid.toString('hex'), peerCid.toString('hex')]);
    assert.deepEqual(records.map((r) => openRecord(r, k.clientKey, k.clientIv)?.content.toString()), ['first', 'second record']);
    // What the helpers did before: the length read from inside the CID, so the second record is lost.
    assert.throws(() => parseDatagram(datagram, 8), /do not end at the datagram's end|beyond the datagram/);
    assert.notDeepEqual(parseRecords(datagram, 8).map((r) => r.seq), seqs);
  });
});
