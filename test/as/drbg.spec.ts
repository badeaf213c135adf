// HMAC_DRBG (NIST SP 800-90A Rev. 1, SHA-256, no prediction resistance) against NIST CAVP
// known answers.
//
// Source: NIST CAVP DRBG test vectors (drbgtestvectors.zip, CAVS 14.3), file HMAC_DRBG.rsp from
// the drbgvectors_no_reseed and drbgvectors_pr_false directories; groups [SHA-256]
// [PredictionResistance = False] [EntropyInputLen = 256] [NonceLen = 128]
// [ReturnedBitsLen = 1024], COUNT = 0 of each group named below. DRBGVS call sequence:
//   no_reseed: Instantiate(EntropyInput, Nonce, PersonalizationString);
//              Generate(1024 bits, AdditionalInput #1) -> discarded;
//              Generate(1024 bits, AdditionalInput #2) -> ReturnedBits.
//   pr_false:  the same with Reseed(EntropyInputReseed, AdditionalInputReseed) after Instantiate.
// Re-checked by test/as/tools/verify-vectors.mjs with an HMAC_DRBG written from SP 800-90A over
// node:crypto HMAC (itself checked against the intermediate V/Key values in the .rsp files).
import {
  DRBG_CTX_BYTES,
  hmacDrbgGenerate,
  hmacDrbgInstantiate,
  hmacDrbgReseed,
} from "../../assembly/crypto/index";
import { allBytesAre, filled, fromHex, ptr, toHex } from "./util";

/**
 * Runs the DRBGVS sequence and returns the second Generate's output as hex. `reseedHex` null means
 * a no_reseed vector. Both Generate calls request `outLen` bytes and must return 0.
 */
function drbgvs(
  entropyHex: string,
  nonceHex: string,
  persHex: string,
  reseedHex: string | null,
  addReseedHex: string,
  add1Hex: string,
  add2Hex: string,
  outLen: i32,
): string {
  const entropy = fromHex(entropyHex);
  const nonce = fromHex(nonceHex);
  const pers = fromHex(persHex);
  const add1 = fromHex(add1Hex);
  const add2 = fromHex(add2Hex);
  const ctx = new StaticArray<u8>(<i32>DRBG_CTX_BYTES);
  hmacDrbgInstantiate(ptr(ctx), ptr(entropy), entropy.length, ptr(nonce), nonce.length, ptr(pers), pers.length);
  if (reseedHex !== null) {
    const reseed = fromHex(reseedHex);
    const addReseed = fromHex(addReseedHex);
    hmacDrbgReseed(ptr(ctx), ptr(reseed), reseed.length, ptr(addReseed), addReseed.length);
  }
  const out = filled(outLen + 32, 0xa5);
  expect<i32>(hmacDrbgGenerate(ptr(ctx), ptr(out), outLen, ptr(add1), add1.length)).toBe(0, "first Generate");
  expect<bool>(allBytesAre(ptr(out) + <usize>outLen, 32, 0xa5)).toBe(true, "first Generate wrote past outLen");
  expect<i32>(hmacDrbgGenerate(ptr(ctx), ptr(out), outLen, ptr(add2), add2.length)).toBe(0, "second Generate");
  expect<bool>(allBytesAre(ptr(out) + <usize>outLen, 32, 0xa5)).toBe(true, "second Generate wrote past outLen");
  return toHex(ptr(out), outLen);
}

