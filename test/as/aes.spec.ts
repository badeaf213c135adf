// AES-128 block encryption against published known answers.
// Every vector here is re-checked with node:crypto by test/as/tools/verify-vectors.mjs.
import { AES128_CTX_BYTES, aes128ExpandKey, aes128EncryptBlock } from "../../assembly/crypto/index";
import { fromHex, hexOf, ptr, toHex } from "./util";

/** Encrypt one block with a fresh key schedule and return the ciphertext as hex. */
function encryptHex(keyHex: string, ptHex: string): string {
  const key = fromHex(keyHex);
  const pt = fromHex(ptHex);
  const ctx = new StaticArray<u8>(<i32>AES128_CTX_BYTES);
  const out = new StaticArray<u8>(16);
  aes128ExpandKey(ptr(ctx), ptr(key));
  aes128EncryptBlock(ptr(ctx), ptr(pt), ptr(out));
  return hexOf(out);
}

describe("AES-128", () => {
  it("has a 176-byte key schedule (11 round keys)", () => {
    expect<usize>(AES128_CTX_BYTES).toBe(176);
  });

  // FIPS-197, Appendix C.1 "AES-128 (Nk=4, Nr=10)".
  it("FIPS-197 Appendix C.1", () => {
    expect<string>(encryptHex("000102030405060708090a0b0c0d0e0f", "00112233445566778899aabbccddeeff")).toBe(
      "69c4e0d86a7b0430d8cdb78070b4c55a",
    );
  });

  // FIPS-197, Appendix B "Cipher Example".
  it("FIPS-197 Appendix B", () => {
    expect<string>(encryptHex("2b7e151628aed2a6abf7158809cf4f3c", "3243f6a8885a308d313198a2e0370734")).toBe(
      "3925841d02dc09fbdc118597196a0b32",
    );
  });

  // NIST SP 800-38A, Appendix F.1.1 "ECB-AES128.Encrypt", blocks #1-#4.
  it("SP 800-38A F.1.1 ECB-AES128, four blocks under one schedule", () => {
    const key = fromHex("2b7e151628aed2a6abf7158809cf4f3c");
    const ctx = new StaticArray<u8>(<i32>AES128_CTX_BYTES);
    aes128ExpandKey(ptr(ctx), ptr(key));
    const pts: string[] = [
      "6bc1bee22e409f96e93d7e117393172a",
      "ae2d8a571e03ac9c9eb76fac45af8e51",
      "30c81c46a35ce411e5fbc1191a0a52ef",
      "f69f2445df4f9b17ad2b417be66c3710",
    ];
    const cts: string[] = [
      "3ad77bb40d7a3660a89ecaf32466ef97",
      "f5d3d58503b9699de785895a96fdbaaf",
      "43b1cd7f598ece23881b00e3ed030688",
      "7b0c785e27e8ad3f8223207104725dd4",
    ];
    const out = new StaticArray<u8>(16);
    for (let i = 0; i < pts.length; i++) {
      const pt = fromHex(pts[i]);
      aes128EncryptBlock(ptr(ctx), ptr(pt), ptr(out));
      expect<string>(hexOf(out)).toBe(cts[i], "block #" + (i + 1).toString());
    }
  });

  it("encrypts in place when input and output are the same buffer (FIPS-197 C.1)", () => {
    const key = fromHex("000102030405060708090a0b0c0d0e0f");
    const block = fromHex("00112233445566778899aabbccddeeff");
    const ctx = new StaticArray<u8>(<i32>AES128_CTX_BYTES);
    aes128ExpandKey(ptr(ctx), ptr(key));
    aes128EncryptBlock(ptr(ctx), ptr(block), ptr(block));
    expect<string>(hexOf(block)).toBe("69c4e0d86a7b0430d8cdb78070b4c55a");
  });

  it("handles unaligned key, input and output addresses (FIPS-197 B)", () => {
    // Key at offset 1, block at offset 3, output at offset 5 of larger buffers.
    const key = fromHex("00 2b7e151628aed2a6abf7158809cf4f3c");
    const pt = fromHex("000000 3243f6a8885a308d313198a2e0370734");
    const out = new StaticArray<u8>(21);
    const ctx = new StaticArray<u8>(<i32>AES128_CTX_BYTES);
    aes128ExpandKey(ptr(ctx), ptr(key) + 1);
    aes128EncryptBlock(ptr(ctx), ptr(pt) + 3, ptr(out) + 5);
    expect<string>(toHex(ptr(out) + 5, 16)).toBe("3925841d02dc09fbdc118597196a0b32");
  });

  it("keeps independent key schedules independent (C.1 and B interleaved)", () => {
    const k1 = fromHex("000102030405060708090a0b0c0d0e0f");
    const k2 = fromHex("2b7e151628aed2a6abf7158809cf4f3c");
    const p1 = fromHex("00112233445566778899aabbccddeeff");
    const p2 = fromHex("3243f6a8885a308d313198a2e0370734");
    const c1 = new StaticArray<u8>(<i32>AES128_CTX_BYTES);
    const c2 = new StaticArray<u8>(<i32>AES128_CTX_BYTES);
    const out = new StaticArray<u8>(16);
    aes128ExpandKey(ptr(c1), ptr(k1));
    aes128ExpandKey(ptr(c2), ptr(k2));
    aes128EncryptBlock(ptr(c1), ptr(p1), ptr(out));
    expect<string>(hexOf(out)).toBe("69c4e0d86a7b0430d8cdb78070b4c55a");
    aes128EncryptBlock(ptr(c2), ptr(p2), ptr(out));
    expect<string>(hexOf(out)).toBe("3925841d02dc09fbdc118597196a0b32");
    aes128EncryptBlock(ptr(c1), ptr(p1), ptr(out));
    expect<string>(hexOf(out)).toBe("69c4e0d86a7b0430d8cdb78070b4c55a");
  });

  it("re-expanding a used context with another key replaces the schedule", () => {
    const k1 = fromHex("000102030405060708090a0b0c0d0e0f");
    const k2 = fromHex("2b7e151628aed2a6abf7158809cf4f3c");
    const p2 = fromHex("3243f6a8885a308d313198a2e0370734");
    const ctx = new StaticArray<u8>(<i32>AES128_CTX_BYTES);
    const out = new StaticArray<u8>(16);
    aes128ExpandKey(ptr(ctx), ptr(k1));
    aes128ExpandKey(ptr(ctx), ptr(k2));
    aes128EncryptBlock(ptr(ctx), ptr(p2), ptr(out));
    expect<string>(hexOf(out)).toBe("3925841d02dc09fbdc118597196a0b32");
  });
});
