// The session store and the event log on a Redis Cluster (redis-cluster://…), against a local
// 6-node cluster (3 masters + 3 replicas): keys of one multi-key operation share a slot, the event
// log spreads devices over its shards and keeps each device's order, the claim bound trims in the
// device's slot, a failover is followed, and WAIT stops an ACK that no replica confirmed.
// The multi-process scenario (front ends, load balancer, faults) is cloud-cluster.test.ts.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RedisEventLog, shardOf } from '../../host/cloud/redis-events.ts';
import { RedisStore } from '../../host/cloud/redis-store.ts';
import { ReplicationError, clusterNodes, clusterParams } from '../../host/cloud/redis-client.ts';
import { cloudOptionsFromArgs, runEventsCommand } from '../../host/cloud/cli.ts';
import { UsageError } from '../../host/cli-flags.ts';
import type { DeviceEvent } from '../../host/cloud/events.ts';
import { toolMissing, until, writeDevicesFile } from './fixtures/cloud-tools.ts';
import { RedisCluster, freeClusterPorts } from './fixtures/redis-cluster.ts';
import { skipOrFail } from './engines.ts';

const missing = toolMissing('redis-server', ['--version']) ?? toolMissing('redis-cli', ['--version']);
const ev = (deviceId: string, seq: number, data = `v${seq}`): DeviceEvent => ({ deviceId, incarnation: 'abcd0123', seq, name: 't', data: Buffer.from(data), receivedMs: 1 });

describe('redis-cluster:// URLs and flags', () => {
  it('parses nodes and options; a bad one names the flag and what is allowed', () => {
    assert.deepEqual(clusterNodes('redis-cluster://10.0.0.1:7000,10.0.0.2:7001'), [
      { host: '10.0.0.1', port: 7000 },
      { host: '10.0.0.2', port: 7001 },
    ]);
    assert.deepEqual(clusterParams('redis-cluster://h:1?shards=4&wait=0'), { shards: 4, waitReplicas: 0, waitMs: 500 });
    const devices = writeDevicesFile({ devices: [{ id: 'd', psk: '00'.repeat(16) }] });
    assert.equal(cloudOptionsFromArgs(['--devices', devices, '--store', 'redis-cluster://127.0.0.1:7000,127.0.0.1:7001']).store, 'redis-cluster://127.0.0.1:7000,127.0.0.1:7001');
    for (const [flag, bad, says] of [
      ['store', 'redis-cluster://127.0.0.1:99999', /--store: bad node '127\.0\.0\.1:99999'.*port 1\.\.65535/],
      ['events', 'redis-cluster://h:1?shards=0', /--events: 'shards' .* 1\.\.1024/],
      ['events', 'redis-cluster://h:1?wait-for=1', /--events: unknown option 'wait-for'.*allowed: wait, wait-ms, shards/],
    ] as const) {
      assert.throws(() => cloudOptionsFromArgs(['--devices', devices, `--${flag}`, bad]), (e: Error) => e instanceof UsageError && says.test(e.message), `${flag} ${bad}`);
    }
  });

  it('an unreachable cluster is one line naming its URL', async () => {
    await assert.rejects(RedisStore.connect({ url: 'redis-cluster://127.0.0.1:1', connectTimeoutMs: 20_000 }), /^Error: cannot reach Redis Cluster at redis-cluster:\/\/127\.0\.0\.1:1/);
  });
});

