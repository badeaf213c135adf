// TLS 1.2 PRF with SHA-256 (RFC 5246 section 5: PRF = P_SHA256(secret, label || seed)).
//
// Vector: "PRF Testvector for the standard", IETF TLS WG mailing list,
// https://www.ietf.org/mail-archive/web/tls/current/msg03416.html (also used by BearSSL's and
// mbed TLS's test suites): secret, label "test label", seed, 100 bytes of output.
// Re-checked by test/as/tools/verify-vectors.mjs with a P_SHA256 written from RFC 5246 over
// node:crypto HMAC.
import { tlsPrfSha256 } from "../../assembly/crypto/index";
import { allBytesAre, ascii, filled, fromHex, ptr, toHex } from "./util";

const SECRET = "9bbe436ba940f017b17652849a71db35";
const SEED = "a0ba9f936cda311827a6f796ffd5198c";
const LABEL = "test label";
const OUT100 =
  "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff70187347b66";

/** PRF output of `outLen` bytes as hex; also checks that nothing past `outLen` is written. */
function prfHex(outLen: i32): string {
  const secret = fromHex(SECRET);
  const seed = fromHex(SEED);
  const label = ascii(LABEL);
  const out = filled(outLen + 32, 0xa5);
  tlsPrfSha256(ptr(secret), secret.length, ptr(label), label.length, ptr(seed), seed.length, ptr(out), outLen);
  expect<bool>(allBytesAre(ptr(out) + <usize>outLen, 32, 0xa5)).toBe(
    true, "tlsPrfSha256 wrote past " + outLen.toString() + " bytes");
  return toHex(ptr(out), outLen);
}

describe("TLS 1.2 PRF (P_SHA256)", () => {
  it("gives the 100-byte IETF TLS WG test vector", () => {
    expect<string>(prfHex(100)).toBe(OUT100);
  });

  // P_SHA256 output is a stream: any shorter request is a prefix of the published 100 bytes.
  it("gives prefixes of the same vector for shorter outputs (1, 12, 31, 32, 33, 48, 64, 65, 99)", () => {
    const lens: i32[] = [1, 12, 31, 32, 33, 48, 64, 65, 99];
    for (let i = 0; i < lens.length; i++) {
      const n = lens[i];
      expect<string>(prfHex(n)).toBe(OUT100.substring(0, n * 2), "outLen " + n.toString());
    }
  });

  it("writes nothing for outLen 0", () => {
    expect<string>(prfHex(0)).toBe("");
  });

  it("reads label and seed from unaligned addresses and writes to an unaligned output", () => {
    const secret = fromHex("00" + SECRET);
    const seed = fromHex("0000" + SEED);
    const label = ascii("xyz" + LABEL);
    const out = filled(105, 0);
    tlsPrfSha256(ptr(secret) + 1, 16, ptr(label) + 3, 10, ptr(seed) + 2, 16, ptr(out) + 5, 100);
    expect<string>(toHex(ptr(out) + 5, 100)).toBe(OUT100);
  });
});
