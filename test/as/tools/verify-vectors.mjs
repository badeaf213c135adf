#!/usr/bin/env node
// Independent check of every known-answer vector used by the as-pect specs in test/as/.
//
//   node test/as/tools/verify-vectors.mjs
//
// Plain Node (>= 20), no dependencies. Each vector is recomputed with an implementation that
// shares nothing with assembly/crypto/:
//   - AES-128, AES-CCM, SHA-256, HMAC-SHA-256: node:crypto (OpenSSL).
//   - TLS 1.2 PRF (P_SHA256) and HMAC_DRBG (SP 800-90A, SHA-256): short references below, written
//     from RFC 5246 section 5 and SP 800-90A Rev. 1 section 10.1.2, on top of node:crypto HMAC.
//   - P-256: node:crypto ECDH and ECDSA verification, RFC 6979 section 3.2 written out on node's
//     HMAC, BigInt arithmetic mod n for the signature equation.
// It then checks that every hex string it verified appears verbatim in the spec file that uses it,
// so the specs cannot drift from what was verified here. Exit status 0 only if all checks pass.

import { createCipheriv, createDecipheriv, createECDH, createHash, createHmac, createPublicKey, verify } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const SPEC_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");
const specText = new Map();
function spec(file) {
  if (!specText.has(file)) specText.set(file, readFileSync(join(SPEC_DIR, file), "utf8").toLowerCase());
  return specText.get(file);
}

let checks = 0;
let failures = 0;
function check(name, got, want) {
  checks++;
  if (got !== want) {
    failures++;
    console.log(`FAIL ${name}\n  got  ${got}\n  want ${want}`);
  }
}
/** Every given hex string must occur verbatim (case-insensitive) in the spec file. */
function inSpec(file, name, ...hexes) {
  for (const h of hexes) {
    if (h.length === 0) continue;
    checks++;
    if (!spec(file).includes(h.toLowerCase())) {
      failures++;
      console.log(`FAIL ${name}: ${file} does not contain ${h.length > 72 ? h.slice(0, 72) + "..." : h}`);
    }
  }
}

const hex = (b) => Buffer.from(b).toString("hex");
const unhex = (s) => Buffer.from(s.replace(/\s+/g, ""), "hex");
const counting = (first, len) => Buffer.from(Array.from({ length: len }, (_, i) => (first + i) & 0xff));

// ---------------------------------------------------------------------------------------------
// AES-128 (aes.spec.ts)
// ---------------------------------------------------------------------------------------------
function aesEcb(key, block) {
  const c = createCipheriv("aes-128-ecb", unhex(key), null);
  c.setAutoPadding(false);
  return hex(Buffer.concat([c.update(unhex(block)), c.final()]));
}
const AES = [
  // FIPS-197 Appendix C.1 (AES-128 example vector)
  ["FIPS-197 C.1", "000102030405060708090a0b0c0d0e0f", "00112233445566778899aabbccddeeff", "69c4e0d86a7b0430d8cdb78070b4c55a"],
  // FIPS-197 Appendix B (cipher example)
  ["FIPS-197 B", "2b7e151628aed2a6abf7158809cf4f3c", "3243f6a8885a308d313198a2e0370734", "3925841d02dc09fbdc118597196a0b32"],
  // NIST SP 800-38A Appendix F.1.1 (ECB-AES128.Encrypt), blocks 1-4
  ["SP 800-38A F.1.1 #1", "2b7e151628aed2a6abf7158809cf4f3c", "6bc1bee22e409f96e93d7e117393172a", "3ad77bb40d7a3660a89ecaf32466ef97"],
  ["SP 800-38A F.1.1 #2", "2b7e151628aed2a6abf7158809cf4f3c", "ae2d8a571e03ac9c9eb76fac45af8e51", "f5d3d58503b9699de785895a96fdbaaf"],
  ["SP 800-38A F.1.1 #3", "2b7e151628aed2a6abf7158809cf4f3c", "30c81c46a35ce411e5fbc1191a0a52ef", "43b1cd7f598ece23881b00e3ed030688"],
  ["SP 800-38A F.1.1 #4", "2b7e151628aed2a6abf7158809cf4f3c", "f69f2445df4f9b17ad2b417be66c3710", "7b0c785e27e8ad3f8223207104725dd4"],
];
for (const [name, key, pt, ct] of AES) {
  check(`AES ${name}`, aesEcb(key, pt), ct);
  inSpec("aes.spec.ts", `AES ${name}`, key, pt, ct);
}

