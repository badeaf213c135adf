// ctEqual and zeroize behaviour (no published vectors exist for these; the expectations follow
// from their contracts: equality of `len` bytes, and zeroing exactly `len` bytes).
import { ctEqual, zeroize } from "../../assembly/crypto/index";
import { allBytesAre, counting, filled, ptr, slice } from "./util";

describe("ctEqual", () => {
  it("is true for equal buffers of every length 0..64", () => {
    const a = counting(0x30, 64);
    const b = slice(a, 0, 64);
    for (let n = 0; n <= 64; n++) {
      expect<bool>(ctEqual(ptr(a), ptr(b), n)).toBe(true, "length " + n.toString());
    }
  });

  it("is false when any single byte differs, wherever it is", () => {
    const a = counting(0x30, 33);
    for (let i = 0; i < 33; i++) {
      const b = slice(a, 0, 33);
      b[i] ^= 0x01;
      expect<bool>(ctEqual(ptr(a), ptr(b), 33)).toBe(false, "difference at " + i.toString());
      const c = slice(a, 0, 33);
      c[i] ^= 0x80;
      expect<bool>(ctEqual(ptr(a), ptr(c), 33)).toBe(false, "high-bit difference at " + i.toString());
    }
  });

  it("compares only the first len bytes", () => {
    const a = counting(0, 16);
    const b = slice(a, 0, 16);
    b[10] = 0xff;
    expect<bool>(ctEqual(ptr(a), ptr(b), 10)).toBe(true);
    expect<bool>(ctEqual(ptr(a), ptr(b), 11)).toBe(false);
  });

  it("is true for length 0 and for a buffer compared with itself", () => {
    const a = counting(7, 20);
    const b = filled(20, 0xee);
    expect<bool>(ctEqual(ptr(a), ptr(b), 0)).toBe(true);
    expect<bool>(ctEqual(ptr(a), ptr(a), 20)).toBe(true);
  });

  it("does not modify either buffer", () => {
    const a = counting(1, 24);
    const b = counting(1, 24);
    b[23] = 0;
    const fresh = counting(1, 24);
    ctEqual(ptr(a), ptr(b), 24);
    expect<bool>(ctEqual(ptr(a), ptr(fresh), 24)).toBe(true);
    expect<u8>(b[23]).toBe(0);
    expect<u8>(b[0]).toBe(1);
  });

  it("treats bytes as unsigned (0x00 vs 0x80 and 0x7f vs 0xff differ)", () => {
    const a = filled(2, 0);
    const b = filled(2, 0);
    a[0] = 0x00; b[0] = 0x80;
    a[1] = 0x7f; b[1] = 0x7f;
    expect<bool>(ctEqual(ptr(a), ptr(b), 2)).toBe(false);
    b[0] = 0x00; b[1] = 0xff;
    expect<bool>(ctEqual(ptr(a), ptr(b), 2)).toBe(false);
  });
});

describe("zeroize", () => {
  it("zeroes exactly len bytes and leaves the neighbours alone", () => {
    for (let len = 1; len <= 40; len++) {
      const buf = filled(len + 16, 0xa5);
      zeroize(ptr(buf) + 8, len);
      expect<bool>(allBytesAre(ptr(buf), 8, 0xa5)).toBe(true, "bytes before, len " + len.toString());
      expect<bool>(allBytesAre(ptr(buf) + 8, len, 0)).toBe(true, "zeroed range, len " + len.toString());
      expect<bool>(allBytesAre(ptr(buf) + 8 + <usize>len, 8, 0xa5)).toBe(true, "bytes after, len " + len.toString());
    }
  });

  it("does nothing for len 0", () => {
    const buf = filled(16, 0xa5);
    zeroize(ptr(buf) + 4, 0);
    expect<bool>(allBytesAre(ptr(buf), 16, 0xa5)).toBe(true);
  });

  it("zeroes a large unaligned region (4099 bytes at offset 3)", () => {
    const buf = filled(4110, 0x5a);
    zeroize(ptr(buf) + 3, 4099);
    expect<bool>(allBytesAre(ptr(buf), 3, 0x5a)).toBe(true);
    expect<bool>(allBytesAre(ptr(buf) + 3, 4099, 0)).toBe(true);
    expect<bool>(allBytesAre(ptr(buf) + 4102, 8, 0x5a)).toBe(true);
  });
});
