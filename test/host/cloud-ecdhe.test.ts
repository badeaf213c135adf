// Issue 19, the cloud side: TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 with P-256 raw public keys (RFC
// 7250). The message codecs byte by byte, the P-256 helpers, the devices file with public keys, and
// handshakes with an independent client (fixtures/cloud-client.ts) in virtual time: a device
// registered by public key completes and everything after the handshake is the PSK session's
// (CID records, reset token, events); each bad input — a point off the curve, a CertificateVerify
// that does not verify, a signature algorithm we did not ask for, an unknown or missing raw key —
// gets its fatal alert and leaves no session, no entry and no internal error. And forward secrecy
// shown on a recording: both long-term private keys do not decrypt it, its key log line does.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { inspect } from 'node:util';
import { CloudCore } from '../../host/cloud/core.ts';
import { extendedMasterSecret, keyBlock, openRecord, trafficKeys } from '../../host/cloud/crypto.ts';
import { parseRecord, type RecordView } from '../../host/cloud/wire.ts';
import { DeviceRegistry, DevicesError, deviceHandle, parseDevicesJson } from '../../host/cloud/devices.ts';
import {
  certificateBody,
  certificateRequestBody,
  ecdhParams,
  parseCertificateVerify,
  parseClientKeyExchangeEcdhe,
  parseRawPublicKeyCertificate,
  parseU16List,
  parseU8List,
  serverHelloBody,
  serverKeyExchangeEcdheBody,
} from '../../host/cloud/handshake.ts';
import { ServerKey, ServerKeyError, ecdhSharedX, ephemeralKey, publicKeyOfPoint, publicKeyOfSpki, spkiOfPoint } from '../../host/cloud/p256.ts';
import { MemoryStore } from '../../host/cloud/store.ts';
import { TestDtlsClient, type ClientOptions, type EcdheOptions } from './fixtures/cloud-client.ts';
import { rawPublicKey } from './gnutls.ts';
import { CLOUD_SECRET, Link, PSK1, kinds, seededRandom } from './fixtures/cloud-harness.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function deviceKeys(): { privateKey: crypto.KeyObject; publicKey: crypto.KeyObject; point: Buffer } {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { privateKey, publicKey, point: rawPublicKey(publicKey) };
}