// ---------------------------------------------------------------------------------------------
// AES-CCM (ccm.spec.ts)
// ---------------------------------------------------------------------------------------------
function ccmSeal(key, nonce, aad, pt, tagLen) {
  const c = createCipheriv("aes-128-ccm", key, nonce, { authTagLength: tagLen });
  c.setAAD(aad, { plaintextLength: pt.length });
  const ct = Buffer.concat([c.update(pt), c.final()]);
  return Buffer.concat([ct, c.getAuthTag()]);
}
function ccmOpen(key, nonce, aad, sealed, tagLen) {
  const ct = sealed.subarray(0, sealed.length - tagLen);
  const d = createDecipheriv("aes-128-ccm", key, nonce, { authTagLength: tagLen });
  d.setAuthTag(sealed.subarray(sealed.length - tagLen));
  d.setAAD(aad, { plaintextLength: ct.length });
  try {
    return Buffer.concat([d.update(ct), d.final()]);
  } catch {
    return null;
  }
}
// A second, from-spec CCM (SP 800-38C section 6.1, appendix A) over AES-ECB, so that each CCM
// vector is confirmed by two implementations.
function ccmSealRef(key, nonce, aad, pt, tagLen) {
  const ecb = (block) => {
    const c = createCipheriv("aes-128-ecb", key, null);
    c.setAutoPadding(false);
    return Buffer.concat([c.update(block), c.final()]);
  };
  const q = 15 - nonce.length;
  const b0 = Buffer.alloc(16);
  b0[0] = (aad.length > 0 ? 0x40 : 0) | (((tagLen - 2) / 2) << 3) | (q - 1);
  nonce.copy(b0, 1);
  for (let i = 0, len = pt.length; i < q; i++, len = Math.floor(len / 256)) b0[15 - i] = len & 0xff;
  let aadEnc = Buffer.alloc(0);
  if (aad.length > 0) {
    const a = aad.length;
    const prefix = a < 0xff00 ? Buffer.from([a >> 8, a & 0xff]) : Buffer.from([0xff, 0xfe, (a >>> 24) & 0xff, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff]);
    aadEnc = Buffer.concat([prefix, aad]);
  }
  const pad16 = (b) => Buffer.concat([b, Buffer.alloc((16 - (b.length % 16)) % 16)]);
  const blocks = Buffer.concat([b0, pad16(aadEnc), pad16(pt)]);
  let y = Buffer.alloc(16);
  for (let off = 0; off < blocks.length; off += 16) {
    const x = Buffer.alloc(16);
    for (let i = 0; i < 16; i++) x[i] = y[i] ^ blocks[off + i];
    y = ecb(x);
  }
  const ctr = (i) => {
    const c = Buffer.alloc(16);
    c[0] = q - 1;
    nonce.copy(c, 1);
    for (let j = 0, v = i; j < q; j++, v = Math.floor(v / 256)) c[15 - j] = v & 0xff;
    return ecb(c);
  };
  const ct = Buffer.alloc(pt.length);
  for (let i = 0; i < pt.length; i += 16) {
    const s = ctr(i / 16 + 1);
    for (let j = 0; j < 16 && i + j < pt.length; j++) ct[i + j] = pt[i + j] ^ s[j];
  }
  const s0 = ctr(0);
  const tag = Buffer.alloc(tagLen);
  for (let i = 0; i < tagLen; i++) tag[i] = y[i] ^ s0[i];
  return Buffer.concat([ct, tag]);
}
function checkCcm(name, key, nonce, aad, pt, tagLen, sealedHex) {
  const sealed = ccmSeal(key, nonce, aad, pt, tagLen);
  check(`CCM ${name} seal`, hex(sealed), sealedHex);
  check(`CCM ${name} seal (from-spec reference)`, hex(ccmSealRef(key, nonce, aad, pt, tagLen)), sealedHex);
  const opened = ccmOpen(key, nonce, aad, unhex(sealedHex), tagLen);
  check(`CCM ${name} open`, opened === null ? "(rejected)" : hex(opened), hex(pt));
  const tampered = unhex(sealedHex);
  tampered[tampered.length - 1] ^= 0x01;
  check(`CCM ${name} tampered tag rejected`, ccmOpen(key, nonce, aad, tampered, tagLen), null);
}

