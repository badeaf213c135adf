// Issue 10, protocol and robustness: bounded maps with O(1) eviction; a ClientHello numbered
// 2^48−1 behind a valid cookie; a Finished split into two fragments and a fragmented ClientHello;
// renegotiation refused with no_renegotiation; hostile ClientHellos that carry the right
// address-bound cookie (so the code behind the cookie is what they hit); the half-open flood that
// used to lock every device out; idempotency keys with the device's incarnation.
import crypto from 'node:crypto';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BoundedMap } from '../../host/cloud/bounded.ts';
import { MemoryEventLog, idempotencyKey } from '../../host/cloud/events.ts';
import { parseClientHello } from '../../host/cloud/handshake.ts';
import { CloudSecrets } from '../../host/cloud/heal.ts';
import { MemoryStore } from '../../host/cloud/store.ts';
import { createMetrics } from '../../host/cloud/metrics.ts';
import { CLOUD_SECRET, Link, connected, dev1, kinds, makeCore } from './fixtures/cloud-harness.ts';
import { TestDtlsClient, UdpCloudClient, coapHeader, type ClientOptions } from './fixtures/cloud-client.ts';
import { DeviceRegistry, deviceHandle } from '../../host/cloud/devices.ts';
import { CT_TLS12_CID, recordHeader } from '../../host/cloud/wire.ts';
import { startCloud } from '../../host/cloud/server.ts';
import type { CloudCore } from '../../host/cloud/core.ts';
import { prng, until } from './fixtures/cloud-tools.ts';

describe('BoundedMap', () => {
  it('keeps the newest maxEntries, evicts oldest first (re-set moves to newest), and stays consistent through 300k inserts at the bound', () => {
    const evicted: number[] = [];
    const m = new BoundedMap<number, number>(3, (k) => evicted.push(k));
    for (const k of [1, 2, 3]) m.set(k, k * 10);
    m.set(1, 11); // 1 is newest now
    m.set(4, 40);
    assert.deepEqual(evicted, [2]);
    assert.deepEqual([...m.entries()], [[3, 30], [1, 11], [4, 40]]);
    assert.equal(m.delete(1), true);
    assert.deepEqual(m.oldest(), [3, 30]);
    for (const [k] of m) m.delete(k); // deleting while iterating
    assert.equal(m.size, 0);
    const big = new BoundedMap<string, number>(100_000);
    for (let i = 0; i < 300_000; i++) big.set(`k${i}`, i);
    assert.equal(big.size, 100_000);
    assert.deepEqual(big.oldest(), ['k200000', 200_000]);
    assert.equal(big.get('k199999'), undefined);
    assert.equal(big.get('k299999'), 299_999);
  });
});

/** Runs a fresh client through the cookie exchange and returns the datagram carrying its second ClientHello. */
async function cookieHello(core: CloudCore, from: string, client: TestDtlsClient, now: number): Promise<Buffer[]> {
  const hvr = await core.handleDatagram(client.start(), from, now);
  assert.equal(hvr.transmits.length, 1, 'HelloVerifyRequest');
  return client.receive(hvr.transmits[0].data).send;
}

