// Issue 17: a device that reuses an event id — (device, incarnation, seq) — for other content (its
// flash rolled back to an older image, or two processes on one flash file). Through the cloud
// core, on the memory log and on the Redis log: the same event again is a duplicate, answered
// 2.04 as before; the same id with another content is not delivered, is counted per device
// (sleepy_cloud_event_id_reuse_total{device}, with an alert rule in docs/protocol.md §10), is
// answered 4.09 Conflict instead of 2.04, and the device's session is discarded in the cloud and
// the device gets the reset token (it handshakes at once), as for a session the cloud lost.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { MemoryEventLog, type EventLog } from '../../host/cloud/events.ts';
import { RedisEventLog } from '../../host/cloud/redis-events.ts';
import { COUNTER_CATALOGUE, METRIC_PREFIX, createMetrics } from '../../host/cloud/metrics.ts';
import { MemoryStore } from '../../host/cloud/store.ts';
import { connected, dev1, kinds, makeCore, type Link } from './fixtures/cloud-harness.ts';
import { coapHeader } from './fixtures/cloud-client.ts';
import { Redis, freeTcpPort, toolMissing } from './fixtures/cloud-tools.ts';
import { skipOrFail } from './engines.ts';

const missing = toolMissing('redis-server', ['--version']);
const INCARNATION = Buffer.from('0badc0de', 'hex');
const CODE_CONFLICT = 0x89; // 4.09

/** Sends event (seq, data) and returns the CoAP answer's code (null: none) and what the client saw. */
async function publish(link: Link, seq: number, data: string) {
  const seen = await link.send(link.client.event('t', seq, Buffer.from(data), { incarnation: INCARNATION }));
  const answer = seen.find((e) => e.kind === 'coap' && coapHeader(e.message).type === 2);
  return { code: answer && answer.kind === 'coap' ? coapHeader(answer.message).code : null, kinds: kinds(seen) };
}

const delivered = (link: Link) => link.cloudEvents.filter((e) => e.kind === 'event').length;

let redis: Redis | null = null;
after(async () => redis?.kill9());

for (const [name, open] of [
  ['memory log', async (): Promise<EventLog> => new MemoryEventLog()],
  [
    'Redis log',
    async (): Promise<EventLog> => {
      if (!redis) {
        redis = new Redis(await freeTcpPort());
        await redis.start();
      }
      return RedisEventLog.connect({ url: redis.url, prefix: `reuse${Math.random().toString(16).slice(2, 8)}:` });
    },
  ],
] as const) {
  describe(`event id reuse through the cloud core: ${name}`, () => {
    it('same content: a duplicate, 2.04; other content: 4.09, not delivered, counted, session discarded, reset token', async (t) => {
      if (name === 'Redis log' && missing) return skipOrFail(t, missing);
      const events = await open();
      const store = new MemoryStore();
      const core = makeCore({ store, events });
      const metrics = createMetrics();
      metrics.attach(core, undefined, events);
      try {
        const link = await connected(dev1(), core);
        assert.equal((await publish(link, 7, 'first')).code, 0x44);
        assert.equal((await publish(link, 7, 'first')).code, 0x44, 'a retransmission (new message ID) is ACKed as before');
        assert.equal(core.stats.get('events', 'duplicate'), 1);
        assert.equal(delivered(link), 1);

        const reuse = await publish(link, 7, 'rolled back');
        assert.equal(reuse.code, CODE_CONFLICT, 'answered 4.09 Conflict, not 2.04');
        assert.ok(reuse.kinds.includes('reset'), `the device got its reset token: ${reuse.kinds.join(',')}`);
        assert.equal(delivered(link), 1, 'not delivered');
        assert.equal(await events.backlog(), 1, 'not in the log');
        assert.equal(core.stats.get('event_id_reuse', 'dev-1'), 1);
        assert.equal(core.stats.get('sessions_closed', 'event_id_reuse'), 1);
        assert.ok(link.cloudEvents.some((e) => e.kind === 'closed' && e.deviceId === 'dev-1' && e.reason === 'event_id_reuse'), "link.cloudEvents.some((e) => e.kind === 'closed' && e.deviceId === 'dev-1' && e.reason === 'event...");
        assert.match(await metrics.registry.metrics(), /^sleepy_cloud_event_id_reuse_total\{device="dev-1"\} 1$/m);

        // The session is gone from the store: the next record is for an unknown session (a second
        // after the first reset, which the per-address rate limit of §6.3 allows).
        link.now += 1000;
        const after = await link.send(link.client.ping());
        assert.deepEqual(kinds(after), ['reset']);
        assert.equal(core.stats.get('unknown_session_records', 'cid'), 1);

        // A new handshake; the next events are delivered again.
        const again = await connected(dev1(), core);
        again.cloudEvents.length = 0;
        assert.equal((await publish(again, 8, 'next')).code, 0x44);
        assert.equal(delivered(again), 1);
      } finally {
        await events.close();
      }
    });
  });
}

describe('the alert rules in docs/protocol.md §10', () => {
  it('name only counters the cloud exports, and one fires on event id reuse', () => {
    const doc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');
    const rules = /```yaml\n([\s\S]*?)```/.exec(doc.slice(doc.indexOf('## 10.')))![1];
    const used = new Set([...rules.matchAll(/\b(sleepy_cloud_[a-z_]+_total)\b/g)].map((m) => m[1]));
    for (const m of used) assert.ok(COUNTER_CATALOGUE[m.slice(METRIC_PREFIX.length, -'_total'.length)], `${m} is exported`);
    assert.ok(used.has('sleepy_cloud_event_id_reuse_total'), "used.has('sleepy_cloud_event_id_reuse_total')");
    assert.match(rules, /alert: SleepyCloudEventIdReuse/);
  });
});
