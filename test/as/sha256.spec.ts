// SHA-256 against published known answers (FIPS 180 examples and NIST CAVP SHAVS byte-oriented
// vectors). Every vector here is re-checked with node:crypto by test/as/tools/verify-vectors.mjs.
import { SHA256_CTX_BYTES, sha256, sha256Final, sha256Init, sha256Update } from "../../assembly/crypto/index";
import { allBytesAre, ascii, filled, fromHex, hexOf, ptr, toHex } from "./util";

/** One-shot digest of `msg` as hex; also checks that exactly 32 bytes are written. */
function digestHex(msg: StaticArray<u8>): string {
  const out = filled(32 + 16, 0xa5);
  sha256(ptr(msg), msg.length, ptr(out));
  expect<bool>(allBytesAre(ptr(out) + 32, 16, 0xa5)).toBe(true, "sha256 wrote past the 32-byte digest");
  return toHex(ptr(out), 32);
}

/** Streaming digest of `msg`, fed in pieces whose sizes cycle through `chunks`. */
function streamedHex(msg: StaticArray<u8>, chunks: i32[]): string {
  const ctx = new StaticArray<u8>(<i32>SHA256_CTX_BYTES);
  const out = new StaticArray<u8>(32);
  sha256Init(ptr(ctx));
  let off = 0;
  let k = 0;
  while (off < msg.length) {
    let n = chunks[k % chunks.length];
    k++;
    if (n > msg.length - off) n = msg.length - off;
    sha256Update(ptr(ctx), ptr(msg) + <usize>off, n);
    off += n;
  }
  sha256Final(ptr(ctx), ptr(out));
  return hexOf(out);
}

/** Checks one-shot, byte-at-a-time and irregular-chunk digests of `msg` against `md`. */
function checkAllWays(msg: StaticArray<u8>, md: string): void {
  expect<string>(digestHex(msg)).toBe(md, "one-shot sha256()");
  expect<string>(streamedHex(msg, [msg.length > 0 ? msg.length : 1])).toBe(md, "single update");
  expect<string>(streamedHex(msg, [1])).toBe(md, "byte-at-a-time updates");
  expect<string>(streamedHex(msg, [0, 3, 0, 61, 64, 7, 65, 1])).toBe(md, "irregular updates (with empty ones)");
}

