/**
 * The conformance scenarios: every one runs on every engine, driven by a seed, checks its own
 * expectations (published vectors, node:crypto, the scripted peer) and records every output of
 * the module. The lifecycle issue appends its scenarios to SCENARIOS.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { ModuleCrypto } from '../../../host/crypto-abi.ts';
import type { ModuleInstance } from '../../../host/engines/engine.ts';
import { DROP_COUNTERS, type Counters } from '../../../host/session-abi.ts';
import { TestPeer, pump, type PeerOptions } from '../dtls-peer.ts';
import { contains, openRecord, parseRecords, prf } from '../dtls-ref.ts';
import type { TracedClient } from './device.ts';
import { CONNECTED_OPS, HANDSHAKE_SAFE_OPS, hostileDatagram } from './hostile.ts';
import { ResendingPeer } from './peer.ts';
import { p256PrivateFrom, p256Public } from '../p256-ref.ts';
import type { SeededRandom } from './random.ts';
import type { Scenario, ScenarioContext } from './run.ts';

const hex = (s: string): Buffer => Buffer.from(s, 'hex');

// --- Crypto ---------------------------------------------------------------------------------------

/** The module's crypto exports with every output recorded as a 'crypto' step. */
class TracedCrypto {
  readonly mc: ModuleCrypto;
  constructor(
    private readonly ctx: ScenarioContext,
    m: ModuleInstance,
  ) {
    this.mc = new ModuleCrypto(m);
  }

  private rec<T extends Uint8Array | number>(what: string, out: T): T {
    this.ctx.trace.record('crypto', what, typeof out === 'number' ? { fields: { result: out } } : { bytes: out });
    return out;
  }

  setKey(key: Uint8Array): void {
    this.mc.setKey(key);
    const left = this.rec('aes_set_key: I/O buffer after', this.mc.m.readMemory(this.mc.io, 16));
    assert.ok(left.every((b) => b === 0), 'the key was not wiped from the I/O buffer');
  }
  aesBlocks(block: Uint8Array, count: number): Uint8Array {
    this.mc.m.writeMemory(this.mc.io, block);
    this.mc.m.call('crypto_aes_encrypt_blocks', count);
    return this.rec(`aes_encrypt_blocks(${count})`, this.mc.m.readMemory(this.mc.io, 16));
  }
  seal(nonce: Uint8Array, aad: Uint8Array, pt: Uint8Array, tagLen = 8): Uint8Array | number {
    return this.rec(`ccm_seal(${nonce.length},${aad.length},${pt.length},${tagLen})`, this.mc.ccmSeal(nonce, aad, pt, tagLen));
  }
  open(nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array, tagLen = 8): Uint8Array | number {
    const out = this.mc.ccmOpen(nonce, aad, sealed, tagLen);
    if (out === -1) {
      // A failed open must leave no plaintext behind: record the output region too.
      const region = this.mc.m.readMemory(this.mc.io + nonce.length + aad.length, Math.max(0, sealed.length - tagLen));
      assert.ok(region.every((b) => b === 0), 'failed open left plaintext in the I/O buffer');
    }
    return this.rec(`ccm_open(${nonce.length},${aad.length},${sealed.length},${tagLen})`, out);
  }
  sha256(data: Uint8Array): Uint8Array {
    return this.rec(`sha256(${data.length})`, this.mc.sha256(data));
  }
  hmac(key: Uint8Array, data: Uint8Array): Uint8Array {
    return this.rec(`hmac_sha256(${key.length},${data.length})`, this.mc.hmacSha256(key, data));
  }
  prf(secret: Uint8Array, label: Uint8Array, seed: Uint8Array, n: number): Uint8Array {
    return this.rec(`tls_prf(${secret.length},${label.length},${seed.length},${n})`, this.mc.tlsPrf(secret, label, seed, n));
  }
  drbgInstantiate(entropy: Uint8Array, nonce: Uint8Array, pers: Uint8Array): void {
    this.mc.drbgInstantiate(entropy, nonce, pers);
    this.rec(`drbg_instantiate(${entropy.length},${nonce.length},${pers.length})`, 0);
  }
  drbgGenerate(n: number, addl: Uint8Array = new Uint8Array(0)): Uint8Array {
    return this.rec(`drbg_generate(${n},${addl.length})`, this.mc.drbgGenerate(n, addl));
  }
}

function nodeSeal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, pt: Uint8Array, tagLen = 8): Buffer {
  const c = crypto.createCipheriv('aes-128-ccm', key, nonce, { authTagLength: tagLen });
  c.setAAD(aad, { plaintextLength: pt.length });
  return Buffer.concat([c.update(pt), c.final(), c.getAuthTag()]);
}

