// The cloud's sans-IO core in virtual time with the TypeScript test client: handshake (with and
// without connection IDs), cookies, retransmission, CoAP (ping, events, de-duplication), replay
// window, the reset token and both heal features after a cache wipe, rate limits, and two cores
// sharing one store. No sockets: every exchange is deterministic.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../../host/cloud/store.ts';
import { deviceHandle } from '../../host/cloud/devices.ts';
import { TestDtlsClient, coapHeader } from './fixtures/cloud-client.ts';
import { CLOUD_SECRET, Link, PSK1, connected, dev1, kinds, makeCore } from './fixtures/cloud-harness.ts';
import { CloudSecrets } from '../../host/cloud/heal.ts';

describe('cloud core: handshake', () => {
  it('completes a PSK handshake with a CID carrying the device handle, and hands over the reset token', async () => {
    const link = await connected();
    const c = link.client;
    assert.equal(c.state, 'connected');
    assert.equal(c.serverCid?.length, 12, 'handle (4) || 8 random bytes');
    assert.deepEqual(c.serverCid!.subarray(0, 4), deviceHandle('dev-1'), 'the CID starts with the device handle');
    const expected = new CloudSecrets(CLOUD_SECRET).resetToken('dev-1', c.serverCid!);
    assert.deepEqual(c.token, expected, 'token = HMAC(reset key, device id || CID)[:16]');
    const hs = link.cloudEvents.find((e) => e.kind === 'handshake');
    assert.ok(hs && hs.kind === 'handshake' && hs.deviceId === 'dev-1' && hs.tokenIssued, "hs && hs.kind === 'handshake' && hs.deviceId === 'dev-1' && hs.tokenIssued");
    assert.equal(link.core.stats.get('handshakes', 'completed'), 1);
    assert.equal(link.core.stats.get('coap', 'reset_token_acked'), 1, 'the device ACKed the /rt CON');
    assert.equal(link.core.tableSizes().pending, 0);
  });

  it('works without a CID (session found by address) and with an empty CID offer; no token then', async () => {
    for (const offerCid of [undefined, Buffer.alloc(0)]) {
      const link = await connected(dev1({ offerCid }));
      assert.equal(link.client.token, null);
      const ack = await link.send(link.client.ping(0x1234));
      const coap = ack.find((e) => e.kind === 'coap');
      assert.ok(coap && coap.kind === 'coap', "coap && coap.kind === 'coap'");
      assert.deepEqual(coapHeader(coap.message), { type: 2, code: 0, mid: 0x1234 });
      if (offerCid) assert.equal(link.core.stats.get('reset_tokens_not_issued', 'no_handle'), 1);
    }
  });

  it('keeps no state before the cookie verifies, and answers every ClientHello without a valid cookie with a HelloVerifyRequest', async () => {
    const core = makeCore();
    for (let i = 0; i < 500; i++) {
      const c = new TestDtlsClient(dev1());
      const out = await core.handleDatagram(c.start(), `10.1.${i >> 8}.${i & 255}:1000`, 1000);
      assert.equal(out.transmits.length, 1);
      assert.equal(out.transmits[0].data[13], 3, 'HelloVerifyRequest');
    }
    assert.equal(core.tableSizes().pending, 0);
    assert.equal(core.stats.get('hello_verify_requests'), 500);
  });

  it('binds the cookie to the client address', async () => {
    const core = makeCore();
    const c = new TestDtlsClient(dev1());
    const hvr = (await core.handleDatagram(c.start(), '10.0.0.1:1', 1000)).transmits[0].data;
    const ch2 = c.receive(hvr).send[0];
    const other = await core.handleDatagram(ch2, '10.0.0.2:1', 1000);
    assert.equal(other.transmits[0].data[13], 3, 'another address gets a fresh HelloVerifyRequest');
    assert.equal(core.stats.get('cookies_invalid'), 1);
    const same = await core.handleDatagram(ch2, '10.0.0.1:1', 1000);
    assert.equal(same.transmits[0].data[13], 2, 'the right address gets a ServerHello');
  });

  it('accepts a cookie from the previous rotation period only', async () => {
    const rot = 60_000;
    const core = makeCore({ config: { cookieRotationMs: rot } });
    const c = new TestDtlsClient(dev1());
    const hvr = (await core.handleDatagram(c.start(), '10.0.0.1:1', 10)).transmits[0].data;
    const ch2 = c.receive(hvr).send[0];
    assert.equal((await core.handleDatagram(ch2, '10.0.0.9:1', rot + 10)).transmits[0].data[13], 3);
    const late = await core.handleDatagram(ch2, '10.0.0.1:1', 2 * rot + 10);
    assert.equal(late.transmits[0].data[13], 3, 'two periods later the cookie is refused');
    const ok = await core.handleDatagram(ch2, '10.0.0.1:1', rot + 10);
    assert.equal(ok.transmits[0].data[13], 2, 'one period later it is still good');
  });

  it('retransmits its flight on its timer and when the ClientHello is repeated, then gives up', async () => {
    const link = new Link(makeCore(), new TestDtlsClient(dev1()));
    let lose = true;
    link.dropDown = (d) => !(lose && d[0] === 22 && d[13] === 2); // lose ServerHello flights
    await link.send(link.client.start());
    assert.equal(link.client.state, 'wait_server');
    await link.tick(999);
    assert.equal(link.core.stats.get('handshake_retransmits'), 0);
    await link.tick(1);
    assert.equal(link.core.stats.get('handshake_retransmits'), 1, 'after 1 s');
    await link.tick(2000);
    assert.equal(link.core.stats.get('handshake_retransmits'), 2, 'then after 2 s more (doubling)');
    lose = false;
    await link.tick(4000);
    assert.equal(link.client.state, 'connected');
    // A handshake that never progresses is forgotten.
    const l2 = new Link(link.core, new TestDtlsClient(dev1()), '10.0.0.2:1');
    l2.dropDown = (d) => !(d[0] === 22 && d[13] === 2);
    await l2.send(l2.client.start());
    for (let i = 0; i < 10; i++) await l2.tick(8000);
    assert.equal(l2.core.tableSizes().pending, 0);
    assert.equal(l2.core.stats.get('handshakes', 'timed_out'), 1);
  });

  it('resends its final flight when the client repeats its Finished', async () => {
    const link = new Link(makeCore(), new TestDtlsClient(dev1()));
    let finals = 0;
    link.dropDown = (d) => !(d[0] === 20 && finals++ === 0); // lose the first CCS+Finished datagram
    let lastUp: Buffer | null = null;
    const up = link.dropUp;
    link.dropUp = (d) => {
      lastUp = d;
      return up(d);
    };
    await link.send(link.client.start());
    assert.equal(link.client.state, 'wait_finished');
    // The client's timer fires: its last flight (CKE, CCS, Finished) goes out again.
    const ev = await link.send(lastUp!);
    assert.ok(kinds(ev).includes('connected'), kinds(ev).join(','));
    assert.equal(link.core.stats.get('handshake_retransmits'), 1);
  });

  it('completes the handshake when the store write fails once and the client repeats its Finished', async () => {
    const store = new MemoryStore();
    let failures = 1;
    const put = store.put.bind(store);
    store.put = async (...args: Parameters<MemoryStore['put']>) => {
      if (failures-- > 0) throw new Error('store down');
      return put(...args);
    };
    const link = new Link(makeCore({ store }), new TestDtlsClient(dev1()));
    let lastUp: Buffer | null = null;
    link.dropUp = (d) => ((lastUp = d), true);
    await link.send(link.client.start());
    assert.equal(link.client.state, 'wait_finished', 'nothing answered while the store failed');
    assert.equal(link.core.stats.get('store_errors', 'put'), 1);
    const ev = await link.send(lastUp!);
    assert.ok(kinds(ev).includes('connected'), kinds(ev).join(','));
    assert.ok(kinds(ev).includes('token'), "kinds(ev).includes('token')");
    assert.equal(link.core.stats.get('internal_errors'), 0);
  });

  it('refuses unknown identities, a wrong PSK, and clients without the suite or EMS', async () => {
    const unknown = new Link(makeCore(), new TestDtlsClient({ ...dev1(), identity: 'nobody' }));
    const ev = await unknown.send(unknown.client.start());
    assert.ok(ev.some((e) => e.kind === 'alert' && e.description === 115), 'unknown_psk_identity');
    assert.equal(unknown.core.stats.get('handshake_failures', 'unknown_psk_identity'), 1);

    const wrong = new Link(makeCore(), new TestDtlsClient({ ...dev1(), psk: Buffer.alloc(16, 1) }));
    await wrong.send(wrong.client.start());
    assert.notEqual(wrong.client.state, 'connected');
    assert.equal(wrong.core.stats.get('drops', 'bad_mac_finished'), 1);

    const noEms = new Link(makeCore(), new TestDtlsClient({ ...dev1(), ems: false }));
    const e2 = await noEms.send(noEms.client.start());
    assert.ok(e2.some((e) => e.kind === 'alert' && e.description === 40), "e2.some((e) => e.kind === 'alert' && e.description === 40)");
    assert.equal(noEms.core.stats.get('handshake_failures', 'no_extended_master_secret'), 1);

    const noSuite = new Link(makeCore(), new TestDtlsClient({ ...dev1(), suites: [0xc0a4] }));
    await noSuite.send(noSuite.client.start());
    assert.equal(noSuite.core.stats.get('handshake_failures', 'no_shared_cipher_suite'), 1);
  });

  it('a new handshake from a live device replaces its session only when it completes (RFC 6347 §4.2.8)', async () => {
    const link = await connected(dev1({ offerCid: undefined }));
    const c2 = new TestDtlsClient(dev1({ offerCid: undefined }));
    const half = new Link(link.core, c2, link.addr);
    half.dropDown = () => false; // the new handshake never gets past the first flight
    await half.send(c2.start());
    const ack = await link.send(link.client.ping());
    assert.ok(kinds(ack).includes('coap'), 'the old session still works');
  });
});