describe("SHA-256 FIPS 180 examples", () => {
  // FIPS 180-2 Appendix B.1 / NIST "SHA256.pdf" example: one-block message "abc".
  it("\"abc\"", () => {
    checkAllWays(ascii("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });

  // FIPS 180-2 Appendix B.2 / NIST "SHA256.pdf" example: two-block 448-bit message.
  it("448-bit \"abcdbcdecdefdefg...nopq\"", () => {
    checkAllWays(ascii("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  });

  // NIST FIPS 180 examples ("SHA2_Additional.pdf" / FIPS 180-4 example set): 896-bit message.
  it("896-bit \"abcdefghbcdefghi...nopqrstu\"", () => {
    checkAllWays(ascii("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"),
      "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  });

  // FIPS 180-2 Appendix B.3 / NIST "SHA256.pdf" example: one million repetitions of 'a',
  // fed as 1000 updates of 1000 bytes, and as one call.
  it("one million 'a' (1000 updates of 1000 bytes, and one-shot)", () => {
    const md = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
    const chunk = filled(1000, 0x61);
    const ctx = new StaticArray<u8>(<i32>SHA256_CTX_BYTES);
    const out = new StaticArray<u8>(32);
    sha256Init(ptr(ctx));
    for (let i = 0; i < 1000; i++) sha256Update(ptr(ctx), ptr(chunk), 1000);
    sha256Final(ptr(ctx), ptr(out));
    expect<string>(hexOf(out)).toBe(md, "1000 x 1000-byte updates");
    const all = filled(1000000, 0x61);
    expect<string>(digestHex(all)).toBe(md, "one-shot");
  });
});

// NIST CAVP SHAVS byte-oriented test vectors (shabytetestvectors), SHA256ShortMsg.rsp and
// SHA256LongMsg.rsp. The lengths around 440/448/512 bits exercise the padding block boundary.
describe("SHA-256 NIST CAVP SHAVS (SHA256ShortMsg.rsp / SHA256LongMsg.rsp)", () => {
  // SHA256ShortMsg.rsp, Len = 0 (the empty string)
  it("Len = 0", () => {
    checkAllWays(new StaticArray<u8>(0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  });
  // SHA256ShortMsg.rsp, Len = 8
  it("Len = 8", () => {
    checkAllWays(fromHex("d3"), "28969cdfa74a12c82f3bad960b0b000aca2ac329deea5c2328ebc6f2ba9802c1");
  });
  // SHA256ShortMsg.rsp, Len = 24
  it("Len = 24", () => {
    checkAllWays(fromHex("b4190e"), "dff2e73091f6c05e528896c4c831b9448653dc2ff043528f6769437bc7b975c2");
  });
  // SHA256ShortMsg.rsp, Len = 448 (56 bytes: the length no longer fits in the first block)
  it("Len = 448", () => {
    checkAllWays(
      fromHex("2d52447d1244d2ebc28650e7b05654bad35b3a68eedc7f8515306b496d75f3e73385dd1b002625024b81a02f2fd6dffb6e6d561cb7d0bd7a"),
      "cfb88d6faf2de3a69d36195acec2e255e2af2b7d933997f348e09f6ce5758360");
  });
  // SHA256ShortMsg.rsp, Len = 504 (63 bytes)
  it("Len = 504", () => {
    checkAllWays(
      fromHex("e2f76e97606a872e317439f1a03fcd92e632e5bd4e7cbc4e97f1afc19a16fde92d77cbe546416b51640cddb92af996534dfd81edb17c4424cf1ac4d75aceeb"),
      "18041bd4665083001fba8c5411d2d748e8abbfdcdfd9218cb02b68a78e7d4c23");
  });
  // SHA256ShortMsg.rsp, Len = 512 (exactly one block)
  it("Len = 512", () => {
    checkAllWays(
      fromHex("5a86b737eaea8ee976a0a24da63e7ed7eefad18a101c1211e2b3650c5187c2a8a650547208251f6d4237e661c7bf4c77f335390394c37fa1a9f9be836ac28509"),
      "42e61e174fbb3897d6dd6cef3dd2802fe67b331953b06114a65c772859dfc1aa");
  });
  // SHA256LongMsg.rsp, Len = 1304 (163 bytes)
  it("Len = 1304", () => {
    checkAllWays(
      fromHex("451101250ec6f26652249d59dc974b7361d571a8101cdfd36aba3b5854d3ae086b5fdd4597721b66e3c0dc5d8c606d9657d0e323283a5217d1f53f2f284f57b85c8a61ac8924711f895c5ed90ef17745ed2d728abd22a5f7a13479a462d71b56c19a74a40b655c58edfe0a188ad2cf46cbf30524f65d423c837dd1ff2bf462ac4198007345bb44dbb7b1c861298cdf61982a833afc728fae1eda2f87aa2c9480858bec"),
      "3c593aa539fdcdae516cdf2f15000f6634185c88f505b39775fb9ab137a10aa2");
  });
});

describe("SHA-256 streaming contexts", () => {
  it("keeps two interleaved contexts independent (\"abc\" and the 448-bit example)", () => {
    const a = ascii("abc");
    const b = ascii("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq");
    const ca = new StaticArray<u8>(<i32>SHA256_CTX_BYTES);
    const cb = new StaticArray<u8>(<i32>SHA256_CTX_BYTES);
    const out = new StaticArray<u8>(32);
    sha256Init(ptr(ca));
    sha256Init(ptr(cb));
    sha256Update(ptr(ca), ptr(a), 1);
    sha256Update(ptr(cb), ptr(b), 30);
    sha256Update(ptr(ca), ptr(a) + 1, 2);
    sha256Update(ptr(cb), ptr(b) + 30, b.length - 30);
    sha256Final(ptr(ca), ptr(out));
    expect<string>(hexOf(out)).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    sha256Final(ptr(cb), ptr(out));
    expect<string>(hexOf(out)).toBe("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  });

  it("reads unaligned input and writes an unaligned digest (\"abc\")", () => {
    const buf = ascii("xabc");
    const out = filled(40, 0);
    sha256(ptr(buf) + 1, 3, ptr(out) + 3);
    expect<string>(toHex(ptr(out) + 3, 32)).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });

  it("sha256Init resets a used context (\"abc\")", () => {
    const junk = filled(100, 0x5a);
    const a = ascii("abc");
    const ctx = new StaticArray<u8>(<i32>SHA256_CTX_BYTES);
    const out = new StaticArray<u8>(32);
    sha256Init(ptr(ctx));
    sha256Update(ptr(ctx), ptr(junk), 100);
    sha256Init(ptr(ctx));
    sha256Update(ptr(ctx), ptr(a), 3);
    sha256Final(ptr(ctx), ptr(out));
    expect<string>(hexOf(out)).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });
});