describe('cloud core: behind the cookie', () => {
  it('a ClientHello with a valid cookie and record sequence number 2^48−1 (or message_seq 65535) is dropped with a reason, no exception', async () => {
    for (const seq of [2 ** 48 - 1, 2 ** 48 - 2, 2 ** 48 - 64]) {
      const core = makeCore();
      const client = new TestDtlsClient({ ...dev1(), epoch0Seq: seq - 1 }); // its second ClientHello gets `seq`
      const ch2 = await cookieHello(core, '10.0.0.1:1', client, 1000);
      const out = await core.handleDatagram(ch2[0], '10.0.0.1:1', 1000);
      assert.equal(core.stats.get('internal_errors'), 0, `seq ${seq}`);
      assert.equal(out.transmits.length, 0);
      assert.equal(core.stats.get('drops', 'record_sequence_exhausted'), 1);
    }
    const core = makeCore();
    const client = new TestDtlsClient(dev1());
    const ch2 = (await cookieHello(core, '10.0.0.1:1', client, 1000))[0];
    ch2.writeUInt16BE(65535, 13 + 4); // message_seq of the ClientHello
    assert.equal((await core.handleDatagram(ch2, '10.0.0.1:1', 1000)).transmits.length, 0);
    assert.equal(core.stats.get('drops', 'message_sequence_exhausted'), 1);
    assert.equal(core.stats.get('internal_errors'), 0);
    // Just below the headroom, the handshake works and numbers its flight after the client's record.
    const link = new Link(makeCore(), new TestDtlsClient({ ...dev1(), epoch0Seq: 2 ** 48 - 70 }));
    await link.handshake();
    assert.equal(link.core.stats.get('internal_errors'), 0);
  });

  it('a Finished split into two fragments (two records) completes the handshake', async () => {
    const link = await connected(dev1({ splitFinished: true }));
    assert.equal(link.client.state, 'connected');
    assert.equal(link.core.stats.get('handshake_failures', 'bad_finished'), 0);
    const ev = await link.send(link.client.ping());
    assert.ok(kinds(ev).includes('coap'), "kinds(ev).includes('coap')");
  });

  it('a ClientHello in three fragments (three datagrams) completes the handshake; the reassembly table stays bounded', async () => {
    const link = await connected(dev1({ helloFragments: 3 }));
    assert.equal(link.client.state, 'connected');
    assert.equal(link.core.tableSizes().helloReassembly, 0, 'done reassemblies are forgotten');
    const core = makeCore({ config: { maxHelloReassemblies: 8 } });
    for (let i = 0; i < 50; i++) {
      const c = new TestDtlsClient(dev1({ helloFragments: 2 }));
      const parts = await cookieHello(core, `10.1.0.${i}:5`, c, 1000);
      await core.handleDatagram(parts[0], `10.1.0.${i}:5`, 1000); // the second part never comes
    }
    assert.equal(core.tableSizes().helloReassembly, 8);
    await core.handleTimeout(1000 + core.config.helloReassemblyMs);
    assert.equal(core.tableSizes().helloReassembly, 0, 'expired');
  });

  it('renegotiation on an established session gets a warning no_renegotiation alert, not our final flight', async () => {
    const link = await connected();
    await link.send(link.client.ping()); // the session is confirmed
    const before = link.downlink.length;
    const ev = await link.send(link.client.renegotiationHello());
    assert.deepEqual(ev.filter((e) => e.kind === 'alert'), [{ kind: 'alert', level: 1, description: 100 }]);
    assert.equal(link.downlink.length, before + 1, 'one datagram: the alert');
    assert.equal(link.core.stats.get('renegotiations_refused'), 1);
    await link.tick(10_000);
    assert.equal(link.downlink.length, before + 1, 'nothing resent later');
    // A repeated Finished before any application data is still answered with the final flight
    // (a device without a handle: no reset-token exchange, so no application data yet).
    const l2 = await connected(dev1({ offerCid: Buffer.alloc(0) }));
    const n = l2.downlink.length;
    await l2.send(l2.client.finishedAgain());
    assert.equal(l2.downlink.length, n + 1);
    assert.equal(l2.core.stats.get('renegotiations_refused'), 0);
  });

  it('5,000 hostile ClientHellos that carry the right cookie: no exception, every datagram counted, tables bounded, the device still served', async () => {
    const core = makeCore({ config: { maxPendingHandshakes: 500, maxPendingPerAddress: 50 } });
    const secrets = new CloudSecrets(CLOUD_SECRET);
    const r = prng(10);
    const int = (n: number) => Math.floor(r() * n);
    const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
    const vec = (lenBytes: 1 | 2, v: Buffer) => {
      const h = Buffer.alloc(lenBytes);
      if (lenBytes === 1) h[0] = v.length & 0xff;
      else h.writeUInt16BE(v.length & 0xffff);
      return Buffer.concat([h, v]);
    };
    const ext = (type: number, data: Buffer) => {
      const h = Buffer.alloc(4);
      h.writeUInt16BE(type);
      h.writeUInt16BE(data.length, 2);
      return Buffer.concat([h, data]);
    };
    const SUITES = [0xc0a8, 0x00ff, 0xc0ae, 0x002f, int(65536)];
    let sent = 0;
    for (let i = 0; i < 5000; i++) {
      const from = `10.2.${int(4)}.${int(256)}:${1 + int(65535)}`;
      const suites = Buffer.concat(
        Array.from({ length: 1 + int(4) }, () => {
          const b = Buffer.alloc(2);
          b.writeUInt16BE(SUITES[int(SUITES.length)]);
          return b;
        }),
      );
      const exts: Buffer[] = [];
      if (r() < 0.8) exts.push(ext(0x0017, r() < 0.9 ? Buffer.alloc(0) : bytes(int(4))));
      if (r() < 0.7) exts.push(ext(54, r() < 0.7 ? vec(1, bytes([0, 4, 4, 8, 32, 255][int(6)])) : bytes(int(40))));
      if (r() < 0.3) exts.push(ext(0xff01, r() < 0.5 ? Buffer.from([0]) : bytes(int(5))));
      if (r() < 0.3) exts.push(ext(int(65536), bytes(int(20))));
      const version = r() < 0.8 ? Buffer.from([0xfe, 0xfd]) : [Buffer.from([0xfe, 0xff]), Buffer.from([0x03, 0x03])][int(2)];
      const build = (cookie: Buffer) =>
        Buffer.concat([version, bytes(32), vec(1, bytes(int(3) === 0 ? int(33) : 0)), vec(1, cookie), vec(2, suites), vec(1, r() < 0.9 ? Buffer.from([0]) : bytes(int(3))), r() < 0.95 ? vec(2, Buffer.concat(exts)) : Buffer.alloc(0)]);
      const body0 = build(Buffer.alloc(0));
      const parsed = parseClientHello(body0);
      if (typeof parsed === 'string') continue;
      const body = Buffer.concat([body0.subarray(0, 35 + body0[34]), vec(1, secrets.cookie(from, parsed.cookieless, 1000, core.config.cookieRotationMs)), body0.subarray(36 + body0[34])]);
      const hs = Buffer.alloc(12);
      hs[0] = 1;
      hs.writeUIntBE(body.length, 1, 3);
      hs.writeUInt16BE(r() < 0.05 ? 65535 - int(8) : 1, 4);
      hs.writeUIntBE(body.length, 9, 3);
      const rec = Buffer.alloc(13);
      rec[0] = 22;
      rec.writeUInt16BE(0xfefd, 1);
      rec.writeUIntBE(r() < 0.1 ? 2 ** 48 - 1 - int(70) : int(2 ** 32), 5, 6);
      rec.writeUInt16BE(12 + body.length, 11);
      const dg = Buffer.concat([rec, hs, body]);
      await core.handleDatagram(dg, from, 1000);
      sent++;
    }
    const s = core.stats;
    assert.ok(sent > 2500, `${sent} hellos were well-formed enough to send`);
    assert.equal(s.get('internal_errors'), 0);
    assert.equal(s.get('datagrams_accepted') + s.get('datagrams_dropped'), sent);
    assert.ok(s.get('handshakes', 'started') > 500, `${s.get('handshakes', 'started')} got past every check`);
    assert.ok(s.get('handshakes', 'failed') > 300, `${s.get('handshakes', 'failed')} were refused with an alert`);
    assert.ok(core.tableSizes().pending <= 500, 'core.tableSizes().pending <= 500');
    const link = new Link(core, new TestDtlsClient(dev1()), '10.0.0.1:5684');
    link.now = 1000;
    await link.handshake();
  });
});