describe('cloud core: CoAP and the record layer', () => {
  it('answers a ping (empty CON) with an empty ACK, and drops replayed and forged records, counted', async () => {
    const link = await connected();
    const ping = link.client.ping(7);
    const ev = await link.send(ping);
    assert.equal(kinds(ev).join(), 'coap');
    const replay = await link.send(ping);
    assert.deepEqual(replay, []);
    assert.equal(link.core.stats.get('drops', 'replay'), 1);
    const forged = Buffer.from(link.client.ping(8));
    forged[forged.length - 1] ^= 1;
    assert.deepEqual(await link.send(forged), []);
    assert.equal(link.core.stats.get('drops', 'bad_mac'), 1);
  });

  it('accepts out-of-order records inside the window of 64 and refuses older ones', async () => {
    const link = await connected();
    const recs = Array.from({ length: 70 }, () => link.client.ping());
    await link.send(recs[69]);
    await link.send(recs[10]); // 59 behind: inside the window
    await link.send(recs[2]); // 67 behind: too old
    assert.equal(link.core.stats.get('coap', 'ping'), 2);
    assert.equal(link.core.stats.get('drops', 'too_old'), 1);
  });

  it('delivers each (device, event seq) once: CON retransmissions, new message IDs and NONs are de-duplicated', async () => {
    const link = await connected();
    const c = link.client;
    const first = c.event('temp', 41, Buffer.from('21.5'), { mid: 100 });
    const e1 = await link.send(first);
    const ack = e1.find((e) => e.kind === 'coap');
    assert.ok(ack && ack.kind === 'coap', "ack && ack.kind === 'coap'");
    assert.deepEqual(coapHeader(ack.message), { type: 2, code: 0x44, mid: 100 });
    // Same MID again (a CoAP retransmission in a new record): same answer, no second event.
    const e2 = await link.send(c.event('temp', 41, Buffer.from('21.5'), { mid: 100 }));
    assert.equal(kinds(e2).join(), 'coap');
    // Same event seq with a new MID (as after a heal): ACKed, not delivered again.
    await link.send(c.event('temp', 41, Buffer.from('21.5'), { mid: 101 }));
    await link.send(c.event('temp', 42, Buffer.from('22.0'), { mid: 102, confirmable: false }));
    await link.send(c.event('temp', 42, Buffer.from('22.0'), { mid: 103, confirmable: false }));
    const events = link.cloudEvents.filter((e) => e.kind === 'event');
    assert.deepEqual(
      events.map((e) => e.kind === 'event' && [e.deviceId, e.name, e.seq, e.data.toString()]),
      [
        ['dev-1', 'temp', 41, '21.5'],
        ['dev-1', 'temp', 42, '22.0'],
      ],
    );
    assert.equal(link.core.stats.get('events', 'duplicate'), 2);
    assert.equal(link.core.stats.get('coap', 'duplicate'), 1);
  });

  it('keeps a CoAP answer for EXCHANGE_LIFETIME (247 s) only, without needing a timeout to sweep it', async () => {
    // The 2019 cloud sends no confirmables, so handleTimeout may never run: answers are swept as new ones are kept.
    const link = await connected();
    const c = link.client;
    await link.send(c.event('temp', 1, Buffer.from('1'), { mid: 300 }));
    const kept = link.core.tableSizes().dedupe;
    assert.ok(kept >= 1, `the answer to MID 300 is kept (${kept})`);
    link.now += 246_000;
    await link.send(c.event('temp', 2, Buffer.from('2'), { mid: 301 }));
    assert.equal(link.core.tableSizes().dedupe, kept + 1, 'within its lifetime the first answer stays');
    link.now += 2_000;
    await link.send(c.event('temp', 3, Buffer.from('3'), { mid: 302 }));
    assert.equal(link.core.tableSizes().dedupe, 2, 'MID 300 (and anything kept with it) is gone after 247 s; 301 and 302 stay');
  });

  it('answers unknown paths with 4.04 and short event payloads with 4.00', async () => {
    const link = await connected();
    const get = Buffer.from([0x41, 0x01, 0x00, 0x09, 0xaa, 0xb3, ...Buffer.from('foo')]);
    const e1 = await link.send(link.client.app(get));
    const m1 = e1.find((e) => e.kind === 'coap');
    assert.ok(m1 && m1.kind === 'coap' && m1.message[1] === 0x84 && m1.message[4] === 0xaa, "m1 && m1.kind === 'coap' && m1.message[1] === 0x84 && m1.message[4] === 0xaa");
    const short = Buffer.from([0x40, 0x02, 0x00, 0x0a, 0xb1, 0x65, 0x01, 0x78, 0xff, 0x01]);
    const e2 = await link.send(link.client.app(short));
    const m2 = e2.find((e) => e.kind === 'coap');
    assert.ok(m2 && m2.kind === 'coap' && m2.message[1] === 0x80, "m2 && m2.kind === 'coap' && m2.message[1] === 0x80");
    await link.send(link.client.app(Buffer.from('not coap')));
    assert.equal(link.core.stats.get('drops', 'coap_malformed'), 1);
  });

  it('retransmits the reset-token CON until ACKed, then gives up', async () => {
    const core = makeCore();
    const link = new Link(core, new TestDtlsClient(dev1()));
    link.dropUp = (d) => !(d[0] === 25 && link.client.state === 'connected'); // the device's ACKs are lost
    await link.handshake();
    for (let i = 0; i < 8; i++) await link.tick(40_000);
    assert.equal(core.stats.get('coap', 'reset_token_retransmit'), 4);
    assert.equal(core.stats.get('coap', 'reset_token_gave_up'), 1);
    assert.equal(core.tableSizes().serverCons, 0);
  });

  it('a close_notify ends the session', async () => {
    const link = await connected();
    await link.send(link.client.alert(1, 0));
    assert.equal(link.core.stats.get('sessions_closed', 'close_notify'), 1);
    await link.send(link.client.ping());
    assert.equal(link.core.stats.get('unknown_session_records', 'cid'), 1);
  });
});