describe('ECDHE-ECDSA message codecs', () => {
  const point = ephemeralKey((n) => crypto.randomBytes(n)).point;

  it('Certificate with a raw public key is one SubjectPublicKeyInfo<1..2^24-1> (RFC 7250 §3)', () => {
    const spki = spkiOfPoint(point);
    assert.equal(spki.length, 91);
    const body = certificateBody(spki);
    assert.deepEqual(body.subarray(0, 3), hex('00005b'));
    assert.deepEqual(parseRawPublicKeyCertificate(body), spki);
    assert.equal(parseRawPublicKeyCertificate(hex('000000')), null, 'empty');
    assert.equal(parseRawPublicKeyCertificate(body.subarray(0, 50)), null, 'short');
    assert.equal(parseRawPublicKeyCertificate(Buffer.concat([body, hex('00')])), null, 'trailing byte');
    assert.equal(parseRawPublicKeyCertificate(hex('0000')), null);
  });

  it('ServerKeyExchange: named_curve secp256r1, the point, ecdsa_secp256r1_sha256, the DER signature', () => {
    const params = ecdhParams(point);
    assert.deepEqual(params.subarray(0, 4), hex('03 0017 41'));
    assert.deepEqual(params.subarray(4), point);
    const sig = Buffer.alloc(71, 0xaa);
    const ske = serverKeyExchangeEcdheBody(params, sig);
    assert.deepEqual(ske.subarray(69, 73), hex('0403 0047'));
    assert.deepEqual(ske.subarray(73), sig);
  });

  it('CertificateRequest: ecdsa_sign, ecdsa_secp256r1_sha256, no CA names', () => {
    assert.deepEqual(certificateRequestBody(), hex('01 40  0002 0403  0000'));
  });

  it('ServerHello for ECDHE: suite C0AE, single-byte RawPublicKey certificate types, ec_point_formats only when asked', () => {
    const random = Buffer.alloc(32, 1);
    const with_ = serverHelloBody({ random, secureRenegotiation: false, cid: null, suite: 0xc0ae, pointFormats: true });
    assert.deepEqual(with_.subarray(35, 38), hex('c0ae 00'));
    const exts = with_.subarray(40);
    assert.deepEqual(exts, hex('0017 0000  000b 0002 0100  0014 0001 02  0013 0001 02'));
    assert.equal(with_.readUInt16BE(38), exts.length);
    const without = serverHelloBody({ random, secureRenegotiation: false, cid: null, suite: 0xc0ae, pointFormats: false });
    assert.deepEqual(without.subarray(40), hex('0017 0000  0014 0001 02  0013 0001 02'));
    const psk = serverHelloBody({ random, secureRenegotiation: false, cid: null });
    assert.deepEqual(psk.subarray(35, 38), hex('c0a8 00'));
    assert.deepEqual(psk.subarray(40), hex('0017 0000'));
  });

  it('ClientKeyExchange (ecdh_Yc<1..255>) and CertificateVerify parsers refuse bad lengths', () => {
    assert.deepEqual(parseClientKeyExchangeEcdhe(Buffer.concat([hex('41'), point])), point);
    assert.equal(parseClientKeyExchangeEcdhe(hex('00')), null, 'empty point');
    assert.equal(parseClientKeyExchangeEcdhe(Buffer.concat([hex('41'), point, hex('00')])), null, 'trailing');
    assert.equal(parseClientKeyExchangeEcdhe(Buffer.concat([hex('42'), point])), null, 'longer than the body');
    assert.deepEqual(parseCertificateVerify(hex('0403 0002 3000')), { algorithm: 0x0403, signature: hex('3000') });
    assert.equal(parseCertificateVerify(hex('0403 0000')), null, 'empty signature');
    assert.equal(parseCertificateVerify(hex('0403 0003 3000')), null, 'short');
    assert.equal(parseCertificateVerify(hex('0403 0001 30 00')), null, 'trailing');
    assert.equal(parseCertificateVerify(hex('04')), null);
  });

  it('list extensions: u8 and u16 lists, non-empty, exact length', () => {
    assert.deepEqual(parseU8List(hex('02 02 00')), [2, 0]);
    assert.equal(parseU8List(hex('00')), null);
    assert.equal(parseU8List(hex('02 02')), null);
    assert.deepEqual(parseU16List(hex('0004 0017 0018')), [23, 24]);
    assert.equal(parseU16List(hex('0003 0017 00')), null, 'odd length');
    assert.equal(parseU16List(hex('0002 0017 00')), null, 'trailing');
  });
});

