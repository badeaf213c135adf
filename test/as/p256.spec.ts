// P-256 against published vectors: RFC 6979 appendix A.2.5 (P-256, SHA-256: key pair and the
// deterministic signatures of "sample" and "test", bit-exact), NIST CAVP KAS ECC CDH primitive
// vectors (P-256 COUNT 0-2: public keys and shared secrets), two Wycheproof ECDH edge cases
// (ecdh_secp256r1_ecpoint_test: shared X of all zeros, of 00ff…), and invalid inputs: points off
// the curve, a coordinate equal to p, encodings of infinity, other prefixes and lengths, scalars
// 0, n, 2^256 − 1, signature values 0, n, 2^256 − 1. Every vector and every invalid point here is
// re-checked with node:crypto (and BigInt arithmetic) by test/as/tools/verify-vectors.mjs.
import {
  P256_ERR_POINT, P256_ERR_SCALAR, P256_ERR_SIGNATURE, P256_OK, p256Ecdh, p256PublicKey, p256ScratchIsClear, p256Sign,
  p256ValidPublicKey, p256Verify, p256Keygen,
} from "../../assembly/crypto/p256";
import { DRBG_CTX_BYTES, hmacDrbgInstantiate, sha256 } from "../../assembly/crypto/index";
import {
  FE_ONE, MOD_N, MOD_P, feFromBytes, feToBytes, modAdd, modReduce, modSub, montInv, montMul,
} from "../../assembly/crypto/p256-field";
import { allBytesAre, ascii, filled, fromHex, ptr, toHex } from "./util";

// RFC 6979 A.2.5: private key x and public key U = xG
const RFC_X = "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721";
const RFC_U = "0460fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb67903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299";
// RFC 6979 A.2.5, With SHA-256, message = "sample" / "test": r ‖ s
const RFC_SIG_SAMPLE = "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8";
/** n − s of the "sample" signature: (r, n − s) is the other valid signature of the same hash. */
const RFC_SAMPLE_N_MINUS_S = "0834e36ad29a83bf2bc9385e491d6099c8fdf9d1ed67aa7ea5f51f93782857a9";
const RFC_SIG_TEST = "f1abb023518351cd71d881567b1ea663ed3efcf6c5132b354f28d3b0b7d38367019f4113742a2b14bd25926b49c649155f267e60d3814b4c0cc84250e46f0083";

const G = "046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c2964fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5";
const N = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
const N_MINUS_1 = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632550";
const P = "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff";
const P_MINUS_1 = "ffffffff00000001000000000000000000000000fffffffffffffffffffffffe";
const P_MINUS_2 = "ffffffff00000001000000000000000000000000fffffffffffffffffffffffd";
/** (2^256 − 1) mod n */
const TOP_MOD_N = "00000000ffffffff00000000000000004319055258e8617b0c46353d039cdaae";
/** (n − 1)·G = −G = (Gx, p − Gy) */
const MINUS_G = "046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296b01cbd1c01e58065711814b583f061e9d431cca994cea1313449bf97c840ae0a";
/** A curve point with y = 5 (found by factoring x³ − 3x + b − 25 over F_p): (X_Y5, p + 5) must be refused. */
const X_Y5 = "d7325d7646cd60d80a92738ceb345f844cffaf35841022cab176f692de8de1d7";
const P_PLUS_5 = "ffffffff00000001000000000000000000000001000000000000000000000004";
/** √b mod p: (0, √b) is on the curve (x = 0 gives y² = b). */
const SQRT_B = "66485c780e2f83d72433bd5d84a06bb6541c2af31dae871728bf856a174f93f4";

