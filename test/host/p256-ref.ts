/**
 * P-256 helpers for test peers, on node:crypto: raw key encodings and a deterministic ECDSA
 * signer (scripted peers must answer every engine's run with the same bytes, and node:crypto's
 * ECDSA draws a random nonce). The nonce is HMAC-SHA-256(d, hash) reduced mod n — deterministic,
 * not RFC 6979; what it signs verifies with any ECDSA verifier, which the tests check.
 */
import crypto from 'node:crypto';

const N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

function toBig(b: Uint8Array): bigint {
  return BigInt(`0x${Buffer.from(b).toString('hex') || '0'}`);
}
function toBytes(x: bigint, len = 32): Buffer {
  return Buffer.from(x.toString(16).padStart(len * 2, '0'), 'hex');
}
function modPow(b: bigint, e: bigint, m: bigint): bigint {
  let r = 1n;
  b %= m;
  for (; e > 0n; e >>= 1n, b = (b * b) % m) if (e & 1n) r = (r * b) % m;
  return r;
}

/** 0x04 || X || Y of priv·G. */
export function p256Public(priv: Uint8Array): Buffer {
  const e = crypto.createECDH('prime256v1');
  e.setPrivateKey(Buffer.from(priv));
  return e.getPublicKey();
}

/** X of priv·Q. */
export function p256Ecdh(priv: Uint8Array, peerPublic: Uint8Array): Buffer {
  const e = crypto.createECDH('prime256v1');
  e.setPrivateKey(Buffer.from(priv));
  return e.computeSecret(Buffer.from(peerPublic));
}

/** A private key in [1, n − 1] from 32 seeded bytes. */
export function p256PrivateFrom(bytes: Uint8Array): Buffer {
  return toBytes((toBig(bytes) % (N - 1n)) + 1n);
}

/** r || s over a 32-byte hash, deterministic in (priv, hash). */
export function p256SignDeterministic(priv: Uint8Array, hash: Uint8Array): Buffer {
  const d = toBig(priv);
  const e = toBig(hash) % N;
  for (let i = 0; ; i++) {
    const k = (toBig(crypto.createHmac('sha256', Buffer.from(priv)).update(hash).update(Buffer.from([i])).digest()) % (N - 1n)) + 1n;
    const r = toBig(p256Public(toBytes(k)).subarray(1, 33)) % N;
    if (r === 0n) continue;
    const s = (modPow(k, N - 2n, N) * ((e + r * d) % N)) % N;
    if (s === 0n) continue;
    return Buffer.concat([toBytes(r), toBytes(s)]);
  }
}

/** DER ECDSA-Sig-Value of r || s. */
export function derSignature(rs: Uint8Array): Buffer {
  const int = (v: Buffer): Buffer => {
    let i = 0;
    while (i < 31 && v[i] === 0) i++;
    const body = v[i] & 0x80 ? Buffer.concat([Buffer.from([0]), v.subarray(i)]) : v.subarray(i);
    return Buffer.concat([Buffer.from([2, body.length]), body]);
  };
  const seq = Buffer.concat([int(Buffer.from(rs.subarray(0, 32))), int(Buffer.from(rs.subarray(32, 64)))]);
  return Buffer.concat([Buffer.from([0x30, seq.length]), seq]);
}

const SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');

/** SubjectPublicKeyInfo (DER) of a raw P-256 public key, as a raw-key Certificate carries it (RFC 7250). */
export function spkiOf(raw: Uint8Array): Buffer {
  return Buffer.concat([SPKI_PREFIX, raw]);
}

/** A node:crypto KeyObject for a raw public key. */
export function publicKeyObject(raw: Uint8Array): crypto.KeyObject {
  return crypto.createPublicKey({ key: spkiOf(raw), format: 'der', type: 'spki' });
}
