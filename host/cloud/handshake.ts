/**
 * DTLS 1.2 handshake messages the server reads and writes (RFC 6347 §4.2, RFC 5246 §7.4,
 * RFC 4279 PSK, RFC 8422 ECDHE-ECDSA, RFC 7250 raw public keys, RFC 7627, RFC 5746, RFC 9146).
 * Parsers check every length against its enclosing block and return null (or a reason) instead of
 * throwing or reading past the input.
 */
import { DTLS_1_0, DTLS_1_2, readVector, u16, vec16, vec8 } from './wire.ts';

export const HT_CLIENT_HELLO = 1;
export const HT_SERVER_HELLO = 2;
export const HT_HELLO_VERIFY_REQUEST = 3;
export const HT_CERTIFICATE = 11;
export const HT_SERVER_KEY_EXCHANGE = 12;
export const HT_CERTIFICATE_REQUEST = 13;
export const HT_SERVER_HELLO_DONE = 14;
export const HT_CERTIFICATE_VERIFY = 15;
export const HT_CLIENT_KEY_EXCHANGE = 16;
export const HT_FINISHED = 20;

export const HANDSHAKE_HEADER_BYTES = 12;

/** TLS_PSK_WITH_AES_128_CCM_8 (RFC 6655). */
export const SUITE_PSK_AES128_CCM8 = 0xc0a8;
/** TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 (RFC 7251). */
export const SUITE_ECDHE_ECDSA_AES128_CCM8 = 0xc0ae;
/** TLS_EMPTY_RENEGOTIATION_INFO_SCSV (RFC 5746 §3.3). */
export const SCSV_RENEGOTIATION = 0x00ff;

export const EXT_EXTENDED_MASTER_SECRET = 0x0017;
export const EXT_RENEGOTIATION_INFO = 0xff01;
export const EXT_CONNECTION_ID = 54;
export const EXT_SUPPORTED_GROUPS = 10;
export const EXT_EC_POINT_FORMATS = 11;
export const EXT_SIGNATURE_ALGORITHMS = 13;
export const EXT_CLIENT_CERTIFICATE_TYPE = 19;
export const EXT_SERVER_CERTIFICATE_TYPE = 20;

/** RFC 7250 CertificateType RawPublicKey. */
export const CERT_TYPE_RAW_PUBLIC_KEY = 2;
/** RFC 8422 NamedCurve secp256r1, ECPointFormat uncompressed, ECCurveType named_curve. */
export const GROUP_SECP256R1 = 23;
export const POINT_FORMAT_UNCOMPRESSED = 0;
export const CURVE_TYPE_NAMED = 3;
/** SignatureAndHashAlgorithm {sha256, ecdsa} (RFC 5246 §7.4.1.4.1): ecdsa_secp256r1_sha256. */
export const SIG_ECDSA_SECP256R1_SHA256 = 0x0403;
/** ClientCertificateType ecdsa_sign (RFC 8422 §5.5). */
export const CLIENT_CERT_ECDSA_SIGN = 64;

export const ALERT_FATAL = 2;
export const ALERT_CLOSE_NOTIFY = 0;
export const ALERT_HANDSHAKE_FAILURE = 40;
export const ALERT_BAD_CERTIFICATE = 42;
export const ALERT_UNSUPPORTED_CERTIFICATE = 43;
export const ALERT_ILLEGAL_PARAMETER = 47;
export const ALERT_DECODE_ERROR = 50;
export const ALERT_DECRYPT_ERROR = 51;
export const ALERT_PROTOCOL_VERSION = 70;
export const ALERT_UNKNOWN_PSK_IDENTITY = 115;

export interface HandshakeFragment {
  msgType: number;
  length: number;
  messageSeq: number;
  fragmentOffset: number;
  fragment: Buffer;
}

/** Splits a handshake record's body into fragments; null when any header or length is bad. */
export function parseHandshakeFragments(body: Buffer): HandshakeFragment[] | null {
  const out: HandshakeFragment[] = [];
  let off = 0;
  while (off < body.length) {
    if (body.length - off < HANDSHAKE_HEADER_BYTES) return null;
    const msgType = body[off];
    const length = body.readUIntBE(off + 1, 3);
    const messageSeq = body.readUInt16BE(off + 4);
    const fragmentOffset = body.readUIntBE(off + 6, 3);
    const fragmentLength = body.readUIntBE(off + 9, 3);
    const start = off + HANDSHAKE_HEADER_BYTES;
    if (fragmentOffset + fragmentLength > length || start + fragmentLength > body.length) return null;
    out.push({ msgType, length, messageSeq, fragmentOffset, fragment: body.subarray(start, start + fragmentLength) });
    off = start + fragmentLength;
  }
  return out;
}

/** A whole (unfragmented) handshake message with its 12-byte DTLS header. */
export function handshakeMessage(msgType: number, messageSeq: number, body: Buffer): Buffer {
  const h = Buffer.alloc(HANDSHAKE_HEADER_BYTES);
  h[0] = msgType;
  h.writeUIntBE(body.length, 1, 3);
  h.writeUInt16BE(messageSeq, 4);
  h.writeUIntBE(0, 6, 3);
  h.writeUIntBE(body.length, 9, 3);
  return Buffer.concat([h, body]);
}

