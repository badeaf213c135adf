/**
 * The cloud's DTLS 1.2 cryptography, all from node:crypto: the TLS 1.2 PRF (RFC 5246 §5, P_SHA256
 * composed from node's HMAC), PSK premaster (RFC 4279 §2), extended master secret (RFC 7627 §4),
 * key block for TLS_PSK_WITH_AES_128_CCM_8 (RFC 6655), Finished verify data, and AES-128-CCM-8
 * record protection with and without RFC 9146 connection IDs.
 */
import crypto from 'node:crypto';
import {
  CT_TLS12_CID,
  DTLS_1_2,
  EXPLICIT_NONCE_BYTES,
  PROTECTED_OVERHEAD_BYTES,
  TAG_BYTES,
  recordHeader,
  type RecordView,
} from './wire.ts';

export const MASTER_SECRET_BYTES = 48;
export const VERIFY_DATA_BYTES = 12;
const KEY_BYTES = 16;
const IV_BYTES = 4;

/** TLS 1.2 PRF with SHA-256: P_SHA256(secret, label || seed) truncated to `len` bytes. */
export function prf(secret: Buffer, label: string, seed: Buffer, len: number): Buffer {
  const labelSeed = Buffer.concat([Buffer.from(label, 'latin1'), seed]);
  const out: Buffer[] = [];
  let total = 0;
  let a = labelSeed; // A(0)
  while (total < len) {
    a = crypto.createHmac('sha256', secret).update(a).digest(); // A(i)
    const block = crypto.createHmac('sha256', secret).update(a).update(labelSeed).digest();
    out.push(block);
    total += block.length;
  }
  return Buffer.concat(out, total).subarray(0, len);
}

/** RFC 4279 §2: uint16 N, N zero bytes, uint16 N, the PSK. */
export function pskPremaster(psk: Buffer): Buffer {
  const n = psk.length;
  const pm = Buffer.alloc(4 + 2 * n);
  pm.writeUInt16BE(n, 0);
  pm.writeUInt16BE(n, 2 + n);
  psk.copy(pm, 4 + n);
  return pm;
}

/** RFC 7627 §4: master secret over the session hash (transcript through ClientKeyExchange). */
export function extendedMasterSecret(premaster: Buffer, sessionHash: Buffer): Buffer {
  return prf(premaster, 'extended master secret', sessionHash, MASTER_SECRET_BYTES);
}

/** One direction's traffic keys: AES key and the 4-byte implicit IV (salt). */
export interface DirectionKeys {
  key: crypto.KeyObject;
  iv: Buffer;
}

export interface TrafficKeys {
  client: DirectionKeys;
  server: DirectionKeys;
  /** Raw key block (client key, server key, client IV, server IV) for the session store. */
  block: Buffer;
}

/** RFC 5246 §6.3 key block for an AEAD suite: no MAC keys; 16-byte keys, 4-byte IVs. */
export function keyBlock(master: Buffer, clientRandom: Buffer, serverRandom: Buffer): Buffer {
  return prf(master, 'key expansion', Buffer.concat([serverRandom, clientRandom]), 2 * KEY_BYTES + 2 * IV_BYTES);
}

/** Keys of a session. The block is copied into an allocation of its own (it lives in caches; a pool slice would pin 8 KiB). */
export function trafficKeys(block: Buffer): TrafficKeys {
  const own = Buffer.allocUnsafeSlow(block.length);
  block.copy(own);
  return {
    client: { key: crypto.createSecretKey(own.subarray(0, 16)), iv: own.subarray(32, 36) },
    server: { key: crypto.createSecretKey(own.subarray(16, 32)), iv: own.subarray(36, 40) },
    block: own,
  };
}

export function finishedVerifyData(master: Buffer, label: 'client finished' | 'server finished', transcriptHash: Buffer): Buffer {
  return prf(master, label, transcriptHash, VERIFY_DATA_BYTES);
}

