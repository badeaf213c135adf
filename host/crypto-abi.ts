/**
 * Typed wrappers for the module's crypto_* exports (layouts in docs/abi.md). Used by the
 * conformance tests and benchmarks so that every engine is driven the same way.
 */
import { IoBuffer } from './io-buffer.ts';

export class ModuleCrypto extends IoBuffer {
  setKey(key: Uint8Array): void {
    if (key.length !== 16) throw new RangeError('AES-128 key must be 16 bytes');
    this.put(key);
    this.m.call('crypto_aes_set_key');
  }

  /** Returns ciphertext || tag, or a negative error code from the module. */
  ccmSeal(nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, tagLen = 8): Uint8Array | number {
    this.put(nonce, aad, plaintext);
    const n = Number(this.m.call('crypto_ccm_seal', nonce.length, aad.length, plaintext.length, tagLen));
    return n < 0 ? n : this.m.readMemory(this.io + nonce.length + aad.length, n);
  }

  /** Returns the plaintext, or a negative error code (-1 authentication failure). */
  ccmOpen(nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array, tagLen = 8): Uint8Array | number {
    this.put(nonce, aad, sealed);
    const n = Number(this.m.call('crypto_ccm_open', nonce.length, aad.length, sealed.length, tagLen));
    return n < 0 ? n : this.m.readMemory(this.io + nonce.length + aad.length, n);
  }

  sha256(data: Uint8Array): Uint8Array {
    const at = this.put(data);
    this.check(this.m.call('crypto_sha256', data.length));
    return this.m.readMemory(this.io + at, 32);
  }

  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
    const at = this.put(key, data);
    this.check(this.m.call('crypto_hmac_sha256', key.length, data.length));
    return this.m.readMemory(this.io + at, 32);
  }

  tlsPrf(secret: Uint8Array, label: Uint8Array, seed: Uint8Array, outLen: number): Uint8Array {
    const at = this.put(secret, label, seed);
    this.check(this.m.call('crypto_tls_prf', secret.length, label.length, seed.length, outLen));
    return this.m.readMemory(this.io + at, outLen);
  }

  drbgInstantiate(entropy: Uint8Array, nonce: Uint8Array, pers: Uint8Array): void {
    this.put(entropy, nonce, pers);
    this.check(this.m.call('crypto_drbg_instantiate', entropy.length, nonce.length, pers.length));
  }

  drbgGenerate(outLen: number, addl: Uint8Array = new Uint8Array(0)): Uint8Array {
    const at = this.put(addl);
    this.check(this.m.call('crypto_drbg_generate', outLen, addl.length));
    return this.m.readMemory(this.io + at, outLen);
  }

  /** P-256 public key (65 bytes, 0x04 ‖ X ‖ Y) of a 32-byte private key, or -1. */
  p256Public(priv: Uint8Array): Uint8Array | number {
    const at = this.put(priv);
    const n = Number(this.m.call('crypto_p256_public'));
    return n < 0 ? n : this.m.readMemory(this.io + at, n);
  }

  /** ECDH shared X (32 bytes), or -1 (bad private key) / -2 (bad public key). */
  p256Ecdh(priv: Uint8Array, pub: Uint8Array): Uint8Array | number {
    const at = this.put(priv, pub);
    const n = Number(this.m.call('crypto_p256_ecdh', pub.length));
    return n < 0 ? n : this.m.readMemory(this.io + at, n);
  }

  /** ECDSA r ‖ s (64 bytes, RFC 6979 nonce) over a 32-byte hash, or -1. */
  p256Sign(priv: Uint8Array, hash: Uint8Array): Uint8Array | number {
    const at = this.put(priv, hash);
    const n = Number(this.m.call('crypto_p256_sign'));
    return n < 0 ? n : this.m.readMemory(this.io + at, n);
  }

  /** 0 valid, -2 bad public key, -3 bad signature. */
  p256Verify(pub: Uint8Array, hash: Uint8Array, sig: Uint8Array): number {
    this.put(pub, hash, sig);
    return Number(this.m.call('crypto_p256_verify', pub.length));
  }

  /** A key pair from the test DRBG: private key (32) and public key (65). */
  p256Keygen(): { priv: Uint8Array; pub: Uint8Array } {
    this.check(this.m.call('crypto_p256_keygen'));
    return { priv: this.m.readMemory(this.io, 32), pub: this.m.readMemory(this.io + 32, 65) };
  }

  private check(rc: unknown): void {
    if (Number(rc) < 0) throw new Error(`module returned error ${rc}`);
  }
}
