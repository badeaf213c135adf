// Constant-time helpers: tag and token checks must not leak where the first difference is.

/** True when `len` bytes at `a` and `b` are equal; time depends only on `len`. */
export function ctEqual(a: usize, b: usize, len: i32): bool {
  let diff: u32 = 0;
  for (let i = 0; i < len; i++) {
    diff |= <u32>(load<u8>(a + <usize>i) ^ load<u8>(b + <usize>i));
  }
  return diff == 0;
}

/** Overwrite a secret with zeros. memory.fill is a single opcode the optimizer cannot elide. */
export function zeroize(p: usize, len: i32): void {
  if (len > 0) memory.fill(p, 0, <usize>len);
}
