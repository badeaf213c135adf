// Helpers shared by the crypto specs: hex <-> bytes over linear memory.
//
// The crypto API takes raw pointers. Keep every buffer in a local variable of its managed type
// (StaticArray<u8>) for as long as a pointer to it is in use, so the collector sees it as live;
// take the pointer with ptr() only at the call site.

@inline function hexValue(c: i32): i32 {
  if (c >= 0x30 && c <= 0x39) return c - 0x30; // 0-9
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10; // a-f
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10; // A-F
  return -1;
}

@inline function isSpace(c: i32): bool {
  return c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09;
}

/** Bytes of a hex string; whitespace is ignored, anything else that is not hex aborts. */
export function fromHex(hex: string): StaticArray<u8> {
  let digits = 0;
  for (let i = 0; i < hex.length; i++) {
    const c = hex.charCodeAt(i);
    if (isSpace(c)) continue;
    assert(hexValue(c) >= 0, "fromHex: not a hex digit");
    digits++;
  }
  assert((digits & 1) == 0, "fromHex: odd number of hex digits");
  const out = new StaticArray<u8>(digits >> 1);
  let n = 0;
  let hi = -1;
  for (let i = 0; i < hex.length; i++) {
    const c = hex.charCodeAt(i);
    if (isSpace(c)) continue;
    const v = hexValue(c);
    if (hi < 0) {
      hi = v;
    } else {
      out[n++] = <u8>((hi << 4) | v);
      hi = -1;
    }
  }
  return out;
}

const HEX_DIGITS = "0123456789abcdef";

/** Lower-case hex of `len` bytes at `p`. */
export function toHex(p: usize, len: i32): string {
  let s = "";
  for (let i = 0; i < len; i++) {
    const b = <i32>load<u8>(p + <usize>i);
    s += HEX_DIGITS.charAt(b >> 4) + HEX_DIGITS.charAt(b & 15);
  }
  return s;
}

/** Lower-case hex of a whole buffer. */
export function hexOf(a: StaticArray<u8>): string {
  return toHex(ptr(a), a.length);
}

/** Address of the first byte of `a`. */
@inline export function ptr(a: StaticArray<u8>): usize {
  return changetype<usize>(a);
}

/** The 7-bit ASCII bytes of `s` (the specs only use ASCII text). */
export function ascii(s: string): StaticArray<u8> {
  const out = new StaticArray<u8>(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    assert(c < 0x80, "ascii: non-ASCII character");
    out[i] = <u8>c;
  }
  return out;
}

/** `len` bytes, all equal to `value`. */
export function filled(len: i32, value: u8): StaticArray<u8> {
  const out = new StaticArray<u8>(len);
  if (len > 0) memory.fill(ptr(out), value, <usize>len);
  return out;
}

/** `len` bytes counting up from `first`, wrapping modulo 256: first, first+1, ... */
export function counting(first: u8, len: i32): StaticArray<u8> {
  const out = new StaticArray<u8>(len);
  for (let i = 0; i < len; i++) out[i] = <u8>(<i32>first + i);
  return out;
}

/** A copy of bytes [start, end) of `a`. */
export function slice(a: StaticArray<u8>, start: i32, end: i32): StaticArray<u8> {
  assert(start >= 0 && start <= end && end <= a.length, "slice: bad range");
  const out = new StaticArray<u8>(end - start);
  if (end > start) memory.copy(ptr(out), ptr(a) + <usize>start, <usize>(end - start));
  return out;
}

/** a || b */
export function concat(a: StaticArray<u8>, b: StaticArray<u8>): StaticArray<u8> {
  const out = new StaticArray<u8>(a.length + b.length);
  if (a.length > 0) memory.copy(ptr(out), ptr(a), <usize>a.length);
  if (b.length > 0) memory.copy(ptr(out) + <usize>a.length, ptr(b), <usize>b.length);
  return out;
}

/** True when every one of `len` bytes at `p` equals `value`. */
export function allBytesAre(p: usize, len: i32, value: u8): bool {
  for (let i = 0; i < len; i++) {
    if (load<u8>(p + <usize>i) != value) return false;
  }
  return true;
}
