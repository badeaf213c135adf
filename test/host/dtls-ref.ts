/**
 * An independent reference for DTLS 1.2 / AES_128_CCM_8 built only on node:crypto, used to check
 * the firmware's records and derived keys. Written from RFC 5246, 6347, 6655, 4279 and 9146.
 */
import crypto from 'node:crypto';

export function prf(secret: Uint8Array, label: string, seed: Uint8Array, length: number): Buffer {
  const labelSeed = Buffer.concat([Buffer.from(label, 'ascii'), seed]);
  const hmac = (d: Uint8Array) => crypto.createHmac('sha256', secret).update(d).digest();
  let a = hmac(labelSeed);
  const out: Buffer[] = [];
  let n = 0;
  while (n < length) {
    const block = hmac(Buffer.concat([a, labelSeed]));
    out.push(block);
    n += block.length;
    a = hmac(a);
  }
  return Buffer.concat(out).subarray(0, length);
}

export function pskPremaster(psk: Uint8Array): Buffer {
  const n = Buffer.alloc(2);
  n.writeUInt16BE(psk.length);
  return Buffer.concat([n, Buffer.alloc(psk.length), n, psk]);
}

export interface KeyBlock {
  clientKey: Buffer;
  serverKey: Buffer;
  clientIv: Buffer;
  serverIv: Buffer;
}

export function keyBlock(master: Uint8Array, clientRandom: Uint8Array, serverRandom: Uint8Array): KeyBlock {
  const kb = prf(master, 'key expansion', Buffer.concat([serverRandom, clientRandom]), 40);
  return { clientKey: kb.subarray(0, 16), serverKey: kb.subarray(16, 32), clientIv: kb.subarray(32, 36), serverIv: kb.subarray(36, 40) };
}

export interface RecordParams {
  type: number;
  epoch: number;
  seq: bigint;
  key: Uint8Array;
  iv: Uint8Array;
  /** Connection ID to put in the record (RFC 9146); absent or empty for a plain record. */
  cid?: Uint8Array;
}

function seqBytes(epoch: number, seq: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt16BE(epoch, 0);
  b.writeUIntBE(Number(seq), 2, 6);
  return b;
}

/** A protected DTLS 1.2 record (AES-128-CCM-8) carrying `content`. */
export function sealRecord(p: RecordParams, content: Uint8Array): Buffer {
  const cid = p.cid ?? Buffer.alloc(0);
  const inner = cid.length > 0 ? Buffer.concat([content, Buffer.from([p.type])]) : Buffer.from(content);
  const es = seqBytes(p.epoch, p.seq);
  const len2 = Buffer.alloc(2);
  len2.writeUInt16BE(inner.length);
  const aad =
    cid.length > 0
      ? Buffer.concat([Buffer.alloc(8, 0xff), Buffer.from([25, cid.length, 25, 0xfe, 0xfd]), es, cid, len2])
      : Buffer.concat([es, Buffer.from([p.type, 0xfe, 0xfd]), len2]);
  const nonce = Buffer.concat([p.iv, es]);
  const c = crypto.createCipheriv('aes-128-ccm', p.key, nonce, { authTagLength: 8 });
  c.setAAD(aad, { plaintextLength: inner.length });
  const body = Buffer.concat([es, c.update(inner), c.final(), c.getAuthTag()]);
  const header = Buffer.alloc(11);
  header[0] = cid.length > 0 ? 25 : p.type;
  header.writeUInt16BE(0xfefd, 1);
  es.copy(header, 3);
  const bl = Buffer.alloc(2);
  bl.writeUInt16BE(body.length);
  return Buffer.concat([header, cid, bl, body]);
}

/** An unprotected (epoch 0) record. */
export function plainRecord(type: number, seq: bigint, content: Uint8Array, version = 0xfefd): Buffer {
  const h = Buffer.alloc(13);
  h[0] = type;
  h.writeUInt16BE(version, 1);
  h.writeUInt16BE(0, 3);
  h.writeUIntBE(Number(seq), 5, 6);
  h.writeUInt16BE(content.length, 11);
  return Buffer.concat([h, content]);
}

