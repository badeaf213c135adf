// The module's CCM against node:crypto on random inputs, tamper rejection, parameter errors,
// hashing against node:crypto, and the zero-allocation guarantee. Runs on every engine.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fc from 'fast-check';
import { ENGINES, loadTestCrypto } from './engines.ts';

const TAG_LEN = 8;

function nodeSeal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, pt: Uint8Array): Buffer {
  const c = crypto.createCipheriv('aes-128-ccm', key, nonce, { authTagLength: TAG_LEN });
  c.setAAD(aad, { plaintextLength: pt.length });
  return Buffer.concat([c.update(pt), c.final(), c.getAuthTag()]);
}

function nodeOpen(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Buffer | null {
  const ctLen = sealed.length - TAG_LEN;
  const d = crypto.createDecipheriv('aes-128-ccm', key, nonce, { authTagLength: TAG_LEN });
  d.setAuthTag(sealed.subarray(ctLen));
  d.setAAD(aad, { plaintextLength: ctLen });
  const pt = d.update(sealed.subarray(0, ctLen));
  try {
    d.final();
  } catch {
    return null;
  }
  return pt;
}

const caseArb = fc.record({
  key: fc.uint8Array({ minLength: 16, maxLength: 16 }),
  nonce: fc.uint8Array({ minLength: 12, maxLength: 12 }),
  aad: fc.uint8Array({ minLength: 0, maxLength: 32 }),
  plaintext: fc.uint8Array({ minLength: 0, maxLength: 800 }),
  flipBit: fc.nat(),
  flipWhere: fc.constantFrom('tag', 'aad', 'nonce', 'ciphertext'),
});

function flip(bytes: Uint8Array, bit: number): Uint8Array {
  const copy = Uint8Array.from(bytes);
  const i = bit % (copy.length * 8);
  copy[i >> 3] ^= 1 << (i & 7);
  return copy;
}

for (const engineCase of ENGINES) {
  describe(`crypto on ${engineCase.name}`, () => {
    const load = (t: { skip(msg: string): void }) => loadTestCrypto(engineCase, t);

    it('AES-128-CCM-8 seal/open matches node:crypto on 1,000 random cases and rejects any flipped bit', async (t) => {
      const mc = await load(t);
      if (!mc) return;
      let tampered = 0;
      fc.assert(
        fc.property(caseArb, ({ key, nonce, aad, plaintext, flipBit, flipWhere }) => {
          mc.setKey(key);
          const expected = nodeSeal(key, nonce, aad, plaintext);
          const sealed = mc.ccmSeal(nonce, aad, plaintext);
          assert.ok(sealed instanceof Uint8Array, `seal failed with ${sealed}`);
          assert.deepEqual(Buffer.from(sealed), expected, 'module seal differs from node:crypto');
          // the other direction: node:crypto opens what the module sealed, the module opens node's
          assert.deepEqual(nodeOpen(key, nonce, aad, sealed), Buffer.from(plaintext));
          const opened = mc.ccmOpen(nonce, aad, expected);
          assert.ok(opened instanceof Uint8Array, `open failed with ${opened}`);
          assert.deepEqual(Buffer.from(opened), Buffer.from(plaintext));
          // one flipped bit anywhere that is authenticated must be rejected
          let n: Uint8Array = nonce, a: Uint8Array = aad, s: Uint8Array = expected;
          if (flipWhere === 'tag') s = Buffer.concat([expected.subarray(0, plaintext.length), flip(expected.subarray(plaintext.length), flipBit)]);
          else if (flipWhere === 'aad' && aad.length > 0) a = flip(aad, flipBit);
          else if (flipWhere === 'nonce') n = flip(nonce, flipBit);
          else if (flipWhere === 'ciphertext' && plaintext.length > 0) s = Buffer.concat([flip(expected.subarray(0, plaintext.length), flipBit), expected.subarray(plaintext.length)]);
          else return; // nothing to flip in an empty field
          tampered++;
          assert.equal(mc.ccmOpen(n, a, s), -1, `flipped ${flipWhere} bit accepted`);
          assert.equal(nodeOpen(key, n, a, s), null, 'node:crypto accepted the tampered record (test bug)');
        }),
        { numRuns: 1000, seed: 20190502 },
      );
      assert.ok(tampered > 600, `only ${tampered} tamper cases ran`);
    });

    it('a failed open releases no plaintext: the output region is zeroed', async (t) => {
      const mc = await load(t);
      if (!mc) return;
      const key = crypto.randomBytes(16), nonce = crypto.randomBytes(12), pt = Buffer.alloc(64, 0xaa);
      mc.setKey(key);
      const sealed = nodeSeal(key, nonce, Buffer.alloc(0), pt);
      sealed[sealed.length - 1] ^= 1;
      assert.equal(mc.ccmOpen(nonce, new Uint8Array(0), sealed), -1);
      assert.deepEqual(Buffer.from(mc.m.readMemory(mc.io + 12, 64)), Buffer.alloc(64));
    });

    it('CCM rejects bad parameters with CCM_ERR_PARAM (-2) and accepts every legal nonce/tag length', async (t) => {
      const mc = await load(t);
      if (!mc) return;
      const key = crypto.randomBytes(16);
      mc.setKey(key);
      const pt = crypto.randomBytes(20), aad = crypto.randomBytes(5);
      for (const nonceLen of [0, 6, 14, 16]) assert.equal(mc.ccmSeal(new Uint8Array(nonceLen), aad, pt), -2, `nonce ${nonceLen}`);
      for (const tagLen of [0, 2, 3, 5, 18]) assert.equal(mc.ccmSeal(new Uint8Array(12), aad, pt, tagLen), -2, `tag ${tagLen}`);
      assert.equal(mc.ccmOpen(new Uint8Array(12), aad, new Uint8Array(7)), -2, 'sealed shorter than the tag');
      for (let nonceLen = 7; nonceLen <= 13; nonceLen++) {
        for (let tagLen = 4; tagLen <= 16; tagLen += 2) {
          const nonce = crypto.randomBytes(nonceLen);
          const c = crypto.createCipheriv('aes-128-ccm', key, nonce, { authTagLength: tagLen });
          c.setAAD(aad, { plaintextLength: pt.length });
          const expected = Buffer.concat([c.update(pt), c.final(), c.getAuthTag()]);
          assert.deepEqual(Buffer.from(mc.ccmSeal(nonce, aad, pt, tagLen) as Uint8Array), expected, `n=${nonceLen} t=${tagLen}`);
        }
      }
    });

    it('SHA-256, HMAC-SHA-256 and the TLS PRF match node:crypto on random inputs', async (t) => {
      const mc = await load(t);
      if (!mc) return;
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 100 }), (data, key) => {
          assert.deepEqual(Buffer.from(mc.sha256(data)), crypto.createHash('sha256').update(data).digest());
          assert.deepEqual(Buffer.from(mc.hmacSha256(key, data)), crypto.createHmac('sha256', key).update(data).digest());
        }),
        { numRuns: 300, seed: 7 },
      );
      // P_SHA256 written out from RFC 5246 §5 with node's HMAC
      const secret = crypto.randomBytes(48), label = Buffer.from('key expansion'), seed = crypto.randomBytes(64);
      const hmac = (d: Buffer) => crypto.createHmac('sha256', secret).update(d).digest();
      let a = hmac(Buffer.concat([label, seed]));
      let expected = Buffer.alloc(0);
      while (expected.length < 72) {
        expected = Buffer.concat([expected, hmac(Buffer.concat([a, label, seed]))]);
        a = hmac(a);
      }
      assert.deepEqual(Buffer.from(mc.tlsPrf(secret, label, seed, 72)), expected.subarray(0, 72));
    });

    it('allocates nothing after start: the heap pointer is unchanged after 10,000 crypto calls', async (t) => {
      const mc = await load(t);
      if (!mc) return;
      const before = mc.m.call('heap_offset');
      const key = crypto.randomBytes(16), nonce = crypto.randomBytes(12), aad = crypto.randomBytes(13);
      mc.drbgInstantiate(crypto.randomBytes(32), crypto.randomBytes(16), new Uint8Array(0));
      for (let i = 0; i < 10_000; i++) {
        switch (i % 6) {
          case 0: mc.setKey(key); break;
          case 1: mc.ccmSeal(nonce, aad, crypto.randomBytes(i % 800)); break;
          case 2: mc.ccmOpen(nonce, aad, crypto.randomBytes(8 + (i % 800))); break;
          case 3: mc.hmacSha256(key, aad); break;
          case 4: mc.tlsPrf(key, aad, nonce, 40); break;
          case 5: mc.drbgGenerate(32); break;
        }
      }
      assert.equal(mc.m.call('heap_offset'), before);
    });
  });
}
