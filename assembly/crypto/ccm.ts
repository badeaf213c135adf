// AES-CCM (RFC 3610, NIST SP 800-38C), generic in nonce length (7..13) and tag length
// (4..16, even). DTLS uses it as AES_128_CCM_8: 12-byte nonce, 8-byte tag (RFC 6655).
import { aes128EncryptBlock } from './aes';
import { ctEqual, zeroize } from './ct';

export const CCM_ERR_AUTH: i32 = -1;
export const CCM_ERR_PARAM: i32 = -2;

// Scratch blocks: CBC-MAC state, counter block, keystream / staging block, received tag.
const X: usize = memory.data(16, 16);
const CTR: usize = memory.data(16, 16);
const KS: usize = memory.data(16, 16);
const TAG: usize = memory.data(16, 16);

function paramsOk(nonceLen: i32, aadLen: i32, textLen: i32, tagLen: i32): bool {
  if (nonceLen < 7 || nonceLen > 13) return false;
  if (tagLen < 4 || tagLen > 16 || (tagLen & 1) != 0) return false;
  if (aadLen < 0 || textLen < 0) return false;
  const lengthFieldBytes = 15 - nonceLen;
  // The message length must fit in the L-byte length field.
  if (lengthFieldBytes < 4 && (<u32>textLen >> (<u32>lengthFieldBytes << 3)) != 0) return false;
  return true;
}

@inline function xorBlockInto(dst: usize, src: usize): void {
  store<u64>(dst, load<u64>(dst) ^ load<u64>(src));
  store<u64>(dst, load<u64>(dst, 8) ^ load<u64>(src, 8), 8);
}

/** CBC-MAC over B0 and the encoded AAD, leaving the running MAC in X. */
function macHeader(ctx: usize, nonce: usize, nonceLen: i32, aad: usize, aadLen: i32, textLen: i32, tagLen: i32): void {
  const lengthFieldBytes = 15 - nonceLen;
  // B0 = flags || nonce || message length (big-endian, L bytes)
  store<u8>(X, <u8>((aadLen > 0 ? 0x40 : 0) | (((tagLen - 2) >> 1) << 3) | (lengthFieldBytes - 1)));
  memory.copy(X + 1, nonce, <usize>nonceLen);
  let len = <u32>textLen;
  for (let i = 15; i > nonceLen; i--) {
    store<u8>(X + <usize>i, <u8>len);
    len >>= 8;
  }
  aes128EncryptBlock(ctx, X, X);
  if (aadLen <= 0) return;
  // AAD length encoding: 2 bytes below 2^16 - 2^8, else 0xFFFE || 4 bytes.
  let pos: i32;
  if (aadLen < 0xff00) {
    store<u8>(X, load<u8>(X) ^ <u8>(aadLen >> 8));
    store<u8>(X + 1, load<u8>(X + 1) ^ <u8>aadLen);
    pos = 2;
  } else {
    store<u8>(X, load<u8>(X) ^ 0xff);
    store<u8>(X + 1, load<u8>(X + 1) ^ 0xfe);
    store<u8>(X + 2, load<u8>(X + 2) ^ <u8>(aadLen >>> 24));
    store<u8>(X + 3, load<u8>(X + 3) ^ <u8>(aadLen >> 16));
    store<u8>(X + 4, load<u8>(X + 4) ^ <u8>(aadLen >> 8));
    store<u8>(X + 5, load<u8>(X + 5) ^ <u8>aadLen);
    pos = 6;
  }
  let i = 0;
  while (i < aadLen) {
    store<u8>(X + <usize>pos, load<u8>(X + <usize>pos) ^ load<u8>(aad + <usize>i));
    i++;
    pos++;
    if (pos == 16) {
      aes128EncryptBlock(ctx, X, X);
      pos = 0;
    }
  }
  if (pos != 0) aes128EncryptBlock(ctx, X, X);
}

/** Counter block A_i = flags || nonce || i; the caller increments the counter field. */
function initCounter(nonce: usize, nonceLen: i32): void {
  memory.fill(CTR, 0, 16);
  store<u8>(CTR, <u8>(14 - nonceLen));
  memory.copy(CTR + 1, nonce, <usize>nonceLen);
}

@inline function incrementCounter(): void {
  // The counter never exceeds the block count of one record, far below 2^32, but carry anyway.
  for (let i = 15; i > 0; i--) {
    const v = <u8>(load<u8>(CTR + <usize>i) + 1);
    store<u8>(CTR + <usize>i, v);
    if (v != 0) break;
  }
}

