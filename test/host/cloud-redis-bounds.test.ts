// Issue 18, "Redis grows without bound", with a real redis-server: the dead-letter stream is
// capped (oldest trimmed, counted); a device that makes claims as fast as it can (fresh
// incarnations) holds at most its claim bound, the oldest forgotten and counted, other devices'
// claims untouched; consumers idle with nothing pending are removed from the group (by the log,
// and by a running webhook sender), those with entries pending stay until the entries are reclaimed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connectRedis } from '../../host/cloud/redis-client.ts';
import { RedisEventLog, EVENT_GROUP } from '../../host/cloud/redis-events.ts';
import { idempotencyKey, type DeviceEvent } from '../../host/cloud/events.ts';
import { Counters } from '../../host/cloud/core.ts';
import { WebhookDelivery } from '../../host/cloud/webhook.ts';
import { createMetrics } from '../../host/cloud/metrics.ts';
import { makeCore } from './fixtures/cloud-harness.ts';
import { Redis, freeTcpPort, toolMissing, until, webhookServer } from './fixtures/cloud-tools.ts';
import { skipOrFail } from './engines.ts';

const missing = toolMissing('redis-server', ['--version']);

const ev = (seq: number, deviceId = 'd', incarnation: string | null = null): DeviceEvent => ({ deviceId, incarnation, seq, name: 'n', data: Buffer.from(`v${seq}`), receivedMs: 1000 + seq });

async function withRedis(t: { skip(m: string): void }, run: (url: string) => Promise<void>): Promise<void> {
  if (missing) return skipOrFail(t, missing);
  const r = new Redis(await freeTcpPort());
  await r.start();
  try {
    await run(r.url);
  } finally {
    await r.kill9();
  }
}

/** XINFO CONSUMERS → name → pending. */
async function consumers(url: string, stream: string): Promise<Map<string, number>> {
  const conn = await connectRedis({ url, resp: 2 });
  try {
    const list = await conn.command<unknown[][]>(['XINFO', 'CONSUMERS', stream, EVENT_GROUP]);
    const out = new Map<string, number>();
    for (const c of list) {
      const f = new Map<string, unknown>();
      for (let i = 0; i + 1 < c.length; i += 2) f.set(String(c[i]), c[i + 1]);
      out.set(String(f.get('name')), Number(f.get('pending')));
    }
    return out;
  } finally {
    await conn.close();
  }
}