describe("HMAC_DRBG SHA-256 NIST CAVP, drbgvectors_no_reseed/HMAC_DRBG.rsp", () => {
  // [PersonalizationStringLen = 0] [AdditionalInputLen = 0], COUNT = 0
  it("PersonalizationStringLen = 0, AdditionalInputLen = 0, COUNT = 0", () => {
    expect<string>(drbgvs(
      "ca851911349384bffe89de1cbdc46e6831e44d34a4fb935ee285dd14b71a7488",
      "659ba96c601dc69fc902940805ec0ca8",
      "", null, "", "", "", 128,
    )).toBe("e528e9abf2dece54d47c7e75e5fe302149f817ea9fb4bee6f4199697d04d5b89d54fbb978a15b5c443c9ec21036d2460b6f73ebad0dc2aba6e624abf07745bc107694bb7547bb0995f70de25d6b29e2d3011bb19d27676c07162c8b5ccde0668961df86803482cb37ed6d5c0bb8d50cf1f50d476aa0458bdaba806f48be9dcb8");
  });

  // [PersonalizationStringLen = 0] [AdditionalInputLen = 256], COUNT = 0
  it("PersonalizationStringLen = 0, AdditionalInputLen = 256, COUNT = 0", () => {
    expect<string>(drbgvs(
      "d3cc4d1acf3dde0c4bd2290d262337042dc632948223d3a2eaab87da44295fbd",
      "0109b0e729f457328aa18569a9224921",
      "", null, "",
      "3c311848183c9a212a26f27f8c6647e40375e466a0857cc39c4e47575d53f1f6",
      "fcb9abd19ccfbccef88c9c39bfb3dd7b1c12266c9808992e305bc3cff566e4e4",
      128,
    )).toBe("9c7b758b212cd0fcecd5daa489821712e3cdea4467b560ef5ddc24ab47749a1f1ffdbbb118f4e62fcfca3371b8fbfc5b0646b83e06bfbbab5fac30ea09ea2bc76f1ea568c9be0444b2cc90517b20ca825f2d0eccd88e7175538b85d90ab390183ca6395535d34473af6b5a5b88f5a59ee7561573337ea819da0dcc3573a22974");
  });

  // [PersonalizationStringLen = 256] [AdditionalInputLen = 256], COUNT = 0
  it("PersonalizationStringLen = 256, AdditionalInputLen = 256, COUNT = 0", () => {
    expect<string>(drbgvs(
      "5d3286bc53a258a53ba781e2c4dcd79a790e43bbe0e89fb3eed39086be34174b",
      "c5422294b7318952ace7055ab7570abf",
      "2dba094d008e150d51c4135bb2f03dcde9cbf3468a12908a1b025c120c985b9d",
      null, "",
      "793a7ef8f6f0482beac542bb785c10f8b7b406a4de92667ab168ecc2cf7573c6",
      "2238cdb4e23d629fe0c2a83dd8d5144ce1a6229ef41dabe2a99ff722e510b530",
      128,
    )).toBe("d04678198ae7e1aeb435b45291458ffde0891560748b43330eaf866b5a6385e74c6fa5a5a44bdb284d436e98d244018d6acedcdfa2e9f499d8089e4db86ae89a6ab2d19cb705e2f048f97fb597f04106a1fa6a1416ad3d859118e079a0c319eb95686f4cbcce3b5101c7a0b010ef029c4ef6d06cdfac97efb9773891688c37cf");
  });

  // Same vector as "PersonalizationStringLen = 0, AdditionalInputLen = 0, COUNT = 0", but both
  // Generate calls ask for 100 (or 97) bytes: that takes the same four HMAC blocks per call as
  // 128 bytes, so the state evolves identically and the output is a prefix of ReturnedBits.
  it("partial-block requests (97 and 100 bytes) give prefixes of the COUNT = 0 ReturnedBits", () => {
    const full = "e528e9abf2dece54d47c7e75e5fe302149f817ea9fb4bee6f4199697d04d5b89d54fbb978a15b5c443c9ec21036d2460b6f73ebad0dc2aba6e624abf07745bc107694bb7547bb0995f70de25d6b29e2d3011bb19d27676c07162c8b5ccde0668961df86803482cb37ed6d5c0bb8d50cf1f50d476aa0458bdaba806f48be9dcb8";
    expect<string>(drbgvs(
      "ca851911349384bffe89de1cbdc46e6831e44d34a4fb935ee285dd14b71a7488",
      "659ba96c601dc69fc902940805ec0ca8",
      "", null, "", "", "", 100,
    )).toBe(full.substring(0, 200));
    expect<string>(drbgvs(
      "ca851911349384bffe89de1cbdc46e6831e44d34a4fb935ee285dd14b71a7488",
      "659ba96c601dc69fc902940805ec0ca8",
      "", null, "", "", "", 97,
    )).toBe(full.substring(0, 194));
  });
});

