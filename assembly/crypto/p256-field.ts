// Arithmetic modulo the two P-256 primes: the field prime p and the group order n.
//
// Limbs: 8 × u32, least significant first, products in u64. The device is a Cortex-M4: it does
// 32×32→64 (UMULL/UMAAL) in one instruction, while 64-bit limbs would need 64×64→128 products that
// wasm does not have (i64.mul keeps the low half) and that wasm3 on a 32-bit core emulates from
// four 32-bit multiplies anyway. With 32-bit limbs every i64.mul here multiplies two zero-extended
// u32 values, the cheapest i64 product an interpreter on a 32-bit core can do.
//
// Reduction: Montgomery (CIOS, Koç–Acar–Kaliski 1996) with R = 2^256, one routine for both
// moduli. A modulus is a 100-byte descriptor: m (32) ‖ R² mod m (32) ‖ m − 2 (32) ‖ −m⁻¹ mod 2^32
// (4). For p, −p⁻¹ mod 2^32 is 1 (p ≡ −1 mod 2^32); a Solinas reduction for p alone would be
// faster but would be a second reduction to write, test and keep constant time, and n needs
// Montgomery anyway.
//
// Constant time: every function runs the same instructions and touches the same addresses
// whatever the values; conditional results are selected with all-ones/all-zero masks. Exponents
// (p − 2, n − 2) are public constants, so montInv may branch on their bits.
//
// Values are 32-byte buffers (pointers); inputs must be < m; outputs are < m. Output may alias
// any input.

/** p = 2^256 − 2^224 + 2^192 + 2^96 − 1 */
export const MOD_P: usize = memory.data<u32>([
  0xffffffff, 0xffffffff, 0xffffffff, 0x00000000, 0x00000000, 0x00000000, 0x00000001, 0xffffffff,
  0x00000003, 0x00000000, 0xffffffff, 0xfffffffb, 0xfffffffe, 0xffffffff, 0xfffffffd, 0x00000004,
  0xfffffffd, 0xffffffff, 0xffffffff, 0x00000000, 0x00000000, 0x00000000, 0x00000001, 0xffffffff,
  0x00000001,
]);

/** n, the order of the base point (the curve's order: cofactor 1). */
export const MOD_N: usize = memory.data<u32>([
  0xfc632551, 0xf3b9cac2, 0xa7179e84, 0xbce6faad, 0xffffffff, 0xffffffff, 0x00000000, 0xffffffff,
  0xbe79eea2, 0x83244c95, 0x49bd6fa6, 0x4699799c, 0x2b6bec59, 0x2845b239, 0xf3d95620, 0x66e12d94,
  0xfc63254f, 0xf3b9cac2, 0xa7179e84, 0xbce6faad, 0xffffffff, 0xffffffff, 0x00000000, 0xffffffff,
  0xee00bc4f,
]);

/** The integer 1 (fromMont multiplies by it). */
export const FE_ONE: usize = memory.data<u32>([1, 0, 0, 0, 0, 0, 0, 0]);

// Scratch: the Montgomery accumulator (10 limbs), a difference buffer, montInv's base. They hold
// values derived from secrets; p256Wipe() in p256.ts clears them with the rest of the curve scratch.
export const FIELD_SCRATCH_BYTES: i32 = 40 + 32 + 32;
export const FIELD_SCRATCH: usize = memory.data(FIELD_SCRATCH_BYTES, 16);
const T: usize = FIELD_SCRATCH;
const D: usize = FIELD_SCRATCH + 40;
const BASE: usize = FIELD_SCRATCH + 72;

/** r = t − m·[t + hi·2^256 ≥ m], for t + hi·2^256 < 2m; r may alias t. */
function reduceOnce(r: usize, t: usize, hi: u32, m: usize): void {
  let borrow: u64 = 0;
  for (let j: usize = 0; j < 32; j += 4) {
    const d = <u64>load<u32>(t + j) - <u64>load<u32>(m + j) - borrow;
    store<u32>(D + j, <u32>d);
    borrow = (d >> 32) & 1;
  }
  // keep the difference when there was a carry out of t or no borrow
  const mask = (0 - hi) | (<u32>borrow - 1);
  for (let j: usize = 0; j < 32; j += 4) {
    store<u32>(r + j, (load<u32>(D + j) & mask) | (load<u32>(t + j) & ~mask));
  }
}

