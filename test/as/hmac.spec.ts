// HMAC-SHA-256 against RFC 4231 section 4 test cases 1-7. Every vector here is re-checked with
// node:crypto by test/as/tools/verify-vectors.mjs.
import {
  HMAC_SHA256_CTX_BYTES,
  hmacSha256,
  hmacSha256Final,
  hmacSha256Init,
  hmacSha256Update,
} from "../../assembly/crypto/index";
import { allBytesAre, filled, fromHex, ptr, toHex } from "./util";

/**
 * Checks the one-shot and the streaming interface. `macHex` may be shorter than 32 bytes
 * (test case 5 is truncated to 128 bits); only that many leading bytes are compared.
 */
function checkHmac(key: StaticArray<u8>, data: StaticArray<u8>, macHex: string): void {
  const n = macHex.length >> 1;
  const out = filled(32 + 16, 0xa5);
  hmacSha256(ptr(key), key.length, ptr(data), data.length, ptr(out));
  expect<string>(toHex(ptr(out), n)).toBe(macHex, "one-shot hmacSha256()");
  expect<bool>(allBytesAre(ptr(out) + 32, 16, 0xa5)).toBe(true, "hmacSha256 wrote past 32 bytes");

  // Streaming: whole, byte at a time, and split at 1, 63, 64, 65 bytes.
  const splits: i32[] = [0, 1, 63, 64, 65, data.length];
  const ctx = new StaticArray<u8>(<i32>HMAC_SHA256_CTX_BYTES);
  for (let s = 0; s < splits.length; s++) {
    let at = splits[s];
    if (at > data.length) at = data.length;
    const o = filled(32 + 16, 0xa5);
    hmacSha256Init(ptr(ctx), ptr(key), key.length);
    hmacSha256Update(ptr(ctx), ptr(data), at);
    hmacSha256Update(ptr(ctx), ptr(data) + <usize>at, data.length - at);
    hmacSha256Final(ptr(ctx), ptr(o));
    expect<string>(toHex(ptr(o), n)).toBe(macHex, "streaming, split at " + at.toString());
    expect<bool>(allBytesAre(ptr(o) + 32, 16, 0xa5)).toBe(true, "hmacSha256Final wrote past 32 bytes");
  }
  const o2 = new StaticArray<u8>(32);
  hmacSha256Init(ptr(ctx), ptr(key), key.length);
  for (let i = 0; i < data.length; i++) hmacSha256Update(ptr(ctx), ptr(data) + <usize>i, 1);
  hmacSha256Final(ptr(ctx), ptr(o2));
  expect<string>(toHex(ptr(o2), n)).toBe(macHex, "streaming, byte at a time");
}

describe("HMAC-SHA-256 RFC 4231", () => {
  // RFC 4231 section 4.2, Test Case 1
  it("test case 1", () => {
    checkHmac(fromHex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"), fromHex("4869205468657265"),
      "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  });
  // RFC 4231 section 4.3, Test Case 2 (key shorter than the output: "Jefe")
  it("test case 2", () => {
    checkHmac(fromHex("4a656665"), fromHex("7768617420646f2079612077616e7420666f72206e6f7468696e673f"),
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  });
  // RFC 4231 section 4.4, Test Case 3
  it("test case 3", () => {
    checkHmac(fromHex("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
      fromHex("dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"),
      "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
  });
  // RFC 4231 section 4.5, Test Case 4
  it("test case 4", () => {
    checkHmac(fromHex("0102030405060708090a0b0c0d0e0f10111213141516171819"),
      fromHex("cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"),
      "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
  });
  // RFC 4231 section 4.6, Test Case 5 (output truncated to 128 bits: compare the first 16 bytes)
  it("test case 5 (truncated to 128 bits)", () => {
    checkHmac(fromHex("0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c"), fromHex("546573742057697468205472756e636174696f6e"),
      "a3b6167473100ee06e0c796c2955552b");
  });
  // RFC 4231 section 4.7, Test Case 6 (131-byte key of 0xaa, longer than the block: hashed first)
  it("test case 6", () => {
    checkHmac(filled(131, 0xaa),
      fromHex("54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a65204b6579202d2048617368204b6579204669727374"),
      "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  });
  // RFC 4231 section 4.8, Test Case 7 (131-byte key of 0xaa and 152-byte data)
  it("test case 7", () => {
    checkHmac(filled(131, 0xaa),
      fromHex("5468697320697320612074657374207573696e672061206c6172676572207468616e20626c6f636b2d73697a65206b657920616e642061206c6172676572207468616e20626c6f636b2d73697a6520646174612e20546865206b6579206e6565647320746f20626520686173686564206265666f7265206265696e6720757365642062792074686520484d414320616c676f726974686d2e"),
      "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
  });
});

describe("HMAC-SHA-256 contexts", () => {
  it("hmacSha256Init resets a used context (RFC 4231 test case 2)", () => {
    const junkKey = filled(200, 0x11);
    const junk = filled(70, 0x22);
    const key = fromHex("4a656665");
    const data = fromHex("7768617420646f2079612077616e7420666f72206e6f7468696e673f");
    const ctx = new StaticArray<u8>(<i32>HMAC_SHA256_CTX_BYTES);
    const out = new StaticArray<u8>(32);
    hmacSha256Init(ptr(ctx), ptr(junkKey), junkKey.length);
    hmacSha256Update(ptr(ctx), ptr(junk), junk.length);
    hmacSha256Init(ptr(ctx), ptr(key), key.length);
    hmacSha256Update(ptr(ctx), ptr(data), data.length);
    hmacSha256Final(ptr(ctx), ptr(out));
    expect<string>(toHex(ptr(out), 32)).toBe("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  });

  it("a key buffer changed after Init does not change the MAC (RFC 4231 test case 1)", () => {
    const key = fromHex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
    const data = fromHex("4869205468657265");
    const ctx = new StaticArray<u8>(<i32>HMAC_SHA256_CTX_BYTES);
    const out = new StaticArray<u8>(32);
    hmacSha256Init(ptr(ctx), ptr(key), key.length);
    memory.fill(ptr(key), 0, <usize>key.length);
    hmacSha256Update(ptr(ctx), ptr(data), data.length);
    hmacSha256Final(ptr(ctx), ptr(out));
    expect<string>(toHex(ptr(out), 32)).toBe("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  });
});
