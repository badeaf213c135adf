// DTLS record layer units: the anti-replay window (RFC 6347 §4.1.2.6) at its edges, header
// parsing against truncated and oversized input, and a record sealed here that node:crypto
// also produced (vector generated with test/host/dtls-ref.ts sealRecord, AES-128-CCM-8).
import {
  PARSE_OK, REPLAY_WINDOW_BYTES, parseRecord, protectRecord, recBodyLen, recEpoch, recSeq, recType,
  replayCheck, replayReset, replayUpdate,
} from "../../assembly/dtls/record";
import * as C from "../../assembly/dtls/counters";
import { aes128ExpandKey, AES128_CTX_BYTES } from "../../assembly/crypto/index";
import { fromHex, hexOf, ptr, toHex } from "./util";

// Generated with node:crypto through test/host/dtls-ref.ts sealRecord (independent of this code).
const PLAIN_VECTOR = "17fefd0001000000000005001600010000000000055f916b52dfdf6f6de2821ca6b073";
const CID_VECTOR = "19fefd0001000000000005c1c2c3c4001700010000000000055f916b52dfdfd36926e97c776c682e";

function window(): StaticArray<u8> {
  const w = new StaticArray<u8>(<i32>REPLAY_WINDOW_BYTES);
  replayReset(ptr(w));
  return w;
}

describe("replay window", () => {
  it("accepts anything in a fresh epoch, then rejects the duplicate", () => {
    const w = window();
    expect<bool>(replayCheck(ptr(w), 0)).toBe(true);
    replayUpdate(ptr(w), 0);
    expect<bool>(replayCheck(ptr(w), 0)).toBe(false);
    expect<bool>(replayCheck(ptr(w), 1)).toBe(true);
  });

  it("63 behind is inside the window, 64 and 65 behind are outside", () => {
    const w = window();
    replayUpdate(ptr(w), 1000);
    expect<bool>(replayCheck(ptr(w), 1000 - 63)).toBe(true);
    expect<bool>(replayCheck(ptr(w), 1000 - 64)).toBe(false);
    expect<bool>(replayCheck(ptr(w), 1000 - 65)).toBe(false);
    replayUpdate(ptr(w), 1000 - 63);
    expect<bool>(replayCheck(ptr(w), 1000 - 63)).toBe(false);
    expect<bool>(replayCheck(ptr(w), 1000 - 62)).toBe(true);
  });

  it("sliding forward keeps the bits still inside and forgets the rest", () => {
    const w = window();
    replayUpdate(ptr(w), 10);
    replayUpdate(ptr(w), 8);
    replayUpdate(ptr(w), 50); // 10 and 8 are now 40 and 42 behind
    expect<bool>(replayCheck(ptr(w), 10)).toBe(false);
    expect<bool>(replayCheck(ptr(w), 8)).toBe(false);
    expect<bool>(replayCheck(ptr(w), 9)).toBe(true);
    replayUpdate(ptr(w), 50 + 64); // everything before 51 falls out
    expect<bool>(replayCheck(ptr(w), 50)).toBe(false);
    expect<bool>(replayCheck(ptr(w), 51)).toBe(true);
  });

  it("far ahead and the largest 48-bit sequence number", () => {
    const w = window();
    replayUpdate(ptr(w), 5);
    replayUpdate(ptr(w), 0xffffffffffff);
    expect<bool>(replayCheck(ptr(w), 0xffffffffffff)).toBe(false);
    expect<bool>(replayCheck(ptr(w), 0xffffffffffff - 1)).toBe(true);
    expect<bool>(replayCheck(ptr(w), 5)).toBe(false);
  });
});

describe("record header parsing", () => {
  it("parses type, epoch, sequence and length", () => {
    const d = fromHex("17 fefd 0001 000000000102 0003 aabbcc");
    expect<i32>(parseRecord(ptr(d), ptr(d) + 16)).toBe(PARSE_OK);
    expect<u8>(recType).toBe(23);
    expect<u32>(recEpoch).toBe(1);
    expect<u64>(recSeq).toBe(0x102);
    expect<i32>(recBodyLen).toBe(3);
  });

  it("names why a header is refused, and never reads past the datagram", () => {
    const good = fromHex("17 fefd 0001 000000000102 0003 aabbcc");
    for (let n = 0; n < 13; n++) expect<i32>(parseRecord(ptr(good), ptr(good) + n)).toBe(C.C_DROP_SHORT);
    expect<i32>(parseRecord(ptr(good), ptr(good) + 15)).toBe(C.C_DROP_LENGTH_BEYOND_DATAGRAM);
    const badType = fromHex("63 fefd 0001 000000000102 0000");
    expect<i32>(parseRecord(ptr(badType), ptr(badType) + 13)).toBe(C.C_DROP_BAD_HEADER);
    const badVersion = fromHex("17 0303 0001 000000000102 0000");
    expect<i32>(parseRecord(ptr(badVersion), ptr(badVersion) + 13)).toBe(C.C_DROP_BAD_VERSION);
    const cidNotAsked = fromHex("19 fefd 0001 000000000102 0000");
    expect<i32>(parseRecord(ptr(cidNotAsked), ptr(cidNotAsked) + 13)).toBe(C.C_DROP_BAD_HEADER);
  });
});

describe("record protection", () => {
  it("seals an application record exactly as node:crypto does (with and without a CID)", () => {
    // key 000102..0f, iv a0a1a2a3, epoch 1, seq 5, content "sleepy"
    const key = fromHex("000102030405060708090a0b0c0d0e0f");
    const iv = fromHex("a0a1a2a3");
    const ctx = new StaticArray<u8>(<i32>AES128_CTX_BYTES);
    aes128ExpandKey(ptr(ctx), ptr(key));
    const out = new StaticArray<u8>(64);
    const content = fromHex("736c65657079");
    memory.copy(ptr(out) + 13 + 8, ptr(content), 6);
    const n = protectRecord(ptr(out), 23, 1, 5, 6, ptr(ctx), ptr(iv), 0, 0);
    expect<string>(toHex(ptr(out), n)).toBe(hexOf(fromHex(PLAIN_VECTOR)));
    const cid = fromHex("c1c2c3c4");
    memory.copy(ptr(out) + 13 + 4 + 8, ptr(content), 6);
    const m = protectRecord(ptr(out), 23, 1, 5, 6, ptr(ctx), ptr(iv), ptr(cid), 4);
    expect<string>(toHex(ptr(out), m)).toBe(hexOf(fromHex(CID_VECTOR)));
  });
});
