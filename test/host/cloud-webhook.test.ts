// Webhooks: a local HTTP server receives each device event exactly once, also when it fails the
// first attempts (500, a cut connection, 503, a timeout), when the device retransmits, sends the
// same event with a new message ID, or sends it again after its session was lost and healed.
// Nothing is ever given up: failures are retried forever with capped back-off; a permanent
// refusal (4xx) goes to the dead-letter list, from where it can be retried.
// The suite runs on both event logs: the memory log and the Redis log on a real redis-server (issue
// 18: the exactly-once tests ran on the memory log only, so a Redis claim that never reported a
// duplicate went unnoticed).
import { describe, it, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { DeviceRegistry, deviceHandle } from '../../host/cloud/devices.ts';
import { startCloud } from '../../host/cloud/server.ts';
import { MemoryEventLog } from '../../host/cloud/events.ts';
import { WebhookDelivery } from '../../host/cloud/webhook.ts';
import { UdpCloudClient, coapHeader } from './fixtures/cloud-client.ts';
import { Redis, freeTcpPort, toolMissing, until, webhookServer } from './fixtures/cloud-tools.ts';
import { connectRedis } from '../../host/cloud/redis-client.ts';
import { skipOrFail } from './engines.ts';

const PSK = Buffer.from('11223344556677889900aabbccddeeff', 'hex');
const devices = () => new DeviceRegistry([{ id: 'hook-dev', identity: 'hook-id', psk: PSK }]);
const clientOpts = { identity: 'hook-id', psk: PSK, offerCid: deviceHandle('hook-dev') };

const missing = toolMissing('redis-server', ['--version']);

for (const kind of ['memory', 'redis'] as const) {
  describe(`cloud webhooks (${kind} event log)`, () => {
    let redis: Redis | null = null;
    before(async () => {
      if (kind !== 'redis' || missing) return;
      redis = new Redis(await freeTcpPort());
      await redis.start();
    });
    after(async () => {
      await redis?.kill9();
    });
    beforeEach(async () => {
      if (!redis) return;
      const conn = await connectRedis({ url: redis.url });
      await conn.command(['FLUSHALL']);
      await conn.close();
    });
    /** The --events spec of this suite; false when the test must be skipped. */
    const events = (t: { skip(m: string): void }): string | false => {
      if (kind === 'memory') return 'memory';
      if (missing) {
        skipOrFail(t, missing);
        return false;
      }
      return redis!.url;
    };

    it('each event is received exactly once although the receiver fails the first three attempts', async (t) => {
      const spec = events(t);
      if (spec === false) return;
      const hook = await webhookServer((_id, attempt) => (attempt === 1 ? 500 : attempt === 2 ? 'drop' : attempt === 3 ? 503 : 200));
      const cloud = await startCloud({ port: 0, devices: devices(), events: spec, webhook: { url: hook.url, baseDelayMs: 10, maxDelayMs: 80 } });
      const c = await UdpCloudClient.open(cloud.port, clientOpts);
      try {
        await c.connect();
        for (let seq = 1; seq <= 20; seq++) {
          let mid = 0;
          const answer = await c.request((m) => c.client.event('temp', seq, Buffer.from(`t=${seq}`), { mid: (mid = m) }));
          assert.equal(coapHeader(answer).code, 0x44);
          if (seq % 4 === 0) c.send(c.client.event('temp', seq, Buffer.from(`t=${seq}`), { mid })); // CoAP retransmission
          if (seq % 5 === 0) await c.request((m) => c.client.event('temp', seq, Buffer.from(`t=${seq}`), { mid: m })); // same event, new MID
        }
        for (let seq = 21; seq <= 25; seq++) {
          c.send(c.client.event('temp', seq, Buffer.from(`t=${seq}`), { confirmable: false }));
          c.send(c.client.event('temp', seq, Buffer.from(`t=${seq}`), { confirmable: false }));
        }
        await until(() => hook.accepted().length >= 25, 10_000, '25 deliveries');
        await cloud.webhook!.whenIdle();
        const ids = hook.accepted().map((r) => r.id).sort();
        assert.deepEqual(ids, Array.from({ length: 25 }, (_, i) => `hook-dev:${i + 1}`).sort());
        assert.equal(new Set(ids).size, 25, 'no id accepted twice');
        const first = hook.accepted().find((r) => r.id === 'hook-dev:7')!;
        assert.deepEqual({ ...first.body, receivedAt: undefined }, { id: 'hook-dev:7', device: 'hook-dev', incarnation: null, event: 'temp', seq: 7, data: Buffer.from('t=7').toString('base64'), receivedAt: undefined });
        const counters = cloud.counters();
        assert.equal(counters['webhook_deliveries'], 25);
        assert.equal(counters['webhook_failures|http_5xx'], 50);
        assert.equal(counters['webhook_failures|network'], 25);
        assert.equal(counters['events|accepted'], 25);
        assert.ok(counters['events|duplicate'] >= 4 + 5, 'duplicates were recognised');
      } finally {
        c.close();
        await cloud.close();
        await hook.close();
      }
    });

    it('a failing receiver is retried past any attempt limit; a 4xx goes to the dead-letter list and can be retried; a silent one times out', async (t) => {
      const spec = events(t);
      if (spec === false) return;
      let refuse = true;
      const hook = await webhookServer((id, attempt) => (id.endsWith(':2') ? (attempt <= 30 ? 500 : 200) : id.endsWith(':3') && refuse ? 422 : 200));
      const cloud = await startCloud({ port: 0, devices: devices(), events: spec, webhook: { url: hook.url, baseDelayMs: 1, maxDelayMs: 5 } });
      const blackhole = net.createServer(() => {}); // accepts connections, never answers
      blackhole.listen(0, '127.0.0.1');
      await once(blackhole, 'listening');
      const c = await UdpCloudClient.open(cloud.port, clientOpts);
      try {
        await c.connect();
        for (const seq of [1, 2, 3]) await c.request((mid) => c.client.event('x', seq, Buffer.from('a'), { mid }));
        await until(() => hook.accepted().length === 2 && cloud.counters()['webhook_dead_letters|http_422'] === 1, 10_000, 'two deliveries and a dead letter');
        await cloud.webhook!.whenIdle();
        assert.deepEqual(hook.accepted().map((r) => r.id).sort(), ['hook-dev:1', 'hook-dev:2']);
        assert.equal(cloud.counters()['webhook_failures|http_5xx'], 30, 'retried 30 times, never given up');
        const dead = await cloud.events.listDead(10);
        assert.deepEqual(dead.map((d) => [d.ev.seq, d.reason]), [[3, 'http_422']]);
        const m = await cloud.metrics();
        assert.match(m, /^sleepy_cloud_event_log_dead_letters 1$/m);
        refuse = false;
        assert.equal(await cloud.events.retryDead('all'), 1);
        await until(() => hook.accepted().length === 3, 5000, 'the retried dead letter');
        assert.equal(await cloud.events.deadCount(), 0);

        const port = (blackhole.address() as net.AddressInfo).port;
        const log = new MemoryEventLog();
        const sender = new WebhookDelivery({ url: `http://127.0.0.1:${port}/`, timeoutMs: 50, baseDelayMs: 5, maxDelayMs: 5 }, log, cloud.core.stats);
        await log.append({ deviceId: 'hook-dev', incarnation: null, name: 'y', seq: 9, data: Buffer.alloc(0), receivedMs: Date.now() }, 60_000, Date.now());
        sender.start();
        await until(() => (cloud.counters()['webhook_failures|timeout'] ?? 0) >= 3, 5000, 'three timeouts');
        assert.equal(sender.inHand, 1, 'still held, never given up');
        await sender.close();
        assert.equal(await log.backlog(), 1, 'still in the log after the deliverer stopped');
      } finally {
        c.close();
        blackhole.close();
        await cloud.close();
        await hook.close();
      }
    });

    it('an event sent under a lost session is delivered once after the heal and the new handshake', async (t) => {
      const spec = events(t);
      if (spec === false) return;
      const hook = await webhookServer();
      const cloud = await startCloud({ port: 0, devices: devices(), events: spec, webhook: { url: hook.url, baseDelayMs: 10 } });
      const c = await UdpCloudClient.open(cloud.port, clientOpts);
      try {
        await c.connect();
        await c.request((mid) => c.client.event('door', 1, Buffer.from('open'), { mid }));
        await cloud.store.wipe(); // the 2019 cache loss
        const reset = c.waitFor((e) => e.kind === 'reset', 3000, 'the reset');
        c.send(c.client.event('door', 2, Buffer.from('closed')));
        await reset;
        const c2 = await UdpCloudClient.open(cloud.port, clientOpts); // the device handshakes again
        await c2.connect();
        await c2.request((mid) => c2.client.event('door', 2, Buffer.from('closed'), { mid }));
        await c2.request((mid) => c2.client.event('door', 2, Buffer.from('closed'), { mid }));
        c2.close();
        await until(() => hook.accepted().length >= 2, 5000, 'two deliveries');
        await cloud.webhook!.whenIdle();
        assert.deepEqual(hook.accepted().map((r) => r.id).sort(), ['hook-dev:1', 'hook-dev:2']);
      } finally {
        c.close();
        await cloud.close();
        await hook.close();
      }
    });
  });
}
