// Redis as the shared session cache (CI starts redis-server on a free loopback port, persistence
// off): the Lua replay window agrees with the in-process one and reserves unique sequence numbers
// under concurrency; two cloud processes share one Redis and serve the same sessions; a kill -9
// of redis-server in the middle of traffic and a restart with an empty cache: both processes stay
// up, keep answering handshakes, answer records for the lost sessions according to their heal
// flags, and their metrics show it; devices then handshake again and are served by either.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import { once } from 'node:events';
import fc from 'fast-check';
import { RedisStore } from '../../host/cloud/redis-store.ts';
import { EMPTY_WINDOW, windowAccept, type StoredSession } from '../../host/cloud/store.ts';
import { deviceHandle } from '../../host/cloud/devices.ts';
import { TestDtlsClient, UdpCloudClient } from './fixtures/cloud-client.ts';
import { Redis, freeTcpPort, metric, scrape, startCloudProcess, toolMissing, until, webhookServer, writeDevicesFile, type CloudProc } from './fixtures/cloud-tools.ts';
import { skipOrFail } from './engines.ts';

const missing = toolMissing('redis-server', ['--version']);

const SESSION: StoredSession = { deviceId: 'd', epoch: 1, cid: '', peerCid: '', keys: '00'.repeat(40), createdMs: 0, token: false };

describe('Redis session store', () => {
  let redis: Redis;
  let store: RedisStore;
  before(async () => {
    if (missing) return;
    redis = new Redis(await freeTcpPort());
    await redis.start();
    store = await RedisStore.connect({ url: redis.url, prefix: 'unit:' });
  });
  after(async () => {
    await store?.close();
    await redis?.kill9();
  });

  it('the Lua replay window agrees with windowAccept() on random sequences', async (t) => {
    if (missing) return skipOrFail(t, missing);
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 200 }), { minLength: 1, maxLength: 80 }), fc.integer({ min: -1, max: 5 }), async (seqs, top0) => {
        const id = `w${run++}`;
        await store.put(id, SESSION, { top: top0, nextOutSeq: 0 }, 60_000, 0);
        let top = top0;
        let win = top0 >= 0 ? '1' + EMPTY_WINDOW.slice(1) : EMPTY_WINDOW;
        for (const s of seqs) {
          const model = windowAccept(top, win, s);
          const got = await store.accept(id, s, 0, 60_000, 0);
          assert.equal(got.status, model.status, `seq ${s}`);
          ({ top, win } = model);
        }
      }),
      { numRuns: 40 },
    );
  });

  it('large sequence numbers survive the round trip through Lua', async (t) => {
    if (missing) return skipOrFail(t, missing);
    await store.put('big', SESSION, { top: 2 ** 48 - 100, nextOutSeq: 2 ** 47 }, 60_000, 0);
    assert.equal((await store.accept('big', 2 ** 48 - 2, 1, 60_000, 0)).status, 'ok');
    assert.equal((await store.accept('big', 2 ** 48 - 2, 1, 60_000, 0)).status, 'replay');
    assert.equal((await store.accept('big', 2 ** 48 - 40, 1, 60_000, 0)).status, 'ok');
    assert.equal((await store.accept('big', 2 ** 48 - 200, 1, 60_000, 0)).status, 'too_old');
    assert.equal(await store.reserve('big', 1, 0), 2 ** 47 + 2);
  });

  it('two clients reserving concurrently never get the same outgoing sequence number', async (t) => {
    if (missing) return skipOrFail(t, missing);
    const other = await RedisStore.connect({ url: redis.url, prefix: 'unit:' });
    try {
      await store.put('race', SESSION, { top: -1, nextOutSeq: 0 }, 60_000, 0);
      const results = await Promise.all(
        Array.from({ length: 400 }, (_, i) => (i % 2 ? store : other).accept('race', i, 2, 60_000, 0)),
      );
      const ok = results.filter((r) => r.status === 'ok');
      assert.ok(ok.length >= 64, `${ok.length} accepted (the rest arrived too old for the window)`);
      assert.equal(ok.length + results.filter((r) => r.status === 'too_old').length, 400);
      const seqs = ok.flatMap((r) => [r.outSeq, r.outSeq + 1]);
      assert.equal(new Set(seqs).size, seqs.length);
      const reserved = await Promise.all(Array.from({ length: 400 }, (_, i) => (i % 2 ? store : other).reserve('race', 2, 0)));
      const all = reserved.flatMap((r) => [r!, r! + 1]).concat(seqs);
      assert.equal(new Set(all).size, all.length, 'reserve() and accept() never hand out a number twice');
      // And one record is accepted once, whichever process sees it.
      const dup = await Promise.all([store.accept('race', 1000, 0, 60_000, 0), other.accept('race', 1000, 0, 60_000, 0)]);
      assert.deepEqual(dup.map((r) => r.status).sort(), ['ok', 'replay']);
    } finally {
      await other.close();
    }
  });

  it('TTL and a missing session', async (t) => {
    if (missing) return skipOrFail(t, missing);
    await store.put('ttl', SESSION, { top: 0, nextOutSeq: 1 }, 150, 0);
    assert.ok(await store.get('ttl', 0), "await store.get('ttl', 0)");
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await store.get('ttl', 0), undefined);
    assert.equal((await store.accept('ttl', 5, 1, 1000, 0)).status, 'missing');
    assert.equal(await store.reserve('ttl', 1, 0), undefined);
  });
});