describe('P-256 helpers (node:crypto)', () => {
  it('points: valid ones decode; off the curve, compressed-prefix, wrong length and infinity do not', () => {
    const { point } = deviceKeys();
    assert.deepEqual(publicKeyOfPoint(point)?.point, point);
    const off = Buffer.from(point);
    off[64] ^= 1;
    assert.equal(publicKeyOfPoint(off), null);
    assert.equal(publicKeyOfPoint(Buffer.concat([hex('02'), point.subarray(1)])), null);
    assert.equal(publicKeyOfPoint(point.subarray(0, 64)), null);
    assert.equal(publicKeyOfPoint(Buffer.concat([hex('04'), Buffer.alloc(64)])), null);
    assert.equal(publicKeyOfSpki(Buffer.from('not der')), null);
    const ed = crypto.generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' });
    assert.equal(publicKeyOfSpki(ed), null, 'not P-256');
  });

  it('ECDH agrees with an independent node ECDH; a point off the curve is refused', () => {
    const ours = ephemeralKey(seededRandom('ecdh'));
    const peer = crypto.createECDH('prime256v1');
    const peerPoint = peer.generateKeys();
    const shared = ecdhSharedX(ours.scalar, peerPoint);
    assert.deepEqual(shared, peer.computeSecret(ours.point));
    const off = Buffer.from(peerPoint);
    off[10] ^= 0x40;
    assert.equal(ecdhSharedX(ours.scalar, off), null);
    assert.deepEqual(ephemeralKey(seededRandom('same')).point, ephemeralKey(seededRandom('same')).point, 'seeded randomness, same key');
  });

  it('ServerKey: PEM (SEC1 and PKCS#8), from a scalar; errors say what was expected, never the key; prints only the public key', () => {
    const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const sec1 = privateKey.export({ type: 'sec1', format: 'pem' }) as string;
    const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const a = ServerKey.fromPem(sec1);
    assert.deepEqual(ServerKey.fromPem(pkcs8).publicPoint, a.publicPoint);
    assert.deepEqual(a.publicPoint, rawPublicKey(crypto.createPublicKey(privateKey)));
    const d = privateKey.export({ format: 'jwk' }).d!;
    const dHex = Buffer.from(d, 'base64url').toString('hex');
    for (const text of [inspect(a, { depth: 5 }), JSON.stringify(a), String(a)]) {
      assert.ok(!text.includes(d) && !text.includes(dHex), text);
      assert.ok(text.includes(a.publicPoint.toString('hex')), "text.includes(a.publicPoint.toString('hex'))");
    }
    assert.deepEqual(ServerKey.fromScalar(Buffer.from(dHex, 'hex')).publicPoint, a.publicPoint);
    const sig = a.sign(Buffer.from('data'), null);
    assert.ok(crypto.verify('sha256', Buffer.from('data'), { key: crypto.createPublicKey(privateKey), dsaEncoding: 'der' }, sig), "crypto.verify('sha256', Buffer.from('data'), { key: crypto.createPublicKey(privateKey), dsaEncodi...");
    // A simulator's seeded nonce source signs byte for byte the same, and every such signature
    // verifies with OpenSSL (1,000 random keys, data and nonces); without one OpenSSL signs.
    const seeded = () => { let i = 0; return (n: number) => crypto.createHash('sha256').update(`nonce ${i++}`).digest().subarray(0, n); };
    assert.deepEqual(a.sign(Buffer.from('data'), seeded()), a.sign(Buffer.from('data'), seeded()));
    for (let i = 0; i < 1000; i++) {
      const k = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      const data = crypto.randomBytes(i % 200);
      const s = ServerKey.fromPem(k.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string).sign(data, (n) => crypto.randomBytes(n));
      assert.ok(crypto.verify('sha256', data, { key: k.publicKey, dsaEncoding: 'der' }, s), `signature ${i}`);
    }
    assert.throws(() => ServerKey.fromPem('-----BEGIN EC PRIVATE KEY-----\nc2VjcmV0\n-----END EC PRIVATE KEY-----\n'), (e: Error) => e instanceof ServerKeyError && !e.message.includes('c2VjcmV0') && /expected/.test(e.message));
    const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    assert.throws(() => ServerKey.fromPem(rsa), /not a P-256 key \(got rsa\)/);
    const p384 = crypto.generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey.export({ type: 'sec1', format: 'pem' }) as string;
    assert.throws(() => ServerKey.fromPem(p384), /not a P-256 key \(got ec secp384r1\)/);
    assert.throws(() => ServerKey.fromScalar(Buffer.alloc(32)), /1\.\.n-1/);
  });
});

