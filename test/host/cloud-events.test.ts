// The event logs behind the same contract: the memory log, and the Redis log over both protocols
// node-redis speaks (RESP3, the default of @redis/client 6, and RESP2), against a real
// redis-server. A `take` hands over at once what it moved into the consumer's pending list (under
// RESP3 it used to return nothing, leaving every event to the 60 s reclaim); reclaim, ack, dead
// letters and retry read their replies in both protocols. The reply normaliser is checked on every
// shape the client can hand over, and refuses a shape it does not know rather than reading it as
// "nothing new".
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MemoryEventLog, idempotencyKey, type DeviceEvent, type EventLog } from '../../host/cloud/events.ts';
import { connectRedis } from '../../host/cloud/redis-client.ts';
import { RedisEventLog, StreamReplyError, autoclaimReply, readGroupEntries, streamEntries } from '../../host/cloud/redis-events.ts';
import { Redis, freeTcpPort, toolMissing } from './fixtures/cloud-tools.ts';
import { skipOrFail } from './engines.ts';

const missing = toolMissing('redis-server', ['--version']);

const ev = (seq: number, data = `v${seq}`, deviceId = 'd'): DeviceEvent => ({ deviceId, incarnation: '0badc0de', seq, name: 'n', data: Buffer.from(data), receivedMs: 1000 + seq });

describe('idempotency keys', () => {
  it('are unambiguous although device ids may contain ":" (device "col", incarnation 0badc0de, seq 7 ≠ device "col:0badc0de", seq 7)', () => {
    assert.notEqual(idempotencyKey({ deviceId: 'col', incarnation: '0badc0de', seq: 7 }), idempotencyKey({ deviceId: 'col:0badc0de', incarnation: null, seq: 7 }));
    assert.notEqual(idempotencyKey({ deviceId: 'a:1', incarnation: null, seq: 2 }), idempotencyKey({ deviceId: 'a', incarnation: null, seq: 1 }));
    const id = fc.stringMatching(/^[A-Za-z0-9._:%-]{1,12}$/);
    const key = fc.record({ deviceId: id, incarnation: fc.option(fc.stringMatching(/^[0-9a-f]{8}$/), { nil: null }), seq: fc.nat() });
    fc.assert(fc.property(key, key, (a, b) => (idempotencyKey(a) === idempotencyKey(b)) === (a.deviceId === b.deviceId && a.incarnation === b.incarnation && a.seq === b.seq)), { numRuns: 2000 });
  });

  it('are unchanged for device ids without ":" (claims in Redis and webhook ids from before stay valid)', () => {
    assert.equal(idempotencyKey({ deviceId: 'dev-1.x_Y', incarnation: '0badc0de', seq: 7 }), 'dev-1.x_Y:0badc0de:7');
    assert.equal(idempotencyKey({ deviceId: 'dev-1', incarnation: null, seq: 7 }), 'dev-1:7');
  });
});

