// P-256 (secp256r1, FIPS 186-4 D.1.2.3 / SEC 2): point decoding, ECDH, ECDSA with RFC 6979
// nonces, key generation from the HMAC-DRBG. Field and scalar arithmetic: p256-field.ts.
//
// Points are projective (X : Y : Z), coordinates in Montgomery form, 96 bytes. Addition is the
// complete formula of Renes–Costello–Batina 2016 (ePrint 2015/1060, Algorithm 4, a = −3): it is
// correct for every pair of inputs — doubling, P + (−P), the point at infinity (0 : 1 : 0) — so
// there is no branch on the points at all. Doubling is the same function (add(P, P)): the
// dedicated Algorithm 6 saves one multiplication out of 14 and would be a second formula to get
// right.
//
// Scalar multiplication (public key, ECDH, the ECDSA nonce): fixed window of 3 bits over 258 bits
// (86 windows: 3 doublings and one addition each, whatever the digit), the table 1·P … 7·P read
// by a masked scan of all entries (infinity when the digit is 0), so neither the instruction
// trace nor the addresses touched depend on the scalar (test/host/p256-constant-time.test.ts
// checks the trace). Verification (public inputs only) uses Shamir's trick with branches.
//
// Static scratch only (SCRATCH below, 1,480 bytes, plus 104 bytes of field scratch): the window
// table is 672 of them. Every export wipes all of it before returning, since it holds secret
// scalars, nonces and intermediate points.
import {
  FIELD_SCRATCH, FIELD_SCRATCH_BYTES, FE_ONE, MOD_N, MOD_P, feFromBytes, feIsZero, feLess, feToBytes,
  modAdd, modReduce, modSub, montInv, montMul,
} from './p256-field';
import { ctEqual, zeroize } from './ct';
import { DRBG_CTX_BYTES, DRBG_OK, hmacDrbgGenerate, hmacDrbgInstantiate } from './drbg';

export const P256_OK: i32 = 0;
/** A private scalar outside [1, n − 1]. */
export const P256_ERR_SCALAR: i32 = -1;
/** A public key that is not 0x04 ‖ X ‖ Y (65 bytes) of a point on the curve with X, Y < p. */
export const P256_ERR_POINT: i32 = -2;
/** An ECDSA signature that does not verify (r or s outside [1, n − 1] included). */
export const P256_ERR_SIGNATURE: i32 = -3;
/** The DRBG needs a reseed before it can draw a key. */
export const P256_ERR_RESEED: i32 = -4;

export const P256_PUBLIC_KEY_BYTES: i32 = 65;
export const P256_SIGNATURE_BYTES: i32 = 64;

/** b·R mod p: the curve coefficient b in Montgomery form. */
const B: usize = memory.data<u32>([
  0x29c4bddf, 0xd89cdf62, 0x78843090, 0xacf005cd, 0xf7212ed6, 0xe5a220ab, 0x04874834, 0xdc30061d,
]);

/** The base point G, X ‖ Y big-endian (SEC 2 §2.4.2). */
const G_XY: usize = memory.data<u8>([
  0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63, 0xa4, 0x40, 0xf2,
  0x77, 0x03, 0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39, 0x45, 0xd8, 0x98, 0xc2, 0x96,
  0x4f, 0xe3, 0x42, 0xe2, 0xfe, 0x1a, 0x7f, 0x9b, 0x8e, 0xe7, 0xeb, 0x4a, 0x7c, 0x0f, 0x9e, 0x16,
  0x2b, 0xce, 0x33, 0x57, 0x6b, 0x31, 0x5e, 0xce, 0xcb, 0xb6, 0x40, 0x68, 0x37, 0xbf, 0x51, 0xf5,
]);

const POINT: usize = 96;
const WINDOW: i32 = 3;
const ENTRIES: i32 = 1 << WINDOW;
const WINDOWS: i32 = (256 + WINDOW - 1) / WINDOW;

