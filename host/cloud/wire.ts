/**
 * DTLS 1.2 record framing (RFC 6347 §4.1, RFC 9146 §4): constants, header parsing and writing.
 * Pure byte work; no crypto and no state.
 */

export const CT_CHANGE_CIPHER_SPEC = 20;
export const CT_ALERT = 21;
export const CT_HANDSHAKE = 22;
export const CT_APPLICATION_DATA = 23;
export const CT_TLS12_CID = 25;

export const DTLS_1_2 = 0xfefd;
export const DTLS_1_0 = 0xfeff;

/** type(1) version(2) epoch(2) sequence(6) length(2). */
export const RECORD_HEADER_BYTES = 13;
/** Explicit nonce(8) + CCM_8 tag(8): the smallest protected payload. */
export const PROTECTED_OVERHEAD_BYTES = 16;
export const EXPLICIT_NONCE_BYTES = 8;
export const TAG_BYTES = 8;
/** Largest sequence number (48 bits). */
export const MAX_SEQ = 2 ** 48 - 1;

/** Length of the connection IDs this cloud issues (what devices put in their records). */
export const SERVER_CID_BYTES = 12;

export interface RecordView {
  type: number;
  version: number;
  epoch: number;
  seq: number;
  /** The CID in the header (tls12_cid records only). */
  cid: Buffer | null;
  /** Header bytes, CID included. */
  header: Buffer;
  /** The record's payload (exactly `length` bytes). */
  body: Buffer;
  /** Bytes of the whole record (header + body). */
  size: number;
}

export type ParseFailure = 'short_header' | 'bad_version' | 'bad_content_type' | 'length_exceeds_datagram';

/**
 * Parses the record starting at `offset`. A tls12_cid record is read with a CID of `cidLen` bytes
 * (the length this cloud issues). Never reads past the datagram.
 */
export function parseRecord(dgram: Buffer, offset: number, cidLen = SERVER_CID_BYTES): RecordView | ParseFailure {
  const left = dgram.length - offset;
  if (left < RECORD_HEADER_BYTES) return 'short_header';
  const type = dgram[offset];
  if (type < CT_CHANGE_CIPHER_SPEC || (type > CT_APPLICATION_DATA && type !== CT_TLS12_CID)) return 'bad_content_type';
  const version = dgram.readUInt16BE(offset + 1);
  if (version !== DTLS_1_2 && version !== DTLS_1_0) return 'bad_version';
  const epoch = dgram.readUInt16BE(offset + 3);
  const seq = dgram.readUIntBE(offset + 5, 6);
  const cidBytes = type === CT_TLS12_CID ? cidLen : 0;
  const headerLen = RECORD_HEADER_BYTES + cidBytes;
  if (left < headerLen) return 'short_header';
  const length = dgram.readUInt16BE(offset + headerLen - 2);
  if (left - headerLen < length) return 'length_exceeds_datagram';
  return {
    type,
    version,
    epoch,
    seq,
    cid: cidBytes ? dgram.subarray(offset + 11, offset + 11 + cidBytes) : null,
    header: dgram.subarray(offset, offset + headerLen),
    body: dgram.subarray(offset + headerLen, offset + headerLen + length),
    size: headerLen + length,
  };
}

/** Writes a record header (with `cid` between sequence and length when given). */
export function recordHeader(type: number, epoch: number, seq: number, length: number, cid: Buffer | null = null, version = DTLS_1_2): Buffer {
  const cidLen = cid ? cid.length : 0;
  const h = Buffer.allocUnsafe(RECORD_HEADER_BYTES + cidLen);
  h[0] = type;
  h.writeUInt16BE(version, 1);
  h.writeUInt16BE(epoch, 3);
  h.writeUIntBE(seq, 5, 6);
  if (cid) cid.copy(h, 11);
  h.writeUInt16BE(length, 11 + cidLen);
  return h;
}

/** A plaintext record (epoch 0). */
export function plainRecord(type: number, seq: number, body: Buffer, version = DTLS_1_2): Buffer {
  return Buffer.concat([recordHeader(type, 0, seq, body.length, null, version), body]);
}

/** Reads a vector with a 1- or 2-byte length prefix; returns null when it runs past `end`. */
export function readVector(buf: Buffer, offset: number, lenBytes: 1 | 2, end = buf.length): { value: Buffer; next: number } | null {
  if (offset + lenBytes > end) return null;
  const len = lenBytes === 1 ? buf[offset] : buf.readUInt16BE(offset);
  const start = offset + lenBytes;
  if (start + len > end) return null;
  return { value: buf.subarray(start, start + len), next: start + len };
}

export function u8(n: number): Buffer {
  return Buffer.from([n & 0xff]);
}

export function u16(n: number): Buffer {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(n, 0);
  return b;
}

export function vec8(v: Buffer): Buffer {
  return Buffer.concat([u8(v.length), v]);
}

export function vec16(v: Buffer): Buffer {
  return Buffer.concat([u16(v.length), v]);
}