/** Additional data: RFC 5246 §6.2.3.3 without a CID, RFC 9146 §5 with one. */
function aad(type: number, version: number, epoch: number, seq: number, cid: Buffer | null, innerLen: number): Buffer {
  if (cid) {
    const a = Buffer.allocUnsafe(23 + cid.length);
    a.fill(0xff, 0, 8);
    a[8] = CT_TLS12_CID;
    a[9] = cid.length;
    a[10] = CT_TLS12_CID;
    a.writeUInt16BE(version, 11);
    a.writeUInt16BE(epoch, 13);
    a.writeUIntBE(seq, 15, 6);
    cid.copy(a, 21);
    a.writeUInt16BE(innerLen, 21 + cid.length);
    return a;
  }
  const a = Buffer.allocUnsafe(13);
  a.writeUInt16BE(epoch, 0);
  a.writeUIntBE(seq, 2, 6);
  a[8] = type;
  a.writeUInt16BE(version, 9);
  a.writeUInt16BE(innerLen, 11);
  return a;
}

function nonce(iv: Buffer, explicit: Buffer): Buffer {
  return Buffer.concat([iv, explicit], 12);
}

/**
 * Seals one record. With `cid` (the receiver's CID, non-empty) it is a tls12_cid record whose
 * inner plaintext is content || real type (no padding). Explicit nonce = epoch || seq.
 */
export function sealRecord(keys: DirectionKeys, type: number, epoch: number, seq: number, content: Buffer, cid: Buffer | null = null): Buffer {
  const useCid = cid !== null && cid.length > 0;
  const inner = useCid ? Buffer.concat([content, Buffer.from([type])]) : content;
  const outerType = useCid ? CT_TLS12_CID : type;
  const header = recordHeader(outerType, epoch, seq, EXPLICIT_NONCE_BYTES + inner.length + TAG_BYTES, useCid ? cid : null);
  const explicit = header.subarray(3, 11); // epoch || seq
  const c = crypto.createCipheriv('aes-128-ccm', keys.key, nonce(keys.iv, explicit), { authTagLength: TAG_BYTES });
  c.setAAD(aad(outerType, DTLS_1_2, epoch, seq, useCid ? cid : null, inner.length), { plaintextLength: inner.length });
  const ct = c.update(inner);
  c.final();
  return Buffer.concat([header, explicit, ct, c.getAuthTag()]);
}

export interface Opened {
  /** The real content type (inner type for tls12_cid records). */
  type: number;
  content: Buffer;
}

/** Opens a protected record; null when it does not authenticate or its inner plaintext is invalid. */
export function openRecord(keys: DirectionKeys, rec: RecordView): Opened | null {
  if (rec.body.length < PROTECTED_OVERHEAD_BYTES) return null;
  const innerLen = rec.body.length - PROTECTED_OVERHEAD_BYTES;
  const explicit = rec.body.subarray(0, EXPLICIT_NONCE_BYTES);
  const d = crypto.createDecipheriv('aes-128-ccm', keys.key, nonce(keys.iv, explicit), { authTagLength: TAG_BYTES });
  d.setAuthTag(rec.body.subarray(rec.body.length - TAG_BYTES));
  d.setAAD(aad(rec.type, rec.version, rec.epoch, rec.seq, rec.cid, innerLen), { plaintextLength: innerLen });
  const pt = d.update(rec.body.subarray(EXPLICIT_NONCE_BYTES, EXPLICIT_NONCE_BYTES + innerLen));
  try {
    d.final();
  } catch {
    return null;
  }
  if (rec.type !== CT_TLS12_CID) return { type: rec.type, content: pt };
  let end = pt.length; // strip zero padding; the last non-zero byte is the real type
  while (end > 0 && pt[end - 1] === 0) end--;
  if (end === 0) return null;
  return { type: pt[end - 1], content: pt.subarray(0, end - 1) };
}