// --- Static scratch: one block, wiped as a whole ----------------------------------------------
const SCRATCH_BYTES: i32 = (ENTRIES - 1) * <i32>POINT + 2 * <i32>POINT + 8 * 32 + 9 * 32 + <i32>DRBG_CTX_BYTES;
const SCRATCH: usize = memory.data(SCRATCH_BYTES, 16);
/** The window table 1·P … 7·P: entry i at TAB + (i − 1)·96; 0·P (infinity) is not stored. P is loaded at TAB. */
const TAB: usize = SCRATCH;
const ACC: usize = TAB + <usize>(ENTRIES - 1) * POINT;
/** The table entry the masked scan selects. */
const SEL: usize = ACC + POINT;
/** Field temporaries of the point formulas. */
const F: usize = SEL + POINT;
const K: usize = F + 8 * 32; // scalar of the multiplication (limbs)
const PRIV: usize = K + 32; // ECDSA private key d
const E: usize = PRIV + 32; // hash as an integer mod n
const SIG_R: usize = E + 32;
const SIG_S: usize = SIG_R + 32;
const S1: usize = SIG_S + 32; // scalar temporaries
const S2: usize = S1 + 32;
const AX: usize = S2 + 32; // affine result
const AY: usize = AX + 32;
/** RFC 6979's HMAC_DRBG over (d, h): the nonce generator of one signature. */
const NONCE_DRBG: usize = AY + 32;

/** Clears every byte of curve and field scratch. */
export function p256Wipe(): void {
  zeroize(SCRATCH, SCRATCH_BYTES);
  zeroize(FIELD_SCRATCH, FIELD_SCRATCH_BYTES);
}

/** True when every byte of curve and field scratch is zero (tests: the exports leave no secret behind). */
export function p256ScratchIsClear(): bool {
  let acc: u32 = 0;
  for (let i = 0; i < SCRATCH_BYTES; i++) acc |= load<u8>(SCRATCH + <usize>i);
  for (let i = 0; i < FIELD_SCRATCH_BYTES; i++) acc |= load<u8>(FIELD_SCRATCH + <usize>i);
  return acc == 0;
}

// --- Field shorthands ---------------------------------------------------------------------------
@inline function fmul(r: usize, a: usize, b: usize): void { montMul(r, a, b, MOD_P); }
@inline function fadd(r: usize, a: usize, b: usize): void { modAdd(r, a, b, MOD_P); }
@inline function fsub(r: usize, a: usize, b: usize): void { modSub(r, a, b, MOD_P); }

// --- Points ------------------------------------------------------------------------------------

/** (0 : 1 : 0) — any (0 : Y : 0) with Y ≠ 0 is the point at infinity; the formulas keep Y ≠ 0. */
function setInfinity(p: usize): void {
  memory.fill(p, 0, POINT);
  store<u32>(p + 32, 1);
}

/** r = p + q for any two points (complete: RCB 2016 Algorithm 4, a = −3). r may alias p or q. */
function pointAdd(r: usize, p: usize, q: usize): void {
  const t0 = F, t1 = F + 32, t2 = F + 64, t3 = F + 96, t4 = F + 128, t5 = F + 160, t6 = F + 192, t7 = F + 224;
  fmul(t0, p, q); // xx = X1·X2
  fmul(t1, p + 32, q + 32); // yy
  fmul(t2, p + 64, q + 64); // zz
  fadd(t3, p, p + 32); fadd(t4, q, q + 32); fmul(t3, t3, t4); fadd(t4, t0, t1); fsub(t3, t3, t4); // xy pairs
  fadd(t4, p + 32, p + 64); fadd(t5, q + 32, q + 64); fmul(t4, t4, t5); fadd(t5, t1, t2); fsub(t4, t4, t5); // yz
  fadd(t5, p, p + 64); fadd(t6, q, q + 64); fmul(t5, t5, t6); fadd(t6, t0, t2); fsub(t5, t5, t6); // xz
  // the inputs are not read again: r may now be written
  fmul(t6, B, t2); fsub(t6, t5, t6); fadd(t7, t6, t6); fadd(t6, t7, t6); // 3·(xz − b·zz)
  fsub(t7, t1, t6); // yy − 3(xz − b·zz)
  fadd(t1, t1, t6); // yy + 3(xz − b·zz)
  fadd(t6, t2, t2); fadd(t2, t6, t2); // 3·zz
  fmul(t5, B, t5); fsub(t5, t5, t2); fsub(t5, t5, t0); fadd(t6, t5, t5); fadd(t5, t6, t5); // 3(b·xz − 3zz − xx)
  fadd(t6, t0, t0); fadd(t0, t6, t0); fsub(t0, t0, t2); // 3·xx − 3·zz
  fmul(t2, t1, t3); fmul(t6, t4, t5); fsub(r, t2, t6); // X3
  fmul(t1, t1, t7); fmul(t5, t0, t5); fadd(r + 32, t1, t5); // Y3
  fmul(t4, t7, t4); fmul(t3, t3, t0); fadd(r + 64, t4, t3); // Z3
}

