// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), bitwise: a slot write is ~0.5 KiB, so a
// 1 KiB table would cost more RAM than the time it saves.
export function crc32(p: usize, len: i32): u32 {
  let crc: u32 = 0xffffffff;
  for (let i = 0; i < len; i++) {
    crc ^= <u32>load<u8>(p + <usize>i);
    for (let b = 0; b < 8; b++) crc = (crc >>> 1) ^ (0xedb88320 & (0 - (crc & 1)));
  }
  return ~crc;
}