describe('cloud core: lost sessions and heal features', () => {
  async function wiped(heal: { resetToken: boolean; malformed: boolean }, opts = dev1()) {
    const store = new MemoryStore();
    const link = await connected(opts, makeCore({ store, heal }));
    await store.wipe();
    return link;
  }

  it('reset-token: a record for an unknown CID is answered with a reset the device recognises', async () => {
    const link = await wiped({ resetToken: true, malformed: false });
    const ev = await link.send(link.client.ping());
    assert.deepEqual(kinds(ev), ['reset']);
    const reset = link.downlink.at(-1)!;
    assert.equal(reset[0], 25, 'looks like a tls12_cid record to the device');
    assert.ok(reset.length < 13 + 12 + 8 + 5 + 8, 'shorter than the record that triggered it');
    assert.equal(link.core.stats.get('heals_sent', 'reset-token'), 1);
    assert.equal(link.core.stats.get('unknown_session_records', 'cid'), 1);
  });

  it('reset-token works with no state at all: a fresh cloud process with the same secret', async () => {
    const link = await connected();
    link.core = makeCore(); // new process, empty store and tables, same cloud secret
    const ev = await link.send(link.client.ping());
    assert.deepEqual(kinds(ev), ['reset']);
  });

  it('malformed: the 2019 truncated record, for CID and address sessions alike', async () => {
    for (const offerCid of [deviceHandle('dev-1'), undefined]) {
      const link = await wiped({ resetToken: false, malformed: true }, dev1({ offerCid }));
      const ev = await link.send(link.client.ping());
      assert.deepEqual(kinds(ev), ['malformed']);
      const d = link.downlink.at(-1)!;
      assert.equal(d[0], 23);
      assert.equal(d.readUInt16BE(3), 1, 'epoch of the device');
      assert.equal(d.readUInt16BE(11), 64, 'length field');
      assert.equal(d.length, 13 + 16, 'fewer bytes than the length field says');
    }
  });

  it('both flags: both datagrams; none: nothing sent but the record is counted', async () => {
    const both = await wiped({ resetToken: true, malformed: true });
    assert.deepEqual(kinds(await both.send(both.client.ping())).sort(), ['malformed', 'reset']);
    const none = await wiped({ resetToken: false, malformed: false });
    assert.deepEqual(await none.send(none.client.ping()), []);
    assert.equal(none.core.stats.get('unknown_session_records', 'cid'), 1);
    assert.equal(none.core.stats.sum('heals_sent'), 0);
  });

  it('address sessions cannot get a reset token (no CID to derive it from); counted', async () => {
    const link = await wiped({ resetToken: true, malformed: false }, dev1({ offerCid: undefined }));
    assert.deepEqual(await link.send(link.client.ping()), []);
    assert.equal(link.core.stats.get('heals_suppressed', 'reset-token/no_cid'), 1);
  });

  it('rate-limits heals per source address', async () => {
    const link = await wiped({ resetToken: true, malformed: true });
    for (let i = 0; i < 10; i++) await link.send(link.client.ping());
    assert.equal(link.core.stats.get('heals_sent', 'reset-token'), 1);
    assert.equal(link.core.stats.get('heals_sent', 'malformed'), 1);
    assert.equal(link.core.stats.get('heals_suppressed', 'reset-token/rate_limited'), 9);
    link.now += 1000;
    await link.send(link.client.ping());
    assert.equal(link.core.stats.get('heals_sent', 'reset-token'), 2, 'again after the interval');
    link.addr = '10.9.9.9:1';
    await link.send(link.client.ping());
    assert.equal(link.core.stats.get('heals_sent', 'reset-token'), 3, 'another address has its own budget');
  });

  it('after the heal the device handshakes again and its unconfirmed event is delivered once', async () => {
    const store = new MemoryStore();
    const core = makeCore({ store, heal: { resetToken: true, malformed: false } });
    const link = await connected(dev1(), core);
    await store.wipe();
    const lost = await link.send(link.client.event('door', 9, Buffer.from('open')));
    assert.deepEqual(kinds(lost), ['reset']);
    link.addr = '10.0.0.77:4000'; // and a new NAT binding, for good measure
    const fresh = new Link(core, new TestDtlsClient(dev1()), link.addr);
    await fresh.handshake();
    await fresh.send(fresh.client.event('door', 9, Buffer.from('open')));
    await fresh.send(fresh.client.event('door', 9, Buffer.from('open')));
    assert.deepEqual(
      fresh.cloudEvents.filter((e) => e.kind === 'event').map((e) => e.kind === 'event' && e.seq),
      [9],
    );
  });
});