// NIST CAVP KAS ECC CDH primitive test vectors (SP 800-56A, CAVS 14.1), [P-256], COUNT = 0, 1, 2:
// dIUT, QIUT (= 04 ‖ QIUTx ‖ QIUTy), QCAVS (= 04 ‖ QCAVSx ‖ QCAVSy), ZIUT
const CAVP: string[][] = [
  ["7d7dc5f71eb29ddaf80d6214632eeae03d9058af1fb6d22ed80badb62bc1a534",
    "04ead218590119e8876b29146ff89ca61770c4edbbf97d38ce385ed281d8a6b23028af61281fd35e2fa7002523acc85a429cb06ee6648325389f59edfce1405141",
    "04700c48f77f56584c5cc632ca65640db91b6bacce3a4df6b42ce7cc838833d287db71e509e3fd9b060ddb20ba5c51dcc5948d46fbf640dfe0441782cab85fa4ac",
    "46fc62106420ff012e54a434fbdd2d25ccc5852060561e68040dd7778997bd7b"],
  ["38f65d6dce47676044d58ce5139582d568f64bb16098d179dbab07741dd5caf5",
    "04119f2f047902782ab0c9e27a54aff5eb9b964829ca99c06b02ddba95b0a3f6d08f52b726664cac366fc98ac7a012b2682cbd962e5acb544671d41b9445704d1d",
    "04809f04289c64348c01515eb03d5ce7ac1a8cb9498f5caa50197e58d43a86a7aeb29d84e811197f25eba8f5194092cb6ff440e26d4421011372461f579271cda3",
    "057d636096cb80b67a8c038c890e887d1adfa4195e9b3ce241c8a778c59cda67"],
  ["1accfaf1b97712b85a6f54b148985a1bdc4c9bec0bd258cad4b3d603f49f32c8",
    "04d9f2b79c172845bfdb560bbb01447ca5ecc0470a09513b6126902c6b4f8d1051f815ef5ec32128d3487834764678702e64e164ff7315185e23aff5facd96d7bc",
    "04a2339c12d4a03c33546de533268b4ad667debf458b464d77443636440ee7fec3ef48a3ab26e20220bcda2c1851076839dae88eae962869a497bf73cb66faf536",
    "2d457b78b4614132477618a5b077965ec90730a8c81a1c75d6d4ec68005d67ec"],
];

// Wycheproof ecdh_secp256r1_ecpoint_test: one private key, two peers whose shared X has leading zeros
const WP_PRIV = "0a0d622a47e48f6bc1038ace438c6f528aa00ad2bd1da5f13ee46bf5f633d71a";
const WP: string[][] = [
  ["0458fd4168a87795603e2b04390285bdca6e57de6027fe211dd9d25e2212d29e62080d36bd224d7405509295eed02a17150e03b314f96da37445b0d1d29377d12c",
    "0000000000000000000000000000000000000000000000000000000000000000"],
  ["04924fb33985c8a687fc04c9dd05e531ca0e0223aa58d58351e922ef482043d30cf504745e769b6dcbefe404da37f717b3109d2af23450fcfe2f075c2dabbe7194",
    "00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00f9"],
];

/** Public keys every decoder must refuse (checked to be refused by node:crypto too). */
const INVALID_POINTS: string[] = [
  // CAVP COUNT 0's QCAVS with the last bit of y flipped: off the curve
  "04700c48f77f56584c5cc632ca65640db91b6bacce3a4df6b42ce7cc838833d287db71e509e3fd9b060ddb20ba5c51dcc5948d46fbf640dfe0441782cab85fa4ad",
  // G with x + 1: off the curve
  "046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c2974fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5",
  // x = p, y = √b: (p mod p, √b) = (0, √b) is on the curve, so only the range check refuses it
  "04" + P + SQRT_B,
  // y = p + 5 for a point whose y is 5: only the range check on y refuses it
  "04" + X_Y5 + P_PLUS_5,
  // (0, 0) and all-zero 65 bytes with the prefix: "infinity" as some encoders write it
  "04" + "00".repeat(64),
  // (1, 1)
  "0400000000000000000000000000000000000000000000000000000000000000010000000000000000000000000000000000000000000000000000000000000001",
];

function sha(msg: string): StaticArray<u8> {
  const data = ascii(msg);
  const out = new StaticArray<u8>(32);
  sha256(ptr(data), data.length, ptr(out));
  return out;
}

function publicOf(privHex: string): string {
  const priv = fromHex(privHex);
  const pub = filled(65 + 8, 0xa5);
  const rc = p256PublicKey(ptr(pub), ptr(priv));
  expect<i32>(rc).toBe(P256_OK, "public key of " + privHex);
  expect<bool>(allBytesAre(ptr(pub) + 65, 8, 0xa5)).toBe(true, "wrote past 65 bytes");
  return toHex(ptr(pub), 65);
}

function ecdh(privHex: string, pubHex: string): string {
  const priv = fromHex(privHex), pub = fromHex(pubHex);
  const out = filled(32, 0xa5);
  const rc = p256Ecdh(ptr(out), ptr(priv), ptr(pub), pub.length);
  return rc == P256_OK ? toHex(ptr(out), 32) : "error " + rc.toString();
}

