// DTLS 1.2 record layer (RFC 6347 §4.1) with AES_128_CCM_8 (RFC 6655) and RFC 9146 connection
// IDs. Parsing never reads outside the datagram; protection works in place.
import { ccmOpen, ccmSeal, CCM_ERR_AUTH } from '../crypto/ccm';
import { ctEqual } from '../crypto/ct';
import { getU16, getU48, putU16, putU48, putU8 } from './bytes';
import * as C from './counters';

export const CT_CHANGE_CIPHER_SPEC: u8 = 20;
export const CT_ALERT: u8 = 21;
export const CT_HANDSHAKE: u8 = 22;
export const CT_APPLICATION_DATA: u8 = 23;
export const CT_TLS12_CID: u8 = 25;

export const VERSION_DTLS12: u32 = 0xfefd;
/** DTLS 1.0: allowed only on unprotected handshake records (HelloVerifyRequest, RFC 6347 §4.2.1). */
export const VERSION_DTLS10: u32 = 0xfeff;

export const HEADER_BYTES: i32 = 13;
export const EXPLICIT_NONCE_BYTES: i32 = 8;
export const TAG_BYTES: i32 = 8;
/** Explicit nonce + tag: the smallest protected record body. */
export const PROTECTED_OVERHEAD: i32 = EXPLICIT_NONCE_BYTES + TAG_BYTES;
export const MAX_SEQUENCE: u64 = 0xffffffffffff;

// The record most recently parsed by parseRecord.
export let recType: u8 = 0;
export let recVersion: u32 = 0;
export let recEpoch: u32 = 0;
export let recSeq: u64 = 0;
export let recBody: usize = 0;
export let recBodyLen: i32 = 0;
export let recCid: usize = 0;
export let recCidLen: i32 = 0;
export let recEnd: usize = 0;

/** parseRecord outcomes besides OK: the counter index of the drop reason. */
export const PARSE_OK: i32 = -1;

// The connection ID we asked the server to put in records to us (RFC 9146); empty for none.
export const OWN_CID: usize = memory.data(32);
export let ownCidLen: i32 = 0;

export function setOwnCid(cid: usize, len: i32): void {
  memory.copy(OWN_CID, cid, <usize>len);
  ownCidLen = len;
}

/**
 * Parses the record header at `p` within a datagram ending at `end`. A tls12_cid record must carry
 * our own connection ID (its length is known only from the handshake, RFC 9146 §4).
 * Returns PARSE_OK or the counter index of why the rest of the datagram must be dropped.
 */
export function parseRecord(p: usize, end: usize): i32 {
  if (end < p + <usize>HEADER_BYTES) return C.C_DROP_SHORT;
  const type = load<u8>(p);
  let cidLen = 0;
  if (type == CT_TLS12_CID) {
    if (ownCidLen == 0) return C.C_DROP_BAD_HEADER;
    cidLen = ownCidLen;
    if (end < p + <usize>(HEADER_BYTES + cidLen)) return C.C_DROP_SHORT;
  } else if (type < CT_CHANGE_CIPHER_SPEC || type > CT_APPLICATION_DATA) {
    return C.C_DROP_BAD_HEADER;
  }
  const version = getU16(p + 1);
  if (version != VERSION_DTLS12 && version != VERSION_DTLS10) return C.C_DROP_BAD_VERSION;
  const length = <i32>getU16(p + 11 + <usize>cidLen);
  recType = type;
  recVersion = version;
  recEpoch = getU16(p + 3);
  recSeq = getU48(p + 5);
  recCid = p + 11;
  recCidLen = cidLen;
  recBody = p + <usize>(HEADER_BYTES + cidLen);
  recBodyLen = length;
  if (recBody + <usize>length > end) return C.C_DROP_LENGTH_BEYOND_DATAGRAM;
  recEnd = recBody + <usize>length;
  // A CID we did not issue: the record is not for this connection (after boundaries are known).
  if (cidLen > 0 && !ctEqual(recCid, OWN_CID, cidLen)) return C.C_DROP_UNKNOWN_CID;
  return PARSE_OK;
}

// --- Anti-replay (RFC 6347 §4.1.2.6): a 64-record window per epoch, updated only after a record
// authenticates. Window state: highest sequence seen (u64) and a bitmap where bit i = (max - i).

export const REPLAY_WINDOW_BYTES: usize = 16;

/** True when `seq` is new: above the window, or inside it and not yet seen. */
export function replayCheck(win: usize, seq: u64): bool {
  const max = load<u64>(win);
  const bits = load<u64>(win, 8);
  if (bits == 0) return true; // nothing received yet in this epoch
  if (seq > max) return true;
  const behind = max - seq;
  if (behind >= 64) return false;
  return ((bits >> behind) & 1) == 0;
}

export function replayUpdate(win: usize, seq: u64): void {
  const max = load<u64>(win);
  const bits = load<u64>(win, 8);
  if (bits == 0) {
    store<u64>(win, seq);
    store<u64>(win, 1, 8);
  } else if (seq > max) {
    const ahead = seq - max;
    store<u64>(win, seq);
    store<u64>(win, (ahead >= 64 ? 0 : bits << ahead) | 1, 8);
  } else {
    store<u64>(win, bits | (<u64>1 << (max - seq)), 8);
  }
}

