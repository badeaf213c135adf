// SHA-256 (FIPS 180-4), streaming, over a caller-owned context.
// Context layout: h[8] u32 (0..31), block buffer (32..95), buffered bytes u32 (96), total bytes u64 (104).

export const SHA256_CTX_BYTES: usize = 112;
const BUF: usize = 32;
const BUFLEN: usize = 96;
const TOTAL: usize = 104;

const K: usize = memory.data<u32>([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const W: usize = memory.data(256, 16);

export function sha256Init(ctx: usize): void {
  store<u32>(ctx, 0x6a09e667); store<u32>(ctx, 0xbb67ae85, 4);
  store<u32>(ctx, 0x3c6ef372, 8); store<u32>(ctx, 0xa54ff53a, 12);
  store<u32>(ctx, 0x510e527f, 16); store<u32>(ctx, 0x9b05688c, 20);
  store<u32>(ctx, 0x1f83d9ab, 24); store<u32>(ctx, 0x5be0cd19, 28);
  store<u32>(ctx + BUFLEN, 0);
  store<u64>(ctx + TOTAL, 0);
}

function compress(ctx: usize, block: usize): void {
  for (let i: usize = 0; i < 16; i++) store<u32>(W + (i << 2), bswap<u32>(load<u32>(block + (i << 2))));
  for (let i: usize = 16; i < 64; i++) {
    const w15 = load<u32>(W + ((i - 15) << 2)), w2 = load<u32>(W + ((i - 2) << 2));
    const s0 = rotr<u32>(w15, 7) ^ rotr<u32>(w15, 18) ^ (w15 >> 3);
    const s1 = rotr<u32>(w2, 17) ^ rotr<u32>(w2, 19) ^ (w2 >> 10);
    store<u32>(W + (i << 2), load<u32>(W + ((i - 16) << 2)) + s0 + load<u32>(W + ((i - 7) << 2)) + s1);
  }
  let a = load<u32>(ctx), b = load<u32>(ctx, 4), c = load<u32>(ctx, 8), d = load<u32>(ctx, 12);
  let e = load<u32>(ctx, 16), f = load<u32>(ctx, 20), g = load<u32>(ctx, 24), h = load<u32>(ctx, 28);
  for (let i: usize = 0; i < 64; i++) {
    const t1 = h + (rotr<u32>(e, 6) ^ rotr<u32>(e, 11) ^ rotr<u32>(e, 25)) + ((e & f) ^ (~e & g))
      + load<u32>(K + (i << 2)) + load<u32>(W + (i << 2));
    const t2 = (rotr<u32>(a, 2) ^ rotr<u32>(a, 13) ^ rotr<u32>(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
  }
  store<u32>(ctx, load<u32>(ctx) + a); store<u32>(ctx, load<u32>(ctx, 4) + b, 4);
  store<u32>(ctx, load<u32>(ctx, 8) + c, 8); store<u32>(ctx, load<u32>(ctx, 12) + d, 12);
  store<u32>(ctx, load<u32>(ctx, 16) + e, 16); store<u32>(ctx, load<u32>(ctx, 20) + f, 20);
  store<u32>(ctx, load<u32>(ctx, 24) + g, 24); store<u32>(ctx, load<u32>(ctx, 28) + h, 28);
}

export function sha256Update(ctx: usize, data: usize, len: i32): void {
  if (len <= 0) return;
  store<u64>(ctx + TOTAL, load<u64>(ctx + TOTAL) + <u64>len);
  let used = load<u32>(ctx + BUFLEN);
  let off: i32 = 0;
  if (used > 0) {
    const take = min<i32>(len, 64 - <i32>used);
    memory.copy(ctx + BUF + used, data, <usize>take);
    used += <u32>take;
    off = take;
    if (used < 64) {
      store<u32>(ctx + BUFLEN, used);
      return;
    }
    compress(ctx, ctx + BUF);
    used = 0;
  }
  while (len - off >= 64) {
    compress(ctx, data + <usize>off);
    off += 64;
  }
  const rest = len - off;
  if (rest > 0) memory.copy(ctx + BUF, data + <usize>off, <usize>rest);
  store<u32>(ctx + BUFLEN, <u32>rest);
}

export function sha256Final(ctx: usize, out: usize): void {
  const used = <usize>load<u32>(ctx + BUFLEN);
  const bits = load<u64>(ctx + TOTAL) << 3;
  store<u8>(ctx + BUF + used, 0x80);
  memory.fill(ctx + BUF + used + 1, 0, 63 - used);
  if (used >= 56) {
    compress(ctx, ctx + BUF);
    memory.fill(ctx + BUF, 0, 56);
  }
  store<u64>(ctx + BUF + 56, bswap<u64>(bits));
  compress(ctx, ctx + BUF);
  for (let i: usize = 0; i < 8; i++) store<u32>(out + (i << 2), bswap<u32>(load<u32>(ctx + (i << 2))));
  memory.fill(ctx, 0, SHA256_CTX_BYTES); // the state is derived from secrets in HMAC
  memory.fill(W, 0, 256);
}

const ONE_SHOT_CTX: usize = memory.data(<i32>SHA256_CTX_BYTES, 16);

export function sha256(data: usize, len: i32, out: usize): void {
  sha256Init(ONE_SHOT_CTX);
  sha256Update(ONE_SHOT_CTX, data, len);
  sha256Final(ONE_SHOT_CTX, out);
}