function verify(pubHex: string, hash: StaticArray<u8>, sigHex: string): i32 {
  const pub = fromHex(pubHex), sig = fromHex(sigHex);
  return p256Verify(ptr(pub), pub.length, ptr(hash), ptr(sig));
}

describe("P-256 public keys", () => {
  it("RFC 6979 A.2.5 key pair", () => {
    expect<string>(publicOf(RFC_X)).toBe(RFC_U);
  });
  it("NIST CAVP KAS ECC CDH P-256 COUNT 0-2: QIUT = dIUT·G", () => {
    for (let i = 0; i < CAVP.length; i++) expect<string>(publicOf(CAVP[i][0])).toBe(CAVP[i][1], "COUNT " + i.toString());
  });
  it("1·G = G and (n − 1)·G = −G", () => {
    expect<string>(publicOf("00".repeat(31) + "01")).toBe(G);
    expect<string>(publicOf(N_MINUS_1)).toBe(MINUS_G);
  });
  it("refuses scalars 0, n, 2^256 − 1 and writes nothing", () => {
    const bad: string[] = ["00".repeat(32), N, "ff".repeat(32)];
    for (let i = 0; i < bad.length; i++) {
      const priv = fromHex(bad[i]);
      const pub = filled(65, 0xa5);
      expect<i32>(p256PublicKey(ptr(pub), ptr(priv))).toBe(P256_ERR_SCALAR, bad[i]);
      expect<bool>(allBytesAre(ptr(pub), 65, 0xa5)).toBe(true, "output written for " + bad[i]);
    }
  });
  it("accepts its own outputs as valid public keys", () => {
    const pub = fromHex(RFC_U);
    expect<bool>(p256ValidPublicKey(ptr(pub), pub.length)).toBe(true);
  });
});

describe("P-256 ECDH", () => {
  it("NIST CAVP KAS ECC CDH P-256 COUNT 0-2: ZIUT, both directions agree", () => {
    for (let i = 0; i < CAVP.length; i++) {
      expect<string>(ecdh(CAVP[i][0], CAVP[i][2])).toBe(CAVP[i][3], "COUNT " + i.toString());
    }
  });
  it("Wycheproof: shared X with leading zeros keeps all 32 bytes (all zeros, 00ff…)", () => {
    for (let i = 0; i < WP.length; i++) expect<string>(ecdh(WP_PRIV, WP[i][0])).toBe(WP[i][1]);
  });
  it("(0, √b) and (X_Y5, 5) are valid peer keys (their invalid twins x = p, y = p + 5 below)", () => {
    expect<string>(ecdh(CAVP[0][0], "04" + "00".repeat(32) + SQRT_B).slice(0, 5)).not.toBe("error");
    expect<string>(ecdh(CAVP[0][0], "04" + X_Y5 + "00".repeat(31) + "05").slice(0, 5)).not.toBe("error");
  });
  it("refuses invalid public keys before touching the private key", () => {
    for (let i = 0; i < INVALID_POINTS.length; i++) {
      expect<string>(ecdh(CAVP[0][0], INVALID_POINTS[i])).toBe("error -2", INVALID_POINTS[i]);
      const pub = fromHex(INVALID_POINTS[i]);
      expect<bool>(p256ValidPublicKey(ptr(pub), pub.length)).toBe(false);
    }
    // a valid point under another prefix or length: infinity (00), compressed (02/03), hybrid (06/07)
    const body = CAVP[0][2].slice(2);
    const prefixes: string[] = ["00", "02", "03", "05", "06", "07"];
    for (let i = 0; i < prefixes.length; i++) expect<string>(ecdh(CAVP[0][0], prefixes[i] + body)).toBe("error -2");
    expect<string>(ecdh(CAVP[0][0], "00")).toBe("error -2");
    expect<string>(ecdh(CAVP[0][0], CAVP[0][2].slice(0, 66))).toBe("error -2"); // 33 bytes
    expect<string>(ecdh(CAVP[0][0], CAVP[0][2].slice(0, 128))).toBe("error -2"); // 64 bytes
    expect<string>(ecdh(CAVP[0][0], CAVP[0][2] + "00")).toBe("error -2"); // 66 bytes
  });
  it("refuses private scalars 0 and n", () => {
    expect<string>(ecdh("00".repeat(32), CAVP[0][2])).toBe("error -1");
    expect<string>(ecdh(N, CAVP[0][2])).toBe("error -1");
  });
});