describe('undecryptable records with a known CID (for issue 13)', () => {
  it('are counted per device (bad MAC, or a lost session) and exported as sleepy_cloud_undecryptable_records_total{device}', async () => {
    const link = await connected();
    const bad = link.client.ping();
    bad[bad.length - 1] ^= 1; // the tag no longer matches
    await link.send(bad, bad);
    const unknownCid = link.client.ping();
    unknownCid[11] ^= 0xff; // a CID of no session: not counted here (it is an unknown session)
    await link.send(unknownCid);
    assert.equal(link.core.stats.get('undecryptable_records', 'dev-1'), 2);
    // The incident: the cache lost the session; the CID still names the device (by its handle,
    // also in a process that never saw the session), so its records count for it.
    await link.core.store.wipe();
    await link.send(link.client.ping());
    const fresh = makeCore();
    await fresh.handleDatagram(link.client.ping(), '10.0.0.1:5684', 0);
    assert.equal(fresh.stats.get('undecryptable_records', 'dev-1'), 1);
    assert.equal(link.core.stats.get('undecryptable_records', 'dev-1'), 3);
    const m = createMetrics();
    m.attach(link.core);
    assert.match(await m.registry.metrics(), /^sleepy_cloud_undecryptable_records_total\{device="dev-1"\} 3$/m);
  });
});