/** Sends a bare ClientHello; resolves true when a HelloVerifyRequest comes back. */
async function answersHello(port: number): Promise<boolean> {
  const s = dgram.createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  const got = new Promise<boolean>((resolve) => {
    const t = setTimeout(() => resolve(false), 2000);
    s.on('message', (m) => {
      clearTimeout(t);
      resolve(m[0] === 22 && m[13] === 3);
    });
  });
  s.send(new TestDtlsClient({ identity: 'x', psk: Buffer.alloc(16) }).start(), port, '127.0.0.1');
  const ok = await got;
  s.close();
  return ok;
}

describe('two cloud processes sharing one Redis', () => {
  const PSK = crypto.randomBytes(16);
  const SECRET = crypto.randomBytes(32);
  let redis: Redis;
  let a: CloudProc;
  let b: CloudProc;
  let hook: Awaited<ReturnType<typeof webhookServer>>;

  before(async () => {
    if (missing) return;
    redis = new Redis(await freeTcpPort());
    await redis.start();
    hook = await webhookServer();
    const devices = writeDevicesFile({ cloudSecret: SECRET.toString('hex'), devices: [{ id: 'shared-dev', identity: 'shared-id', psk: PSK.toString('hex') }] });
    const common = ['--devices', devices, '--port', '0', '--host', '127.0.0.1', '--store', redis.url, '--metrics-port', '0', '--webhook', hook.url];
    [a, b] = await Promise.all([
      startCloudProcess([...common, '--heal', 'reset-token,malformed']),
      startCloudProcess([...common, '--heal', 'none']),
    ]);
  });
  after(async () => {
    a?.proc.kill();
    b?.proc.kill();
    await Promise.all([a?.proc.exited, b?.proc.exited]);
    await redis?.kill9();
    await hook?.close();
  });

  it('a session established through one process is served by the other', async (t) => {
    if (missing) return skipOrFail(t, missing);
    const c = await UdpCloudClient.open(a.port, { identity: 'shared-id', psk: PSK, offerCid: deviceHandle('shared-dev') });
    const plain = await UdpCloudClient.open(a.port, { identity: 'shared-id', psk: PSK }); // no CID: found by address
    try {
      await c.connect();
      await plain.connect();
      await c.ping();
      c.retarget(b.port);
      plain.retarget(b.port);
      await c.ping();
      await plain.ping();
      await c.request((mid) => c.client.event('hello', 1, Buffer.from('via B'), { mid }));
      await until(() => hook.accepted().length === 1, 5000, 'the webhook delivery');
      assert.equal(hook.accepted()[0].id, 'shared-dev:1');
      const mb = await scrape(b.metricsPort);
      assert.equal(metric(mb, 'sleepy_cloud_handshakes_total{result="completed"}'), 0, 'B never handshook');
      assert.ok(metric(mb, 'sleepy_cloud_coap_total{kind="ping"}') >= 2, 'B answered pings for sessions A made');
    } finally {
      c.close();
      plain.close();
    }
  });

  it('kill -9 of redis-server mid-traffic, restart empty: no crash, handshakes answered, heals per flags, metrics show it', async (t) => {
    if (missing) return skipOrFail(t, missing);
    const c = await UdpCloudClient.open(a.port, { identity: 'shared-id', psk: PSK, offerCid: deviceHandle('shared-dev') });
    try {
      await c.connect();
      let acks = 0;
      c.socket.on('message', () => acks++);
      let turn = 0;
      const traffic = setInterval(() => c.send(c.client.ping(), turn++ % 2 ? b.port : a.port), 5);
      await until(() => acks > 20, 5000, 'traffic to flow');
      await redis.kill9();
      await new Promise((r) => setTimeout(r, 400));
      assert.ok(a.proc.alive && b.proc.alive, 'both cloud processes survive the crash');
      assert.ok(await answersHello(a.port), 'A answers a ClientHello with Redis down');
      assert.ok(await answersHello(b.port), 'B answers a ClientHello with Redis down');
      const down = await scrape(a.metricsPort);
      assert.ok(metric(down, 'sleepy_cloud_store_errors_total{op="get"}') > 0, 'store errors are counted');
      const reset = c.waitFor((e) => e.kind === 'reset', 15_000, 'a reset from A once Redis is back');
      const malformed = c.waitFor((e) => e.kind === 'malformed', 15_000, 'a malformed datagram from A');
      await redis.start(); // same port, empty cache
      await Promise.all([reset, malformed]);
      await until(async () => metric(await scrape(b.metricsPort), 'sleepy_cloud_unknown_session_records_total{kind="cid"}') > 0, 5000, 'B to count unknown sessions');
      clearInterval(traffic);
      const ma = await scrape(a.metricsPort);
      const mb = await scrape(b.metricsPort);
      assert.ok(metric(ma, 'sleepy_cloud_heals_sent_total{kind="reset-token"}') >= 1, 'metric(ma, \'sleepy_cloud_heals_sent_total{kind="reset-token"}\') >= 1');
      assert.ok(metric(ma, 'sleepy_cloud_heals_sent_total{kind="malformed"}') >= 1, 'metric(ma, \'sleepy_cloud_heals_sent_total{kind="malformed"}\') >= 1');
      assert.ok(metric(ma, 'sleepy_cloud_unknown_session_records_total{kind="cid"}') >= 1, 'metric(ma, \'sleepy_cloud_unknown_session_records_total{kind="cid"}\') >= 1');
      assert.equal(metric(mb, 'sleepy_cloud_heals_sent_total{kind="reset-token"}') + metric(mb, 'sleepy_cloud_heals_sent_total{kind="malformed"}'), 0, 'B has heal none');
      assert.ok(metric(mb, 'sleepy_cloud_store_errors_total{op="get"}') > 0, 'metric(mb, \'sleepy_cloud_store_errors_total{op="get"}\') > 0');
      for (const m of [ma, mb]) assert.equal(metric(m, 'sleepy_cloud_internal_errors_total'), 0);
      // The device heals: a new handshake through B, served by A as well.
      const fresh = await UdpCloudClient.open(b.port, { identity: 'shared-id', psk: PSK, offerCid: deviceHandle('shared-dev') });
      await fresh.connect();
      await fresh.ping();
      fresh.retarget(a.port);
      await fresh.ping();
      fresh.close();
    } finally {
      c.close();
    }
  });

  it('keys appear in no output and no metrics', async (t) => {
    if (missing) return skipOrFail(t, missing);
    const texts = [a.proc.out.toString(), a.proc.err, b.proc.out.toString(), b.proc.err];
    for (const p of [a, b]) texts.push(await (await fetch(`http://127.0.0.1:${p.metricsPort}/metrics`)).text());
    for (const text of texts) {
      for (const secret of [PSK.toString('hex'), SECRET.toString('hex'), PSK.toString('base64')]) assert.ok(!text.includes(secret), '!text.includes(secret)');
    }
  });
});