describe("P-256 ECDSA (RFC 6979 A.2.5, SHA-256)", () => {
  it("signs \"sample\" and \"test\" bit-exactly and verifies them", () => {
    const x = fromHex(RFC_X);
    const msgs: string[] = ["sample", "test"];
    const sigs: string[] = [RFC_SIG_SAMPLE, RFC_SIG_TEST];
    for (let i = 0; i < 2; i++) {
      const h = sha(msgs[i]);
      const sig = filled(64 + 8, 0xa5);
      expect<i32>(p256Sign(ptr(sig), ptr(x), ptr(h))).toBe(P256_OK);
      expect<string>(toHex(ptr(sig), 64)).toBe(sigs[i], msgs[i]);
      expect<bool>(allBytesAre(ptr(sig) + 64, 8, 0xa5)).toBe(true, "wrote past 64 bytes");
      expect<i32>(verify(RFC_U, h, sigs[i])).toBe(P256_OK, msgs[i]);
    }
  });
  it("rejects a signature of another message, under another key, or with any byte changed", () => {
    expect<i32>(verify(RFC_U, sha("test"), RFC_SIG_SAMPLE)).toBe(P256_ERR_SIGNATURE);
    expect<i32>(verify(G, sha("sample"), RFC_SIG_SAMPLE)).toBe(P256_ERR_SIGNATURE);
    const h = sha("sample");
    const sig = fromHex(RFC_SIG_SAMPLE);
    const pub = fromHex(RFC_U);
    for (let i = 0; i < 64; i += 7) {
      sig[i] ^= 0x10;
      expect<i32>(p256Verify(ptr(pub), 65, ptr(h), ptr(sig))).toBe(P256_ERR_SIGNATURE, "byte " + i.toString());
      sig[i] ^= 0x10;
    }
    h[31] ^= 1;
    expect<i32>(p256Verify(ptr(pub), 65, ptr(h), ptr(sig))).toBe(P256_ERR_SIGNATURE, "hash changed");
  });
  it("rejects r or s of 0, n or 2^256 − 1 (no reduction mod n)", () => {
    const h = sha("sample");
    const r = RFC_SIG_SAMPLE.slice(0, 64), s = RFC_SIG_SAMPLE.slice(64);
    const bad: string[] = ["00".repeat(32), N, "ff".repeat(32)];
    for (let i = 0; i < bad.length; i++) {
      expect<i32>(verify(RFC_U, h, bad[i] + s)).toBe(P256_ERR_SIGNATURE, "r = " + bad[i]);
      expect<i32>(verify(RFC_U, h, r + bad[i])).toBe(P256_ERR_SIGNATURE, "s = " + bad[i]);
    }
  });
  it("accepts (r, n − s) like every plain ECDSA verifier: malleability is ECDSA's, not a bug", () => {
    expect<i32>(verify(RFC_U, sha("sample"), RFC_SIG_SAMPLE.slice(0, 64) + RFC_SAMPLE_N_MINUS_S)).toBe(P256_OK);
  });
  it("refuses invalid public keys with P256_ERR_POINT", () => {
    for (let i = 0; i < INVALID_POINTS.length; i++) {
      expect<i32>(verify(INVALID_POINTS[i], sha("sample"), RFC_SIG_SAMPLE)).toBe(P256_ERR_POINT);
    }
  });
  it("refuses to sign with scalars 0 and n", () => {
    const h = sha("sample");
    const sig = filled(64, 0xa5);
    const zero = filled(32, 0), n = fromHex(N);
    expect<i32>(p256Sign(ptr(sig), ptr(zero), ptr(h))).toBe(P256_ERR_SCALAR);
    expect<i32>(p256Sign(ptr(sig), ptr(n), ptr(h))).toBe(P256_ERR_SCALAR);
    expect<bool>(allBytesAre(ptr(sig), 64, 0xa5)).toBe(true);
  });
});

