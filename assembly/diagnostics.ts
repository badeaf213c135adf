// Test-only exports: crypto primitives over the I/O buffer and trap diagnostics. They are built
// into build/session-test.wasm (assembly/test-build.ts) for conformance tests and benchmarks, never
// into the production module build/session.wasm.
import {
  AES128_CTX_BYTES, DRBG_CTX_BYTES, aes128EncryptBlock, aes128ExpandKey, ccmOpen, ccmSeal, hmacDrbgGenerate,
  hmacDrbgInstantiate, hmacSha256, sha256, tlsPrfSha256, zeroize,
} from './crypto/index';
import { p256Ecdh, p256Keygen, p256PublicKey, p256ScratchIsClear, p256Sign, p256Verify } from './crypto/p256';
import { IO, fitsIo } from './io';
import * as dtls from './dtls/client';

/** Diagnostics for engine tests: 1 = out-of-bounds load (engine trap), 2 = firmware abort. */
export function selftest_trap(kind: i32): i32 {
  if (kind == 1) return load<i32>(<usize>0xfffffff0);
  if (kind == 2) abort('selftest: firmware abort requested');
  return 0;
}

/**
 * Ends the DTLS connection behind the session layer's back (no export of the shipped module does):
 * the session's commit at the end of the next export must notice and destroy the persisted keys.
 */
export function selftest_end_connection(): void {
  dtls.discardConnection(0, 0);
}

// --- Crypto primitives over the I/O buffer, for conformance tests and benchmarks -------------
// Inputs are laid out back to back from the start of the buffer in argument order; outputs follow
// the inputs, except CCM, which works in place like the record layer does.

const TEST_AES: usize = memory.data(<i32>AES128_CTX_BYTES, 16);
const TEST_DRBG: usize = memory.data(<i32>DRBG_CTX_BYTES, 16);

/** io = key[16]. */
export function crypto_aes_set_key(): void {
  aes128ExpandKey(TEST_AES, IO);
  zeroize(IO, 16);
}

/** io = block[16] → encrypted in place. */
export function crypto_aes_encrypt_blocks(count: i32): void {
  // Repeated encryption of one block: AES throughput without CCM's bookkeeping.
  for (let i = 0; i < count; i++) aes128EncryptBlock(TEST_AES, IO, IO);
}

/** io = nonce || aad || plaintext → plaintext replaced by ciphertext || tag. Returns its length or < 0. */
export function crypto_ccm_seal(nonceLen: i32, aadLen: i32, textLen: i32, tagLen: i32): i32 {
  if (!fitsIo(nonceLen, aadLen, textLen, tagLen)) return -2;
  const text = IO + <usize>(nonceLen + aadLen);
  return ccmSeal(TEST_AES, IO, nonceLen, IO + <usize>nonceLen, aadLen, text, textLen, text, tagLen);
}

/** io = nonce || aad || ciphertext||tag → plaintext in place. Returns its length, -1 auth, -2 param. */
export function crypto_ccm_open(nonceLen: i32, aadLen: i32, dataLen: i32, tagLen: i32): i32 {
  if (!fitsIo(nonceLen, aadLen, dataLen) || tagLen < 0 || tagLen > dataLen) return -2;
  const data = IO + <usize>(nonceLen + aadLen);
  return ccmOpen(TEST_AES, IO, nonceLen, IO + <usize>nonceLen, aadLen, data, dataLen, data, tagLen);
}

/** io = data[len] → digest[32] after it. */
export function crypto_sha256(len: i32): i32 {
  if (!fitsIo(len, 32)) return -2;
  sha256(IO, len, IO + <usize>len);
  return 32;
}

/** io = key || data → mac[32] after them. */
export function crypto_hmac_sha256(keyLen: i32, len: i32): i32 {
  if (!fitsIo(keyLen, len, 32)) return -2;
  hmacSha256(IO, keyLen, IO + <usize>keyLen, len, IO + <usize>(keyLen + len));
  return 32;
}

/** io = secret || label || seed → outLen bytes after them. */
export function crypto_tls_prf(secretLen: i32, labelLen: i32, seedLen: i32, outLen: i32): i32 {
  if (!fitsIo(secretLen, labelLen, seedLen, outLen)) return -2;
  const inLen = secretLen + labelLen + seedLen;
  tlsPrfSha256(IO, secretLen, IO + <usize>secretLen, labelLen, IO + <usize>(secretLen + labelLen), seedLen,
    IO + <usize>inLen, outLen);
  return outLen;
}

/** io = entropy || nonce || personalization. */
export function crypto_drbg_instantiate(entropyLen: i32, nonceLen: i32, persLen: i32): i32 {
  if (!fitsIo(entropyLen, nonceLen, persLen)) return -2;
  hmacDrbgInstantiate(TEST_DRBG, IO, entropyLen, IO + <usize>entropyLen, nonceLen,
    IO + <usize>(entropyLen + nonceLen), persLen);
  return 0;
}

/** io = additional input → outLen bytes after it. */
export function crypto_drbg_generate(outLen: i32, addlLen: i32): i32 {
  if (!fitsIo(addlLen, outLen)) return -2;
  return hmacDrbgGenerate(TEST_DRBG, IO + <usize>addlLen, outLen, IO, addlLen);
}

// --- P-256 (assembly/crypto/p256.ts). Return codes: 0 ok, -1 private scalar outside [1, n − 1],
// -2 public key not an uncompressed point on the curve, -3 signature does not verify, -4 the test
// DRBG needs a reseed. Keys and hashes are big-endian bytes, signatures r ‖ s (64 bytes).

/** io = priv[32] → pub[65] (0x04 ‖ X ‖ Y) after it. Returns 65 or -1. */
export function crypto_p256_public(): i32 {
  const rc = p256PublicKey(IO + 32, IO);
  return rc < 0 ? rc : 65;
}

/** io = priv[32] ‖ pub[pubLen] → shared X[32] after them. Returns 32, -1 or -2. */
export function crypto_p256_ecdh(pubLen: i32): i32 {
  if (!fitsIo(32, pubLen, 32)) return -2;
  const rc = p256Ecdh(IO + 32 + <usize>pubLen, IO, IO + 32, pubLen);
  return rc < 0 ? rc : 32;
}

/** io = priv[32] ‖ hash[32] → sig[64] = r ‖ s after them (RFC 6979 nonce). Returns 64 or -1. */
export function crypto_p256_sign(): i32 {
  const rc = p256Sign(IO + 64, IO, IO + 32);
  return rc < 0 ? rc : 64;
}

/** io = pub[pubLen] ‖ hash[32] ‖ sig[64]. Returns 0 valid, -2 bad public key, -3 bad signature. */
export function crypto_p256_verify(pubLen: i32): i32 {
  if (!fitsIo(pubLen, 32, 64)) return -2;
  const at = IO + <usize>pubLen;
  return p256Verify(IO, pubLen, at, at + 32);
}

/** A key pair from the test DRBG (crypto_drbg_instantiate first) → priv[32] ‖ pub[65] at io. Returns 97 or -4. */
export function crypto_p256_keygen(): i32 {
  const rc = p256Keygen(TEST_DRBG, IO, IO + 32);
  return rc < 0 ? rc : 97;
}

/** 1 when the P-256 scratch (secret scalars, nonces, intermediate points) is all zeros, else 0. */
export function crypto_p256_scratch_clear(): i32 {
  return p256ScratchIsClear() ? 1 : 0;
}