describe('undecryptable records: only CIDs the cloud issued count (issue 18)', () => {
  it('50 records carrying the public handle of a device that never connected (or made-up CIDs of one that did) count for nobody; a CID the cloud issued still counts after a cache loss, in any process', async () => {
    const core = makeCore();
    const forge = (handle: Buffer, i: number) => {
      const cid = Buffer.concat([handle, crypto.createHash('sha256').update(`forged ${i}`).digest().subarray(0, 8)]);
      const body = Buffer.alloc(32, i);
      return Buffer.concat([recordHeader(CT_TLS12_CID, 1, i, body.length, cid), body]);
    };
    for (let i = 0; i < 50; i++) await core.handleDatagram(forge(deviceHandle('dev-2'), i), `203.0.113.${i}:40000`, 1000 + i);
    assert.equal(core.stats.get('unknown_session_records', 'cid'), 50);
    assert.equal(core.stats.get('undecryptable_records', 'dev-2'), 0, 'a public handle names a device but proves nothing');
    const link = await connected(dev1(), core);
    for (let i = 0; i < 50; i++) await core.handleDatagram(forge(deviceHandle('dev-1'), i), `203.0.113.${i}:40000`, 2000 + i);
    assert.equal(core.stats.get('undecryptable_records', 'dev-1'), 0, 'nor does a made-up CID with the handle of a device that has a session');
    await core.store.wipe();
    await link.send(link.client.ping());
    const other = makeCore();
    await other.handleDatagram(link.client.ping(), '10.0.0.1:5684', 0);
    assert.equal(core.stats.get('undecryptable_records', 'dev-1'), 1);
    assert.equal(other.stats.get('undecryptable_records', 'dev-1'), 1, 'the tag of the issued CID verifies in a process that never saw it');
  });
});

