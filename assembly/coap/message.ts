// CoAP message codec (RFC 7252 §3), the subset the device needs: header, token (≤ 8 bytes),
// Uri-Path options, payload marker. Parsing never reads past the message.

export const COAP_CON: u8 = 0;
export const COAP_NON: u8 = 1;
export const COAP_ACK: u8 = 2;
export const COAP_RST: u8 = 3;

export const CODE_EMPTY: u8 = 0x00;
export const CODE_POST: u8 = 0x02;
export const CODE_CHANGED: u8 = 0x44; // 2.04
export const CODE_NOT_FOUND: u8 = 0x84; // 4.04
export const CODE_CONFLICT: u8 = 0x89; // 4.09: the cloud holds this event number with other content

const OPT_URI_PATH: u32 = 11;

// The message most recently parsed by parseMessage.
export let msgType: u8 = 0;
export let msgCode: u8 = 0;
export let msgId: u32 = 0;
export let msgToken: usize = 0;
export let msgTokenLen: i32 = 0;
/** First and (up to) second Uri-Path segment; enough for "/e/<name>" and "/rt". */
export let path0: usize = 0;
export let path0Len: i32 = -1;
export let path1: usize = 0;
export let path1Len: i32 = -1;
export let pathSegments: i32 = 0;
export let msgPayload: usize = 0;
export let msgPayloadLen: i32 = 0;

/** True when `len` bytes at `p` are a well-formed CoAP message (fields then readable above). */
export function parseMessage(p: usize, len: i32): bool {
  if (len < 4) return false;
  const b0 = <u32>load<u8>(p);
  if ((b0 >> 6) != 1) return false;
  msgType = <u8>((b0 >> 4) & 3);
  const tkl = <i32>(b0 & 0x0f);
  if (tkl > 8 || 4 + tkl > len) return false;
  msgCode = load<u8>(p + 1);
  msgId = (<u32>load<u8>(p + 2) << 8) | <u32>load<u8>(p + 3);
  msgToken = p + 4;
  msgTokenLen = tkl;
  if (msgCode == CODE_EMPTY && len != 4) return false; // an empty message is exactly 4 bytes
  path0Len = -1;
  path1Len = -1;
  pathSegments = 0;
  msgPayload = 0;
  msgPayloadLen = 0;
  let off = 4 + tkl;
  let number: u32 = 0;
  while (off < len) {
    const byte = <u32>load<u8>(p + <usize>(off++));
    if (byte == 0xff) {
      if (off == len) return false; // marker followed by nothing
      msgPayload = p + <usize>off;
      msgPayloadLen = len - off;
      return true;
    }
    let delta = byte >> 4;
    let optLen = <i32>(byte & 0x0f);
    if (delta == 15 || optLen == 15) return false;
    if (delta == 13) {
      if (off + 1 > len) return false;
      delta = 13 + <u32>load<u8>(p + <usize>(off++));
    } else if (delta == 14) {
      if (off + 2 > len) return false;
      delta = 269 + ((<u32>load<u8>(p + <usize>off) << 8) | <u32>load<u8>(p + <usize>off + 1));
      off += 2;
    }
    if (optLen == 13) {
      if (off + 1 > len) return false;
      optLen = 13 + <i32>load<u8>(p + <usize>(off++));
    } else if (optLen == 14) {
      if (off + 2 > len) return false;
      optLen = 269 + ((<i32>load<u8>(p + <usize>off) << 8) | <i32>load<u8>(p + <usize>off + 1));
      off += 2;
    }
    if (off + optLen > len) return false;
    number += delta;
    if (number == OPT_URI_PATH) {
      if (pathSegments == 0) {
        path0 = p + <usize>off;
        path0Len = optLen;
      } else if (pathSegments == 1) {
        path1 = p + <usize>off;
        path1Len = optLen;
      }
      pathSegments++;
    }
    off += optLen;
  }
  return true;
}

/** Writes a 4-byte header plus token; returns the offset after it. */
export function writeHeader(out: usize, type: u8, code: u8, mid: u32, token: usize, tokenLen: i32): i32 {
  store<u8>(out, <u8>(0x40 | (type << 4) | <u8>tokenLen));
  store<u8>(out + 1, code);
  store<u8>(out + 2, <u8>(mid >> 8));
  store<u8>(out + 3, <u8>mid);
  if (tokenLen > 0) memory.copy(out + 4, token, <usize>tokenLen);
  return 4 + tokenLen;
}

/** Appends a Uri-Path option (previous option number `prev`); segments are short (< 13 bytes). */
export function writeUriPath(out: usize, at: i32, prev: u32, segment: usize, segLen: i32): i32 {
  const delta = OPT_URI_PATH - prev;
  let p = out + <usize>at;
  if (segLen < 13) {
    store<u8>(p, <u8>((delta << 4) | <u32>segLen));
    p += 1;
  } else {
    store<u8>(p, <u8>((delta << 4) | 13));
    store<u8>(p + 1, <u8>(segLen - 13));
    p += 2;
  }
  memory.copy(p, segment, <usize>segLen);
  return <i32>(p - out) + segLen;
}

export const URI_PATH_OPTION: u32 = OPT_URI_PATH;
/**
 * Event-Incarnation (elective, from the experimental range of RFC 7252 §12.2): the 4-byte random
 * identity of a device's event stream, chosen at provisioning (docs/protocol.md).
 */
export const EVENT_INCARNATION_OPTION: u32 = 65000;

/** Appends an option whose number is at least 269 above `prev`, with a 4-byte value. */
export function writeOptionU32(out: usize, at: i32, prev: u32, number: u32, value: usize): i32 {
  const p = out + <usize>at;
  const ext = number - prev - 269;
  store<u8>(p, <u8>((14 << 4) | 4));
  store<u8>(p + 1, <u8>(ext >> 8));
  store<u8>(p + 2, <u8>ext);
  memory.copy(p + 3, value, 4);
  return at + 7;
}