describe('devices registered by public key', () => {
  it('the devices file takes publicKey as hex of the point or PEM, with or without a PSK; no secret for key-only devices', () => {
    const a = deviceKeys();
    const b = deviceKeys();
    const pem = b.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const f = parseDevicesJson(JSON.stringify({ devices: [
      { id: 'pk-hex', publicKey: a.point.toString('hex') },
      { id: 'pk-pem', publicKey: pem, psk: '00112233445566778899aabbccddeeff' },
      { id: 'psk-only', psk: '00112233445566778899aabbccddeeff', identity: 'psk-id' },
    ] }));
    assert.equal(f.registry.size, 3);
    assert.equal(f.registry.publicKeyDevices, 2);
    const da = f.registry.byPublicKey(a.point)!;
    assert.equal(da.id, 'pk-hex');
    assert.equal(da.psk, null);
    assert.equal(da.identity, null);
    assert.equal(f.registry.byPublicKey(b.point)!.id, 'pk-pem');
    assert.equal(f.registry.byIdentity('pk-pem')!.id, 'pk-pem', 'a PSK identity defaults to the id');
    assert.equal(f.registry.byId('psk-only')!.publicKey, null);
  });

  it('bad entries are refused with the entry and field named', () => {
    const { point } = deviceKeys();
    const off = Buffer.from(point);
    off[64] ^= 1;
    const cases: [unknown, RegExp][] = [
      [{ id: 'x' }, /devices\[0\] needs a psk \(hex\) or a publicKey/],
      [{ id: 'x', publicKey: off.toString('hex') }, /devices\[0\]\.publicKey is not a valid P-256 public key \(on the curve\)/],
      [{ id: 'x', publicKey: point.toString('hex').slice(2) }, /devices\[0\]\.publicKey is not a valid P-256 public key/],
      [{ id: 'x', publicKey: 42 }, /devices\[0\]\.publicKey must be hex of the 65-byte/],
      [{ id: 'x', publicKey: point.toString('hex'), identity: 'i' }, /devices\[0\]\.identity is the PSK identity: it needs a psk/],
    ];
    for (const [entry, pattern] of cases) assert.throws(() => parseDevicesJson(JSON.stringify({ devices: [entry] })), pattern);
    assert.throws(() => parseDevicesJson(JSON.stringify({ devices: [{ id: 'a', publicKey: point.toString('hex') }, { id: 'b', publicKey: point.toString('hex') }] })), /duplicate publicKey \(device 'b' and 'a'\)/);
  });

  it('addPublicKeyDevice registers at run time (the simulator); a bad point throws', () => {
    const reg = new DeviceRegistry([{ id: 'p', identity: 'p', psk: PSK1 }]);
    const { point } = deviceKeys();
    const dev = reg.addPublicKeyDevice('sim-1', point);
    assert.equal(reg.byPublicKey(point), dev);
    assert.deepEqual(dev.handle, deviceHandle('sim-1'));
    assert.throws(() => reg.addPublicKeyDevice('sim-2', Buffer.alloc(65, 4)), DevicesError);
    assert.throws(() => reg.addPublicKeyDevice('sim-1', deviceKeys().point), /duplicate device id/);
  });
});

/** A core with one device by public key ('ec-1'), one by PSK ('psk-1'), and one with both ('both-1'). */
function ecdheWorld(opts: { serverKey?: ServerKey | null; keyLog?: (l: string) => void } = {}) {
  const serverKey = opts.serverKey === undefined ? ServerKey.generate() : opts.serverKey;
  const ec = deviceKeys();
  const both = deviceKeys();
  const stranger = deviceKeys();
  const devices = new DeviceRegistry([{ id: 'psk-1', identity: 'psk-id', psk: PSK1 }, { id: 'both-1', identity: 'both-id', psk: PSK1, publicKey: both.point }]);
  devices.addPublicKeyDevice('ec-1', ec.point);
  const store = new MemoryStore();
  const core = new CloudCore({ devices, store, cloudSecret: CLOUD_SECRET, serverKey, keyLog: opts.keyLog });
  const ecdhe = (keys: { privateKey: crypto.KeyObject; publicKey: crypto.KeyObject }, extra: Partial<EcdheOptions> = {}): EcdheOptions => ({ ...keys, pinned: serverKey?.publicPoint, ...extra });
  const link = (o: ClientOptions) => new Link(core, new TestDtlsClient(o));
  return { core, store, ec, both, stranger, ecdhe, link };
}

