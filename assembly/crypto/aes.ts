// AES-128, encrypt direction only (CCM never decrypts blocks). Table-driven: one 1 KiB round
// table used with rotations instead of four, to keep RAM low on a microcontroller. Tables are
// computed at start-up from the field arithmetic rather than shipped as data.
//
// Words are little-endian columns: byte r of a column (row r) sits in bits 8r..8r+7, so state
// loads and stores are plain i32 loads with no byte swapping.

export const AES128_CTX_BYTES: usize = 176; // 11 round keys x 16 bytes

const SBOX: usize = memory.data(256);
const TE0: usize = memory.data(1024, 16);

@inline function xtime(x: u32): u32 {
  return ((x << 1) ^ (((x >> 7) & 1) * 0x1b)) & 0xff;
}

function initTables(): void {
  // Walk the multiplicative group with generator 3; q tracks the inverse of p.
  let p: u32 = 1, q: u32 = 1;
  do {
    p = p ^ xtime(p) ; // p *= 3
    q ^= q << 1; q ^= q << 2; q ^= q << 4; q &= 0xff; // q /= 3
    if (q & 0x80) q ^= 0x09;
    const x = q ^ rotl<u8>(<u8>q, 1) ^ rotl<u8>(<u8>q, 2) ^ rotl<u8>(<u8>q, 3) ^ rotl<u8>(<u8>q, 4);
    store<u8>(SBOX + p, <u8>((x ^ 0x63) & 0xff));
  } while (p != 1);
  store<u8>(SBOX, 0x63);
  for (let i: u32 = 0; i < 256; i++) {
    const s = <u32>load<u8>(SBOX + i);
    const s2 = xtime(s);
    store<u32>(TE0 + (i << 2), s2 | (s << 8) | (s << 16) | ((s2 ^ s) << 24));
  }
}
initTables();

@inline function sb(x: u32): u32 {
  return <u32>load<u8>(SBOX + (x & 0xff));
}
@inline function te(x: u32): u32 {
  return load<u32>(TE0 + ((x & 0xff) << 2));
}

/** Expand a 16-byte key at `key` into the 176-byte schedule at `ctx`. */
export function aes128ExpandKey(ctx: usize, key: usize): void {
  let w0 = load<u32>(key), w1 = load<u32>(key, 4), w2 = load<u32>(key, 8), w3 = load<u32>(key, 12);
  store<u32>(ctx, w0); store<u32>(ctx, w1, 4); store<u32>(ctx, w2, 8); store<u32>(ctx, w3, 12);
  let rcon: u32 = 1;
  for (let r: usize = 1; r <= 10; r++) {
    const t = rotr<u32>(w3, 8);
    w0 ^= (sb(t) | (sb(t >> 8) << 8) | (sb(t >> 16) << 16) | (sb(t >> 24) << 24)) ^ rcon;
    w1 ^= w0; w2 ^= w1; w3 ^= w2;
    const rk = ctx + (r << 4);
    store<u32>(rk, w0); store<u32>(rk, w1, 4); store<u32>(rk, w2, 8); store<u32>(rk, w3, 12);
    rcon = xtime(rcon);
  }
}

/** Encrypt one 16-byte block; `input` and `output` may be the same address. */
export function aes128EncryptBlock(ctx: usize, input: usize, output: usize): void {
  let c0 = load<u32>(input) ^ load<u32>(ctx);
  let c1 = load<u32>(input, 4) ^ load<u32>(ctx, 4);
  let c2 = load<u32>(input, 8) ^ load<u32>(ctx, 8);
  let c3 = load<u32>(input, 12) ^ load<u32>(ctx, 12);
  let rk = ctx;
  for (let r = 1; r < 10; r++) {
    rk += 16;
    const t0 = te(c0) ^ rotl<u32>(te(c1 >> 8), 8) ^ rotl<u32>(te(c2 >> 16), 16) ^ rotl<u32>(te(c3 >> 24), 24) ^ load<u32>(rk);
    const t1 = te(c1) ^ rotl<u32>(te(c2 >> 8), 8) ^ rotl<u32>(te(c3 >> 16), 16) ^ rotl<u32>(te(c0 >> 24), 24) ^ load<u32>(rk, 4);
    const t2 = te(c2) ^ rotl<u32>(te(c3 >> 8), 8) ^ rotl<u32>(te(c0 >> 16), 16) ^ rotl<u32>(te(c1 >> 24), 24) ^ load<u32>(rk, 8);
    const t3 = te(c3) ^ rotl<u32>(te(c0 >> 8), 8) ^ rotl<u32>(te(c1 >> 16), 16) ^ rotl<u32>(te(c2 >> 24), 24) ^ load<u32>(rk, 12);
    c0 = t0; c1 = t1; c2 = t2; c3 = t3;
  }
  rk += 16;
  store<u32>(output, (sb(c0) | (sb(c1 >> 8) << 8) | (sb(c2 >> 16) << 16) | (sb(c3 >> 24) << 24)) ^ load<u32>(rk));
  store<u32>(output, (sb(c1) | (sb(c2 >> 8) << 8) | (sb(c3 >> 16) << 16) | (sb(c0 >> 24) << 24)) ^ load<u32>(rk, 4), 4);
  store<u32>(output, (sb(c2) | (sb(c3 >> 8) << 8) | (sb(c0 >> 16) << 16) | (sb(c1 >> 24) << 24)) ^ load<u32>(rk, 8), 8);
  store<u32>(output, (sb(c3) | (sb(c0 >> 8) << 8) | (sb(c1 >> 16) << 16) | (sb(c2 >> 24) << 24)) ^ load<u32>(rk, 12), 12);
}
