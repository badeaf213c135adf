// Issue 17 end to end with the firmware: a device's flash is rolled back to an older copy of its
// persisted image (same incarnation, an older next event number), and it publishes again. The
// cloud core (the abi harness's, memory event log) notices at the next event that the id was used
// for other content: that content is not delivered under the old id, the reuse is counted, the
// session is discarded and the device gets 4.09. The firmware (default profile) takes 4.09 as proof
// that its numbering went back in time: its queued events move to a new incarnation, it destroys the
// session and handshakes; the reading is then delivered under its new id, and later events follow
// in the new stream (docs/persistence.md).
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
  it('a flash rolled back to an older image: the cloud detects the reused id at the next event, the device moves to a new event stream and the reading is delivered there', async () => {
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
    assert.ok(after.some((e) => e.type === 'session-discarded' && e.reason === 'event-number-conflict'), `the device saw the conflict: ${JSON.stringify(after)}`);
    assert.ok(after.some((e) => e.type === 'connected'), 'and the device handshook at once');
    assert.equal(h.cloud.stats.get('sessions_closed', 'event_id_reuse'), 1);
    const streams = () => h.cloudEvents.flatMap((e) => (e.kind === 'event' ? [`${e.incarnation}/${e.seq}:${e.data.toString()}`] : []));
    const first = streams()[0].split('/')[0];
    const moved = streams().slice(3);
    assert.equal(moved.length, 1, `the reading delivered once more, under a new id: ${JSON.stringify(streams())}`);
    assert.match(moved[0], /\/0:rolled back$/);
    assert.notEqual(moved[0].split('/')[0], first, 'a new incarnation');

    // Later events continue the new stream: no further conflict.
    await h.publish('t', Buffer.from('new'));
    await run(h, 5);
    assert.equal(h.cloud.stats.get('event_id_reuse', 'dev-model'), 1);
    assert.match(streams().at(-1)!, /\/1:new$/);
    assert.equal(h.fw!.sessionState, 'confirmed');
  });
});
