// CoAP codec (RFC 7252 §3): what the device writes, and what it refuses to parse.
import {
  COAP_ACK, COAP_CON, CODE_EMPTY, CODE_POST, URI_PATH_OPTION, msgCode, msgId, msgPayloadLen, msgTokenLen, msgType,
  parseMessage, path0Len, path1Len, pathSegments, writeHeader, writeUriPath,
} from "../../assembly/coap/message";
import { ascii, fromHex, hexOf, ptr, toHex } from "./util";

describe("CoAP codec", () => {
  it("writes a CON POST /e/reading with token and payload as RFC 7252 lays it out", () => {
    const out = new StaticArray<u8>(64);
    const token = fromHex("1234");
    let at = writeHeader(ptr(out), COAP_CON, CODE_POST, 0x1234, ptr(token), 2);
    const e = ascii("e");
    const name = ascii("reading");
    at = writeUriPath(ptr(out), at, 0, ptr(e), 1);
    at = writeUriPath(ptr(out), at, URI_PATH_OPTION, ptr(name), 7);
    // 0x42: ver 1, CON, TKL 2; 0x02 POST; mid; token; option 11 "e" (0xb1); option delta 0 "reading" (0x07)
    expect<string>(toHex(ptr(out), at)).toBe("42021234" + "1234" + "b165" + "07" + hexOf(name));
    expect<bool>(parseMessage(ptr(out), at)).toBe(true);
    expect<i32>(pathSegments).toBe(2);
    expect<i32>(path0Len).toBe(1);
    expect<i32>(path1Len).toBe(7);
  });

  it("parses an empty ACK and a message with a payload", () => {
    const ack = fromHex("60001234");
    expect<bool>(parseMessage(ptr(ack), 4)).toBe(true);
    expect<u8>(msgType).toBe(COAP_ACK);
    expect<u8>(msgCode).toBe(CODE_EMPTY);
    expect<u32>(msgId).toBe(0x1234);
    const withPayload = fromHex("4002abcd" + "b2" + "7274" + "ff" + "00112233");
    expect<bool>(parseMessage(ptr(withPayload), withPayload.length)).toBe(true);
    expect<i32>(msgTokenLen).toBe(0);
    expect<i32>(msgPayloadLen).toBe(4);
  });

  it("refuses what RFC 7252 calls a format error, never reading past the message", () => {
    const bad = [
      "", "40", "400012", // shorter than the header
      "00000000", // version 0
      "49000000", // token length 9
      "42000000aa", // token longer than the message
      "60001234ff", // empty message with more bytes
      "4202abcdff", // payload marker with no payload
      "4202abcdf0", // option delta 15 without the marker
      "4202abcdbf", // option length 15
      "4202abcdd1", // extended delta missing
      "4202abcdb5616263", // option value longer than the message
    ];
    for (let i = 0; i < bad.length; i++) {
      const b = fromHex(bad[i]);
      expect<bool>(parseMessage(ptr(b), b.length)).toBe(false, bad[i]);
    }
  });
});
