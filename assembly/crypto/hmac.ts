// HMAC-SHA-256 (RFC 2104), streaming. Context: inner hash (112 bytes) then outer hash (112 bytes),
// the outer one already fed with key ^ opad so that Final only has to append the inner digest.
import { SHA256_CTX_BYTES, sha256, sha256Final, sha256Init, sha256Update } from './sha256';
import { zeroize } from './ct';

export const HMAC_SHA256_CTX_BYTES: usize = SHA256_CTX_BYTES * 2;
const PAD: usize = memory.data(64, 16);
const INNER_DIGEST: usize = memory.data(32, 16);

export function hmacSha256Init(ctx: usize, key: usize, keyLen: i32): void {
  memory.fill(PAD, 0, 64);
  if (keyLen > 64) sha256(key, keyLen, PAD);
  else if (keyLen > 0) memory.copy(PAD, key, <usize>keyLen);
  for (let i: usize = 0; i < 64; i += 8) store<u64>(PAD + i, load<u64>(PAD + i) ^ 0x3636363636363636);
  sha256Init(ctx);
  sha256Update(ctx, PAD, 64);
  for (let i: usize = 0; i < 64; i += 8) store<u64>(PAD + i, load<u64>(PAD + i) ^ (0x3636363636363636 ^ 0x5c5c5c5c5c5c5c5c));
  sha256Init(ctx + SHA256_CTX_BYTES);
  sha256Update(ctx + SHA256_CTX_BYTES, PAD, 64);
  zeroize(PAD, 64);
}

export function hmacSha256Update(ctx: usize, data: usize, len: i32): void {
  sha256Update(ctx, data, len);
}

/** Writes the 32-byte MAC and wipes the context. */
export function hmacSha256Final(ctx: usize, out: usize): void {
  sha256Final(ctx, INNER_DIGEST);
  sha256Update(ctx + SHA256_CTX_BYTES, INNER_DIGEST, 32);
  sha256Final(ctx + SHA256_CTX_BYTES, out);
  zeroize(INNER_DIGEST, 32);
}

const ONE_SHOT_CTX: usize = memory.data(<i32>HMAC_SHA256_CTX_BYTES, 16);

export function hmacSha256(key: usize, keyLen: i32, data: usize, len: i32, out: usize): void {
  hmacSha256Init(ONE_SHOT_CTX, key, keyLen);
  hmacSha256Update(ONE_SHOT_CTX, data, len);
  hmacSha256Final(ONE_SHOT_CTX, out);
}
