/**
 * P-256 helpers for test peers, on node:crypto: raw key encodings and a deterministic ECDSA
 * signer (scripted peers must answer every engine's run with the same bytes, and node:crypto's
 * ECDSA draws a random nonce). The nonce is HMAC-SHA-256(d, hash ‖ counter) — deterministic, not
 * RFC 6979; what it signs verifies with any ECDSA verifier, which the tests check.
 */
import crypto from 'node:crypto';
import { derOfSignature, ecdsaSignWithNonce, publicPointOf, scalarFromSeed, spkiOfPoint } from '../../host/cloud/p256.ts';

/** 0x04 || X || Y of priv·G. */
export const p256Public = publicPointOf;

/** X of priv·Q. */
export function p256Ecdh(priv: Uint8Array, peerPublic: Uint8Array): Buffer {
  const e = crypto.createECDH('prime256v1');
  e.setPrivateKey(Buffer.from(priv));
  return e.computeSecret(Buffer.from(peerPublic));
}

/** A private key in [1, n − 1] from 32 seeded bytes. */
export const p256PrivateFrom = scalarFromSeed;

/** r || s over a 32-byte hash, deterministic in (priv, hash): nonces HMAC-SHA-256(d, hash ‖ counter). */
export function p256SignDeterministic(priv: Uint8Array, hash: Uint8Array): Buffer {
  let i = 0;
  return ecdsaSignWithNonce(priv, hash, () => crypto.createHmac('sha256', Buffer.from(priv)).update(hash).update(Buffer.from([i++])).digest());
}

/** DER ECDSA-Sig-Value of r || s. */
export const derSignature = derOfSignature;

/** SubjectPublicKeyInfo (DER) of a raw P-256 public key, as a raw-key Certificate carries it (RFC 7250). */
export const spkiOf = (raw: Uint8Array): Buffer => spkiOfPoint(Buffer.from(raw));

/** A node:crypto KeyObject for a raw public key. */
export function publicKeyObject(raw: Uint8Array): crypto.KeyObject {
  return crypto.createPublicKey({ key: spkiOf(raw), format: 'der', type: 'spki' });
}