describe('ECDHE-ECDSA handshakes (virtual time)', () => {
  it('a device registered by public key completes; the session is the PSK session\'s: CID records, reset token, events', async () => {
    const lines: string[] = [];
    const w = ecdheWorld({ keyLog: (l) => lines.push(l) });
    const link = w.link({ ecdhe: w.ecdhe(w.ec), offerCid: deviceHandle('ec-1') });
    const ev = await link.send(link.client.start());
    assert.ok(kinds(ev).includes('connected'), kinds(ev).join(','));
    assert.equal(link.client.suite, 0xc0ae);
    assert.ok(kinds(ev).includes('token'), 'the reset token came with the Finished');
    const hs = link.cloudEvents.find((e) => e.kind === 'handshake');
    assert.ok(hs && hs.kind === 'handshake' && hs.deviceId === 'ec-1' && hs.tokenIssued, "hs && hs.kind === 'handshake' && hs.deviceId === 'ec-1' && hs.tokenIssued");
    await link.send(link.client.ping(0x4242));
    assert.ok(link.clientEvents.some((e) => e.kind === 'coap' && e.message.readUInt16BE(2) === 0x4242), "link.clientEvents.some((e) => e.kind === 'coap' && e.message.readUInt16BE(2) === 0x4242)");
    await link.send(link.client.event('t', 1, Buffer.from('x')));
    assert.ok(link.cloudEvents.some((e) => e.kind === 'event' && e.deviceId === 'ec-1'), "link.cloudEvents.some((e) => e.kind === 'event' && e.deviceId === 'ec-1')");
    assert.equal(w.core.stats.get('handshakes', 'completed'), 1);
    assert.equal(w.core.stats.get('internal_errors'), 0);
    assert.equal(lines.length, 1);
    assert.match(lines[0], /^CLIENT_RANDOM [0-9a-f]{64} [0-9a-f]{96}$/);
    assert.deepEqual(w.core.tableSizes().pending + w.core.tableSizes().keyed, 0);
  });

  it('the server flight fits one datagram of the IPv4 minimum (576 bytes): one message per record, ~450 bytes with a CID', async () => {
    const w = ecdheWorld();
    const link = w.link({ ecdhe: w.ecdhe(w.ec), offerCid: deviceHandle('ec-1') });
    await link.send(link.client.start());
    const flight = link.downlink[1];
    assert.ok(flight.length <= 576 - 28, `${flight.length} bytes`);
    assert.deepEqual(recordTypes(flight), [2, 11, 12, 13, 14]);
  });

  it('suite choice: both offered → ECDHE, unless the CID handle names a PSK-only device; no server key → PSK; PSK devices unchanged', async () => {
    const w = ecdheWorld();
    const both = w.link({ ecdhe: w.ecdhe(w.both), suites: [0xc0ae, 0xc0a8], offerCid: deviceHandle('both-1') });
    await both.handshake();
    assert.equal(both.client.suite, 0xc0ae);
    // A client able to do both (it sends every ECDHE extension) whose handle names a PSK-only device.
    const pskByHandle = w.link({ identity: 'psk-id', psk: PSK1, ecdhe: w.ecdhe(w.stranger), suites: [0xc0ae, 0xc0a8], offerCid: deviceHandle('psk-1') });
    pskByHandle.addr = '10.0.0.2:1';
    await pskByHandle.handshake();
    assert.equal(pskByHandle.client.suite, 0xc0a8);
    const psk = w.link({ identity: 'both-id', psk: PSK1 });
    psk.addr = '10.0.0.3:1';
    await psk.handshake();
    assert.equal(psk.client.suite, 0xc0a8);
    const noKey = ecdheWorld({ serverKey: null });
    const c = noKey.link({ identity: 'psk-id', psk: PSK1, suites: [0xc0ae, 0xc0a8] });
    await c.handshake();
    assert.equal(c.client.suite, 0xc0a8);
  });

  // Each fault: the alert the client gets, the reason counted, and nothing left behind.
  const faults: [string, (w: ReturnType<typeof ecdheWorld>) => ClientOptions, number, string][] = [
    ['a ClientKeyExchange point off the curve', (w) => ({ ecdhe: w.ecdhe(w.ec, { fault: 'invalid_point' }) }), 47, 'invalid_curve_point'],
    ['a CertificateVerify over other bytes', (w) => ({ ecdhe: w.ecdhe(w.ec, { fault: 'bad_signature' }) }), 51, 'bad_certificate_verify'],
    ['a CertificateVerify with ecdsa_secp384r1_sha384 (not asked for)', (w) => ({ ecdhe: w.ecdhe(w.ec, { fault: 'sha384_algorithm' }) }), 47, 'bad_signature_algorithm'],
    ['an unknown raw public key', (w) => ({ ecdhe: w.ecdhe(w.stranger) }), 40, 'unknown_public_key'],
    ['an empty Certificate', (w) => ({ ecdhe: w.ecdhe(w.ec, { fault: 'no_certificate' }) }), 50, 'bad_certificate_message'],
    ['no server_certificate_type (X.509 meant)', (w) => ({ ecdhe: w.ecdhe(w.ec, { omitExtensions: [20] }) }), 43, 'no_raw_public_key'],
    ['no client_certificate_type', (w) => ({ ecdhe: w.ecdhe(w.ec, { omitExtensions: [19] }) }), 43, 'no_raw_public_key'],
    ['no signature_algorithms (SHA-1 meant)', (w) => ({ ecdhe: w.ecdhe(w.ec, { omitExtensions: [13] }) }), 40, 'no_shared_signature_algorithm'],
  ];
  for (const [what, opts, alert, reason] of faults) {
    it(`${what}: fatal alert ${alert}, reason ${reason}, no session, no entry, no crash`, async () => {
      const w = ecdheWorld();
      const link = w.link(opts(w));
      const ev = await link.send(link.client.start());
      assert.ok(!kinds(ev).includes('connected'), "!kinds(ev).includes('connected')");
      assert.deepEqual(ev.filter((e) => e.kind === 'alert'), [{ kind: 'alert', level: 2, description: alert }]);
      assert.equal(w.core.stats.get('handshake_failures', reason), 1);
      assert.equal(w.core.stats.get('handshakes', 'completed'), 0);
      assert.equal(w.core.stats.get('internal_errors'), 0);
      assert.ok(!link.cloudEvents.some((e) => e.kind === 'handshake'), "!link.cloudEvents.some((e) => e.kind === 'handshake')");
      const t = w.core.tableSizes();
      assert.equal(t.pending + t.keyed, 0, JSON.stringify(t));
      assert.equal(w.store.sessionCount, 0);
      // The same device, well-behaved, still gets in afterwards.
      const ok = w.link({ ecdhe: w.ecdhe(w.ec) });
      ok.addr = '10.0.0.9:9';
      await ok.handshake();
    });
  }
});

