// Issue 17 end to end with the firmware: a device's flash is rolled back to an older copy of its
// persisted image (same incarnation, an older next event number), and it publishes again. The
// cloud core (the abi harness's, memory event log) notices at the next event that the id was used
// for other content: that reading is not delivered, the reuse is counted, the device gets 4.09 —
// the firmware takes it as final and goes on (its outbox moves to the next event) — and the reset
// token, on which it handshakes at once. Every further reused id costs the same; the first event
// past the ids the cloud saw is delivered normally.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AbiHarness } from './fixtures/abi-harness.ts';

/** Delivers every cloud datagram and runs both sides' timers for `seconds` of virtual time. */
async function run(h: AbiHarness, seconds: number): Promise<void> {
  for (let i = 0; i < seconds * 4 && h.fw; i++) {
    await h.deliverAllGenuine();
    await h.advance(250);
  }
}

describe('event id reuse with the firmware (issue 17)', () => {
  it('a flash rolled back to an older image: the cloud detects the reused id at the next event, does not deliver it, and the device handshakes', async () => {
    const h = new AbiHarness({ seed: 'reuse-rollback', profile: 'default' });
    await h.provision();
    await h.wakeAndConfirm();
    await h.publish('t', Buffer.from('one'));
    await run(h, 2);
    const older = h.memory.snapshot(); // the image as it was after event 0
    for (const d of ['two', 'three']) {
      await h.publish('t', Buffer.from(d));
      await run(h, 2);
    }
    await h.sleep();
    const delivered = () => h.cloudEvents.flatMap((e) => (e.kind === 'event' ? [`${e.seq}:${e.data.toString()}`] : []));
    assert.deepEqual(delivered(), ['0:one', '1:two', '2:three']);

    h.memory.bytes.set(older); // the rollback: next event number 1 again, same incarnation
    h.nowMs += 15 * 60_000;
    assert.equal(await h.boot(), 'resumed');
    const mark = h.deviceEvents.length;
    await h.publish('t', Buffer.from('rolled back')); // seq 1 again, other content
    await run(h, 5);
    const after = h.deviceEvents.slice(mark);
    assert.equal(h.cloud.stats.get('event_id_reuse', 'dev-model'), 1, 'the reuse is counted');
    assert.deepEqual(delivered(), ['0:one', '1:two', '2:three'], 'the reused id is not delivered again');
    assert.ok(after.some((e) => e.type === 'event-acked' && e.seq === 1), 'the 4.09 is final for the device: the event leaves its outbox');
    assert.ok(after.some((e) => e.type === 'session-discarded' && e.reason === 'reset-token'), `the reset token discarded the session: ${JSON.stringify(after)}`);
    assert.ok(after.some((e) => e.type === 'connected'), 'and the device handshook at once');
    assert.equal(h.cloud.stats.get('sessions_closed', 'event_id_reuse'), 1);

    // Seq 2 was used too: the same again. Seq 3 is new: delivered.
    await h.publish('t', Buffer.from('again'));
    await run(h, 5);
    await h.publish('t', Buffer.from('new'));
    await run(h, 5);
    assert.equal(h.cloud.stats.get('event_id_reuse', 'dev-model'), 2);
    assert.deepEqual(delivered(), ['0:one', '1:two', '2:three', '3:new']);
    assert.equal(h.fw!.sessionState, 'confirmed');
  });
});