export interface ClientHello {
  clientVersion: number;
  random: Buffer;
  sessionId: Buffer;
  cookie: Buffer;
  cipherSuites: number[];
  compressionMethods: Buffer;
  /** Extension type → data. */
  extensions: Map<number, Buffer>;
  /** The body without the cookie vector's contents (what the cookie MAC covers). */
  cookieless: Buffer;
}

export type ClientHelloFailure =
  | 'short'
  | 'bad_version'
  | 'bad_session_id'
  | 'bad_cookie'
  | 'bad_cipher_suites'
  | 'bad_compression'
  | 'bad_extensions';

export function parseClientHello(body: Buffer): ClientHello | ClientHelloFailure {
  if (body.length < 2 + 32 + 1) return 'short';
  const clientVersion = body.readUInt16BE(0);
  // DTLS versions count down: FEFD (1.2) < FEFF (1.0). Anything not DTLS is refused.
  if (clientVersion !== DTLS_1_2 && clientVersion !== DTLS_1_0) return 'bad_version';
  const random = body.subarray(2, 34);
  const sid = readVector(body, 34, 1);
  if (!sid || sid.value.length > 32) return 'bad_session_id';
  const cookieAt = sid.next;
  const cookie = readVector(body, cookieAt, 1);
  if (!cookie || cookie.value.length > 255) return 'bad_cookie';
  const suites = readVector(body, cookie.next, 2);
  if (!suites || suites.value.length < 2 || suites.value.length % 2 !== 0) return 'bad_cipher_suites';
  const cipherSuites: number[] = [];
  for (let i = 0; i < suites.value.length; i += 2) cipherSuites.push(suites.value.readUInt16BE(i));
  const comp = readVector(body, suites.next, 1);
  if (!comp || comp.value.length < 1) return 'bad_compression';
  const extensions = new Map<number, Buffer>();
  if (comp.next < body.length) {
    const exts = readVector(body, comp.next, 2);
    if (!exts || exts.next !== body.length) return 'bad_extensions';
    let off = 0;
    const e = exts.value;
    while (off < e.length) {
      if (e.length - off < 4) return 'bad_extensions';
      const type = e.readUInt16BE(off);
      const data = readVector(e, off + 2, 2);
      if (!data || extensions.has(type)) return 'bad_extensions';
      extensions.set(type, data.value);
      off = data.next;
    }
  }
  const cookieless = Buffer.concat([body.subarray(0, cookieAt), body.subarray(cookie.next)]);
  return {
    clientVersion,
    random,
    sessionId: sid.value,
    cookie: cookie.value,
    cipherSuites,
    compressionMethods: comp.value,
    extensions,
    cookieless,
  };
}

/** The connection_id extension's CID, or null when absent or malformed (RFC 9146 §3). */
export function parseCidExtension(data: Buffer): Buffer | null {
  const v = readVector(data, 0, 1);
  if (!v || v.next !== data.length) return null;
  return v.value;
}

/** RFC 6347 §4.2.1: server_version is DTLS 1.0 in HelloVerifyRequest, whatever is negotiated. */
export function helloVerifyRequestBody(cookie: Buffer): Buffer {
  return Buffer.concat([u16(DTLS_1_0), vec8(cookie)]);
}

export interface ServerHelloParams {
  random: Buffer;
  secureRenegotiation: boolean;
  /** The server's CID when the client offered the extension; null otherwise. */
  cid: Buffer | null;
  /** The chosen suite (default: the PSK suite). */
  suite?: number;
  /** ECDHE-ECDSA: answer ec_point_formats (only when the client sent it, RFC 8422 §5.2). */
  pointFormats?: boolean;
}

export function serverHelloBody(p: ServerHelloParams): Buffer {
  const suite = p.suite ?? SUITE_PSK_AES128_CCM8;
  const exts: Buffer[] = [];
  if (p.secureRenegotiation) exts.push(u16(EXT_RENEGOTIATION_INFO), vec16(vec8(Buffer.alloc(0))));
  exts.push(u16(EXT_EXTENDED_MASTER_SECRET), u16(0));
  if (p.cid) exts.push(u16(EXT_CONNECTION_ID), vec16(vec8(p.cid)));
  if (suite === SUITE_ECDHE_ECDSA_AES128_CCM8) {
    if (p.pointFormats) exts.push(u16(EXT_EC_POINT_FORMATS), vec16(vec8(Buffer.from([POINT_FORMAT_UNCOMPRESSED]))));
    // RFC 7250 §4.1: in the ServerHello each is one CertificateType, not a list.
    exts.push(u16(EXT_SERVER_CERTIFICATE_TYPE), vec16(Buffer.from([CERT_TYPE_RAW_PUBLIC_KEY])));
    exts.push(u16(EXT_CLIENT_CERTIFICATE_TYPE), vec16(Buffer.from([CERT_TYPE_RAW_PUBLIC_KEY])));
  }
  return Buffer.concat([
    u16(DTLS_1_2),
    p.random,
    vec8(Buffer.alloc(0)), // no session id: this server does not resume sessions
    u16(suite),
    Buffer.from([0]), // null compression
    vec16(Buffer.concat(exts)),
  ]);
}