export interface ParsedRecord {
  type: number;
  version: number;
  epoch: number;
  seq: bigint;
  cid: Buffer;
  body: Buffer;
}

/** Splits a datagram into records; `cidLength` is the CID length records of type 25 carry. */
export function parseRecords(datagram: Uint8Array, cidLength = 0): ParsedRecord[] {
  const d = Buffer.from(datagram);
  const out: ParsedRecord[] = [];
  let at = 0;
  while (at + 13 <= d.length) {
    const type = d[at];
    const cl = type === 25 ? cidLength : 0;
    const len = d.readUInt16BE(at + 11 + cl);
    const bodyAt = at + 13 + cl;
    out.push({
      type, version: d.readUInt16BE(at + 1), epoch: d.readUInt16BE(at + 3), seq: BigInt(d.readUIntBE(at + 5, 6)),
      cid: d.subarray(at + 11, at + 11 + cl), body: d.subarray(bodyAt, bodyAt + len),
    });
    at = bodyAt + len;
  }
  return out;
}

/**
 * The same, strictly: every record must end exactly where the next begins and the last at the
 * datagram's end, so a wrong `cidLength` (the length read from inside the CID) throws instead of
 * yielding records that are right only by luck. Take `cidLength` from where it is known: the
 * session's persisted peer CID length, or the cloud's SERVER_CID_BYTES (host/cloud/wire.ts).
 */
export function parseDatagram(datagram: Uint8Array, cidLength: number): ParsedRecord[] {
  let at = 0;
  while (at < datagram.length) {
    const cl = datagram[at] === 25 ? cidLength : 0;
    if (at + 13 + cl > datagram.length) throw new Error(`record at ${at}: header beyond the datagram (${datagram.length} bytes, CID length ${cidLength})`);
    at += 13 + cl + ((datagram[at + 11 + cl] << 8) | datagram[at + 12 + cl]);
    if (at > datagram.length) throw new Error(`records do not end at the datagram's end (${at} > ${datagram.length}, CID length ${cidLength})`);
  }
  return parseRecords(datagram, cidLength);
}

/** Opens a protected record; returns { type, content } or null when it does not authenticate. */
export function openRecord(r: ParsedRecord, key: Uint8Array, iv: Uint8Array): { type: number; content: Buffer } | null {
  if (r.body.length < 16) return null;
  const es = seqBytes(r.epoch, r.seq);
  const nonce = Buffer.concat([iv, r.body.subarray(0, 8)]);
  const ct = r.body.subarray(8, r.body.length - 8);
  const len2 = Buffer.alloc(2);
  len2.writeUInt16BE(ct.length);
  const aad =
    r.type === 25
      ? Buffer.concat([Buffer.alloc(8, 0xff), Buffer.from([25, r.cid.length, 25, 0xfe, 0xfd]), es, r.cid, len2])
      : Buffer.concat([es, Buffer.from([r.type, 0xfe, 0xfd]), len2]);
  const d = crypto.createDecipheriv('aes-128-ccm', key, nonce, { authTagLength: 8 });
  d.setAuthTag(r.body.subarray(r.body.length - 8));
  d.setAAD(aad, { plaintextLength: ct.length });
  const pt = d.update(ct);
  try {
    d.final();
  } catch {
    return null;
  }
  if (r.type !== 25) return { type: r.type, content: pt };
  let end = pt.length - 1;
  while (end >= 0 && pt[end] === 0) end--; // strip zero padding, then the real type
  return { type: pt[end], content: pt.subarray(0, end) };
}

/** True when `needle` occurs anywhere in `haystack`. */
export function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(haystack).indexOf(Buffer.from(needle)) >= 0;
}