describe('failed handshakes are logged, one line each, with the reason', () => {
  it('no EMS, no shared cipher suite, unknown identity, wrong PSK', async () => {
    const lines: string[] = [];
    const cloud = await startCloud({ port: 0, devices: new DeviceRegistry([{ id: 'log-dev', identity: 'log-id', psk: Buffer.alloc(16, 1) }]), log: (l) => lines.push(l) });
    const attempt = async (opts: ClientOptions) => {
      const c = await UdpCloudClient.open(cloud.port, opts);
      c.send(c.client.start());
      await new Promise((r) => setTimeout(r, 300));
      c.close();
    };
    try {
      await attempt({ identity: 'log-id', psk: Buffer.alloc(16, 1), ems: false });
      await attempt({ identity: 'log-id', psk: Buffer.alloc(16, 1), suites: [0xc0ae] });
      await attempt({ identity: 'nobody', psk: Buffer.alloc(16, 1) });
      await attempt({ identity: 'log-id', psk: Buffer.alloc(16, 2) });
      await until(() => lines.filter((l) => l.includes('handshake failed')).length >= 4, 3000, 'four failure lines');
    } finally {
      await cloud.close();
    }
    const failed = lines.filter((l) => l.includes('handshake failed'));
    assert.equal(failed.length, 4, failed.join('\n'));
    assert.match(failed[0], /^cloud: handshake failed from=127\.0\.0\.1:\d+ reason=no_extended_master_secret$/);
    assert.match(failed[1], /reason=no_shared_cipher_suite$/);
    assert.match(failed[2], /identity="nobody" reason=unknown_psk_identity$/);
    assert.match(failed[3], /identity="log-id" reason=finished_not_authentic \(wrong PSK\?\)$/);
  });
});

describe('no lockout by half-open handshakes', () => {
  it('one host with 12,000 half-open handshakes (cookie completed, then silence) from as many ports: a device elsewhere and a device on that same host both complete', async () => {
    const core = makeCore();
    const now = 5000;
    for (let port = 1; port <= 12_000; port++) {
      const c = new TestDtlsClient(dev1());
      const ch2 = await cookieHello(core, `10.66.0.1:${port}`, c, now);
      await core.handleDatagram(ch2[0], `10.66.0.1:${port}`, now);
    }
    const sizes = core.tableSizes();
    assert.equal(sizes.pending, core.config.maxPendingPerAddress, 'the flooding host holds its quota, no more');
    assert.equal(core.stats.get('drops', 'pending_handshakes_full'), 0);
    const elsewhere = new Link(core, new TestDtlsClient(dev1()), '10.0.0.7:5684');
    elsewhere.now = now;
    await elsewhere.handshake();
    // Same host: its handshake survives as long as fewer than a quota of newer half-opens arrive.
    const c = new TestDtlsClient({ ...dev1(), offerCid: undefined });
    const ch2 = await cookieHello(core, '10.66.0.1:60000', c, now);
    const flight = await core.handleDatagram(ch2[0], '10.66.0.1:60000', now);
    for (let port = 12_001; port <= 12_500; port++) {
      const f = new TestDtlsClient(dev1());
      const x = await cookieHello(core, `10.66.0.1:${port}`, f, now);
      await core.handleDatagram(x[0], `10.66.0.1:${port}`, now);
    }
    const fin = c.receive(flight.transmits[0].data).send;
    const done = await core.handleDatagram(fin[0], '10.66.0.1:60000', now);
    assert.deepEqual(kinds(c.receive(done.transmits[0].data).events), ['connected']);
    assert.equal(core.stats.get('handshakes', 'completed'), 2);
  });

  it('a flood that presents a known identity (no PSK) fills only its own per-address quota of keyed handshakes', async () => {
    const core = makeCore({ config: { maxKeyedPerAddress: 16 } });
    for (let port = 1; port <= 200; port++) {
      const c = new TestDtlsClient({ ...dev1(), psk: Buffer.alloc(16, 9) }); // wrong PSK: Finished never verifies
      const ch2 = await cookieHello(core, `10.77.0.1:${port}`, c, 0);
      const flight = await core.handleDatagram(ch2[0], `10.77.0.1:${port}`, 0);
      const cke = c.receive(flight.transmits[0].data).send;
      await core.handleDatagram(cke[0], `10.77.0.1:${port}`, 0);
    }
    assert.equal(core.tableSizes().keyed, 16);
    assert.equal(core.stats.get('handshake_failures', 'finished_not_authentic'), 200);
    const link = new Link(core, new TestDtlsClient(dev1()), '10.0.0.8:5684');
    link.now = 0;
    await link.handshake();
  });
});

