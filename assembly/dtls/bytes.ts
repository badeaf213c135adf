// Big-endian field access for wire formats.

@inline export function getU8(p: usize): u32 {
  return <u32>load<u8>(p);
}
@inline export function getU16(p: usize): u32 {
  return (<u32>load<u8>(p) << 8) | <u32>load<u8>(p + 1);
}
@inline export function getU24(p: usize): u32 {
  return (<u32>load<u8>(p) << 16) | (<u32>load<u8>(p + 1) << 8) | <u32>load<u8>(p + 2);
}
@inline export function getU48(p: usize): u64 {
  return (<u64>getU16(p) << 32) | (<u64>getU16(p + 2) << 16) | <u64>getU16(p + 4);
}
@inline export function putU8(p: usize, v: u32): void {
  store<u8>(p, <u8>v);
}
@inline export function putU16(p: usize, v: u32): void {
  store<u8>(p, <u8>(v >> 8));
  store<u8>(p + 1, <u8>v);
}
@inline export function putU24(p: usize, v: u32): void {
  store<u8>(p, <u8>(v >> 16));
  store<u8>(p + 1, <u8>(v >> 8));
  store<u8>(p + 2, <u8>v);
}
@inline export function putU48(p: usize, v: u64): void {
  putU16(p, <u32>(v >> 32));
  putU16(p + 2, <u32>(v >> 16));
  putU16(p + 4, <u32>v);
}