describe("P-256 key generation and scratch", () => {
  it("draws a key pair from the DRBG whose public half is priv·G", () => {
    const drbg = new StaticArray<u8>(<i32>DRBG_CTX_BYTES);
    const entropy = filled(32, 0x42), nonce = filled(16, 0x17);
    hmacDrbgInstantiate(ptr(drbg), ptr(entropy), 32, ptr(nonce), 16, 0, 0);
    const priv = new StaticArray<u8>(32), pub = new StaticArray<u8>(65);
    expect<i32>(p256Keygen(ptr(drbg), ptr(priv), ptr(pub))).toBe(P256_OK);
    expect<string>(toHex(ptr(pub), 65)).toBe(publicOf(toHex(ptr(priv), 32)));
    const priv2 = new StaticArray<u8>(32), pub2 = new StaticArray<u8>(65);
    expect<i32>(p256Keygen(ptr(drbg), ptr(priv2), ptr(pub2))).toBe(P256_OK);
    expect<string>(toHex(ptr(priv2), 32)).not.toBe(toHex(ptr(priv), 32));
  });
  it("leaves the scratch all zeros after every operation", () => {
    publicOf(RFC_X);
    expect<bool>(p256ScratchIsClear()).toBe(true, "public key");
    ecdh(CAVP[0][0], CAVP[0][2]);
    expect<bool>(p256ScratchIsClear()).toBe(true, "ecdh");
    const x = fromHex(RFC_X), h = sha("sample"), sig = new StaticArray<u8>(64);
    p256Sign(ptr(sig), ptr(x), ptr(h));
    expect<bool>(p256ScratchIsClear()).toBe(true, "sign");
    verify(RFC_U, h, RFC_SIG_SAMPLE);
    expect<bool>(p256ScratchIsClear()).toBe(true, "verify");
  });
});

/** Big-endian hex → limbs → f(limbs…) → big-endian hex. */
function field1(aHex: string, f: (r: usize, a: usize) => void): string {
  const a = fromHex(aHex), la = new StaticArray<u8>(32), r = new StaticArray<u8>(32);
  feFromBytes(ptr(la), ptr(a));
  f(ptr(r), ptr(la));
  const out = new StaticArray<u8>(32);
  feToBytes(ptr(out), ptr(r));
  return toHex(ptr(out), 32);
}
let fieldB: StaticArray<u8> = new StaticArray<u8>(32);
function withB(bHex: string): void {
  const b = fromHex(bHex);
  feFromBytes(ptr(fieldB), ptr(b));
}

function toFromMont(r: usize, a: usize, m: usize): void {
  montMul(r, a, m + 32, m);
  montMul(r, r, FE_ONE, m);
}
function inverse(r: usize, a: usize, m: usize): void {
  montMul(r, a, m + 32, m);
  montInv(r, r, m);
  montMul(r, r, FE_ONE, m);
}

describe("P-256 field and scalar arithmetic at the edges", () => {
  it("add and subtract wrap at p", () => {
    withB("00".repeat(31) + "01");
    expect<string>(field1(P_MINUS_1, (r, a) => modAdd(r, a, ptr(fieldB), MOD_P))).toBe("00".repeat(32));
    withB(P_MINUS_1);
    expect<string>(field1(P_MINUS_1, (r, a) => modAdd(r, a, ptr(fieldB), MOD_P))).toBe(P_MINUS_2);
    withB("00".repeat(31) + "01");
    expect<string>(field1("00".repeat(32), (r, a) => modSub(r, a, ptr(fieldB), MOD_P))).toBe(P_MINUS_1);
    withB(P_MINUS_1);
    expect<string>(field1(P_MINUS_1, (r, a) => modSub(r, a, ptr(fieldB), MOD_P))).toBe("00".repeat(32));
  });
  it("reduces n and 2^256 − 1 mod n", () => {
    expect<string>(field1(N, (r, a) => modReduce(r, a, MOD_N))).toBe("00".repeat(32));
    expect<string>(field1("ff".repeat(32), (r, a) => modReduce(r, a, MOD_N))).toBe(TOP_MOD_N);
    expect<string>(field1(N_MINUS_1, (r, a) => modReduce(r, a, MOD_N))).toBe(N_MINUS_1);
  });
  it("Montgomery form round trip and the inverse of −1 = −1, mod p and mod n", () => {
    expect<string>(field1(P_MINUS_1, (r, a) => toFromMont(r, a, MOD_P))).toBe(P_MINUS_1);
    expect<string>(field1(N_MINUS_1, (r, a) => toFromMont(r, a, MOD_N))).toBe(N_MINUS_1);
    expect<string>(field1(P_MINUS_1, (r, a) => inverse(r, a, MOD_P))).toBe(P_MINUS_1);
    expect<string>(field1(N_MINUS_1, (r, a) => inverse(r, a, MOD_N))).toBe(N_MINUS_1);
    expect<string>(field1("00".repeat(32), (r, a) => inverse(r, a, MOD_P))).toBe("00".repeat(32));
  });
});