describe("HMAC_DRBG SHA-256 NIST CAVP, drbgvectors_pr_false/HMAC_DRBG.rsp", () => {
  // [PersonalizationStringLen = 0] [AdditionalInputLen = 0], COUNT = 0
  it("PersonalizationStringLen = 0, AdditionalInputLen = 0, COUNT = 0", () => {
    expect<string>(drbgvs(
      "06032cd5eed33f39265f49ecb142c511da9aff2af71203bffaf34a9ca5bd9c0d",
      "0e66f71edc43e42a45ad3c6fc6cdc4df",
      "",
      "01920a4e669ed3a85ae8a33b35a74ad7fb2a6bb4cf395ce00334a9c9a5a5d552", "",
      "", "", 128,
    )).toBe("76fc79fe9b50beccc991a11b5635783a83536add03c157fb30645e611c2898bb2b1bc215000209208cd506cb28da2a51bdb03826aaf2bd2335d576d519160842e7158ad0949d1a9ec3e66ea1b1a064b005de914eac2e9d4f2d72a8616a80225422918250ff66a41bd2f864a6a38cc5b6499dc43f7f2bd09e1e0f8f5885935124");
  });

  // [PersonalizationStringLen = 0] [AdditionalInputLen = 256], COUNT = 0
  it("PersonalizationStringLen = 0, AdditionalInputLen = 256, COUNT = 0", () => {
    expect<string>(drbgvs(
      "05ac9fc4c62a02e3f90840da5616218c6de5743d66b8e0fbf833759c5928b53d",
      "2b89a17904922ed8f017a63044848545",
      "",
      "2791126b8b52ee1fd9392a0a13e0083bed4186dc649b739607ac70ec8dcecf9b",
      "43bac13bae715092cf7eb280a2e10a962faf7233c41412f69bc74a35a584e54c",
      "3f2fed4b68d506ecefa21f3f5bb907beb0f17dbc30f6ffbba5e5861408c53a1e",
      "529030df50f410985fde068df82b935ec23d839cb4b269414c0ede6cffea5b68",
      128,
    )).toBe("02ddff5173da2fcffa10215b030d660d61179e61ecc22609b1151a75f1cbcbb4363c3a89299b4b63aca5e581e73c860491010aa35de3337cc6c09ebec8c91a6287586f3a74d9694b462d2720ea2e11bbd02af33adefb4a16e6b370fa0effd57d607547bdcfbb7831f54de7073ad2a7da987a0016a82fa958779a168674b56524");
  });

  // [PersonalizationStringLen = 256] [AdditionalInputLen = 256], COUNT = 0
  it("PersonalizationStringLen = 256, AdditionalInputLen = 256, COUNT = 0", () => {
    expect<string>(drbgvs(
      "cdb0d9117cc6dbc9ef9dcb06a97579841d72dc18b2d46a1cb61e314012bdf416",
      "d0c0d01d156016d0eb6b7e9c7c3c8da8",
      "6f0fb9eab3f9ea7ab0a719bfa879bf0aaed683307fda0c6d73ce018b6e34faaa",
      "8ec6f7d5a8e2e88f43986f70b86e050d07c84b931bcf18e601c5a3eee3064c82",
      "1ab4ca9014fa98a55938316de8ba5a68c629b0741bdd058c4d70c91cda5099b3",
      "16e2d0721b58d839a122852abd3bf2c942a31c84d82fca74211871880d7162ff",
      "53686f042a7b087d5d2eca0d2a96de131f275ed7151189f7ca52deaa78b79fb2",
      128,
    )).toBe("dda04a2ca7b8147af1548f5d086591ca4fd951a345ce52b3cd49d47e84aa31a183e31fbc42a1ff1d95afec7143c8008c97bc2a9c091df0a763848391f68cb4a366ad89857ac725a53b303ddea767be8dc5f605b1b95f6d24c9f06be65a973a089320b3cc42569dcfd4b92b62a993785b0301b3fc452445656fce22664827b88f");
  });
});

describe("HMAC_DRBG contexts", () => {
  it("two instances interleaved stay independent (no_reseed and pr_false COUNT = 0)", () => {
    const e1 = fromHex("ca851911349384bffe89de1cbdc46e6831e44d34a4fb935ee285dd14b71a7488");
    const n1 = fromHex("659ba96c601dc69fc902940805ec0ca8");
    const e2 = fromHex("06032cd5eed33f39265f49ecb142c511da9aff2af71203bffaf34a9ca5bd9c0d");
    const n2 = fromHex("0e66f71edc43e42a45ad3c6fc6cdc4df");
    const r2 = fromHex("01920a4e669ed3a85ae8a33b35a74ad7fb2a6bb4cf395ce00334a9c9a5a5d552");
    const none = new StaticArray<u8>(0);
    const c1 = new StaticArray<u8>(<i32>DRBG_CTX_BYTES);
    const c2 = new StaticArray<u8>(<i32>DRBG_CTX_BYTES);
    const out = new StaticArray<u8>(128);
    hmacDrbgInstantiate(ptr(c1), ptr(e1), 32, ptr(n1), 16, ptr(none), 0);
    hmacDrbgInstantiate(ptr(c2), ptr(e2), 32, ptr(n2), 16, ptr(none), 0);
    expect<i32>(hmacDrbgGenerate(ptr(c1), ptr(out), 128, ptr(none), 0)).toBe(0);
    hmacDrbgReseed(ptr(c2), ptr(r2), 32, ptr(none), 0);
    expect<i32>(hmacDrbgGenerate(ptr(c2), ptr(out), 128, ptr(none), 0)).toBe(0);
    expect<i32>(hmacDrbgGenerate(ptr(c1), ptr(out), 128, ptr(none), 0)).toBe(0);
    expect<string>(toHex(ptr(out), 128)).toBe("e528e9abf2dece54d47c7e75e5fe302149f817ea9fb4bee6f4199697d04d5b89d54fbb978a15b5c443c9ec21036d2460b6f73ebad0dc2aba6e624abf07745bc107694bb7547bb0995f70de25d6b29e2d3011bb19d27676c07162c8b5ccde0668961df86803482cb37ed6d5c0bb8d50cf1f50d476aa0458bdaba806f48be9dcb8");
    expect<i32>(hmacDrbgGenerate(ptr(c2), ptr(out), 128, ptr(none), 0)).toBe(0);
    expect<string>(toHex(ptr(out), 128)).toBe("76fc79fe9b50beccc991a11b5635783a83536add03c157fb30645e611c2898bb2b1bc215000209208cd506cb28da2a51bdb03826aaf2bd2335d576d519160842e7158ad0949d1a9ec3e66ea1b1a064b005de914eac2e9d4f2d72a8616a80225422918250ff66a41bd2f864a6a38cc5b6499dc43f7f2bd09e1e0f8f5885935124");
  });
});