describe('cloud core: shared store', () => {
  it('a session established through one core is served by another core sharing the store', async () => {
    const store = new MemoryStore();
    const a = makeCore({ store });
    const b = makeCore({ store });
    const link = await connected(dev1(), a);
    link.core = b;
    const ev = await link.send(link.client.ping(0x4242));
    assert.equal(kinds(ev).join(), 'coap');
    // Outgoing sequence numbers are reserved in the store: no (key, nonce) reuse across cores.
    link.core = a;
    await link.send(link.client.ping());
    const seqs = link.downlink.filter((d) => d[0] === 23 || d[0] === 25).map((d) => d.readUIntBE(5, 6));
    assert.equal(new Set(seqs).size, seqs.length, `server sequence numbers ${seqs.join(',')} are unique`);
  });

  it('keys never appear in the core\'s events, counters or errors', async () => {
    const link = await connected();
    const text = JSON.stringify({ ev: link.cloudEvents, stats: link.core.stats.snapshot() });
    assert.ok(!text.includes(PSK1.toString('hex')), "!text.includes(PSK1.toString('hex'))");
    assert.ok(!text.includes(PSK1.toString('base64')), "!text.includes(PSK1.toString('base64'))");
    assert.ok(!text.includes(CLOUD_SECRET.toString('hex')), "!text.includes(CLOUD_SECRET.toString('hex'))");
    void PSK1;
  });
});