/**
 * Loads X ‖ Y (64 big-endian bytes) at `xy` as the projective point (X : Y : 1) in Montgomery
 * form. Returns 1 only when X < p, Y < p and Y² = X³ − 3X + b: a point on the curve, never the
 * point at infinity (which has no affine coordinates). The curve has cofactor 1, so every such
 * point is in the group of order n.
 */
function loadPoint(p: usize, xy: usize): u32 {
  const t0 = F, t1 = F + 32, t2 = F + 64;
  feFromBytes(p, xy);
  feFromBytes(p + 32, xy + 32);
  const inRange = feLess(p, MOD_P) & feLess(p + 32, MOD_P);
  fmul(p, p, MOD_P + 32); // ·R²·R⁻¹: into Montgomery form
  fmul(p + 32, p + 32, MOD_P + 32);
  montMul(p + 64, MOD_P + 32, FE_ONE, MOD_P); // Z = R mod p, 1 in Montgomery form
  fmul(t0, p + 32, p + 32); // Y²
  fmul(t1, p, p); fmul(t1, t1, p); // X³
  fadd(t2, p, p); fadd(t2, t2, p); fsub(t1, t1, t2); fadd(t1, t1, B); // X³ − 3X + b
  return inRange & <u32>ctEqual(t0, t1, 32);
}

/** Affine coordinates of p as plain integers at x, y; returns 1 when p is the point at infinity. */
function toAffine(x: usize, y: usize, p: usize): u32 {
  const zInv = F;
  montInv(zInv, p + 64, MOD_P);
  fmul(x, p, zInv); fmul(x, x, FE_ONE); // out of Montgomery form
  fmul(y, p + 32, zInv); fmul(y, y, FE_ONE);
  return feIsZero(p + 64);
}

/** Bit i of the scalar at k (0 beyond bit 255). i is public; the bit is not branched on. */
@inline function bit(k: usize, i: i32): u32 {
  return i > 255 ? 0 : (load<u32>(k + (<usize>(i >> 5) << 2)) >> (i & 31)) & 1;
}

/**
 * ACC = k·P, P the point at TAB, k the limbs at K (any 256-bit value). Constant time: the
 * same additions and the same memory addresses for every k.
 */
function scalarMult(): void {
  for (let i = 1; i < ENTRIES - 1; i++) {
    pointAdd(TAB + <usize>i * POINT, TAB + <usize>(i - 1) * POINT, TAB); // (i + 1)·P = i·P + P
  }
  setInfinity(ACC);
  for (let w = WINDOWS - 1; w >= 0; w--) {
    for (let d = 0; d < WINDOW; d++) pointAdd(ACC, ACC, ACC);
    let digit: u32 = 0;
    for (let j = 0; j < WINDOW; j++) digit |= bit(K, w * WINDOW + j) << <u32>j;
    // masked scan: start from infinity (digit 0), read every entry, keep the one equal to the digit
    setInfinity(SEL);
    for (let e = 1; e < ENTRIES; e++) {
      const mask: u32 = 0 - ((((<u32>e ^ digit) - 1) >> 31) & 1);
      const entry = TAB + <usize>(e - 1) * POINT;
      for (let j: usize = 0; j < POINT; j += 4) {
        store<u32>(SEL + j, (load<u32>(SEL + j) & ~mask) | (load<u32>(entry + j) & mask));
      }
    }
    pointAdd(ACC, ACC, SEL);
  }
}