describe('session store and event log on a Redis Cluster (3 masters, 3 replicas)', () => {
  let cluster: RedisCluster;
  let log: RedisEventLog;
  let store: RedisStore;

  before(async () => {
    if (missing) return;
    cluster = new RedisCluster(await freeClusterPorts(6), true);
    await cluster.start();
    // WAIT bounded at 10 s instead of the default 500 ms: these tests are about slots, order and
    // claims, and a replica of a loaded CI machine may take longer than 500 ms to confirm a write
    // (the WAIT tests below stop the replica outright, so their verdict holds at any bound).
    log = await RedisEventLog.connect({ url: `${cluster.url}?wait-ms=10000`, maxClaimsPerDevice: 3 });
    store = await RedisStore.connect({ url: `${cluster.url}?wait-ms=10000` });
  });
  after(async () => {
    await log?.close();
    await store?.close();
    await cluster?.stop();
  });

  it('spreads devices over the shards on every master and keeps each device in order', async (t) => {
    if (missing) return skipOrFail(t, missing);
    const devices = Array.from({ length: 40 }, (_, i) => `spread:${i}`);
    for (let seq = 0; seq < 5; seq++) for (const d of devices) assert.equal(await log.append(ev(d, seq), 60_000, 0), 'appended');
    const shards = new Set(devices.map((d) => shardOf(d, log.shardCount)));
    const masters = new Set([...shards].map((n) => cluster.masterFor(`ssev:{${n}}log`)));
    assert.equal(masters.size, 3, `the devices' shards are on every master (shards ${[...shards].join(',')})`);
    assert.equal(await log.backlog(), 200);
    const taken: Awaited<ReturnType<RedisEventLog["take"]>> = [];
    while (taken.length < 200) {
      const got = await log.take('c1', 1000);
      assert.ok(got.length > 0, 'take hands everything over');
      taken.push(...got);
    }
    for (const d of devices) {
      const seqs = taken.filter((e) => e.ev.deviceId === d).map((e) => e.ev.seq);
      assert.deepEqual(seqs, [0, 1, 2, 3, 4], `${d} in order`);
    }
    await log.ack(taken.map((e) => e.id));
    assert.equal(await log.backlog(), 0);
  });

  it('claims: a duplicate is recognised, the per-device bound deletes the oldest claims in the device\'s slot', async (t) => {
    if (missing) return skipOrFail(t, missing);
    const d = 'claims{x}:1'; // braces and a colon in the id: the shard's hash tag still decides the slot
    const before = log.trimmed.claims;
    for (let seq = 0; seq < 5; seq++) assert.equal(await log.append(ev(d, seq), 60_000, 0), 'appended');
    assert.equal(await log.append(ev(d, 4), 60_000, 0), 'duplicate');
    assert.equal(await log.append(ev(d, 4, 'other'), 60_000, 0), 'conflict');
    assert.equal(log.trimmed.claims - before, 2, 'bound 3: the two oldest claims deleted');
    assert.equal(await log.append(ev(d, 0), 60_000, 0), 'appended', 'a trimmed claim is gone: the same key is new again');
    const taken = await log.take('c1', 1000);
    await log.ack(taken.map((e) => e.id));
  });

  it('sessions: put, accept, reserve and a wipe that empties every master', async (t) => {
    if (missing) return skipOrFail(t, missing);
    const s = { deviceId: 'd', epoch: 1, cid: '', peerCid: '', keys: '00', createdMs: 1, token: false };
    for (let i = 0; i < 30; i++) await store.put(`cid${i}`, { ...s, cid: `cid${i}` }, { top: 0, nextOutSeq: 1 }, 60_000, 0);
    assert.deepEqual(await store.accept('cid7', 1, 2, 60_000, 0), { status: 'ok', outSeq: 1 });
    assert.deepEqual(await store.accept('cid7', 1, 1, 60_000, 0), { status: 'replay', outSeq: 0 });
    assert.equal(await store.reserve('cid7', 1, 0), 3);
    await store.wipe();
    for (let i = 0; i < 30; i++) assert.equal(await store.get(`cid${i}`, 0), undefined);
  });

  it('WAIT: no ACK while the replica does not confirm; after it does, the retry is a confirmed duplicate', async (t) => {
    if (missing) return skipOrFail(t, missing);
    const d = 'wait:1';
    const master = cluster.masterFor(`ssev:{${shardOf(d, log.shardCount)}}log`);
    const replica = cluster.replicaOf(master);
    cluster.pause(replica, true);
    try {
      await assert.rejects(log.append(ev(d, 0), 60_000, 0), ReplicationError, 'the cloud must not ACK a write only the master has');
    } finally {
      cluster.pause(replica, false);
    }
    // The device sends it again (it got no ACK): the claim is there, now replicated.
    await until(async () => (await log.append(ev(d, 0), 60_000, 0).catch(() => 'error')) === 'duplicate', 30_000, 'the retry to be a confirmed duplicate');
    await log.ack((await log.take('c1', 1000)).map((e) => e.id));
  });

  it('WAIT guards the sequence numbers a session reserves: no reply while the replica does not confirm', async (t) => {
    if (missing) return skipOrFail(t, missing);
    const s = { deviceId: 'w', epoch: 1, cid: 'w1', peerCid: '', keys: '00', createdMs: 1, token: false };
    await store.put('w1', s, { top: 0, nextOutSeq: 1 }, 60_000, 0);
    const replica = cluster.replicaOf(cluster.masterFor('ss:s:w1'));
    cluster.pause(replica, true);
    try {
      await assert.rejects(store.accept('w1', 1, 1, 60_000, 0), ReplicationError, 'a reply would use numbers a failover could hand out again');
      await assert.rejects(store.reserve('w1', 1, 0), ReplicationError);
      assert.equal((await store.accept('w1', 2, 0, 60_000, 0)).status, 'ok', 'a record that reserves nothing needs no replica');
    } finally {
      cluster.pause(replica, false);
    }
    await until(async () => (await store.reserve('w1', 1, 0).catch(() => undefined)) !== undefined, 30_000, 'reserve to work again');
  });

  it('sleepy-session events lists and retries the dead letters of every shard (ids <shard>/<stream id>)', async (t) => {
    if (missing) return skipOrFail(t, missing);
    for (const d of ['dl:1', 'dl:2', 'dl:3']) assert.equal(await log.append(ev(d, 0), 60_000, 0), 'appended');
    const taken = await log.take('c1', 1000);
    for (const e of taken) await log.deadLetter(e, 'http_422', 1);
    const dead = await log.listDead(100);
    assert.equal(dead.length, 3);
    for (const d of dead) assert.match(d.id, /^\d+\/\d+-\d+$/);
    const lines: string[] = [];
    const log0 = console.log;
    console.log = (l: string) => lines.push(l);
    try {
      assert.equal(await runEventsCommand(['--events', cluster.url]), 0);
      assert.equal(lines.length, 3, 'one JSON line per dead letter');
      assert.equal(await runEventsCommand(['--events', cluster.url, '--retry', dead[0]!.id]), 0);
    } finally {
      console.log = log0;
    }
    assert.equal(await log.deadCount(), 2);
    assert.equal(await log.backlog(), 1, 'the retried one is back in the log');
    await log.ack((await log.take('c1', 1000)).map((e) => e.id));
    assert.equal(await log.retryDead('all'), 2);
    await log.ack((await log.take('c1', 1000)).map((e) => e.id));
    assert.equal(await log.backlog(), 0);
  });

  it('kill -9 of a master: the client follows the failover, appends go on, nothing appended is lost', async (t) => {
    if (missing) return skipOrFail(t, missing);
    const devices = Array.from({ length: 30 }, (_, i) => `fail:${i}`);
    for (const d of devices) assert.equal(await log.append(ev(d, 0), 60_000, 0), 'appended');
    const victim = cluster.masterPorts()[0]!;
    await cluster.failMaster(victim, 60_000);
    await cluster.startNode(victim); // back as a replica: WAIT needs one
    await cluster.healthy(60_000);
    for (const d of devices) await until(async () => (await log.append(ev(d, 1), 60_000, 0).catch(() => 'error')) === 'appended', 30_000, `${d} appends after the failover`);
    const taken: Awaited<ReturnType<RedisEventLog["take"]>> = [];
    for (let got = await log.take('c1', 1000); got.length > 0; got = await log.take('c1', 1000)) taken.push(...got);
    for (const d of devices) assert.deepEqual(taken.filter((e) => e.ev.deviceId === d).map((e) => e.ev.seq), [0, 1], `${d}: both events, in order`);
  });
});