describe('events: idempotency key with the device incarnation', () => {
  it('a re-provisioned device (new incarnation, seq from 0 again) is delivered; a retransmission with the same key is not; legacy devices keep device:seq', async () => {
    const core = makeCore();
    const link = await connected(dev1(), core);
    const inc1 = Buffer.from('01020304', 'hex');
    const inc2 = Buffer.from('a1a2a3a4', 'hex');
    const send = async (seq: number, incarnation?: Buffer) => {
      const ev = await link.send(link.client.event('t', seq, Buffer.from('x'), { incarnation }));
      return coapHeader((ev.find((e) => e.kind === 'coap') as { message: Buffer }).message).code;
    };
    assert.equal(await send(0, inc1), 0x44);
    assert.equal(await send(1, inc1), 0x44);
    assert.equal(await send(1, inc1), 0x44); // retransmitted after a lost ACK (new MID)
    assert.equal(await send(0, inc2), 0x44); // erased and provisioned again
    assert.equal(await send(0), 0x44); // a legacy device
    const delivered = link.cloudEvents.filter((e) => e.kind === 'event').map((e) => idempotencyKey(e as { deviceId: string; incarnation: string | null; seq: number }));
    assert.deepEqual(delivered, ['dev-1:01020304:0', 'dev-1:01020304:1', 'dev-1:a1a2a3a4:0', 'dev-1:0']);
    assert.equal(core.stats.get('events', 'duplicate'), 1);
    // A wrong-length incarnation is refused with 4.00, not taken as a legacy event.
    assert.equal(await send(5, Buffer.from('0102', 'hex')), 0x80);
  });

  it('claims survive a wipe of the session cache (they live in the event log); the memory log is bounded and says full instead of dropping', async () => {
    const events = new MemoryEventLog({ maxClaims: 4, maxBacklog: 3 });
    const store = new MemoryStore();
    const core = makeCore({ store });
    const ev = (seq: number) => ({ deviceId: 'd', incarnation: null, seq, name: 'n', data: Buffer.alloc(0), receivedMs: 0 });
    assert.equal(await events.append(ev(1), 1e9, 0), 'appended');
    assert.equal(await events.append(ev(1), 1e9, 0), 'duplicate');
    assert.equal(await events.append(ev(2), 1e9, 0), 'appended');
    assert.equal(await events.append(ev(3), 1e9, 0), 'appended');
    assert.equal(await events.append(ev(4), 1e9, 0), 'full', 'backlog bound: refused, so the device is not ACKed');
    await events.ack((await events.take('c', 10)).map((e) => e.id));
    for (let s = 4; s <= 6; s++) assert.equal(await events.append(ev(s), 1e9, 0), 'appended');
    assert.equal(events.claimCount, 4, 'claims bounded');
    // Claims past their TTL are dropped: a long-running memory cloud holds one TTL of them.
    const ttl = new MemoryEventLog();
    for (let s = 0; s < 5; s++) assert.equal(await ttl.append(ev(s), 1000, s * 100), 'appended');
    assert.equal(ttl.claimCount, 5);
    assert.equal(await ttl.append(ev(0), 1000, 999), 'duplicate', 'within its TTL a claim still says duplicate');
    assert.equal(await ttl.append(ev(9), 1000, 1250), 'appended');
    assert.equal(ttl.claimCount, 3, 'the claims of t=0, 100 and 200 ms expired at 1000, 1100 and 1200 ms: 5 - 3 + 1');
    // Through the core: a cache wipe does not make a retransmitted event new.
    const link = await connected(dev1(), core);
    await link.send(link.client.event('t', 7, Buffer.from('x')));
    await store.wipe();
    const again = await connected(dev1(), core);
    await again.send(again.client.event('t', 7, Buffer.from('x')));
    assert.equal(core.stats.get('events', 'accepted'), 1);
    assert.equal(core.stats.get('events', 'duplicate'), 1);
  });
});
