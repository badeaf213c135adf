// The one static I/O buffer every export reads its inputs from and writes its outputs to.

/** Bytes in the shared I/O buffer: one datagram of up to 1500 bytes plus headroom. */
export const IO_CAPACITY: i32 = 2048;
export const IO: usize = memory.data(IO_CAPACITY, 16);

/** True when every length is in [0, IO_CAPACITY] and together they fit the I/O buffer (no i32 overflow). */
export function fitsIo(a: i32, b: i32 = 0, c: i32 = 0, d: i32 = 0): bool {
  if (a < 0 || b < 0 || c < 0 || d < 0) return false;
  return <i64>a + <i64>b + <i64>c + <i64>d <= <i64>IO_CAPACITY;
}