/** Loads a big-endian scalar; 1 when it is in [1, n − 1]. Constant time. */
function loadScalar(r: usize, bytes: usize): u32 {
  feFromBytes(r, bytes);
  return feLess(r, MOD_N) & (feIsZero(r) ^ 1);
}

/** 0x04 ‖ X ‖ Y of the affine point at AX, AY. */
function encodePoint(out: usize): void {
  store<u8>(out, 0x04);
  feToBytes(out + 1, AX);
  feToBytes(out + 33, AY);
}

/** Decodes an uncompressed public key (65 bytes: 0x04 ‖ X ‖ Y) to p; 1 when it is a valid point. */
function decodePoint(p: usize, enc: usize, len: i32): u32 {
  if (len != P256_PUBLIC_KEY_BYTES || load<u8>(enc) != 0x04) return 0;
  return loadPoint(p, enc + 1);
}

// --- Public API ----------------------------------------------------------------------------------

/** True when `len` bytes at `enc` are an uncompressed P-256 public key of a point on the curve. */
export function p256ValidPublicKey(enc: usize, len: i32): bool {
  const ok = decodePoint(TAB, enc, len);
  p256Wipe();
  return ok != 0;
}

/** pub[65] = 0x04 ‖ X ‖ Y of priv·G. P256_OK or P256_ERR_SCALAR. */
export function p256PublicKey(pub: usize, priv: usize): i32 {
  let rc = P256_ERR_SCALAR;
  if (loadScalar(K, priv)) {
    loadPoint(TAB, G_XY);
    scalarMult();
    toAffine(AX, AY, ACC);
    encodePoint(pub);
    rc = P256_OK;
  }
  p256Wipe();
  return rc;
}

/**
 * ECDH (SEC 1 §3.3.1): shared[32] = the X coordinate of priv·Q, Q the peer's public key
 * (pubLen bytes at pub). P256_OK, P256_ERR_POINT (checked first) or P256_ERR_SCALAR.
 */
export function p256Ecdh(shared: usize, priv: usize, pub: usize, pubLen: i32): i32 {
  let rc = P256_ERR_POINT;
  if (decodePoint(TAB, pub, pubLen)) {
    rc = P256_ERR_SCALAR;
    if (loadScalar(K, priv)) {
      scalarMult();
      // priv in [1, n − 1] and Q of prime order n: priv·Q is never infinity; checked all the same
      if (toAffine(AX, AY, ACC) == 0) {
        feToBytes(shared, AX);
        rc = P256_OK;
      } else {
        rc = P256_ERR_POINT;
      }
    }
  }
  p256Wipe();
  return rc;
}

/**
 * ECDSA signature (FIPS 186-4 §6.4) of a 32-byte hash with the nonce of RFC 6979 §3.2 (HMAC-SHA-256):
 * sig[64] = r ‖ s, big-endian. RFC 6979's generator is HMAC_DRBG instantiated with
 * int2octets(d) as entropy and bits2octets(h) as nonce (RFC 6979 §3.3): the K/V updates of its
 * step h.3 are exactly HMAC_DRBG_Generate's closing update. s is not normalized to the low half
 * (RFC 6979's vectors are not). P256_OK or P256_ERR_SCALAR.
 */