describe('Redis event log: bounded (issue 18)', () => {
  it('the dead-letter stream is capped (MAXLEN ~): the oldest go, each counted, the newest are listed', async (t) => {
    await withRedis(t, async (url) => {
      const log = await RedisEventLog.connect({ url, prefix: 'dl:', maxDeadLetters: 100 });
      try {
        const N = 450;
        for (let i = 0; i < N; i++) assert.equal(await log.append(ev(i), 60_000, 0), 'appended');
        const taken = await log.take('a', N);
        assert.equal(taken.length, N);
        for (const e of taken) await log.deadLetter(e, 'http_422', e.ev.seq);
        const kept = await log.deadCount();
        assert.ok(kept >= 100 && kept < 200, `about 100 dead letters kept (MAXLEN ~ trims whole nodes of 100): ${kept}`);
        assert.equal(log.trimmed?.deadLetters, N - kept, 'every trimmed dead letter counted');
        const dead = await log.listDead(1000);
        assert.equal(dead.at(-1)!.ev.seq, N - 1, 'the newest kept');
        assert.equal(await log.backlog(), 0, 'and every one left the log');
        const m = createMetrics();
        m.attach(makeCore(), undefined, log);
        assert.match(await m.registry.metrics(), new RegExp(`^sleepy_cloud_event_log_trimmed_total\\{what="dead_letters"\\} ${N - kept}$`, 'm'));
      } finally {
        await log.close();
      }
    });
  });

  it('one device making claims with fresh incarnations as fast as it can holds at most its bound; other devices keep theirs; the newest are still recognised', async (t) => {
    await withRedis(t, async (url) => {
      const BOUND = 50;
      const log = await RedisEventLog.connect({ url, prefix: 'cl:', maxClaimsPerDevice: BOUND });
      const conn = await connectRedis({ url });
      try {
        for (let i = 0; i < 10; i++) assert.equal(await log.append(ev(i, 'calm'), 7 * 24 * 3600_000, 0), 'appended');
        const N = 400;
        for (let i = 0; i < N; i++) {
          const r = await log.append(ev(0, 'noisy', i.toString(16).padStart(8, '0')), 7 * 24 * 3600_000, 0);
          assert.equal(r, 'appended');
        }
        const claimsOf = async (device: string) => (await conn.command<string[]>(['KEYS', `cl:c:${device}:*`])).length;
        assert.equal(await claimsOf('noisy'), BOUND, 'the noisy device holds its bound of claims, no more');
        assert.equal(await claimsOf('calm'), 10, "the other device's claims are untouched");
        assert.equal(log.trimmed?.claims, N - BOUND);
        for (let i = N - BOUND; i < N; i++) assert.equal(await log.append(ev(0, 'noisy', i.toString(16).padStart(8, '0')), 7 * 24 * 3600_000, 0), 'duplicate', `newest claim ${i}`);
        for (let i = 0; i < 10; i++) assert.equal(await log.append(ev(i, 'calm'), 7 * 24 * 3600_000, 0), 'duplicate');
        // The price, documented in docs/protocol.md §8.3: a retransmission older than the device's
        // newest BOUND claims is delivered again, with the same key.
        assert.equal(await log.append(ev(0, 'noisy', '00000000'), 7 * 24 * 3600_000, 0), 'appended');
        const ttl = await conn.command<number>(['PTTL', 'cl:d:noisy']);
        assert.ok(ttl > 0, 'the claim index expires with the claims');
        assert.ok((await conn.command<number>(['ZCARD', 'cl:d:noisy'])) <= BOUND, "(await conn.command<number>(['ZCARD', 'cl:d:noisy'])) <= BOUND");
        assert.ok(idempotencyKey(ev(0, 'noisy', '00000000')).startsWith('noisy:'), "idempotencyKey(ev(0, 'noisy', '00000000')).startsWith('noisy:')");
      } finally {
        await conn.close();
        await log.close();
      }
    });
  });

  it('consumers idle with nothing pending are removed from the group; one with entries pending stays until they are reclaimed', async (t) => {
    await withRedis(t, async (url) => {
      const log = await RedisEventLog.connect({ url, prefix: 'cs:' });
      try {
        await log.append(ev(1), 60_000, 0);
        await log.append(ev(2), 60_000, 0);
        const a = await log.take('gone-empty', 1);
        await log.ack(a.map((e) => e.id));
        assert.equal((await log.take('gone-pending', 1)).length, 1);
        await new Promise((r) => setTimeout(r, 300));
        await log.append(ev(3), 60_000, 0);
        await log.ack((await log.take('alive', 10)).map((e) => e.id));
        assert.deepEqual([...(await consumers(url, 'cs:log')).keys()].sort(), ['alive', 'gone-empty', 'gone-pending']);
        assert.equal(await log.pruneConsumers!(250), 1);
        assert.deepEqual([...(await consumers(url, 'cs:log')).keys()].sort(), ['alive', 'gone-pending'], 'the pending entry is not lost with its consumer');
        const back = await log.reclaim('alive', 0, 10);
        assert.deepEqual(back.map((e) => e.ev.seq), [2]);
        await log.ack(back.map((e) => e.id));
        await new Promise((r) => setTimeout(r, 300));
        await log.append(ev(4), 60_000, 0);
        await log.ack((await log.take('alive', 10)).map((e) => e.id));
        assert.equal(await log.pruneConsumers!(250), 1);
        assert.deepEqual([...(await consumers(url, 'cs:log')).keys()], ['alive']);
        assert.equal(log.trimmed?.consumers, 2);
      } finally {
        await log.close();
      }
    });
  });

  it('a running webhook sender removes the consumers of processes long gone', async (t) => {
    await withRedis(t, async (url) => {
      const log = await RedisEventLog.connect({ url, prefix: 'wh:' });
      const hook = await webhookServer();
      const stats = new Counters();
      const sender = new WebhookDelivery({ url: hook.url, consumerIdleMs: 200 }, log, stats);
      try {
        const conn = await connectRedis({ url });
        for (let i = 0; i < 5; i++) await conn.command(['XGROUP', 'CREATECONSUMER', 'wh:log', EVENT_GROUP, `old-process-${i}`]);
        await conn.close();
        assert.equal((await consumers(url, 'wh:log')).size, 5);
        await new Promise((r) => setTimeout(r, 250));
        sender.start();
        await until(async () => !(await consumers(url, 'wh:log')).has('old-process-0'), 5000, 'old consumers removed');
        assert.equal([...(await consumers(url, 'wh:log')).keys()].filter((n) => n.startsWith('old-process-')).length, 0);
        assert.equal(stats.get('event_log_errors', 'prune'), 0);
      } finally {
        await sender.close();
        await hook.close();
        await log.close();
      }
    });
  });
});