describe('stream reply normaliser', () => {
  const e1: [string, string[]] = ['1-0', ['e', 'one']];
  const e2: [string, string[]] = ['2-0', ['e', 'two', 'x', 'y']];
  const want = [['1-0', { e: 'one' }], ['2-0', { e: 'two', x: 'y' }]];

  it('reads XREADGROUP in RESP2 (array), RESP3 (object) and RESP3 with a Map type mapping', () => {
    assert.deepEqual(readGroupEntries([['s', [e1, e2]]], 's'), want);
    assert.deepEqual(readGroupEntries({ s: [e1, e2] }, 's'), want);
    assert.deepEqual(readGroupEntries(new Map([['s', [e1, e2]]]), 's'), want);
    assert.deepEqual(readGroupEntries(new Map([[Buffer.from('s'), [e1, e2]]]), 's'), want);
    assert.deepEqual(readGroupEntries(null, 's'), []);
    assert.deepEqual(readGroupEntries({ other: [e1] }, 's'), [], 'another stream only');
  });

  it('skips entries deleted while pending (null, or [id, null] in Redis 6.2); fields as a Map or object too', () => {
    assert.deepEqual(streamEntries([null, e1, ['3-0', null]]), [want[0]]);
    assert.deepEqual(streamEntries([['1-0', new Map([['e', 'one']])], ['2-0', { e: 'two', x: 'y' }]]), want);
  });

  it('reads XAUTOCLAIM in Redis 6.2 (two elements) and 7 (three)', () => {
    assert.deepEqual(autoclaimReply(['0-0', [e1, e2]]), { cursor: '0-0', entries: want });
    assert.deepEqual(autoclaimReply(['5-0', [e1], ['9-0']]), { cursor: '5-0', entries: [want[0]] });
  });

  it('refuses a shape it does not know instead of reading it as empty', () => {
    for (const bad of [42, 'x', [['s']], [['s', [e1], 'extra']]]) assert.throws(() => readGroupEntries(bad, 's'), StreamReplyError, JSON.stringify(bad));
    assert.throws(() => readGroupEntries({ s: { '1-0': ['e', 'one'] } }, 's'), StreamReplyError);
    assert.throws(() => streamEntries([['1-0']]), StreamReplyError);
    assert.throws(() => streamEntries([['1-0', 7]]), StreamReplyError);
    assert.throws(() => autoclaimReply({ cursor: '0-0' }), StreamReplyError);
  });
});

/** The contract every event log keeps, run on each implementation. */
function contract(name: string, open: () => Promise<EventLog>, close: (l: EventLog) => Promise<void>) {
  describe(`event log contract: ${name}`, () => {
    let log: EventLog;
    before(async () => {
      if (missing && name !== 'memory') return;
      log = await open();
    });
    after(async () => {
      if (log) await close(log);
    });
    const skip = (t: { skip(m: string): void }) => {
      if (missing && name !== 'memory') {
        skipOrFail(t, missing);
        return true;
      }
      return false;
    };

    it('take hands over an appended event at once, exactly once; reclaim by another consumer after idle; ack removes it', async (t) => {
      if (skip(t)) return;
      assert.equal(await log.append(ev(1), 60_000, 0), 'appended');
      assert.equal(await log.append(ev(2), 60_000, 0), 'appended');
      const got = await log.take('a', 10);
      assert.deepEqual(got.map((g) => [g.ev.seq, g.ev.data.toString(), g.ev.receivedMs]), [[1, 'v1', 1001], [2, 'v2', 1002]]);
      assert.deepEqual(await log.take('b', 10), [], 'taken once');
      assert.deepEqual(await log.reclaim('b', 60_000, 10), [], 'not idle yet');
      const again = await log.reclaim('b', 0, 10);
      assert.deepEqual(again.map((g) => g.ev.seq).sort(), [1, 2]);
      await log.ack(got.map((g) => g.id));
      assert.equal(await log.backlog(), 0);
    });

    it('event id reuse (issue 17): the same key with the same content is a duplicate; with another content or name a conflict, and nothing is appended', async (t) => {
      if (skip(t)) return;
      const before = await log.backlog();
      assert.equal(await log.append(ev(10, 'a'), 60_000, 0), 'appended');
      assert.equal(await log.append(ev(10, 'a'), 60_000, 0), 'duplicate', 'a retransmission');
      assert.equal(await log.append({ ...ev(10, 'a'), receivedMs: 9 }, 60_000, 0), 'duplicate', 'the time of arrival is not content');
      assert.equal(await log.append(ev(10, 'b'), 60_000, 0), 'conflict', 'other data');
      assert.equal(await log.append({ ...ev(10, 'a'), name: 'm' }, 60_000, 0), 'conflict', 'other name');
      assert.equal(await log.append(ev(10, 'a'), 60_000, 0), 'duplicate', 'the first content keeps the claim');
      assert.equal(await log.append(ev(10, 'a', 'd2'), 60_000, 0), 'appended', 'another device');
      assert.equal(await log.backlog(), before + 2);
      const taken = await log.take('a', 100);
      assert.deepEqual(taken.filter((g) => g.ev.seq === 10).map((g) => [g.ev.deviceId, g.ev.data.toString(), g.ev.name]), [['d', 'a', 'n'], ['d2', 'a', 'n']]);
      await log.ack(taken.map((g) => g.id));
    });

    it('two devices whose keys used to collide ("col" 0badc0de/7 and "col:0badc0de" 7) each get their own claim', async (t) => {
      if (skip(t)) return;
      assert.equal(await log.append({ ...ev(7, 'x', 'col'), incarnation: '0badc0de' }, 60_000, 0), 'appended');
      assert.equal(await log.append({ ...ev(7, 'y', 'col:0badc0de'), incarnation: null }, 60_000, 0), 'appended');
      const taken = await log.take('a', 100);
      assert.deepEqual(taken.filter((g) => g.ev.seq === 7).map((g) => g.ev.deviceId), ['col', 'col:0badc0de']);
      await log.ack(taken.map((g) => g.id));
    });

    it('dead letters are listed and retried (XRANGE replies)', async (t) => {
      if (skip(t)) return;
      assert.equal(await log.append(ev(3), 60_000, 0), 'appended');
      const taken = await log.take('a', 100);
      const e = taken.find((g) => g.ev.seq === 3)!;
      await log.ack(taken.filter((g) => g !== e).map((g) => g.id)); // whatever an earlier test left
      await log.deadLetter(e, 'http_422', 5);
      const dead = await log.listDead(10);
      assert.deepEqual(dead.map((d) => [d.ev.seq, d.reason, d.failedMs]), [[3, 'http_422', 5]]);
      assert.equal(await log.retryDead('all'), 1);
      assert.deepEqual((await log.take('a', 10)).map((g) => g.ev.seq), [3]);
      assert.equal(await log.deadCount(), 0);
    });
  });
}

