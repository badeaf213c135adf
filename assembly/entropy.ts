// The firmware's only source of randomness: an HMAC-DRBG seeded with entropy the host hands in
// (a real board reads its TRNG). Deterministic for a given seed, so runs replay exactly.
import { DRBG_CTX_BYTES, hmacDrbgInstantiate } from './crypto/index';

export const DRBG: usize = memory.data(<i32>DRBG_CTX_BYTES, 8);
let seeded: bool = false;

/** Personalization string: binds the DRBG to this use. */
const PERSONALIZATION: usize = memory.data<u8>([0x73, 0x6c, 0x65, 0x65, 0x70, 0x79]); // "sleepy"

/** Needs at least 32 bytes of entropy (SP 800-90A: security strength 256 bits). */
export function seedEntropy(entropy: usize, len: i32): i32 {
  if (len < 32) return -2;
  // The nonce comes from the same source, so it is simply part of the entropy input
  // (SP 800-90A §8.6.7 allows a nonce drawn from the entropy source).
  hmacDrbgInstantiate(DRBG, entropy, len, 0, 0, PERSONALIZATION, 6);
  seeded = true;
  return 0;
}

export function isSeeded(): bool {
  return seeded;
}
