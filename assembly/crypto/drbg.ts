// HMAC_DRBG with SHA-256 (NIST SP 800-90A Rev. 1 §10.1.2), no prediction resistance.
// The host hands in entropy at boot; everything random in the firmware (client random, CoAP
// tokens, jitter) is stretched from it here, so runs are deterministic for a given seed.
// Context: K (32) || V (32) || reseed counter u64 (64).
import { HMAC_SHA256_CTX_BYTES, hmacSha256Final, hmacSha256Init, hmacSha256Update } from './hmac';

export const DRBG_CTX_BYTES: usize = 72;
export const DRBG_OK: i32 = 0;
export const DRBG_NEEDS_RESEED: i32 = -1;
/** SP 800-90A allows 2^48 requests between reseeds. */
const RESEED_INTERVAL: u64 = 1 << 48;
const MAX_BYTES_PER_REQUEST: i32 = 65536; // 2^19 bits

const HCTX: usize = memory.data(<i32>HMAC_SHA256_CTX_BYTES, 16);
const ZERO: usize = memory.data(1);
const ONE: usize = memory.data<u8>([1]);

/** HMAC_DRBG_Update with provided data given as up to three pieces (concatenated). */
function update(ctx: usize, d1: usize, l1: i32, d2: usize, l2: i32, d3: usize, l3: i32): void {
  const key = ctx, v = ctx + 32;
  const hasData = l1 + l2 + l3 > 0;
  const rounds = hasData ? 2 : 1;
  for (let round = 0; round < rounds; round++) {
    hmacSha256Init(HCTX, key, 32);
    hmacSha256Update(HCTX, v, 32);
    hmacSha256Update(HCTX, round == 0 ? ZERO : ONE, 1);
    hmacSha256Update(HCTX, d1, l1);
    hmacSha256Update(HCTX, d2, l2);
    hmacSha256Update(HCTX, d3, l3);
    hmacSha256Final(HCTX, key);
    hmacSha256Init(HCTX, key, 32);
    hmacSha256Update(HCTX, v, 32);
    hmacSha256Final(HCTX, v);
  }
}

export function hmacDrbgInstantiate(
  ctx: usize, entropy: usize, entropyLen: i32, nonce: usize, nonceLen: i32, pers: usize, persLen: i32,
): void {
  memory.fill(ctx, 0x00, 32);
  memory.fill(ctx + 32, 0x01, 32);
  update(ctx, entropy, entropyLen, nonce, nonceLen, pers, persLen);
  store<u64>(ctx + 64, 1);
}

export function hmacDrbgReseed(ctx: usize, entropy: usize, entropyLen: i32, addl: usize, addlLen: i32): void {
  update(ctx, entropy, entropyLen, addl, addlLen, 0, 0);
  store<u64>(ctx + 64, 1);
}

/** Fill `out` with `outLen` bytes. Returns DRBG_OK, DRBG_NEEDS_RESEED, or -2 for a bad length. */
export function hmacDrbgGenerate(ctx: usize, out: usize, outLen: i32, addl: usize, addlLen: i32): i32 {
  if (outLen < 0 || outLen > MAX_BYTES_PER_REQUEST) return -2;
  const counter = load<u64>(ctx + 64);
  if (counter > RESEED_INTERVAL) return DRBG_NEEDS_RESEED;
  if (addlLen > 0) update(ctx, addl, addlLen, 0, 0, 0, 0);
  const key = ctx, v = ctx + 32;
  let done = 0;
  while (done < outLen) {
    hmacSha256Init(HCTX, key, 32);
    hmacSha256Update(HCTX, v, 32);
    hmacSha256Final(HCTX, v);
    const n = min(32, outLen - done);
    memory.copy(out + <usize>done, v, <usize>n);
    done += n;
  }
  update(ctx, addl, addlLen, 0, 0, 0, 0);
  store<u64>(ctx + 64, counter + 1);
  return DRBG_OK;
}
