// DER ECDSA-Sig-Value (RFC 5480 §2.2, X.690 §8.3) as TLS carries it: the strict decoder the
// ECDHE handshake uses on ServerKeyExchange, and the encoder for CertificateVerify. Cases follow
// Wycheproof's ecdsa_secp256r1_sha256 "BER"/"modified integer" groups: every non-DER encoding of
// a valid (r, s) must be refused, every DER one accepted.
import { derDecodeSignature, derEncodeSignature } from "../../assembly/dtls/ecdsa-der";
import { counting, filled, fromHex, ptr } from "./util";

const OUT = new StaticArray<u8>(64);

function decodes(der: StaticArray<u8>): bool {
  return derDecodeSignature(ptr(der), der.length, ptr(OUT));
}

describe("derEncodeSignature / derDecodeSignature", () => {
  it("round-trips r ‖ s of every shape: top bit set (a 0x00 pad), leading zero bytes, small values", () => {
    const cases: StaticArray<u8>[] = [counting(1, 64), filled(64, 0xff), filled(64, 0x01)];
    const small = new StaticArray<u8>(64);
    small[31] = 1;
    small[63] = 0x80;
    cases.push(small);
    const mixed = counting(0x70, 64);
    mixed[0] = 0; mixed[1] = 0; mixed[32] = 0x80;
    cases.push(mixed);
    for (let i = 0; i < cases.length; i++) {
      const der = new StaticArray<u8>(72);
      const n = derEncodeSignature(ptr(der), ptr(cases[i]));
      expect<bool>(n <= 72).toBe(true);
      expect<bool>(derDecodeSignature(ptr(der), n, ptr(OUT))).toBe(true, "case " + i.toString());
      for (let j = 0; j < 64; j++) expect<u8>(OUT[j]).toBe(cases[i][j], "case " + i.toString() + " byte " + j.toString());
    }
  });

  it("encodes minimally: 0x00 pad only before a set top bit, no other leading zeros", () => {
    const rs = new StaticArray<u8>(64);
    rs[31] = 0x80; // r = 0x80: 02 02 00 80
    rs[63] = 0x7f; // s = 0x7f: 02 01 7f
    const der = new StaticArray<u8>(72);
    const n = derEncodeSignature(ptr(der), ptr(rs));
    expect<i32>(n).toBe(9);
    const want = fromHex("30070202008002017f");
    for (let i = 0; i < 9; i++) expect<u8>(der[i]).toBe(want[i]);
  });

  it("accepts the DER encodings of small and full-width integers", () => {
    expect<bool>(decodes(fromHex("3006020101020101"))).toBe(true);
    expect<u8>(OUT[31]).toBe(1);
    expect<u8>(OUT[63]).toBe(1);
    expect<bool>(decodes(fromHex("30070202008002017f"))).toBe(true);
  });

  it("refuses BER and malformed encodings", () => {
    const bad = [
      "3007020101020101",       // sequence length says one more byte than there is
      "3006020101020101ff",     // trailing byte after the sequence
      "3106020101020101",       // SET instead of SEQUENCE
      "3006030101020101",       // BIT STRING instead of INTEGER
      "300702020001020101",     // r with a leading zero the value does not need
      "3006020181020101",       // r negative (top bit set without pad)
      "3005020100020101",       // sequence too short for two integers (and a length mismatch)
      "300602000201010000",     // r of length 0
      "308106020101020101",     // long-form sequence length (BER)
      "3007020101020201",       // s length beyond the sequence
    ];
    for (let i = 0; i < bad.length; i++) {
      expect<bool>(decodes(fromHex(bad[i]))).toBe(false, bad[i]);
    }
  });

  it("refuses an integer of 33 significant bytes and accepts 32 with its pad", () => {
    // r = 0x01 followed by 32 bytes: 33 significant bytes
    const big = new StaticArray<u8>(2 + 2 + 33 + 3);
    big[0] = 0x30; big[1] = <u8>(2 + 33 + 3);
    big[2] = 0x02; big[3] = 33; big[4] = 0x01;
    big[37] = 0x02; big[38] = 1; big[39] = 1;
    expect<bool>(decodes(big)).toBe(false);
    big[4] = 0x00; big[5] = 0x80; // now a pad before a set top bit: 32 significant bytes
    expect<bool>(decodes(big)).toBe(true);
    expect<u8>(OUT[0]).toBe(0x80);
  });
});
