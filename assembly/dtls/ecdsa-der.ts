// The two encodings of P-256 keys and signatures that TLS puts on the wire and the curve code does
// not know: ECDSA-Sig-Value in DER (RFC 5480 §2.2, RFC 8422 §5.4) and the SubjectPublicKeyInfo of
// a raw public key (RFC 7250 §3). The curve code works on r ‖ s and 0x04 ‖ X ‖ Y.

/** Largest DER signature: SEQUENCE of two INTEGERs of 33 bytes (a leading zero when the top bit is set). */
export const DER_SIGNATURE_MAX_BYTES: i32 = 72;
/** SubjectPublicKeyInfo of an uncompressed P-256 key: this 26-byte prefix, then 0x04 ‖ X ‖ Y. */
export const SPKI_PREFIX_BYTES: i32 = 26;
export const SPKI_BYTES: i32 = SPKI_PREFIX_BYTES + 65;
// SEQUENCE { SEQUENCE { OID id-ecPublicKey, OID prime256v1 }, BIT STRING (0 unused bits) ... }
export const SPKI_PREFIX: usize = memory.data<u8>([
  0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
  0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
]);

/** Writes the DER INTEGER of the 32-byte unsigned big-endian value at v; returns its length. */
function putDerInteger(out: usize, v: usize): i32 {
  let skip = 0;
  while (skip < 31 && load<u8>(v + <usize>skip) == 0) skip++; // minimal: no leading zero bytes...
  const pad = (load<u8>(v + <usize>skip) & 0x80) != 0 ? 1 : 0; // ...but one when the top bit is set
  const n = 32 - skip + pad;
  store<u8>(out, 0x02);
  store<u8>(out + 1, <u8>n);
  if (pad) store<u8>(out + 2, 0);
  memory.copy(out + 2 + <usize>pad, v + <usize>skip, <usize>(32 - skip));
  return 2 + n;
}

/** DER ECDSA-Sig-Value of sig = r ‖ s (64 bytes) at out; returns its length (≤ 72). */
export function derEncodeSignature(out: usize, sig: usize): i32 {
  let n = putDerInteger(out + 2, sig);
  n += putDerInteger(out + 2 + <usize>n, sig + 32);
  store<u8>(out, 0x30);
  store<u8>(out + 1, <u8>n);
  return 2 + n;
}

/**
 * Reads one DER INTEGER at p (before end) into 32 big-endian bytes at out; returns the position
 * after it, or 0 when it is not a minimal, non-negative INTEGER of at most 32 significant bytes.
 */
function getDerInteger(p: usize, end: usize, out: usize): usize {
  if (p + 2 > end || load<u8>(p) != 0x02) return 0;
  const n = <i32>load<u8>(p + 1);
  const v = p + 2;
  if (n < 1 || n > 33 || v + <usize>n > end) return 0;
  const first = load<u8>(v);
  if ((first & 0x80) != 0) return 0; // negative
  if (n > 1 && first == 0 && (load<u8>(v + 1) & 0x80) == 0) return 0; // not minimal
  const skip = first == 0 && n > 1 ? 1 : 0;
  const len = n - skip;
  if (len > 32) return 0;
  memory.fill(out, 0, <usize>(32 - len));
  memory.copy(out + <usize>(32 - len), v + <usize>skip, <usize>len);
  return v + <usize>n;
}

/**
 * Strict DER decoding of an ECDSA-Sig-Value of `len` bytes at p into r ‖ s (64 bytes at out).
 * Anything else (BER long forms, trailing bytes, negative or padded integers) is refused: the
 * range of r and s is left to the verifier.
 */
export function derDecodeSignature(p: usize, len: i32, out: usize): bool {
  if (len < 8 || len > DER_SIGNATURE_MAX_BYTES) return false;
  if (load<u8>(p) != 0x30 || <i32>load<u8>(p + 1) != len - 2) return false;
  const end = p + <usize>len;
  const afterR = getDerInteger(p + 2, end, out);
  if (afterR == 0) return false;
  return getDerInteger(afterR, end, out + 32) == end;
}