describe('Redis claims written before content hashes were kept', () => {
  it('a claim holding "1" counts as this content: a duplicate, never a conflict, until its TTL ends', async (t) => {
    if (missing) return skipOrFail(t, missing);
    const r = new Redis(await freeTcpPort());
    await r.start();
    const conn = await connectRedis({ url: r.url });
    const log = await RedisEventLog.connect({ url: r.url, prefix: 'old:' });
    try {
      await conn.command(['SET', `old:c:${idempotencyKey(ev(1))}`, '1', 'PX', '60000']);
      assert.equal(await log.append(ev(1, 'anything'), 60_000, 0), 'duplicate');
      assert.equal(await log.backlog(), 0);
    } finally {
      await log.close();
      await conn.close();
      await r.kill9();
    }
  });
});

describe('Redis log: an entry that does not decode', () => {
  it('does not hold back the good entries read with it (take and reclaim hand them over)', async (t) => {
    if (missing) return skipOrFail(t, missing);
    const r = new Redis(await freeTcpPort());
    await r.start();
    const conn = await connectRedis({ url: r.url });
    const log = await RedisEventLog.connect({ url: r.url, prefix: 'bad:' });
    try {
      await conn.command(['XADD', 'bad:log', '*', 'e', '{not json']);
      await conn.command(['XADD', 'bad:log', '*', 'x', 'no e field']);
      assert.equal(await log.append(ev(1), 60_000, 0), 'appended');
      assert.deepEqual((await log.take('a', 10)).map((g) => g.ev.seq), [1]);
      assert.deepEqual((await log.reclaim('b', 0, 10)).map((g) => g.ev.seq), [1]);
    } finally {
      await log.close();
      await conn.close();
      await r.kill9();
    }
  });
});

let redis: Redis | null = null;
let opened = 0;
const openRedis = (resp?: 2 | 3) => async () => {
  if (!redis) {
    redis = new Redis(await freeTcpPort());
    await redis.start();
  }
  opened++;
  return RedisEventLog.connect({ url: redis.url, prefix: `c${resp ?? 'd'}:`, ...(resp ? { resp } : {}) });
};
const closeRedis = async (l: EventLog) => {
  await l.close();
  if (--opened === 0) {
    await redis?.kill9();
    redis = null;
  }
};

contract('memory', async () => new MemoryEventLog(), (l) => l.close());
contract('Redis, default protocol (RESP3)', openRedis(), closeRedis);
contract('Redis, RESP2', openRedis(2), closeRedis);