export function p256Sign(sig: usize, priv: usize, hash: usize): i32 {
  let rc = P256_ERR_SCALAR;
  if (loadScalar(PRIV, priv)) {
    feFromBytes(E, hash);
    modReduce(E, E, MOD_N); // bits2int(h) mod n: a 256-bit hash is < 2n
    feToBytes(AX, E); // bits2octets(h)
    hmacDrbgInstantiate(NONCE_DRBG, priv, 32, AX, 32, 0, 0);
    while (true) {
      hmacDrbgGenerate(NONCE_DRBG, AY, 32, 0, 0); // fresh instance: never asks for a reseed
      if (!loadScalar(K, AY)) continue; // k outside [1, n − 1]: RFC 6979 step h.3
      loadPoint(TAB, G_XY);
      scalarMult();
      toAffine(AX, AY, ACC);
      modReduce(SIG_R, AX, MOD_N); // r = x mod n
      if (feIsZero(SIG_R)) continue;
      montMul(S1, PRIV, MOD_N + 32, MOD_N); // d·R
      montMul(S1, SIG_R, S1, MOD_N); // r·d
      modAdd(S1, S1, E, MOD_N); // e + r·d
      montMul(S2, K, MOD_N + 32, MOD_N); // k·R
      montInv(S2, S2, MOD_N); // k⁻¹·R (Fermat: constant time)
      montMul(SIG_S, S1, S2, MOD_N); // k⁻¹·(e + r·d)
      if (feIsZero(SIG_S)) continue;
      feToBytes(sig, SIG_R);
      feToBytes(sig + 32, SIG_S);
      rc = P256_OK;
      break;
    }
  }
  p256Wipe();
  return rc;
}

/**
 * ECDSA verification (FIPS 186-4 §6.4.2) of sig = r ‖ s (64 bytes) over a 32-byte hash with the
 * public key at pub (pubLen bytes). P256_OK, P256_ERR_POINT (bad key) or P256_ERR_SIGNATURE.
 * Variable time: every input is public.
 */
export function p256Verify(pub: usize, pubLen: i32, hash: usize, sig: usize): i32 {
  let rc = P256_ERR_POINT;
  if (decodePoint(TAB + POINT, pub, pubLen)) {
    rc = P256_ERR_SIGNATURE;
    if (loadScalar(SIG_R, sig) & loadScalar(SIG_S, sig + 32)) {
      feFromBytes(E, hash);
      modReduce(E, E, MOD_N);
      montMul(S2, SIG_S, MOD_N + 32, MOD_N);
      montInv(S2, S2, MOD_N); // w·R, w = s⁻¹
      montMul(S1, E, S2, MOD_N); // u1 = e·w
      montMul(K, SIG_R, S2, MOD_N); // u2 = r·w
      // entries 1 = G, 2 = Q, 3 = G + Q; R = u1·G + u2·Q, one bit of each per step
      loadPoint(TAB, G_XY);
      pointAdd(TAB + 2 * POINT, TAB, TAB + POINT);
      setInfinity(ACC);
      for (let i = 255; i >= 0; i--) {
        pointAdd(ACC, ACC, ACC);
        const d = bit(S1, i) | (bit(K, i) << 1);
        if (d != 0) pointAdd(ACC, ACC, TAB + <usize>(d - 1) * POINT);
      }
      if (toAffine(AX, AY, ACC) == 0) {
        modReduce(AX, AX, MOD_N);
        if (ctEqual(AX, SIG_R, 32)) rc = P256_OK;
      }
    }
  }
  p256Wipe();
  return rc;
}

/**
 * A new key pair from the DRBG at `drbg`: 32-byte draws until one is in [1, n − 1] (FIPS 186-4
 * B.4.2, rejection sampling), priv[32] and pub[65] = its public key. P256_OK or
 * P256_ERR_RESEED (priv zeroed).
 */
export function p256Keygen(drbg: usize, priv: usize, pub: usize): i32 {
  while (true) {
    if (hmacDrbgGenerate(drbg, priv, 32, 0, 0) != DRBG_OK) {
      zeroize(priv, 32);
      p256Wipe(); // K may hold a rejected draw
      return P256_ERR_RESEED;
    }
    if (loadScalar(K, priv)) break;
  }
  return p256PublicKey(pub, priv);
}