// RFC 3610 section 8, packet vectors #1-#24: [n, key, nonce, header octets, M, input packet, output packet]
const K1 = "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf";
const K2 = "d7828d13b2b0bdc325a76236df93cc6b";
const RFC3610 = [
  [1, K1, "00000003020100a0a1a2a3a4a5", 8, 8, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e", "0001020304050607588c979a61c663d2f066d0c2c0f989806d5f6b61dac38417e8d12cfdf926e0"],
  [2, K1, "00000004030201a0a1a2a3a4a5", 8, 8, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "000102030405060772c91a36e135f8cf291ca894085c87e3cc15c439c9e43a3ba091d56e10400916"],
  [3, K1, "00000005040302a0a1a2a3a4a5", 8, 8, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20", "000102030405060751b1e5f44a197d1da46b0f8e2d282ae871e838bb64da8596574adaa76fbd9fb0c5"],
  [4, K1, "00000006050403a0a1a2a3a4a5", 12, 8, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e", "000102030405060708090a0ba28c6865939a9a79faaa5c4c2a9d4a91cdac8c96c861b9c9e61ef1"],
  [5, K1, "00000007060504a0a1a2a3a4a5", 12, 8, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "000102030405060708090a0bdcf1fb7b5d9e23fb9d4e131253658ad86ebdca3e51e83f077d9c2d93"],
  [6, K1, "00000008070605a0a1a2a3a4a5", 12, 8, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20", "000102030405060708090a0b6fc1b011f006568b5171a42d953d469b2570a4bd87405a0443ac91cb94"],
  [7, K1, "00000009080706a0a1a2a3a4a5", 8, 10, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e", "00010203040506070135d1b2c95f41d5d1d4fec185d166b8094e999dfed96c048c56602c97acbb7490"],
  [8, K1, "0000000a090807a0a1a2a3a4a5", 8, 10, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "00010203040506077b75399ac0831dd2f0bbd75879a2fd8f6cae6b6cd9b7db24c17b4433f434963f34b4"],
  [9, K1, "0000000b0a0908a0a1a2a3a4a5", 8, 10, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20", "000102030405060782531a60cc24945a4b8279181ab5c84df21ce7f9b73f42e197ea9c07e56b5eb17e5f4e"],
  [10, K1, "0000000c0b0a09a0a1a2a3a4a5", 12, 10, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e", "000102030405060708090a0b07342594157785152b074098330abb141b947b566aa9406b4d999988dd"],
  [11, K1, "0000000d0c0b0aa0a1a2a3a4a5", 12, 10, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "000102030405060708090a0b676bb20380b0e301e8ab79590a396da78b834934f53aa2e9107a8b6c022c"],
  [12, K1, "0000000e0d0c0ba0a1a2a3a4a5", 12, 10, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20", "000102030405060708090a0bc0ffa0d6f05bdb67f24d43a4338d2aa4bed7b20e43cd1aa31662e7ad65d6db"],
  [13, K2, "00412b4ea9cdbe3c9696766cfa", 8, 8, "0be1a88bace018b108e8cf97d820ea258460e96ad9cf5289054d895ceac47c", "0be1a88bace018b14cb97f86a2a4689a877947ab8091ef5386a6ffbdd080f8e78cf7cb0cddd7b3"],
  [14, K2, "0033568ef7b2633c9696766cfa", 8, 8, "63018f76dc8a1bcb9020ea6f91bdd85afa0039ba4baff9bfb79c7028949cd0ec", "63018f76dc8a1bcb4ccb1e7ca981befaa0726c55d378061298c85c92814abc33c52ee81d7d77c08a"],
  [15, K2, "00103fe41336713c9696766cfa", 8, 8, "aa6cfa36cae86b40b916e0eacc1c00d7dcec68ec0b3bbb1a02de8a2d1aa346132e", "aa6cfa36cae86b40b1d23a2220ddc0ac900d9aa03c61fcf4a559a4417767089708a776796edb723506"],
  [16, K2, "00764c63b8058e3c9696766cfa", 12, 8, "d0d0735c531e1becf049c24412daac5630efa5396f770ce1a66b21f7b2101c", "d0d0735c531e1becf049c24414d253c3967b70609b7cbb7c499160283245269a6f49975bcadeaf"],
  [17, K2, "00f8b678094e3b3c9696766cfa", 12, 8, "77b60f011c03e1525899bcaee88b6a46c78d63e52eb8c546efb5de6f75e9cc0d", "77b60f011c03e1525899bcae5545ff1a085ee2efbf52b2e04bee1e2336c73e3f762c0c7744fe7e3c"],
  [18, K2, "00d560912d3f703c9696766cfa", 12, 8, "cd9044d2b71fdb8120ea60c06435acbafb11a82e2f071d7ca4a5ebd93a803ba87f", "cd9044d2b71fdb8120ea60c0009769ecabdf48625594c59251e6035722675e04c847099e5ae0704551"],
  [19, K2, "0042fff8f1951c3c9696766cfa", 8, 10, "d85bc7e69f944fb88a19b950bcf71a018e5e6701c91787659809d67dbedd18", "d85bc7e69f944fb8bc218daa947427b6db386a99ac1aef23ade0b52939cb6a637cf9bec2408897c6ba"],
  [20, K2, "00920f40e56cdc3c9696766cfa", 8, 10, "74a0ebc9069f5b371761433c37c5a35fc1f39f406302eb907c6163be38c98437", "74a0ebc9069f5b375810e6fd25874022e80361a478e3e9cf484ab04f447efff6f0a477cc2fc9bf548944"],
  [21, K2, "0027ca0c7120bc3c9696766cfa", 8, 10, "44a3aa3aae6475caa434a8e58500c6e41530538862d686ea9e81301b5ae4226bfa", "44a3aa3aae6475caf2beed7bc5098e83feb5b31608f8e29c38819a89c8e776f1544d4151a4ed3a8b87b9ce"],
  [22, K2, "005b8ccbcd9af83c9696766cfa", 12, 10, "ec46bb63b02520c33c49fd70b96b49e21d621741632875db7f6c9243d2d7c2", "ec46bb63b02520c33c49fd7031d750a09da3ed7fddd49a2032aabf17ec8ebf7d22c8088c666be5c197"],
  [23, K2, "003ebe94044b9a3c9696766cfa", 12, 10, "47a65ac78b3d594227e85e71e2fcfbb880442c731bf95167c8ffd7895e337076", "47a65ac78b3d594227e85e71e882f1dbd38ce3eda7c23f04dd65071eb41342acdf7e00dccec7ae52987d"],
  [24, K2, "008d493b30ae8b3c9696766cfa", 12, 10, "6e37a6ef546d955d34ab6059abf21c0b02feb88f856df4a37381bce3cc128517d4", "6e37a6ef546d955d34ab6059f32905b88a641b04b9c9ffb58cc390900f3da12ab16dce9e82efa16da62059"],
];
for (const [n, key, nonce, hdr, m, input, output] of RFC3610) {
  const inp = unhex(input);
  const out = unhex(output);
  check(`RFC 3610 #${n} output length`, out.length, inp.length + m);
  check(`RFC 3610 #${n} header passes through`, hex(out.subarray(0, hdr)), hex(inp.subarray(0, hdr)));
  checkCcm(`RFC 3610 #${n}`, unhex(key), unhex(nonce), inp.subarray(0, hdr), inp.subarray(hdr), m, hex(out.subarray(hdr)));
  inSpec("ccm.spec.ts", `RFC 3610 #${n}`, key, nonce, input, output);
}

// NIST SP 800-38C Appendix C, examples 1-4 (Tlen in bits). Example 4's associated data is the
// 256-byte string 00 01 ... ff repeated 256 times (65536 bytes = 524288 bits); the spec builds it.
const KC = "404142434445464748494a4b4c4d4e4f";
const SP80038C = [
  [1, "10111213141516", "0001020304050607", "20212223", 32, "7162015b4dac255d"],
  [2, "1011121314151617", "000102030405060708090a0b0c0d0e0f", "202122232425262728292a2b2c2d2e2f", 48, "d2a1f0e051ea5f62081a7792073d593d1fc64fbfaccd"],
  [3, "101112131415161718191a1b", "000102030405060708090a0b0c0d0e0f10111213", "202122232425262728292a2b2c2d2e2f3031323334353637", 64, "e3b201a9f5b71a7a9b1ceaeccd97e70b6176aad9a4428aa5484392fbc1b09951"],
  [4, "101112131415161718191a1b1c", null, "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f", 112, "69915dad1e84c6376a68c2967e4dab615ae0fd1faec44cc484828529463ccf72b4ac6bec93e8598e7f0dadbcea5b"],
];
for (const [n, nonce, aad, pt, tlen, c] of SP80038C) {
  const a = aad === null ? Buffer.concat(Array.from({ length: 256 }, () => counting(0, 256))) : unhex(aad);
  if (aad === null) check("SP 800-38C Ex4 Alen", a.length * 8, 524288);
  checkCcm(`SP 800-38C Ex${n}`, unhex(KC), unhex(nonce), a, unhex(pt), tlen / 8, c);
  inSpec("ccm.spec.ts", `SP 800-38C Ex${n}`, KC, nonce, aad ?? "", pt, c);
}

// Not published: cross-implementation vectors computed with OpenSSL (node:crypto) for paths the
// published vectors do not reach (no associated data, empty payload, the DTLS 1.2
// AES_128_CCM_8 shape, and the two-byte/six-byte boundary of the associated-data length field).
// [name, key, nonce, aad (hex or [pattern length]), payload, tagLen, expected ciphertext||tag]
const CCM_GENERATED = [
  ["G1 DTLS-shaped", K1, "a0a1a2a30001000000000005", "000100000000000517fefd0025", "48656c6c6f2c20736c6565707920646576696365212048656c6c6f2c20736c65657079", 8, "925f1d0b6231b18e51497e542e8cbc2a0a00508f19bb71a0db62fb97da7109e69de16ff6afac655b4d1296"],
  ["G2 no AAD", K1, "00000003020100a0a1a2a3a4a5", "", "08090a0b0c0d0e0f101112131415161718191a1b1c1d1e", 8, "588c979a61c663d2f066d0c2c0f989806d5f6b61dac3847c2051a7ae200bcf"],
  ["G3 empty payload", K1, "a0a1a2a30001000000000007", "000100000000000717fefd0000", "", 8, "09a6eafec248363b"],
  ["G4 empty payload, no AAD", KC, "10111213141516", "", "", 16, "8397c1e8bd098a269f9ef81b55a4ca38"],
  ["G5 7-byte nonce, 3 blocks", KC, "10111213141516", "0001020304050607", "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748", 16, "7162015bc051951e5918aeaf3c11f3d4ac363f8d5b6af3d369603b04f24cae29964e2f2bf9d31143f73f115f2a9747f925b5de0a455310ffa3"],
  ["G6 Alen 65279", KC, "101112131415161718191a1b1c", [65279], "202122232425262728292a2b2c2d2e2f", 8, "69915dad1e84c6376a68c2967e4dab61123dc00d2de49a43"],
  ["G7 Alen 65280", KC, "101112131415161718191a1b1c", [65280], "202122232425262728292a2b2c2d2e2f", 8, "69915dad1e84c6376a68c2967e4dab61f4614137f8f5297c"],
];
const GENERATED_OUT = process.argv.includes("--print-generated");
for (const [name, key, nonce, aad, pt, tagLen, expected] of CCM_GENERATED) {
  const a = Array.isArray(aad) ? counting(0, aad[0]) : unhex(aad);
  if (GENERATED_OUT) console.log(`${name}: ${hex(ccmSeal(unhex(key), unhex(nonce), a, unhex(pt), tagLen))}`);
  checkCcm(name, unhex(key), unhex(nonce), a, unhex(pt), tagLen, expected);
  inSpec("ccm.spec.ts", `CCM ${name}`, key, nonce, Array.isArray(aad) ? "" : aad, pt, expected);
}

// ---------------------------------------------------------------------------------------------
// SHA-256 (sha256.spec.ts)
// ---------------------------------------------------------------------------------------------
const sha256 = (b) => createHash("sha256").update(b).digest("hex");
const SHA = [
  // FIPS 180-2 Appendix B / NIST "Examples with Intermediate Values" (SHA256.pdf)
  ["abc", Buffer.from("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"],
  ["448-bit abcdbcde...nopq", Buffer.from("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"],
  // NIST SHA2 additional examples (SHA2_Additional.pdf / FIPS 180-4 examples): 896-bit message
  ["896-bit abcdefgh...nopqrstu", Buffer.from("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"), "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"],
  ["one million 'a'", Buffer.alloc(1000000, "a"), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"],
];
for (const [name, msg, md] of SHA) {
  check(`SHA-256 ${name}`, sha256(msg), md);
  inSpec("sha256.spec.ts", `SHA-256 ${name}`, md);
}
// NIST CAVP SHAVS, shabytetestvectors: SHA256ShortMsg.rsp (Len = 0, 8, 24, 448, 504, 512) and
// SHA256LongMsg.rsp (Len = 1304). [Len in bits, Msg, MD]
const SHAVS = [
  [0, "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],
  [8, "d3", "28969cdfa74a12c82f3bad960b0b000aca2ac329deea5c2328ebc6f2ba9802c1"],
  [24, "b4190e", "dff2e73091f6c05e528896c4c831b9448653dc2ff043528f6769437bc7b975c2"],
  [448, "2d52447d1244d2ebc28650e7b05654bad35b3a68eedc7f8515306b496d75f3e73385dd1b002625024b81a02f2fd6dffb6e6d561cb7d0bd7a", "cfb88d6faf2de3a69d36195acec2e255e2af2b7d933997f348e09f6ce5758360"],
  [504, "e2f76e97606a872e317439f1a03fcd92e632e5bd4e7cbc4e97f1afc19a16fde92d77cbe546416b51640cddb92af996534dfd81edb17c4424cf1ac4d75aceeb", "18041bd4665083001fba8c5411d2d748e8abbfdcdfd9218cb02b68a78e7d4c23"],
  [512, "5a86b737eaea8ee976a0a24da63e7ed7eefad18a101c1211e2b3650c5187c2a8a650547208251f6d4237e661c7bf4c77f335390394c37fa1a9f9be836ac28509", "42e61e174fbb3897d6dd6cef3dd2802fe67b331953b06114a65c772859dfc1aa"],
  [1304, "451101250ec6f26652249d59dc974b7361d571a8101cdfd36aba3b5854d3ae086b5fdd4597721b66e3c0dc5d8c606d9657d0e323283a5217d1f53f2f284f57b85c8a61ac8924711f895c5ed90ef17745ed2d728abd22a5f7a13479a462d71b56c19a74a40b655c58edfe0a188ad2cf46cbf30524f65d423c837dd1ff2bf462ac4198007345bb44dbb7b1c861298cdf61982a833afc728fae1eda2f87aa2c9480858bec", "3c593aa539fdcdae516cdf2f15000f6634185c88f505b39775fb9ab137a10aa2"],
];
for (const [len, msg, md] of SHAVS) {
  check(`SHAVS Len=${len} length`, unhex(msg).length * 8, len);
  check(`SHAVS Len=${len}`, sha256(unhex(msg)), md);
  inSpec("sha256.spec.ts", `SHAVS Len=${len}`, msg, md);
}

// ---------------------------------------------------------------------------------------------
// HMAC-SHA-256 (hmac.spec.ts): RFC 4231 section 4, test cases 1-7 (case 5 truncated to 128 bits)
// ---------------------------------------------------------------------------------------------
const RFC4231 = [
  [1, "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "4869205468657265", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"],
  [2, "4a656665", "7768617420646f2079612077616e7420666f72206e6f7468696e673f", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"],
  [3, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd", "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"],
  [4, "0102030405060708090a0b0c0d0e0f10111213141516171819", "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd", "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"],
  [5, "0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c", "546573742057697468205472756e636174696f6e", "a3b6167473100ee06e0c796c2955552b"],
  [6, "aa".repeat(131), "54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a65204b6579202d2048617368204b6579204669727374", "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"],
  [7, "aa".repeat(131), "5468697320697320612074657374207573696e672061206c6172676572207468616e20626c6f636b2d73697a65206b657920616e642061206c6172676572207468616e20626c6f636b2d73697a6520646174612e20546865206b6579206e6565647320746f20626520686173686564206265666f7265206265696e6720757365642062792074686520484d414320616c676f726974686d2e", "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"],
];
for (const [n, key, data, mac] of RFC4231) {
  const got = createHmac("sha256", unhex(key)).update(unhex(data)).digest("hex").slice(0, mac.length);
  check(`RFC 4231 case ${n}`, got, mac);
  // Cases 6 and 7 build their 131-byte key of 0xaa in code.
  inSpec("hmac.spec.ts", `RFC 4231 case ${n}`, n >= 6 ? "" : key, data, mac);
}

// ---------------------------------------------------------------------------------------------
// TLS 1.2 PRF with SHA-256 (prf.spec.ts)
// ---------------------------------------------------------------------------------------------
// RFC 5246 section 5: PRF(secret, label, seed) = P_SHA256(secret, label + seed);
// P_hash(secret, seed) = HMAC(secret, A(1) + seed) + HMAC(secret, A(2) + seed) + ...,
// A(0) = seed, A(i) = HMAC(secret, A(i-1)).
function tlsPrfSha256(secret, label, seed, outLen) {
  const s = Buffer.concat([label, seed]);
  const mac = (data) => createHmac("sha256", secret).update(data).digest();
  const out = [];
  let a = s;
  let have = 0;
  while (have < outLen) {
    a = mac(a);
    const block = mac(Buffer.concat([a, s]));
    out.push(block);
    have += block.length;
  }
  return Buffer.concat(out).subarray(0, outLen);
}
// Published on the IETF TLS WG mailing list ("PRF Testvector for the standard",
// https://www.ietf.org/mail-archive/web/tls/current/msg03416.html); also used by BearSSL, mbed TLS.
const PRF = {
  secret: "9bbe436ba940f017b17652849a71db35",
  seed: "a0ba9f936cda311827a6f796ffd5198c",
  label: "test label",
  out: "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff70187347b66",
};
check("TLS PRF output length", PRF.out.length / 2, 100);
check("TLS PRF (IETF TLS WG vector)", hex(tlsPrfSha256(unhex(PRF.secret), Buffer.from(PRF.label), unhex(PRF.seed), 100)), PRF.out);
inSpec("prf.spec.ts", "TLS PRF", PRF.secret, PRF.seed, PRF.out);
// prf.spec.ts also checks that shorter requests give prefixes of the same output.
for (const n of [0, 1, 12, 31, 32, 33, 48, 64, 65, 99]) {
  check(`TLS PRF ${n}-byte prefix`, hex(tlsPrfSha256(unhex(PRF.secret), Buffer.from(PRF.label), unhex(PRF.seed), n)), PRF.out.slice(0, 2 * n));
}
checks++;
if (!spec("prf.spec.ts").includes(`"${PRF.label}"`)) {
  failures++;
  console.log("FAIL TLS PRF: prf.spec.ts does not contain the label");
}

// ---------------------------------------------------------------------------------------------
// HMAC_DRBG with SHA-256 (drbg.spec.ts)
// ---------------------------------------------------------------------------------------------
// NIST SP 800-90A Rev. 1 section 10.1.2 (no prediction resistance, no derivation function).
class HmacDrbg {
  constructor(entropy, nonce, pers) {
    this.K = Buffer.alloc(32, 0x00);
    this.V = Buffer.alloc(32, 0x01);
    this.update(Buffer.concat([entropy, nonce, pers]));
  }
  hmac(key, ...parts) {
    return createHmac("sha256", key).update(Buffer.concat(parts)).digest();
  }
  update(provided) {
    this.K = this.hmac(this.K, this.V, Buffer.from([0x00]), provided);
    this.V = this.hmac(this.K, this.V);
    if (provided.length === 0) return;
    this.K = this.hmac(this.K, this.V, Buffer.from([0x01]), provided);
    this.V = this.hmac(this.K, this.V);
  }
  reseed(entropy, addl) {
    this.update(Buffer.concat([entropy, addl]));
  }
  generate(n, addl) {
    if (addl.length > 0) this.update(addl);
    const out = [];
    let have = 0;
    while (have < n) {
      this.V = this.hmac(this.K, this.V);
      out.push(this.V);
      have += this.V.length;
    }
    this.update(addl);
    return Buffer.concat(out).subarray(0, n);
  }
}
// NIST CAVP DRBG test vectors (drbgtestvectors.zip, CAVS 14.3), HMAC_DRBG.rsp, [SHA-256],
// [PredictionResistance = False], EntropyInputLen = 256, NonceLen = 128, ReturnedBitsLen = 1024,
// COUNT = 0 of each group. no_reseed: Instantiate, Generate (discarded), Generate.
// pr_false: Instantiate, Reseed, Generate (discarded), Generate.
const DRBG = [
  { name: "no_reseed PersLen=0 AddLen=0", entropy: "ca851911349384bffe89de1cbdc46e6831e44d34a4fb935ee285dd14b71a7488", nonce: "659ba96c601dc69fc902940805ec0ca8", pers: "", add1: "", add2: "", out: "e528e9abf2dece54d47c7e75e5fe302149f817ea9fb4bee6f4199697d04d5b89d54fbb978a15b5c443c9ec21036d2460b6f73ebad0dc2aba6e624abf07745bc107694bb7547bb0995f70de25d6b29e2d3011bb19d27676c07162c8b5ccde0668961df86803482cb37ed6d5c0bb8d50cf1f50d476aa0458bdaba806f48be9dcb8" },
  { name: "no_reseed PersLen=0 AddLen=256", entropy: "d3cc4d1acf3dde0c4bd2290d262337042dc632948223d3a2eaab87da44295fbd", nonce: "0109b0e729f457328aa18569a9224921", pers: "", add1: "3c311848183c9a212a26f27f8c6647e40375e466a0857cc39c4e47575d53f1f6", add2: "fcb9abd19ccfbccef88c9c39bfb3dd7b1c12266c9808992e305bc3cff566e4e4", out: "9c7b758b212cd0fcecd5daa489821712e3cdea4467b560ef5ddc24ab47749a1f1ffdbbb118f4e62fcfca3371b8fbfc5b0646b83e06bfbbab5fac30ea09ea2bc76f1ea568c9be0444b2cc90517b20ca825f2d0eccd88e7175538b85d90ab390183ca6395535d34473af6b5a5b88f5a59ee7561573337ea819da0dcc3573a22974" },
  { name: "no_reseed PersLen=256 AddLen=256", entropy: "5d3286bc53a258a53ba781e2c4dcd79a790e43bbe0e89fb3eed39086be34174b", nonce: "c5422294b7318952ace7055ab7570abf", pers: "2dba094d008e150d51c4135bb2f03dcde9cbf3468a12908a1b025c120c985b9d", add1: "793a7ef8f6f0482beac542bb785c10f8b7b406a4de92667ab168ecc2cf7573c6", add2: "2238cdb4e23d629fe0c2a83dd8d5144ce1a6229ef41dabe2a99ff722e510b530", out: "d04678198ae7e1aeb435b45291458ffde0891560748b43330eaf866b5a6385e74c6fa5a5a44bdb284d436e98d244018d6acedcdfa2e9f499d8089e4db86ae89a6ab2d19cb705e2f048f97fb597f04106a1fa6a1416ad3d859118e079a0c319eb95686f4cbcce3b5101c7a0b010ef029c4ef6d06cdfac97efb9773891688c37cf" },
  { name: "pr_false PersLen=0 AddLen=0", entropy: "06032cd5eed33f39265f49ecb142c511da9aff2af71203bffaf34a9ca5bd9c0d", nonce: "0e66f71edc43e42a45ad3c6fc6cdc4df", pers: "", reseed: "01920a4e669ed3a85ae8a33b35a74ad7fb2a6bb4cf395ce00334a9c9a5a5d552", addReseed: "", add1: "", add2: "", out: "76fc79fe9b50beccc991a11b5635783a83536add03c157fb30645e611c2898bb2b1bc215000209208cd506cb28da2a51bdb03826aaf2bd2335d576d519160842e7158ad0949d1a9ec3e66ea1b1a064b005de914eac2e9d4f2d72a8616a80225422918250ff66a41bd2f864a6a38cc5b6499dc43f7f2bd09e1e0f8f5885935124" },
  { name: "pr_false PersLen=0 AddLen=256", entropy: "05ac9fc4c62a02e3f90840da5616218c6de5743d66b8e0fbf833759c5928b53d", nonce: "2b89a17904922ed8f017a63044848545", pers: "", reseed: "2791126b8b52ee1fd9392a0a13e0083bed4186dc649b739607ac70ec8dcecf9b", addReseed: "43bac13bae715092cf7eb280a2e10a962faf7233c41412f69bc74a35a584e54c", add1: "3f2fed4b68d506ecefa21f3f5bb907beb0f17dbc30f6ffbba5e5861408c53a1e", add2: "529030df50f410985fde068df82b935ec23d839cb4b269414c0ede6cffea5b68", out: "02ddff5173da2fcffa10215b030d660d61179e61ecc22609b1151a75f1cbcbb4363c3a89299b4b63aca5e581e73c860491010aa35de3337cc6c09ebec8c91a6287586f3a74d9694b462d2720ea2e11bbd02af33adefb4a16e6b370fa0effd57d607547bdcfbb7831f54de7073ad2a7da987a0016a82fa958779a168674b56524" },
  { name: "pr_false PersLen=256 AddLen=256", entropy: "cdb0d9117cc6dbc9ef9dcb06a97579841d72dc18b2d46a1cb61e314012bdf416", nonce: "d0c0d01d156016d0eb6b7e9c7c3c8da8", pers: "6f0fb9eab3f9ea7ab0a719bfa879bf0aaed683307fda0c6d73ce018b6e34faaa", reseed: "8ec6f7d5a8e2e88f43986f70b86e050d07c84b931bcf18e601c5a3eee3064c82", addReseed: "1ab4ca9014fa98a55938316de8ba5a68c629b0741bdd058c4d70c91cda5099b3", add1: "16e2d0721b58d839a122852abd3bf2c942a31c84d82fca74211871880d7162ff", add2: "53686f042a7b087d5d2eca0d2a96de131f275ed7151189f7ca52deaa78b79fb2", out: "dda04a2ca7b8147af1548f5d086591ca4fd951a345ce52b3cd49d47e84aa31a183e31fbc42a1ff1d95afec7143c8008c97bc2a9c091df0a763848391f68cb4a366ad89857ac725a53b303ddea767be8dc5f605b1b95f6d24c9f06be65a973a089320b3cc42569dcfd4b92b62a993785b0301b3fc452445656fce22664827b88f" },
];
for (const v of DRBG) {
  const d = new HmacDrbg(unhex(v.entropy), unhex(v.nonce), unhex(v.pers));
  if (v.reseed !== undefined) d.reseed(unhex(v.reseed), unhex(v.addReseed));
  d.generate(128, unhex(v.add1));
  check(`HMAC_DRBG ${v.name}`, hex(d.generate(128, unhex(v.add2))), v.out);
  inSpec("drbg.spec.ts", `HMAC_DRBG ${v.name}`, v.entropy, v.nonce, v.pers, v.reseed ?? "", v.addReseed ?? "", v.add1, v.add2, v.out);
}
// drbg.spec.ts also asks the no_reseed COUNT = 0 vector for 100 and 97 bytes per Generate call:
// the same number of HMAC blocks as 128 bytes, so the output must be a prefix of ReturnedBits.
for (const n of [100, 97]) {
  const d = new HmacDrbg(unhex(DRBG[0].entropy), unhex(DRBG[0].nonce), Buffer.alloc(0));
  d.generate(n, Buffer.alloc(0));
  check(`HMAC_DRBG no_reseed COUNT = 0 with ${n}-byte requests`, hex(d.generate(n, Buffer.alloc(0))), DRBG[0].out.slice(0, 2 * n));
}
// The reference itself against the intermediate values printed in the same .rsp files
// (no_reseed COUNT = 0 and pr_false COUNT = 0 of the PersLen=0, AddLen=0 groups).
{
  const d = new HmacDrbg(unhex(DRBG[0].entropy), unhex(DRBG[0].nonce), Buffer.alloc(0));
  check("DRBG reference: INSTANTIATE V", hex(d.V), "e75855f93b971ac468d200992e211960202d53cf08852ef86772d6490bfb53f9");
  check("DRBG reference: INSTANTIATE Key", hex(d.K), "302a4aba78412ab36940f4be7b940a0c728542b8b81d95b801a57b3797f9dd6e");
  d.generate(128, Buffer.alloc(0));
  check("DRBG reference: GENERATE 1 V", hex(d.V), "bfbdcf455d5c82acafc59f339ce57126ff70b67aef910fa25db7617818faeafe");
  check("DRBG reference: GENERATE 1 Key", hex(d.K), "911bf7cbda4387a172a1a3daf6c9fa8e17c4bfef69cc7eff1341e7eef88d2811");
  d.generate(128, Buffer.alloc(0));
  check("DRBG reference: GENERATE 2 V", hex(d.V), "6b94e773e3469353a1ca8face76b238c5919d62a150a7dfc589ffa11c30b5b94");
  check("DRBG reference: GENERATE 2 Key", hex(d.K), "6dd2cd5b1edba4b620d195ce26ad6845b063211d11e591432de37a3ad793f66c");
  const r = new HmacDrbg(unhex(DRBG[3].entropy), unhex(DRBG[3].nonce), Buffer.alloc(0));
  check("DRBG reference: pr_false INSTANTIATE V", hex(r.V), "81e0d8830ed2d16f9b288a1cb289c5fab3f3c5c28131be7cafedcc7734604d34");
  check("DRBG reference: pr_false INSTANTIATE Key", hex(r.K), "17dc11c2389f5eeb9d0f6a5148a1ea83ee8a828f4f140ac78272a0da435fa121");
  r.reseed(unhex(DRBG[3].reseed), Buffer.alloc(0));
  check("DRBG reference: pr_false RESEED V", hex(r.V), "c246fa97570ba2b9d9e5b453fe4632366f146fbd8491146563eb463c9eafe50c");
  check("DRBG reference: pr_false RESEED Key", hex(r.K), "ca43e73325de43c41d7e0a7a3163fb04061b09fcee4c7b8884e969e3bdfdff9a");
  r.generate(128, Buffer.alloc(0));
  check("DRBG reference: pr_false GENERATE 1 V", hex(r.V), "df67d0816d6a8f3b73ba7638ea113bef0e33a1da451272ef1472211fb31c1cd6");
  check("DRBG reference: pr_false GENERATE 1 Key", hex(r.K), "8be4c7f9f249d5af2c6345a8f07af14be1d7adc2b9892286ffe37760d8aa5a1b");
}

// ---------------------------------------------------------------------------------------------
// P-256 (p256.spec.ts)
// ---------------------------------------------------------------------------------------------
// Public keys and ECDH with node:crypto (OpenSSL's createECDH), signatures with crypto.verify,
// and RFC 6979 section 3.2 written out below on node's HMAC, with BigInt for the arithmetic mod n.
{
  const P256_P = 2n ** 256n - 2n ** 224n + 2n ** 192n + 2n ** 96n - 1n;
  const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
  const P256_B = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn;
  const big = (h) => BigInt("0x" + h);
  const hex32 = (x) => x.toString(16).padStart(64, "0");
  const modPow = (a, e, m) => {
    let r = 1n;
    for (a %= m; e > 0n; e >>= 1n, a = (a * a) % m) if (e & 1n) r = (r * a) % m;
    return r;
  };
  const ecdhWith = (privHex) => {
    const e = createECDH("prime256v1");
    e.setPrivateKey(unhex(privHex));
    return e;
  };
  const publicOf = (privHex) => hex(ecdhWith(privHex).getPublicKey());
  const sharedOf = (privHex, pubHex) => {
    try {
      return hex(ecdhWith(privHex).computeSecret(unhex(pubHex)));
    } catch {
      return "(rejected)";
    }
  };
  const nodeVerifies = (pubHex, msg, sigHex) => {
    const pub = unhex(pubHex);
    const key = createPublicKey({ key: { kty: "EC", crv: "P-256", x: pub.subarray(1, 33).toString("base64url"), y: pub.subarray(33).toString("base64url") }, format: "jwk" });
    return verify("sha256", Buffer.from(msg), { key, dsaEncoding: "ieee-p1363" }, unhex(sigHex));
  };
  /** RFC 6979 section 3.2 for qlen = hlen = 256: the nonce k for private key x and hash h1. */
  const rfc6979Nonce = (xHex, h1) => {
    const hmac = (key, ...parts) => createHmac("sha256", key).update(Buffer.concat(parts)).digest();
    const x = unhex(xHex), h = unhex(hex32(big(hex(h1)) % P256_N)); // int2octets(x), bits2octets(h1)
    let V = Buffer.alloc(32, 0x01), K = Buffer.alloc(32, 0x00);
    K = hmac(K, V, Buffer.from([0x00]), x, h);
    V = hmac(K, V);
    K = hmac(K, V, Buffer.from([0x01]), x, h);
    V = hmac(K, V);
    for (;;) {
      V = hmac(K, V);
      const k = big(hex(V));
      if (k >= 1n && k < P256_N) return k;
      K = hmac(K, V, Buffer.from([0x00]));
      V = hmac(K, V);
    }
  };

  // Constants the spec uses
  const G = "046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c2964fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5";
  const N_MINUS_1 = hex32(P256_N - 1n), SQRT_B = hex32(modPow(P256_B, (P256_P + 1n) / 4n, P256_P));
  check("P-256 1·G", publicOf(hex32(1n)), G);
  check("P-256 √b squared", hex32((big(SQRT_B) ** 2n) % P256_P), hex32(P256_B));
  const minusG = "04" + G.slice(2, 66) + hex32(P256_P - big(G.slice(66)));
  check("P-256 (n − 1)·G = −G", publicOf(N_MINUS_1), minusG);
  check("P-256 (0, √b) is a valid peer key", sharedOf(N_MINUS_1, "04" + hex32(0n) + SQRT_B) !== "(rejected)", true);
  const X_Y5 = "d7325d7646cd60d80a92738ceb345f844cffaf35841022cab176f692de8de1d7";
  check("P-256 (X_Y5, 5) is on the curve", (big(X_Y5) ** 3n - 3n * big(X_Y5) + P256_B - 25n) % P256_P, 0n);
  check("P-256 (X_Y5, 5) is a valid peer key", sharedOf(N_MINUS_1, "04" + X_Y5 + hex32(5n)) !== "(rejected)", true);
  inSpec("p256.spec.ts", "P-256 constants", G, hex32(P256_N), N_MINUS_1, hex32(P256_P), SQRT_B, minusG, X_Y5,
    hex32(P256_P + 5n), hex32(P256_P - 1n), hex32(P256_P - 2n), hex32((2n ** 256n - 1n) % P256_N));

  // RFC 6979 A.2.5: key pair, k as printed in the RFC, signatures
  const RFC = {
    x: "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721",
    U: "0460fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb67903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299",
    sigs: [
      ["sample", "a6e3c57dd01abe90086538398355dd4c3b17aa873382b0f24d6129493d8aad60",
        "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8"],
      ["test", "d16b6ae827f17175e040871a1c7ec3500192c4c92677336ec2537acaee0008e0",
        "f1abb023518351cd71d881567b1ea663ed3efcf6c5132b354f28d3b0b7d38367019f4113742a2b14bd25926b49c649155f267e60d3814b4c0cc84250e46f0083"],
    ],
  };
  check("RFC 6979 A.2.5 public key", publicOf(RFC.x), RFC.U);
  inSpec("p256.spec.ts", "RFC 6979 A.2.5 key", RFC.x, RFC.U);
  for (const [msg, kHex, sigHex] of RFC.sigs) {
    const h = createHash("sha256").update(msg).digest();
    const k = rfc6979Nonce(RFC.x, h);
    check(`RFC 6979 A.2.5 "${msg}" k (section 3.2 reference)`, hex32(k), kHex);
    const r = big(publicOf(kHex).slice(2, 66)) % P256_N;
    const s = (modPow(k, P256_N - 2n, P256_N) * ((big(hex(h)) % P256_N) + r * big(RFC.x))) % P256_N;
    check(`RFC 6979 A.2.5 "${msg}" r ‖ s`, hex32(r) + hex32(s), sigHex);
    check(`RFC 6979 A.2.5 "${msg}" verifies in node:crypto`, nodeVerifies(RFC.U, msg, sigHex), true);
    inSpec("p256.spec.ts", `RFC 6979 A.2.5 "${msg}"`, sigHex);
  }
  const sampleSig = RFC.sigs[0][2];
  const nMinusS = hex32(P256_N - big(sampleSig.slice(64)));
  check("RFC 6979 \"sample\" (r, n − s) verifies in node:crypto", nodeVerifies(RFC.U, "sample", sampleSig.slice(0, 64) + nMinusS), true);
  inSpec("p256.spec.ts", "RFC 6979 n − s", nMinusS);

  // NIST CAVP KAS ECC CDH primitive (KAS_ECC_CDH_PrimitiveTest.txt), [P-256] COUNT 0-2:
  // [dIUT, QIUT, QCAVS, ZIUT]
  const CAVP = [
    ["7d7dc5f71eb29ddaf80d6214632eeae03d9058af1fb6d22ed80badb62bc1a534",
      "04ead218590119e8876b29146ff89ca61770c4edbbf97d38ce385ed281d8a6b23028af61281fd35e2fa7002523acc85a429cb06ee6648325389f59edfce1405141",
      "04700c48f77f56584c5cc632ca65640db91b6bacce3a4df6b42ce7cc838833d287db71e509e3fd9b060ddb20ba5c51dcc5948d46fbf640dfe0441782cab85fa4ac",
      "46fc62106420ff012e54a434fbdd2d25ccc5852060561e68040dd7778997bd7b"],
    ["38f65d6dce47676044d58ce5139582d568f64bb16098d179dbab07741dd5caf5",
      "04119f2f047902782ab0c9e27a54aff5eb9b964829ca99c06b02ddba95b0a3f6d08f52b726664cac366fc98ac7a012b2682cbd962e5acb544671d41b9445704d1d",
      "04809f04289c64348c01515eb03d5ce7ac1a8cb9498f5caa50197e58d43a86a7aeb29d84e811197f25eba8f5194092cb6ff440e26d4421011372461f579271cda3",
      "057d636096cb80b67a8c038c890e887d1adfa4195e9b3ce241c8a778c59cda67"],
    ["1accfaf1b97712b85a6f54b148985a1bdc4c9bec0bd258cad4b3d603f49f32c8",
      "04d9f2b79c172845bfdb560bbb01447ca5ecc0470a09513b6126902c6b4f8d1051f815ef5ec32128d3487834764678702e64e164ff7315185e23aff5facd96d7bc",
      "04a2339c12d4a03c33546de533268b4ad667debf458b464d77443636440ee7fec3ef48a3ab26e20220bcda2c1851076839dae88eae962869a497bf73cb66faf536",
      "2d457b78b4614132477618a5b077965ec90730a8c81a1c75d6d4ec68005d67ec"],
  ];
  CAVP.forEach(([d, q, peer, z], i) => {
    check(`CAVP ECDH P-256 COUNT ${i} QIUT`, publicOf(d), q);
    check(`CAVP ECDH P-256 COUNT ${i} ZIUT`, sharedOf(d, peer), z);
    inSpec("p256.spec.ts", `CAVP ECDH P-256 COUNT ${i}`, d, q, peer, z);
  });

  // Wycheproof ecdh_secp256r1_ecpoint_test: shared X with leading zeros
  const WP_PRIV = "0a0d622a47e48f6bc1038ace438c6f528aa00ad2bd1da5f13ee46bf5f633d71a";
  const WP = [
    ["0458fd4168a87795603e2b04390285bdca6e57de6027fe211dd9d25e2212d29e62080d36bd224d7405509295eed02a17150e03b314f96da37445b0d1d29377d12c",
      "0000000000000000000000000000000000000000000000000000000000000000"],
    ["04924fb33985c8a687fc04c9dd05e531ca0e0223aa58d58351e922ef482043d30cf504745e769b6dcbefe404da37f717b3109d2af23450fcfe2f075c2dabbe7194",
      "00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00f9"],
  ];
  for (const [pub, z] of WP) {
    check(`Wycheproof ECDH P-256 shared ${z.slice(0, 8)}…`, sharedOf(WP_PRIV, pub), z);
    inSpec("p256.spec.ts", "Wycheproof ECDH P-256", WP_PRIV, pub, z);
  }

  // Invalid public keys: node:crypto refuses each of them too
  const invalid = [
    CAVP[0][2].slice(0, -1) + "d",
    "046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c2974fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5",
    "04" + hex32(P256_P) + SQRT_B,
    "04" + X_Y5 + hex32(P256_P + 5n),
    "04" + "00".repeat(64),
    "04" + hex32(1n) + hex32(1n),
  ];
  for (const pub of invalid) {
    check(`P-256 invalid point ${pub.slice(0, 20)}… refused by node:crypto`, sharedOf(CAVP[0][0], pub), "(rejected)");
    if (!pub.startsWith("04" + hex32(P256_P)) && !pub.startsWith("04" + "00".repeat(32)) && !pub.startsWith("04" + X_Y5)) inSpec("p256.spec.ts", "P-256 invalid point", pub);
  }
}

console.log(`${checks - failures} passed, ${failures} failed`);
process.exit(failures === 0 ? 0 : 1);