/** Handshake types of the records in a datagram (one message per record). */
function recordTypes(d: Buffer): number[] {
  const out: number[] = [];
  for (let off = 0; off + 13 <= d.length; ) {
    const len = d.readUInt16BE(off + 11);
    if (d[off] === 22) out.push(d[off + 13]);
    off += 13 + len;
  }
  return out;
}

describe('forward secrecy, shown on a recording (cloud side)', () => {
  it('both long-term private keys do not decrypt a recorded session; its key log line does', async () => {
    // The attacker's haul: every datagram both ways, the cloud's private key and the device's.
    const serverScalar = crypto.randomBytes(32);
    const lines: string[] = [];
    const w = ecdheWorld({ serverKey: ServerKey.fromScalar(serverScalar), keyLog: (l) => lines.push(l) });
    const link = w.link({ ecdhe: w.ecdhe(w.ec), offerCid: deviceHandle('ec-1') });
    const up: Buffer[] = [];
    const handle = w.core.handleDatagram.bind(w.core);
    w.core.handleDatagram = (d, from, now) => {
      up.push(Buffer.from(d));
      return handle(d, from, now);
    };
    await link.handshake();
    const secret = Buffer.from('the reading nobody may see later');
    await link.send(link.client.event('t', 7, secret));
    assert.ok(link.cloudEvents.some((e) => e.kind === 'event' && e.data.equals(secret)), "link.cloudEvents.some((e) => e.kind === 'event' && e.data.equals(secret))");

    // What the recording gives anyone: handshake messages in clear (hence the session hash), both
    // randoms, both ephemeral points; and the protected record carrying the event.
    const records = (d: Buffer) => {
      const out: RecordView[] = [];
      for (let off = 0; off < d.length; ) {
        const r = parseRecord(d, off);
        if (typeof r === 'string') break;
        out.push(r);
        off += r.size;
      }
      return out;
    };
    const messages = (ds: Buffer[]) => ds.flatMap(records).filter((r) => r.epoch === 0 && r.type === 22).map((r) => Buffer.from(r.body));
    const [, hello2, flightUp] = up; // ClientHello, ClientHello with the cookie, the client's flight
    const flight = link.downlink[1];
    const clientMsgs = messages([flightUp]); // Certificate, ClientKeyExchange, CertificateVerify
    const transcript = Buffer.concat([...messages([hello2]), ...messages([flight]), clientMsgs[0], clientMsgs[1]]);
    // The reconstruction is right: the device's CertificateVerify signs exactly these bytes.
    const cv = clientMsgs[2].subarray(12);
    assert.ok(crypto.verify('sha256', transcript, { key: w.ec.publicKey, dsaEncoding: 'der' }, cv.subarray(4, 4 + cv.readUInt16BE(2))), "crypto.verify('sha256', transcript, { key: w.ec.publicKey, dsaEncoding: 'der' }, cv.subarray(4, 4...");
    const sessionHash = crypto.createHash('sha256').update(transcript).digest();
    const clientRandom = messages([hello2])[0].subarray(12 + 2, 12 + 34);
    const serverHello = messages([flight])[0];
    const serverRandom = serverHello.subarray(12 + 2, 12 + 34);
    const serverEphemeral = messages([flight])[2].subarray(12 + 4, 12 + 4 + 65);
    const clientEphemeral = clientMsgs[1].subarray(12 + 1, 12 + 1 + 65);
    const eventRecord = records(up[up.length - 1]).find((r) => r.epoch === 1)!;
    const opens = (master: Buffer) => {
      const keys = trafficKeys(keyBlock(master, clientRandom, serverRandom));
      const opened = openRecord(keys.client, eventRecord);
      return opened !== null && opened.content.includes(secret);
    };

    // Control: the session's own master secret (the key log line) opens it.
    const [, logRandom, logMaster] = lines[0].split(' ');
    assert.equal(logRandom, clientRandom.toString('hex'));
    assert.ok(opens(Buffer.from(logMaster, 'hex')), 'the key log decrypts the recording');

    // The attack: every Diffie-Hellman the two long-term private keys allow with the points on the
    // wire, each taken as the premaster secret; none opens the record. The premaster is the ECDH of
    // the two ephemeral keys, whose scalars were zeroed at the ClientKeyExchange (cloud) and never
    // stored (client): neither long-term key is a factor of it.
    const devScalar = Buffer.from(w.ec.privateKey.export({ format: 'jwk' }).d!, 'base64url');
    const dh = (scalar: Buffer, point: Buffer) => {
      const e = crypto.createECDH('prime256v1');
      e.setPrivateKey(scalar);
      return e.computeSecret(point);
    };
    const candidates = [
      dh(serverScalar, clientEphemeral),
      dh(devScalar, serverEphemeral),
      dh(serverScalar, w.ec.point),
      dh(devScalar, w.core.serverKey!.publicPoint),
      serverScalar,
      devScalar,
    ];
    for (const premaster of candidates) assert.equal(opens(extendedMasterSecret(premaster, sessionHash)), false);
    assert.ok(!up.some((d) => d.includes(secret)), 'the reading never travels in clear');
  });
});