export function replayReset(win: usize): void {
  store<u64>(win, 0);
  store<u64>(win, 0, 8);
}

// --- Protection --------------------------------------------------------------------------------

const NONCE: usize = memory.data(12, 4);
const AAD: usize = memory.data(13 + 11 + 32, 4);

/** Additional data, RFC 5246 §6.2.3.3 (or RFC 9146 §5 with a connection ID). Returns its length. */
function buildAad(type: u8, epoch: u32, seq: u64, cid: usize, cidLen: i32, innerLen: i32): i32 {
  if (cidLen > 0) {
    memory.fill(AAD, 0xff, 8); // seq_num_placeholder
    putU8(AAD + 8, CT_TLS12_CID);
    putU8(AAD + 9, <u32>cidLen);
    putU8(AAD + 10, CT_TLS12_CID);
    putU16(AAD + 11, VERSION_DTLS12);
    putU16(AAD + 13, epoch);
    putU48(AAD + 15, seq);
    memory.copy(AAD + 21, cid, <usize>cidLen);
    putU16(AAD + 21 + <usize>cidLen, <u32>innerLen);
    return 23 + cidLen;
  }
  putU16(AAD, epoch);
  putU48(AAD + 2, seq);
  putU8(AAD + 8, type);
  putU16(AAD + 9, VERSION_DTLS12);
  putU16(AAD + 11, <u32>innerLen);
  return 13;
}

/** Bytes a protected record with `contentLen` bytes of content takes on the wire. */
export function protectedRecordBytes(contentLen: i32, cidLen: i32): i32 {
  return HEADER_BYTES + cidLen + PROTECTED_OVERHEAD + contentLen + (cidLen > 0 ? 1 : 0);
}

/**
 * Writes a protected record at `out`, whose content (contentLen bytes) the caller has already placed
 * at `out + HEADER_BYTES + cidLen + EXPLICIT_NONCE_BYTES`. With a connection ID the record is
 * tls12_cid and the real type follows the content (no padding). Returns the record's length.
 */
export function protectRecord(
  out: usize, type: u8, epoch: u32, seq: u64, contentLen: i32,
  aesCtx: usize, writeIv: usize, cid: usize, cidLen: i32,
): i32 {
  const headerLen = HEADER_BYTES + cidLen;
  const text = out + <usize>(headerLen + EXPLICIT_NONCE_BYTES);
  let innerLen = contentLen;
  if (cidLen > 0) {
    store<u8>(text + <usize>contentLen, type);
    innerLen++;
  }
  putU8(out, cidLen > 0 ? CT_TLS12_CID : type);
  putU16(out + 1, VERSION_DTLS12);
  putU16(out + 3, epoch);
  putU48(out + 5, seq);
  if (cidLen > 0) memory.copy(out + 11, cid, <usize>cidLen);
  const bodyLen = EXPLICIT_NONCE_BYTES + innerLen + TAG_BYTES;
  putU16(out + <usize>(headerLen - 2), <u32>bodyLen);
  // explicit nonce = epoch || seq (RFC 6655 §3 for DTLS)
  const explicit = out + <usize>headerLen;
  putU16(explicit, epoch);
  putU48(explicit + 2, seq);
  memory.copy(NONCE, writeIv, 4);
  memory.copy(NONCE + 4, explicit, 8);
  const aadLen = buildAad(type, epoch, seq, cid, cidLen, innerLen);
  ccmSeal(aesCtx, NONCE, 12, AAD, aadLen, text, innerLen, text, TAG_BYTES);
  return headerLen + bodyLen;
}

/**
 * Decrypts the record last parsed in place. Returns the plaintext length with the plaintext at
 * `recBody + EXPLICIT_NONCE_BYTES` (for a tls12_cid record `recType` becomes the real content
 * type), or the counter index of the drop reason negated minus one (so any return < 0 is a drop).
 */
export function unprotectRecord(aesCtx: usize, readIv: usize): i32 {
  if (recBodyLen < PROTECTED_OVERHEAD) return -1 - C.C_DROP_SHORT;
  if (recVersion != VERSION_DTLS12) return -1 - C.C_DROP_BAD_VERSION;
  memory.copy(NONCE, readIv, 4);
  memory.copy(NONCE + 4, recBody, 8);
  const textLen = recBodyLen - PROTECTED_OVERHEAD;
  const aadLen = buildAad(recType, recEpoch, recSeq, recCid, recCidLen, textLen);
  const text = recBody + <usize>EXPLICIT_NONCE_BYTES;
  const n = ccmOpen(aesCtx, NONCE, 12, AAD, aadLen, text, textLen + TAG_BYTES, text, TAG_BYTES);
  if (n == CCM_ERR_AUTH || n < 0) return -1 - C.C_DROP_AUTH_FAILED;
  if (recCidLen == 0) return n;
  // DTLSInnerPlaintext: content || real type || zero padding (RFC 9146 §5)
  let end = n - 1;
  while (end >= 0 && load<u8>(text + <usize>end) == 0) end--;
  if (end < 0) return -1 - C.C_DROP_MALFORMED_MESSAGE;
  recType = load<u8>(text + <usize>end);
  return end;
}