function nodeAes(key: Uint8Array, block: Uint8Array, times: number): Buffer {
  let b = Buffer.from(block);
  for (let i = 0; i < times; i++) {
    const c = crypto.createCipheriv('aes-128-ecb', key, null);
    c.setAutoPadding(false);
    b = Buffer.concat([c.update(b), c.final()]);
  }
  return b;
}

// Published vectors, a subset of those the as-pect specs check (test/as/tools/verify-vectors.mjs
// re-verifies the originals): here they run through the exported ABI on every engine.
const K1 = 'c0c1c2c3c4c5c6c7c8c9cacbcccdcecf';
const K2 = 'd7828d13b2b0bdc325a76236df93cc6b';
const KC = '404142434445464748494a4b4c4d4e4f';
const AES_KAT = [
  ['FIPS-197 C.1', '000102030405060708090a0b0c0d0e0f', '00112233445566778899aabbccddeeff', '69c4e0d86a7b0430d8cdb78070b4c55a'],
  ['FIPS-197 B', '2b7e151628aed2a6abf7158809cf4f3c', '3243f6a8885a308d313198a2e0370734', '3925841d02dc09fbdc118597196a0b32'],
] as const;
/** [name, key, nonce, header bytes, tag bytes, input packet, output packet] (RFC 3610 §8). */
const RFC3610_KAT = [
  ['RFC 3610 #1', K1, '00000003020100a0a1a2a3a4a5', 8, 8, '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e', '0001020304050607588c979a61c663d2f066d0c2c0f989806d5f6b61dac38417e8d12cfdf926e0'],
  ['RFC 3610 #12', K1, '0000000e0d0c0ba0a1a2a3a4a5', 12, 10, '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20', '000102030405060708090a0bc0ffa0d6f05bdb67f24d43a4338d2aa4bed7b20e43cd1aa31662e7ad65d6db'],
  ['RFC 3610 #13', K2, '00412b4ea9cdbe3c9696766cfa', 8, 8, '0be1a88bace018b108e8cf97d820ea258460e96ad9cf5289054d895ceac47c', '0be1a88bace018b14cb97f86a2a4689a877947ab8091ef5386a6ffbdd080f8e78cf7cb0cddd7b3'],
  ['RFC 3610 #24', K2, '008d493b30ae8b3c9696766cfa', 12, 10, '6e37a6ef546d955d34ab6059abf21c0b02feb88f856df4a37381bce3cc128517d4', '6e37a6ef546d955d34ab6059f32905b88a641b04b9c9ffb58cc390900f3da12ab16dce9e82efa16da62059'],
] as const;
/** [example, nonce, aad, payload, tag bits, ciphertext||tag] (NIST SP 800-38C App. C). */
const SP80038C_KAT = [
  [1, '10111213141516', '0001020304050607', '20212223', 32, '7162015b4dac255d'],
  [2, '1011121314151617', '000102030405060708090a0b0c0d0e0f', '202122232425262728292a2b2c2d2e2f', 48, 'd2a1f0e051ea5f62081a7792073d593d1fc64fbfaccd'],
  [3, '101112131415161718191a1b', '000102030405060708090a0b0c0d0e0f10111213', '202122232425262728292a2b2c2d2e2f3031323334353637', 64, 'e3b201a9f5b71a7a9b1ceaeccd97e70b6176aad9a4428aa5484392fbc1b09951'],
] as const;
const SHA_KAT = [
  ['abc', Buffer.from('abc').toString('hex'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'],
  ['448-bit', Buffer.from('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq').toString('hex'), '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1'],
  ['SHAVS Len=0', '', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
  ['SHAVS Len=512', '5a86b737eaea8ee976a0a24da63e7ed7eefad18a101c1211e2b3650c5187c2a8a650547208251f6d4237e661c7bf4c77f335390394c37fa1a9f9be836ac28509', '42e61e174fbb3897d6dd6cef3dd2802fe67b331953b06114a65c772859dfc1aa'],
] as const;
/** RFC 4231 §4 test cases 1, 2 and 6 (131-byte key: hashed first). */
const HMAC_KAT = [
  ['RFC 4231 case 1', '0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b', '4869205468657265', 'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7'],
  ['RFC 4231 case 2', '4a656665', '7768617420646f2079612077616e7420666f72206e6f7468696e673f', '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843'],
  ['RFC 4231 case 6', 'aa'.repeat(131), '54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a65204b6579202d2048617368204b6579204669727374', '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54'],
] as const;
/** The IETF TLS WG P_SHA256 vector (100 bytes). */
const PRF_KAT = {
  secret: '9bbe436ba940f017b17652849a71db35',
  seed: 'a0ba9f936cda311827a6f796ffd5198c',
  label: 'test label',
  out: 'e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff70187347b66',
};
/** NIST CAVP HMAC_DRBG SHA-256, no reseed, PersLen=256, AddLen=256, COUNT 0. */
const DRBG_KAT = {
  entropy: '5d3286bc53a258a53ba781e2c4dcd79a790e43bbe0e89fb3eed39086be34174b',
  nonce: 'c5422294b7318952ace7055ab7570abf',
  pers: '2dba094d008e150d51c4135bb2f03dcde9cbf3468a12908a1b025c120c985b9d',
  add1: '793a7ef8f6f0482beac542bb785c10f8b7b406a4de92667ab168ecc2cf7573c6',
  add2: '2238cdb4e23d629fe0c2a83dd8d5144ce1a6229ef41dabe2a99ff722e510b530',
  out: 'd04678198ae7e1aeb435b45291458ffde0891560748b43330eaf866b5a6385e74c6fa5a5a44bdb284d436e98d244018d6acedcdfa2e9f499d8089e4db86ae89a6ab2d19cb705e2f048f97fb597f04106a1fa6a1416ad3d859118e079a0c319eb95686f4cbcce3b5101c7a0b010ef029c4ef6d06cdfac97efb9773891688c37cf',
};

const eqHex = (got: Uint8Array | number, want: string, what: string): void =>
  assert.equal(typeof got === 'number' ? `error ${got}` : Buffer.from(got).toString('hex'), want, what);

const cryptoKnownAnswers: Scenario = {
  name: 'crypto-known-answers',
  covers: 'published vectors through the exported ABI: FIPS-197, RFC 3610, SP 800-38C, SHAVS, RFC 4231, TLS PRF, CAVP HMAC_DRBG',
  seeds: [1],
  async run(ctx) {
    const k = new TracedCrypto(ctx, await ctx.load());
    for (const [name, key, pt, ct] of AES_KAT) {
      k.setKey(hex(key));
      eqHex(k.aesBlocks(hex(pt), 1), ct, name);
    }
    for (const [name, key, nonce, hdr, tag, input, output] of RFC3610_KAT) {
      k.setKey(hex(key));
      const inp = hex(input), out = hex(output);
      eqHex(k.seal(hex(nonce), inp.subarray(0, hdr), inp.subarray(hdr), tag), out.subarray(hdr).toString('hex'), `${name} seal`);
      eqHex(k.open(hex(nonce), inp.subarray(0, hdr), out.subarray(hdr), tag), inp.subarray(hdr).toString('hex'), `${name} open`);
    }
    k.setKey(hex(KC));
    for (const [n, nonce, aad, pt, tagBits, out] of SP80038C_KAT) {
      eqHex(k.seal(hex(nonce), hex(aad), hex(pt), tagBits / 8), out, `SP 800-38C example ${n}`);
    }
    for (const [name, msg, md] of SHA_KAT) eqHex(k.sha256(hex(msg)), md, `SHA-256 ${name}`);
    for (const [name, key, data, mac] of HMAC_KAT) eqHex(k.hmac(hex(key), hex(data)), mac, name);
    eqHex(k.prf(hex(PRF_KAT.secret), Buffer.from(PRF_KAT.label), hex(PRF_KAT.seed), 100), PRF_KAT.out, 'TLS PRF');
    k.drbgInstantiate(hex(DRBG_KAT.entropy), hex(DRBG_KAT.nonce), hex(DRBG_KAT.pers));
    k.drbgGenerate(128, hex(DRBG_KAT.add1));
    eqHex(k.drbgGenerate(128, hex(DRBG_KAT.add2)), DRBG_KAT.out, 'HMAC_DRBG');
  },
};

const cryptoSeeded: Scenario = {
  name: 'crypto-seeded',
  covers: 'seeded inputs at every length boundary against node:crypto: AES, CCM (all nonce/tag lengths, tampering, bad parameters), SHA-256, HMAC, PRF, DRBG',
  seeds: [1, 2, 3, 4],
  async run(ctx) {
    const r = ctx.rng;
    const k = new TracedCrypto(ctx, await ctx.load());
    const cap = k.mc.ioCapacity;
    const key = r.bytes(16);
    k.setKey(key);
    const block = r.bytes(16);
    assert.deepEqual(Buffer.from(k.aesBlocks(block, 64)), nodeAes(key, block, 64), 'AES x64');
    // DTLS-shaped records at the sizes that matter, up to the largest the I/O buffer holds.
    for (const size of [0, 1, 15, 16, 17, 64, r.range(1, 800), 800, 1500, cap - 12 - 13 - 8]) {
      const nonce = r.bytes(12), aad = r.bytes(13), pt = r.bytes(size);
      const sealed = k.seal(nonce, aad, pt);
      assert.deepEqual(Buffer.from(sealed as Uint8Array), nodeSeal(key, nonce, aad, pt), `seal ${size} B`);
      assert.deepEqual(Buffer.from(k.open(nonce, aad, sealed as Uint8Array) as Uint8Array), pt, `open ${size} B`);
      const tampered = Buffer.from(sealed as Uint8Array);
      tampered[r.int(tampered.length)] ^= 1 << r.int(8);
      assert.equal(k.open(nonce, aad, tampered), -1, `tampered ${size} B`);
    }
    for (let nonceLen = 7; nonceLen <= 13; nonceLen++) {
      for (let tagLen = 4; tagLen <= 16; tagLen += 2) {
        const nonce = r.bytes(nonceLen), aad = r.bytes(r.range(0, 40)), pt = r.bytes(r.range(0, 100));
        assert.deepEqual(Buffer.from(k.seal(nonce, aad, pt, tagLen) as Uint8Array), nodeSeal(key, nonce, aad, pt, tagLen), `n=${nonceLen} t=${tagLen}`);
      }
    }
    for (const [nonceLen, tagLen] of [[6, 8], [14, 8], [12, 3], [12, 18], [12, 0]]) assert.equal(k.seal(r.bytes(nonceLen), r.bytes(5), r.bytes(20), tagLen), -2);
    assert.equal(k.open(r.bytes(12), r.bytes(5), r.bytes(7)), -2, 'sealed shorter than the tag');
    for (const len of [0, 1, 55, 56, 63, 64, 65, r.range(1, 1000), cap - 32]) {
      const data = r.bytes(len);
      assert.deepEqual(Buffer.from(k.sha256(data)), crypto.createHash('sha256').update(data).digest(), `sha256 ${len}`);
    }
    for (const keyLen of [0, 1, 32, 64, 65, 131]) {
      const hk = r.bytes(keyLen), data = r.bytes(r.range(0, 300));
      assert.deepEqual(Buffer.from(k.hmac(hk, data)), crypto.createHmac('sha256', hk).update(data).digest(), `hmac key ${keyLen}`);
    }
    for (const n of [0, 1, 12, 32, 33, 48, 100, 1000]) {
      const secret = r.bytes(48), label = 'key expansion', seed = r.bytes(64);
      assert.deepEqual(Buffer.from(k.prf(secret, Buffer.from(label), seed, n)), prf(secret, label, seed, n), `prf ${n}`);
    }
    k.drbgInstantiate(r.bytes(32), r.bytes(16), r.bytes(r.range(0, 32)));
    for (const n of [1, 32, 33, 1024]) k.drbgGenerate(n, r.bytes(r.range(0, 64)));
  },
};

// --- DTLS -----------------------------------------------------------------------------------------

interface Dtls {
  c: TracedClient;
  peer: TestPeer;
  identity: Buffer;
  /** ECDHE: the key the peer should have received in the device's Certificate. */
  devicePublicKey?: Buffer;
}

/** A provisioned, seeded client and a peer whose randomness also comes from the seed. */
async function dtlsPair(ctx: ScenarioContext, opts: Partial<PeerOptions>): Promise<Dtls> {
  const r = ctx.rng.fork('credentials');
  const psk = r.bytes(r.range(16, 32));
  const identity = Buffer.from(`device-${r.bytes(4).toString('hex')}`);
  const c = await ctx.client(identity, psk);
  const peer = new TestPeer({ psk, random: ctx.rng.fork('peer').source(), ...opts });
  return { c, peer, identity };
}

/**
 * The same pair with ECDHE-ECDSA credentials (raw public keys, seeded): they replace the PSK the
 * context provisioned, as provision_ecdhe does on a real device.
 */
async function ecdhePair(ctx: ScenarioContext, opts: Partial<PeerOptions>, requestClientKey: boolean): Promise<Dtls> {
  const d = await dtlsPair(ctx, opts);
  const r = ctx.rng.fork('ecdhe-keys');
  const serverPrivateKey = p256PrivateFrom(r.bytes(32)), devicePrivateKey = p256PrivateFrom(r.bytes(32));
  d.c.provisionEcdhe(p256Public(serverPrivateKey), devicePrivateKey);
  const peer = new TestPeer({ ...d.peer.opts, ecdhe: { serverPrivateKey, requestClientKey } });
  return { ...d, peer, devicePublicKey: requestClientKey ? p256Public(devicePrivateKey) : undefined };
}

function assertConnected(d: Dtls): void {
  assert.equal(d.c.state, 'connected', `handshake ended in ${d.c.state} (${d.c.c.lastError})`);
  assert.ok(d.peer.connected, 'peer did not finish');
  if (d.peer.opts.ecdhe) {
    assert.deepEqual(d.peer.clientPublicKey, d.devicePublicKey, 'the device raw public key (when asked for)');
    assert.equal(d.peer.clientKeyVerified, d.devicePublicKey !== undefined, 'CertificateVerify verified with node:crypto');
  } else {
    assert.equal(d.peer.identity, d.identity.toString(), 'PSK identity');
  }
}

/** Application data both ways through the established connection, checked against node:crypto. */
function exchangeAppData(d: Dtls, r: SeededRandom, nowMs: number): void {
  const { c, peer } = d;
  for (const size of [0, 1, r.range(2, 200), r.range(200, 799), 800]) {
    const data = r.bytes(size);
    assert.equal(c.send(data), 0, `send ${size} B`);
    const out = c.drainTransmit();
    assert.equal(out.length, 1, 'one datagram per record');
    assert.deepEqual(peer.open(out[0]), [{ type: 23, content: data }], `client record of ${size} B`);
  }
  assert.equal(c.send(r.bytes(801)), -2, 'more than 800 bytes is refused');
  const expected: Buffer[] = [];
  const deliver = (records: Buffer[], contents: Buffer[]): void => {
    c.handleDatagram(nowMs, Buffer.concat(records));
    expected.push(...contents);
  };
  const before = c.received.length;
  for (let i = 0; i < 4; i++) {
    const data = r.bytes(r.pick([0, 1, r.range(2, 800), 800]));
    deliver([peer.seal(23, data)], [data]);
  }
  // Several records in one datagram.
  const glued = [0, 1, 2].map(() => r.bytes(r.range(0, 300)));
  deliver(glued.map((g) => peer.seal(23, g)), glued);
  // Out of order within the replay window: all are delivered, in arrival order.
  const batch = Array.from({ length: 6 }, () => r.bytes(r.range(1, 100))).map((data) => ({ data, record: peer.seal(23, data) }));
  for (let i = batch.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [batch[i], batch[j]] = [batch[j], batch[i]];
  }
  for (const b of batch) deliver([b.record], [b.data]);
  assert.deepEqual(c.received.slice(before).map((x) => Buffer.from(x)), expected, 'application data received');
}

function closeConnection(d: Dtls, nowMs: number): void {
  assert.equal(d.c.close(nowMs), 'closed');
  const out = d.c.drainTransmit();
  assert.deepEqual(out.flatMap((x) => d.peer.open(x)), [{ type: 21, content: Buffer.from([1, 0]) }], 'close_notify');
}

interface Variant {
  name: string;
  covers: string;
  opts(r: SeededRandom): Partial<PeerOptions>;
  /** The connection ID the device offers (set_connection_id), if any. */
  deviceCid?(r: SeededRandom): Buffer;
  /** ECDHE-ECDSA with raw public keys instead of PSK; whether the server asks for the device key. */
  ecdhe?: { requestClientKey: boolean };
}

const HANDSHAKE_VARIANTS: Variant[] = [
  { name: 'dtls-psk', covers: 'full handshake without cookie, with EMS', opts: () => ({ helloVerify: false }) },
  {
    name: 'dtls-cookie-hint',
    covers: 'HelloVerifyRequest cookie and a PSK identity hint',
    opts: (r) => ({ helloVerify: true, identityHint: r.bytes(r.range(1, 32)).toString('hex') }),
  },
  { name: 'dtls-no-ems', covers: 'a server without the extended master secret', opts: () => ({ helloVerify: true, ems: false }) },
  { name: 'dtls-cid', covers: 'RFC 9146 server connection ID of seeded length (type-25 records to the server)', opts: (r) => ({ helloVerify: true, cid: r.bytes(r.range(1, 32)) }) },
  {
    name: 'dtls-device-cid',
    covers: 'RFC 9146 both ways: the device offers its own connection ID, records to it carry that CID',
    opts: (r) => ({ helloVerify: true, cid: r.chance(0.5) ? r.bytes(r.range(1, 16)) : new Uint8Array(0) }),
    deviceCid: (r) => r.bytes(r.range(1, 32)),
  },
  {
    name: 'dtls-ecdhe',
    covers: 'ECDHE-ECDSA P-256 with raw public keys (0xC0AE): server key pinned, device key asked for, cookie, EMS, CID',
    opts: (r) => ({ helloVerify: true, cid: r.chance(0.5) ? r.bytes(r.range(1, 8)) : undefined }),
    deviceCid: (r) => r.bytes(4),
    ecdhe: { requestClientKey: true },
  },
  {
    name: 'dtls-ecdhe-no-client-key',
    covers: 'ECDHE-ECDSA without a CertificateRequest (no Certificate, no CertificateVerify); server flight in 4-16 byte fragments',
    opts: (r) => ({ helloVerify: false, fragmentBytes: r.range(4, 16) }),
    ecdhe: { requestClientKey: false },
  },
  {
    name: 'dtls-fragments',
    covers: 'server handshake messages fragmented into 4-16 byte pieces, sometimes with a CID',
    opts: (r) => ({
      helloVerify: true,
      fragmentBytes: r.range(4, 16),
      identityHint: r.bytes(32).toString('hex').slice(0, r.range(20, 60)),
      cid: r.chance(0.5) ? r.bytes(r.range(1, 8)) : undefined,
    }),
  },
];

const handshakeScenarios: Scenario[] = HANDSHAKE_VARIANTS.map((v) => ({
  name: v.name,
  covers: `${v.covers}; application data both ways (0-800 B, glued, reordered); close_notify`,
  seeds: [1, 2, 3, 4, 5],
  async run(ctx) {
    const r = ctx.rng.fork('variant');
    const d = v.ecdhe ? await ecdhePair(ctx, v.opts(r), v.ecdhe.requestClientKey) : await dtlsPair(ctx, v.opts(r));
    if (v.deviceCid) d.c.setConnectionId(v.deviceCid(r));
    d.c.connect(0);
    pump(d.c, d.peer);
    assertConnected(d);
    if (v.name === 'dtls-fragments') assert.ok(d.c.c.counters().fragmentsReassembled >= 1, 'fragments were reassembled');
    if (v.deviceCid) assert.ok(d.peer.clientCid.length > 0, 'the server agreed to the device CID');
    exchangeAppData(d, ctx.rng.fork('app-data'), 10);
    closeConnection(d, 20);
  },
}));

/**
 * Lossy handshake in virtual time: datagrams lost or duplicated both ways, the client retransmits
 * on its timer, the server retransmits on its own and when the client repeats a flight.
 */
const lossyHandshake: Scenario = {
  name: 'dtls-loss',
  covers: 'handshake over a lossy, duplicating link in virtual time: client timer retransmissions, server retransmissions, then data',
  seeds: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
  async run(ctx) {
    const r = ctx.rng.fork('link');
    const d = await dtlsPair(ctx, { helloVerify: true, cid: r.chance(0.5) ? r.bytes(4) : undefined });
    if (r.chance(0.5)) d.c.setConnectionId(r.bytes(4));
    const link = new ResendingPeer(d.peer);
    const initial = r.range(200, 1500);
    d.c.config('handshakeInitialTimeoutMs', initial);
    d.c.config('handshakeMaxTimeoutMs', r.range(initial, 8000));
    d.c.config('handshakeMaxTransmissions', 8);
    // The seed picks one datagram that is always lost (c2s: ClientHello, ClientHello with cookie,
    // flight 5; s2c: HelloVerifyRequest, server flight, final flight); others are lost at random.
    // At most 5 losses in all, so no flight needs more than 6 of its 8 transmissions.
    const forced = { dir: ctx.seed % 2 ? 'c2s' : 's2c', index: Math.floor((ctx.seed - 1) / 2) % 3 };
    const sent = { c2s: 0, s2c: 0 };
    let lossBudget = 5;
    const lost = (dir: 'c2s' | 's2c'): boolean => {
      const index = sent[dir]++;
      const lose = lossBudget > 0 && ((dir === forced.dir && index === forced.index) || r.chance(0.2));
      if (lose) lossBudget--;
      return lose;
    };
    let now = 0;
    const settled = (): boolean => d.c.state === 'connected' || d.c.state === 'failed';
    d.c.connect(now);
    for (let round = 0; round < 60 && !settled(); round++) {
      for (let hop = 0; hop < 10; hop++) {
        const out = d.c.drainTransmit();
        if (out.length === 0) break;
        for (const dg of out) {
          now += r.range(1, 40);
          if (lost('c2s')) continue;
          const replies = link.handle(dg);
          if (r.chance(0.1)) replies.push(...link.resendLastFlight()); // the server's own timer fires
          for (const reply of replies) {
            now += r.range(1, 40);
            if (lost('s2c')) continue;
            d.c.handleDatagram(now, reply);
            if (r.chance(0.1)) d.c.handleDatagram(now, reply); // duplicated on the way
          }
        }
      }
      if (settled()) break;
      const t = d.c.nextTimeout();
      if (t === null) break;
      now = Math.max(now, t);
      d.c.handleTimeout(now);
    }
    assertConnected(d);
    assert.ok(d.c.c.counters().flightRetransmissions + link.resent >= 1, 'something was retransmitted');
    exchangeAppData(d, ctx.rng.fork('app-data'), now);
    closeConnection(d, now + 1);
  },
};

/** Nobody answers: the flight goes out on a doubling, capped timer, then the handshake fails. */
const handshakeTimeout: Scenario = {
  name: 'dtls-timeout',
  covers: 'retransmission schedule with seeded timer settings when nothing answers, then handshake-timeout',
  seeds: [1, 2, 3, 4, 5],
  async run(ctx) {
    const r = ctx.rng.fork('timer');
    const d = await dtlsPair(ctx, {});
    const initial = r.range(10, 5000);
    const max = r.range(initial, 30000);
    const transmissions = r.range(1, 8);
    d.c.config('handshakeInitialTimeoutMs', initial);
    d.c.config('handshakeMaxTimeoutMs', max);
    d.c.config('handshakeMaxTransmissions', transmissions);
    const expected: number[] = [];
    for (let i = 0, t = 0; i < transmissions; t += Math.min(initial * 2 ** i, max), i++) expected.push(t);
    d.c.connect(0);
    const sent: number[] = [];
    const flights: Uint8Array[] = [];
    let now = 0;
    for (let i = 0; i < 40; i++) {
      const out = d.c.drainTransmit();
      if (out.length > 0) {
        sent.push(now);
        flights.push(...out);
      }
      const t = d.c.nextTimeout();
      if (t === null) break;
      now = t;
      d.c.handleTimeout(now);
    }
    assert.deepEqual(sent, expected, 'transmission times');
    assert.equal(d.c.state, 'failed');
    assert.equal(d.c.c.lastError, 'handshake-timeout');
    // Every retransmission is the same ClientHello in a record with a new sequence number.
    const seqs = flights.map((f) => parseRecords(f)[0].seq);
    assert.equal(new Set(seqs).size, seqs.length, 'fresh record sequence numbers');
    assert.equal(new Set(flights.map((f) => Buffer.from(f).subarray(13).toString('hex'))).size, 1, 'same ClientHello');
  },
};

function dropTotal(k: Counters): number {
  return DROP_COUNTERS.reduce((n, name) => n + k[name], 0);
}

/**
 * Hostile datagrams in every handshake state and after it, between genuine ones. The handshake
 * still completes, nothing unauthenticated is released, every datagram is handled or counted.
 */
const hostile: Scenario = {
  name: 'dtls-hostile',
  covers: 'seeded hostile datagrams (garbage, truncation, lengths, versions, epochs, flips, replays, glued, plaintext alerts) in every state',
  seeds: [1, 2, 3, 4, 5, 6],
  async run(ctx) {
    const r = ctx.rng.fork('hostile');
    // Odd seeds: the server gives a CID; every third seed: the device offers one (type-25 records to it).
    const d = await dtlsPair(ctx, { helloVerify: true, identityHint: 'hostile', cid: ctx.seed % 2 ? r.bytes(6) : new Uint8Array(0) });
    if (ctx.seed % 3 === 0) d.c.setConnectionId(r.bytes(r.range(1, 32)));
    const link = new ResendingPeer(d.peer);
    const corpus: Buffer[] = [];
    const attack = (count: number, ops: typeof CONNECTED_OPS, now: number, from: readonly Uint8Array[]): void => {
      for (let i = 0; i < count; i++) {
        const { op, bytes } = hostileDatagram(r, from, ops, d.peer.clientCid.length);
        const before = d.c.c.counters();
        const state = d.c.state;
        d.c.handleDatagram(now, bytes);
        const after = d.c.c.counters();
        const handled = after.rxRecordsOk - before.rxRecordsOk + after.peerRetransmissions - before.peerRetransmissions;
        assert.ok(handled + dropTotal(after) - dropTotal(before) >= 1, `${op}: neither handled nor counted as dropped: ${bytes.toString('hex')}`);
        assert.equal(d.c.state, state, `${op} changed the state: ${bytes.toString('hex')}`);
      }
    };
    d.c.connect(0);
    let pending = d.c.drainTransmit();
    attack(25, HANDSHAKE_SAFE_OPS, 0, pending); // nothing from the server yet: mutate the ClientHello
    for (let round = 0; round < 6 && !d.peer.connected; round++) {
      for (const dg of pending) {
        for (const reply of link.handle(dg)) {
          corpus.push(reply);
          attack(25, HANDSHAKE_SAFE_OPS, 1, corpus);
          d.c.handleDatagram(1, reply);
        }
      }
      pending = d.c.drainTransmit();
    }
    assertConnected(d);
    // Established: hostile datagrams built from records already delivered, between genuine ones.
    const delivered: Buffer[] = [];
    const expected: Buffer[] = [];
    for (let i = 0; i < 30; i++) {
      const data = r.bytes(r.range(0, 200));
      const record = d.peer.seal(23, data);
      d.c.handleDatagram(2, record);
      expected.push(data);
      delivered.push(record);
      attack(6, CONNECTED_OPS, 2, delivered);
    }
    assert.deepEqual(d.c.received.map((x) => Buffer.from(x)), expected, 'exactly the genuine records, once each');
    assert.equal(d.c.state, 'connected');
    d.c.handleDatagram(3, d.peer.seal(21, Buffer.from([1, 0])));
    assert.equal(d.c.state, 'closed', 'close_notify under the key ends the connection');
  },
};

/** A server Finished that does not verify: the handshake fails and every key is wiped. */
const badFinished: Scenario = {
  name: 'dtls-bad-finished',
  covers: 'a wrong server Finished: handshake fails with bad-server-finished, master secret and keys wiped from memory',
  seeds: [1, 2, 3],
  async run(ctx) {
    const d = await dtlsPair(ctx, { helloVerify: true });
    const r = ctx.rng.fork('tamper');
    d.c.connect(0);
    for (let round = 0; round < 4; round++) {
      for (const dg of d.c.drainTransmit()) {
        for (const reply of d.peer.handle(dg)) {
          if (!d.peer.connected) {
            d.c.handleDatagram(0, reply);
            continue;
          }
          const [ccs, finRecord] = parseRecords(reply);
          const fin = openRecord(finRecord, d.peer.keys!.serverKey, d.peer.keys!.serverIv)!.content;
          fin[12 + r.int(12)] ^= 1 << r.int(8); // one bit of verify_data
          d.c.handleDatagram(0, Buffer.concat([reply.subarray(0, 13 + ccs.body.length), d.peer.seal(22, fin, finRecord.seq)]));
        }
      }
    }
    assert.equal(d.c.state, 'failed');
    assert.equal(d.c.c.lastError, 'bad-server-finished');
    const mem = d.c.m.memory();
    for (const [what, secret] of [['master secret', d.peer.master], ['client key', d.peer.keys!.clientKey], ['server key', d.peer.keys!.serverKey]] as const) {
      assert.ok(!contains(mem, secret), `${what} left in memory`);
    }
  },
};

/** A fatal alert in a seeded handshake state fails the handshake with the alert visible. */
const fatalAlert: Scenario = {
  name: 'dtls-fatal-alert',
  covers: 'a plaintext fatal alert during the handshake: failed, alert-received, last_alert',
  seeds: [1, 2, 3, 4, 5, 6],
  async run(ctx) {
    const r = ctx.rng.fork('alert');
    const d = await dtlsPair(ctx, { helloVerify: true });
    const description = r.pick([10, 20, 40, 47, 51, 80, 115]);
    const afterReplies = r.int(3); // 0: wait-server-hello, 1: after HVR, 2: after the server flight
    d.c.connect(0);
    let replies = 0;
    for (let round = 0; round < 4 && replies < afterReplies; round++) {
      for (const dg of d.c.drainTransmit()) {
        for (const reply of d.peer.handle(dg)) {
          if (replies++ < afterReplies) d.c.handleDatagram(0, reply);
        }
      }
    }
    d.c.drainTransmit();
    d.c.handleDatagram(5, Buffer.from([21, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 40, 0, 2, 2, description]));
    assert.equal(d.c.state, 'failed');
    assert.equal(d.c.c.lastError, 'alert-received');
    assert.equal(d.c.c.lastAlert, description);
  },
};

export const SCENARIOS: readonly Scenario[] = [
  cryptoKnownAnswers,
  cryptoSeeded,
  ...handshakeScenarios,
  lossyHandshake,
  handshakeTimeout,
  hostile,
  badFinished,
  fatalAlert,
];