/**
 * Seal: ciphertext (textLen bytes) then tag (tagLen bytes) written at `out`.
 * `out` may equal `text`. Returns the output length or CCM_ERR_PARAM.
 */
export function ccmSeal(
  ctx: usize, nonce: usize, nonceLen: i32, aad: usize, aadLen: i32,
  text: usize, textLen: i32, out: usize, tagLen: i32,
): i32 {
  if (!paramsOk(nonceLen, aadLen, textLen, tagLen)) return CCM_ERR_PARAM;
  macHeader(ctx, nonce, nonceLen, aad, aadLen, textLen, tagLen);
  initCounter(nonce, nonceLen);
  let off = 0;
  while (off < textLen) {
    const n = min(16, textLen - off);
    incrementCounter();
    aes128EncryptBlock(ctx, CTR, KS);
    const src = text + <usize>off, dst = out + <usize>off;
    if (n == 16) {
      const a = load<u64>(src), b = load<u64>(src, 8);
      store<u64>(X, load<u64>(X) ^ a);
      store<u64>(X, load<u64>(X, 8) ^ b, 8);
      store<u64>(dst, a ^ load<u64>(KS));
      store<u64>(dst, b ^ load<u64>(KS, 8), 8);
    } else {
      for (let i = 0; i < n; i++) {
        const p = load<u8>(src + <usize>i);
        store<u8>(X + <usize>i, load<u8>(X + <usize>i) ^ p);
        store<u8>(dst + <usize>i, p ^ load<u8>(KS + <usize>i));
      }
    }
    aes128EncryptBlock(ctx, X, X);
    off += 16;
  }
  // Tag = first tagLen bytes of CBC-MAC xor E(A_0).
  memory.fill(CTR + <usize>(nonceLen + 1), 0, <usize>(15 - nonceLen));
  aes128EncryptBlock(ctx, CTR, KS);
  xorBlockInto(X, KS);
  memory.copy(out + <usize>textLen, X, <usize>tagLen);
  zeroize(X, 16);
  zeroize(KS, 16);
  return textLen + tagLen;
}

/**
 * Open: `data` holds ciphertext followed by the tag (`dataLen` includes the tag). Plaintext goes
 * to `out` (may equal `data`). Returns the plaintext length, CCM_ERR_AUTH (out is then zeroed:
 * unauthenticated plaintext is never released) or CCM_ERR_PARAM.
 */
export function ccmOpen(
  ctx: usize, nonce: usize, nonceLen: i32, aad: usize, aadLen: i32,
  data: usize, dataLen: i32, out: usize, tagLen: i32,
): i32 {
  const textLen = dataLen - tagLen;
  if (textLen < 0 || !paramsOk(nonceLen, aadLen, textLen, tagLen)) return CCM_ERR_PARAM;
  // Keep the received tag before an in-place decryption could overwrite neighbouring bytes.
  memory.copy(TAG, data + <usize>textLen, <usize>tagLen);
  macHeader(ctx, nonce, nonceLen, aad, aadLen, textLen, tagLen);
  initCounter(nonce, nonceLen);
  let off = 0;
  while (off < textLen) {
    const n = min(16, textLen - off);
    incrementCounter();
    aes128EncryptBlock(ctx, CTR, KS);
    const src = data + <usize>off, dst = out + <usize>off;
    if (n == 16) {
      const a = load<u64>(src) ^ load<u64>(KS), b = load<u64>(src, 8) ^ load<u64>(KS, 8);
      store<u64>(X, load<u64>(X) ^ a);
      store<u64>(X, load<u64>(X, 8) ^ b, 8);
      store<u64>(dst, a);
      store<u64>(dst, b, 8);
    } else {
      for (let i = 0; i < n; i++) {
        const p = load<u8>(src + <usize>i) ^ load<u8>(KS + <usize>i);
        store<u8>(X + <usize>i, load<u8>(X + <usize>i) ^ p);
        store<u8>(dst + <usize>i, p);
      }
    }
    aes128EncryptBlock(ctx, X, X);
    off += 16;
  }
  memory.fill(CTR + <usize>(nonceLen + 1), 0, <usize>(15 - nonceLen));
  aes128EncryptBlock(ctx, CTR, KS);
  xorBlockInto(X, KS);
  const ok = ctEqual(X, TAG, tagLen);
  zeroize(X, 16);
  zeroize(KS, 16);
  if (!ok) {
    zeroize(out, textLen);
    return CCM_ERR_AUTH;
  }
  return textLen;
}