/** r = a·b·2^−256 mod m. */
export function montMul(r: usize, a: usize, b: usize, m: usize): void {
  const minv = load<u32>(m, 96);
  memory.fill(T, 0, 40);
  for (let i: usize = 0; i < 32; i += 4) {
    const bi = <u64>load<u32>(b + i);
    let c: u64 = 0;
    for (let j: usize = 0; j < 32; j += 4) {
      c += <u64>load<u32>(T + j) + <u64>load<u32>(a + j) * bi;
      store<u32>(T + j, <u32>c);
      c >>= 32;
    }
    c += <u64>load<u32>(T, 32);
    store<u32>(T, <u32>c, 32);
    store<u32>(T, <u32>(c >> 32), 36);
    // add q·m so that the low limb becomes 0, and shift one limb down
    // q = T[0]·(−m⁻¹) mod 2^32. The mask is needed: AssemblyScript 0.27 compiles the operand of
    // `<u64>(…)` in a 64-bit context, so `<u64>(load<u32>(T) * minv)` is a 64-bit product of the
    // zero-extended values (even at -O0), not a 32-bit one (found by the tests against node:crypto).
    const q = (<u64>load<u32>(T) * <u64>minv) & 0xffffffff;
    c = (<u64>load<u32>(T) + q * <u64>load<u32>(m)) >> 32;
    for (let j: usize = 4; j < 32; j += 4) {
      c += <u64>load<u32>(T + j) + q * <u64>load<u32>(m + j);
      store<u32>(T + j - 4, <u32>c);
      c >>= 32;
    }
    c += <u64>load<u32>(T, 32);
    store<u32>(T, <u32>c, 28);
    store<u32>(T, load<u32>(T, 36) + <u32>(c >> 32), 32);
  }
  reduceOnce(r, T, load<u32>(T, 32), m);
}

/** r = a mod m for any a < 2^256 (< 2m for both moduli): bits2int of a SHA-256 hash, x mod n. */
export function modReduce(r: usize, a: usize, m: usize): void {
  reduceOnce(r, a, 0, m);
}

/** r = a + b mod m. */
export function modAdd(r: usize, a: usize, b: usize, m: usize): void {
  let c: u64 = 0;
  for (let j: usize = 0; j < 32; j += 4) {
    c += <u64>load<u32>(a + j) + <u64>load<u32>(b + j);
    store<u32>(T + j, <u32>c);
    c >>= 32;
  }
  reduceOnce(r, T, <u32>c, m);
}

/** r = a − b mod m. */
export function modSub(r: usize, a: usize, b: usize, m: usize): void {
  let borrow: u64 = 0;
  for (let j: usize = 0; j < 32; j += 4) {
    const d = <u64>load<u32>(a + j) - <u64>load<u32>(b + j) - borrow;
    store<u32>(T + j, <u32>d);
    borrow = (d >> 32) & 1;
  }
  const mask = 0 - <u32>borrow; // add m back when a < b
  let c: u64 = 0;
  for (let j: usize = 0; j < 32; j += 4) {
    c += <u64>load<u32>(T + j) + <u64>(load<u32>(m + j) & mask);
    store<u32>(r + j, <u32>c);
    c >>= 32;
  }
}

/** r = a^(m−2) mod m in Montgomery form (a given as a·R): the inverse a⁻¹·R, 0 for 0. */
export function montInv(r: usize, a: usize, m: usize): void {
  memory.copy(BASE, a, 32); // r may alias a
  montMul(r, m + 32, FE_ONE, m); // R² · 1 · R⁻¹ = R: 1 in Montgomery form
  for (let i: i32 = 255; i >= 0; i--) {
    montMul(r, r, r, m);
    // the exponent m − 2 is public: branching on its bits leaks nothing
    if ((load<u32>(m + 64 + (<usize>(i >> 5) << 2)) >> (i & 31)) & 1) montMul(r, r, BASE, m);
  }
}

/** Big-endian 32 bytes → limbs. */
export function feFromBytes(r: usize, bytes: usize): void {
  for (let j: usize = 0; j < 32; j += 4) store<u32>(r + j, bswap<u32>(load<u32>(bytes + 28 - j)));
}

/** Limbs → big-endian 32 bytes. */
export function feToBytes(bytes: usize, a: usize): void {
  for (let j: usize = 0; j < 32; j += 4) store<u32>(bytes + 28 - j, bswap<u32>(load<u32>(a + j)));
}

/** 1 when a < b (as integers), else 0; constant time. */
export function feLess(a: usize, b: usize): u32 {
  let borrow: u64 = 0;
  for (let j: usize = 0; j < 32; j += 4) {
    borrow = ((<u64>load<u32>(a + j) - <u64>load<u32>(b + j) - borrow) >> 32) & 1;
  }
  return <u32>borrow;
}

/** 1 when a == 0, else 0; constant time. */
export function feIsZero(a: usize): u32 {
  let acc: u32 = 0;
  for (let j: usize = 0; j < 32; j += 4) acc |= load<u32>(a + j);
  return (<u32>(<u64>acc - 1 >> 32)) & 1;
}