/** RFC 4279 §2: ServerKeyExchange carrying only the PSK identity hint. */
export function serverKeyExchangeBody(hint: Buffer): Buffer {
  return vec16(hint);
}

/** RFC 4279 §2: ClientKeyExchange = psk_identity<0..2^16-1>; null when malformed. */
export function parseClientKeyExchange(body: Buffer): Buffer | null {
  const v = readVector(body, 0, 2);
  if (!v || v.next !== body.length || v.value.length === 0) return null;
  return v.value;
}

export function alertBody(level: number, description: number): Buffer {
  return Buffer.from([level, description]);
}

function u24(n: number): Buffer {
  const b = Buffer.allocUnsafe(3);
  b.writeUIntBE(n, 0, 3);
  return b;
}

/** A vector with a 3-byte length (certificate lists, RFC 5246 §7.4.2). */
function vec24(v: Buffer): Buffer {
  return Buffer.concat([u24(v.length), v]);
}

/**
 * RFC 7250 §3: with certificate type RawPublicKey the Certificate message is one
 * ASN.1_subjectPublicKeyInfo<1..2^24-1> — not the X.509 certificate_list of RFC 5246.
 */
export function certificateBody(spki: Buffer): Buffer {
  return vec24(spki);
}

/** The SubjectPublicKeyInfo of a RawPublicKey Certificate message (RFC 7250 §3); null when malformed. */
export function parseRawPublicKeyCertificate(body: Buffer): Buffer | null {
  if (body.length < 3) return null;
  const len = body.readUIntBE(0, 3);
  if (len === 0 || 3 + len !== body.length) return null;
  return body.subarray(3);
}

/** ServerECDHParams (RFC 8422 §5.4): named_curve secp256r1 and the ephemeral point. */
export function ecdhParams(point: Buffer): Buffer {
  return Buffer.concat([Buffer.from([CURVE_TYPE_NAMED]), u16(GROUP_SECP256R1), vec8(point)]);
}

/** ServerKeyExchange for ECDHE_ECDSA: params, then digitally-signed (algorithm, DER signature). */
export function serverKeyExchangeEcdheBody(params: Buffer, signature: Buffer): Buffer {
  return Buffer.concat([params, u16(SIG_ECDSA_SECP256R1_SHA256), vec16(signature)]);
}

/** What the ServerKeyExchange signature covers: client_random || server_random || ServerECDHParams. */
export function serverKeyExchangeSigned(clientRandom: Buffer, serverRandom: Buffer, params: Buffer): Buffer {
  return Buffer.concat([clientRandom, serverRandom, params]);
}

/** CertificateRequest (RFC 5246 §7.4.4): ecdsa_sign, ecdsa_secp256r1_sha256, no CA names. */
export function certificateRequestBody(): Buffer {
  return Buffer.concat([vec8(Buffer.from([CLIENT_CERT_ECDSA_SIGN])), vec16(u16(SIG_ECDSA_SECP256R1_SHA256)), vec16(Buffer.alloc(0))]);
}

/** ClientKeyExchange for ECDHE (RFC 8422 §5.7): ecdh_Yc<1..255>; null when malformed. */
export function parseClientKeyExchangeEcdhe(body: Buffer): Buffer | null {
  const v = readVector(body, 0, 1);
  if (!v || v.next !== body.length || v.value.length === 0) return null;
  return v.value;
}

/** CertificateVerify (RFC 5246 §7.4.8): SignatureAndHashAlgorithm and signature<0..2^16-1>; null when malformed. */
export function parseCertificateVerify(body: Buffer): { algorithm: number; signature: Buffer } | null {
  if (body.length < 4) return null;
  const v = readVector(body, 2, 2);
  if (!v || v.next !== body.length || v.value.length === 0) return null;
  return { algorithm: body.readUInt16BE(0), signature: v.value };
}

/** A list extension's items: u8 items in a 1-byte-length vector (certificate types, point formats); null when malformed. */
export function parseU8List(data: Buffer): number[] | null {
  const v = readVector(data, 0, 1);
  if (!v || v.next !== data.length || v.value.length === 0) return null;
  return [...v.value];
}

/** u16 items in a 2-byte-length vector (supported_groups, signature_algorithms); null when malformed. */
export function parseU16List(data: Buffer): number[] | null {
  const v = readVector(data, 0, 2);
  if (!v || v.next !== data.length || v.value.length === 0 || v.value.length % 2 !== 0) return null;
  const out: number[] = [];
  for (let i = 0; i < v.value.length; i += 2) out.push(v.value.readUInt16BE(i));
  return out;
}
