// DTLS 1.2 client, the handshake half: the credentials, the flights we send (ClientHello, then
// [Certificate] ClientKeyExchange [CertificateVerify] ChangeCipherSpec Finished) and their
// retransmission, the server's messages (reassembled when fragmented), the transcript and the key
// derivation (RFC 6347, RFC 4279, RFC 7627, RFC 9146). Two key exchanges, chosen by the
// credentials: PSK (TLS_PSK_WITH_AES_128_CCM_8) and ECDHE-ECDSA on P-256 with raw public keys
// (TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8: RFC 7251, RFC 8422, RFC 7250). State changes go through
// the connection half's `transition` (client.ts).
import {
  SHA256_CTX_BYTES, aes128ExpandKey, ctEqual, hmacDrbgGenerate, sha256Final, sha256Init,
  sha256Update, tlsPrfSha256, zeroize,
} from '../crypto/index';
import {
  P256_OK, P256_PUBLIC_KEY_BYTES, p256Ecdh, p256Keygen, p256PublicKey, p256Sign, p256ValidPublicKey,
  p256Verify,
} from '../crypto/p256';
import {
  DER_SIGNATURE_MAX_BYTES, SPKI_BYTES, SPKI_PREFIX, SPKI_PREFIX_BYTES, derDecodeSignature,
  derEncodeSignature,
} from './ecdsa-der';
import * as cfg from '../config';
import { getU16, getU24, putU16, putU24, putU8 } from './bytes';
import {
  CT_CHANGE_CIPHER_SPEC, CT_HANDSHAKE, VERSION_DTLS10, VERSION_DTLS12, recEpoch, replayReset,
  OWN_CID, ownCidLen,
} from './record';
import { DRBG, isSeeded } from '../entropy';
import * as C from './counters';
import * as conn from './client';

const HT_HELLO_REQUEST: u8 = 0;
const HT_CLIENT_HELLO: u8 = 1;
const HT_SERVER_HELLO: u8 = 2;
const HT_HELLO_VERIFY_REQUEST: u8 = 3;
const HT_CERTIFICATE: u8 = 11;
const HT_SERVER_KEY_EXCHANGE: u8 = 12;
const HT_CERTIFICATE_REQUEST: u8 = 13;
const HT_SERVER_HELLO_DONE: u8 = 14;
const HT_CERTIFICATE_VERIFY: u8 = 15;
const HT_CLIENT_KEY_EXCHANGE: u8 = 16;
const HT_FINISHED: u8 = 20;

const SUITE_PSK_AES_128_CCM_8: u32 = 0xc0a8;
const SUITE_ECDHE_ECDSA_AES_128_CCM_8: u32 = 0xc0ae; // RFC 7251
const SUITE_RENEGOTIATION_SCSV: u32 = 0x00ff;
const EXT_SUPPORTED_GROUPS: u32 = 10;
const EXT_EC_POINT_FORMATS: u32 = 11;
const EXT_SIGNATURE_ALGORITHMS: u32 = 13;
const EXT_CLIENT_CERTIFICATE_TYPE: u32 = 19; // RFC 7250
const EXT_SERVER_CERTIFICATE_TYPE: u32 = 20;
const EXT_EXTENDED_MASTER_SECRET: u32 = 0x0017;
const EXT_CONNECTION_ID: u32 = 0x0036; // 54, RFC 9146
const EXT_RENEGOTIATION_INFO: u32 = 0xff01;
const GROUP_SECP256R1: u32 = 23;
const POINT_FORMAT_UNCOMPRESSED: u8 = 0;
const CURVE_TYPE_NAMED: u8 = 3;
const SIGALG_ECDSA_SECP256R1_SHA256: u32 = 0x0403;
const CERT_TYPE_RAW_PUBLIC_KEY: u8 = 2;
const CLIENT_CERT_TYPE_ECDSA_SIGN: u8 = 64;
const HS_HEADER_BYTES: i32 = 12;
const FINISHED_BYTES: i32 = 12;
const MAX_HELLO_VERIFY_ROUNDS: i32 = 4;
// PRF labels as ASCII bytes (RFC 5246, RFC 7627).
const LABEL_EMS: usize = memory.data<u8>([101, 120, 116, 101, 110, 100, 101, 100, 32, 109, 97, 115, 116, 101, 114, 32, 115, 101, 99, 114, 101, 116]); // "extended master secret"
const LABEL_MS: usize = memory.data<u8>([109, 97, 115, 116, 101, 114, 32, 115, 101, 99, 114, 101, 116]); // "master secret"
const LABEL_CLIENT_FINISHED: usize = memory.data<u8>([99, 108, 105, 101, 110, 116, 32, 102, 105, 110, 105, 115, 104, 101, 100]); // "client finished"
const LABEL_SERVER_FINISHED: usize = memory.data<u8>([115, 101, 114, 118, 101, 114, 32, 102, 105, 110, 105, 115, 104, 101, 100]); // "server finished"
const LABEL_KEY_EXPANSION: usize = memory.data<u8>([107, 101, 121, 32, 101, 120, 112, 97, 110, 115, 105, 111, 110]); // "key expansion"
const LABEL_EMS_LEN: i32 = 22;
const LABEL_MS_LEN: i32 = 13;
const LABEL_FINISHED_LEN: i32 = 15;
const LABEL_KEY_EXPANSION_LEN: i32 = 13;

// --- Provisioned credentials and handshake state -------------------------------------------------
export const CRED_NONE: i32 = 0;
export const CRED_PSK: i32 = 1;
export const CRED_ECDHE: i32 = 2;
/** Which key exchange the credentials allow: the ClientHello offers that suite alone. */
let credKind: i32 = CRED_NONE;
const IDENTITY: usize = memory.data(cfg.MAX_IDENTITY_BYTES);
let identityLen: i32 = 0;
export const PSK: usize = memory.data(cfg.MAX_PSK_BYTES);
let pskLen: i32 = 0;
/** ECDHE-ECDSA: the device's long-term private key, never sent, never in a session slot. */
export const DEVICE_PRIVATE_KEY: usize = memory.data(32);
/** Its public key (0x04 ‖ X ‖ Y), computed when first needed: a scalar multiplication per boot saved. */
const DEVICE_PUBLIC_KEY: usize = memory.data(P256_PUBLIC_KEY_BYTES);
let devicePublicKeyReady: bool = false;
/** The server's public key pinned at provisioning (0x04 ‖ X ‖ Y). */
const SERVER_PUBLIC_KEY: usize = memory.data(P256_PUBLIC_KEY_BYTES);

export const CLIENT_RANDOM: usize = memory.data(32);
export const SERVER_RANDOM: usize = memory.data(32);
const COOKIE: usize = memory.data(255);
let cookieLen: i32 = 0;
let helloVerifyRounds: i32 = 0;
let sendMessageSeq: u32 = 0;
let recvMessageSeq: u32 = 0;
let extendedMasterSecret: bool = false;
export let serverCcsSeen: bool = false;
const TRANSCRIPT: usize = memory.data(<i32>SHA256_CTX_BYTES, 8);
const TRANSCRIPT_COPY: usize = memory.data(<i32>SHA256_CTX_BYTES, 8);
const HASH: usize = memory.data(32);
const PREMASTER: usize = memory.data(4 + 2 * cfg.MAX_PSK_BYTES);
export const MASTER_SECRET: usize = memory.data(48);
const KEY_BLOCK: usize = memory.data(40);
const SEED: usize = memory.data(64);
const VERIFY: usize = memory.data(FINISHED_BYTES);

// ECDHE: the server's ephemeral key from its ServerKeyExchange, ours, and where the server's flight is.
const SERVER_EPHEMERAL: usize = memory.data(P256_PUBLIC_KEY_BYTES);
const EPHEMERAL_PRIVATE: usize = memory.data(32);
const EPHEMERAL_PUBLIC: usize = memory.data(P256_PUBLIC_KEY_BYTES);
const SIGNATURE: usize = memory.data(64);
const SIGNED_PARAMS: usize = memory.data(64 + 4 + P256_PUBLIC_KEY_BYTES); // randoms ‖ ServerECDHParams
/** Server messages after ServerHello, in the order RFC 5246 §7.3 gives them. */
const STEP_SERVER_HELLO: i32 = 0;
const STEP_CERTIFICATE: i32 = 1;
const STEP_KEY_EXCHANGE: i32 = 2;
const STEP_CERTIFICATE_REQUEST: i32 = 3;
let serverStep: i32 = STEP_SERVER_HELLO;
let certificateRequested: bool = false;
/** The server agreed (RFC 7250) that our Certificate carries a raw public key. */
let clientRawKeyAgreed: bool = false;

const FLIGHT: usize = memory.data(640);
let flightLen: i32 = 0;
/** Offset in FLIGHT where the epoch-1 Finished starts (flight 5), or -1 for a ClientHello flight. */
let flightFinishedAt: i32 = -1;

// --- Reassembly of one fragmented handshake message --------------------------------------------
const REASM: usize = memory.data(cfg.MAX_HANDSHAKE_MESSAGE_BYTES);
const REASM_BITMAP: usize = memory.data(cfg.MAX_HANDSHAKE_MESSAGE_BYTES / 8);
let reasmActive: bool = false;
let reasmSeq: u32 = 0;
let reasmType: u8 = 0;
let reasmLen: i32 = 0;
export function provision(identity: usize, idLen: i32, psk: usize, keyLen: i32): i32 {
  if (idLen < 1 || idLen > cfg.MAX_IDENTITY_BYTES || keyLen < 1 || keyLen > cfg.MAX_PSK_BYTES) return -2;
  wipeCredentials();
  memory.copy(IDENTITY, identity, <usize>idLen);
  identityLen = idLen;
  memory.copy(PSK, psk, <usize>keyLen);
  pskLen = keyLen;
  credKind = CRED_PSK;
  return 0;
}

/**
 * ECDHE-ECDSA credentials: the server's public key to pin (its X ‖ Y, 64 bytes, as stored) and
 * the device's private key (32 bytes). Neither is checked here (boot must stay cheap):
 * provisioning checks them once (`validateEcdheCredentials`), and the handshake refuses what does
 * not work.
 */
export function provisionEcdhe(serverKeyXY: usize, devicePrivateKey: usize): void {
  wipeCredentials();
  store<u8>(SERVER_PUBLIC_KEY, 0x04);
  memory.copy(SERVER_PUBLIC_KEY + 1, serverKeyXY, 64);
  memory.copy(DEVICE_PRIVATE_KEY, devicePrivateKey, 32);
  credKind = CRED_ECDHE;
}

/** The server key decodes to a curve point and the private key is in [1, n − 1] (its public key computed). */
export function validateEcdheCredentials(): bool {
  return credKind == CRED_ECDHE && p256ValidPublicKey(SERVER_PUBLIC_KEY, P256_PUBLIC_KEY_BYTES) && devicePublicKey() != 0;
}

/** The device's public key (65 bytes at the returned address), or 0 without ECDHE credentials. */
export function devicePublicKey(): usize {
  if (credKind != CRED_ECDHE) return 0;
  if (!devicePublicKeyReady) {
    if (p256PublicKey(DEVICE_PUBLIC_KEY, DEVICE_PRIVATE_KEY) != P256_OK) return 0;
    devicePublicKeyReady = true;
  }
  return DEVICE_PUBLIC_KEY;
}

/** Forgets every credential (a new set replaces all of the old one, whatever its kind). */
export function wipeCredentials(): void {
  zeroize(PSK, cfg.MAX_PSK_BYTES);
  zeroize(IDENTITY, cfg.MAX_IDENTITY_BYTES); // a shorter identity leaves nothing of the old one
  identityLen = 0;
  pskLen = 0;
  zeroize(DEVICE_PRIVATE_KEY, 32);
  zeroize(DEVICE_PUBLIC_KEY, P256_PUBLIC_KEY_BYTES);
  zeroize(SERVER_PUBLIC_KEY, P256_PUBLIC_KEY_BYTES);
  devicePublicKeyReady = false;
  credKind = CRED_NONE;
}

export function isProvisioned(): bool {
  return credKind != CRED_NONE;
}

export function wipeHandshakeSecrets(): void {
  zeroize(PREMASTER, 4 + 2 * cfg.MAX_PSK_BYTES);
  zeroize(KEY_BLOCK, 40);
  zeroize(TRANSCRIPT, <i32>SHA256_CTX_BYTES);
  zeroize(TRANSCRIPT_COPY, <i32>SHA256_CTX_BYTES);
  zeroize(HASH, 32);
  zeroize(VERIFY, FINISHED_BYTES);
  zeroize(FLIGHT, 640);
  zeroize(EPHEMERAL_PRIVATE, 32);
  zeroize(SIGNED_PARAMS, 64 + 4 + P256_PUBLIC_KEY_BYTES);
  flightLen = 0;
  reasmActive = false;
}

/** Starts a full handshake. Any previous connection is destroyed first. */
export function connect(now: i64): i32 {
  if (!isProvisioned()) {
    conn.transition(conn.S_FAILED, conn.E_NOT_PROVISIONED, now);
    return -conn.E_NOT_PROVISIONED;
  }
  conn.transition(conn.S_IDLE, conn.E_NONE, now);
  if (!isSeeded() || hmacDrbgGenerate(DRBG, CLIENT_RANDOM, 32, 0, 0) != 0) {
    conn.transition(conn.S_FAILED, conn.E_NOT_SEEDED, now);
    return -conn.E_NOT_SEEDED;
  }
  conn.lastAlert = -1;
  cookieLen = 0;
  helloVerifyRounds = 0;
  sendMessageSeq = 0;
  recvMessageSeq = 0;
  extendedMasterSecret = false;
  serverCcsSeen = false;
  serverStep = STEP_SERVER_HELLO;
  certificateRequested = false;
  clientRawKeyAgreed = false;
  C.count(C.C_HANDSHAKES_STARTED);
  buildClientHello();
  sendFlight();
  conn.transition(conn.S_WAIT_SERVER_HELLO, conn.E_NONE, now);
  return 0;
}

// --- Handshake messages we send ------------------------------------------------------------------

/** Writes a handshake header for a whole (unfragmented) message at p. */
function putHandshakeHeader(p: usize, type: u8, bodyLen: i32, seq: u32): void {
  putU8(p, type);
  putU24(p + 1, <u32>bodyLen);
  putU16(p + 4, seq);
  putU24(p + 6, 0);
  putU24(p + 9, <u32>bodyLen);
}

function buildClientHello(): void {
  const m = FLIGHT;
  let p = m + <usize>HS_HEADER_BYTES;
  putU16(p, VERSION_DTLS12); p += 2;
  memory.copy(p, CLIENT_RANDOM, 32); p += 32;
  putU8(p, 0); p += 1; // no session id: we never resume by session id
  putU8(p, <u32>cookieLen); p += 1;
  memory.copy(p, COOKIE, <usize>cookieLen); p += <usize>cookieLen;
  putU16(p, 4); p += 2;
  putU16(p, credKind == CRED_ECDHE ? SUITE_ECDHE_ECDSA_AES_128_CCM_8 : SUITE_PSK_AES_128_CCM_8); p += 2;
  putU16(p, SUITE_RENEGOTIATION_SCSV); p += 2;
  putU8(p, 1); p += 1;
  putU8(p, 0); p += 1; // null compression
  const extStart = p;
  p += 2;
  putU16(p, EXT_EXTENDED_MASTER_SECRET); putU16(p + 2, 0); p += 4;
  if (credKind == CRED_ECDHE) {
    // P-256 only, uncompressed points, ECDSA with SHA-256, raw public keys both ways (RFC 8422
    // §5.1, RFC 5246 §7.4.1.4.1, RFC 7250 §3)
    putU16(p, EXT_SUPPORTED_GROUPS); putU16(p + 2, 4); putU16(p + 4, 2); putU16(p + 6, GROUP_SECP256R1); p += 8;
    putU16(p, EXT_EC_POINT_FORMATS); putU16(p + 2, 2); putU8(p + 4, 1); putU8(p + 5, POINT_FORMAT_UNCOMPRESSED); p += 6;
    putU16(p, EXT_SIGNATURE_ALGORITHMS); putU16(p + 2, 4); putU16(p + 4, 2); putU16(p + 6, SIGALG_ECDSA_SECP256R1_SHA256); p += 8;
    putU16(p, EXT_CLIENT_CERTIFICATE_TYPE); putU16(p + 2, 2); putU8(p + 4, 1); putU8(p + 5, CERT_TYPE_RAW_PUBLIC_KEY); p += 6;
    putU16(p, EXT_SERVER_CERTIFICATE_TYPE); putU16(p + 2, 2); putU8(p + 4, 1); putU8(p + 5, CERT_TYPE_RAW_PUBLIC_KEY); p += 6;
  }
  if (cfg.offerConnectionId) {
    // Our CID (set_connection_id; empty = we want none in records to us). We send with the
    // server's CID once it gives one.
    putU16(p, EXT_CONNECTION_ID); putU16(p + 2, <u32>(1 + ownCidLen)); putU8(p + 4, <u32>ownCidLen);
    memory.copy(p + 5, OWN_CID, <usize>ownCidLen);
    p += 5 + <usize>ownCidLen;
  }
  putU16(extStart, <u32>(p - extStart - 2));
  const bodyLen = <i32>(p - m) - HS_HEADER_BYTES;
  putHandshakeHeader(m, HT_CLIENT_HELLO, bodyLen, sendMessageSeq);
  flightLen = bodyLen + HS_HEADER_BYTES;
  flightFinishedAt = -1;
}

/**
 * Flight 5: [Certificate] ClientKeyExchange [CertificateVerify] ChangeCipherSpec Finished. Derives
 * the keys on the way. Returns E_NONE, or why the handshake cannot go on.
 */
function buildClientFinishedFlight(): i32 {
  let m = FLIGHT;
  let pmsLen: i32;
  if (credKind == CRED_ECDHE) {
    if (certificateRequested) {
      // Certificate with our raw public key: ASN.1_subjectPublicKeyInfo<1..2^24-1> (RFC 7250 §3)
      const pub = devicePublicKey();
      if (pub == 0) return conn.E_NOT_PROVISIONED;
      putHandshakeHeader(m, HT_CERTIFICATE, 3 + SPKI_BYTES, sendMessageSeq++);
      putU24(m + <usize>HS_HEADER_BYTES, <u32>SPKI_BYTES);
      memory.copy(m + <usize>(HS_HEADER_BYTES + 3), SPKI_PREFIX, <usize>SPKI_PREFIX_BYTES);
      memory.copy(m + <usize>(HS_HEADER_BYTES + 3 + SPKI_PREFIX_BYTES), pub, <usize>P256_PUBLIC_KEY_BYTES);
      const certLen = HS_HEADER_BYTES + 3 + SPKI_BYTES;
      sha256Update(TRANSCRIPT, m, certLen);
      m += <usize>certLen;
    }
    // ClientKeyExchange: our ephemeral point (RFC 8422 §5.7); premaster = the shared X (§5.10)
    if (p256Keygen(DRBG, EPHEMERAL_PRIVATE, EPHEMERAL_PUBLIC) != P256_OK) return conn.E_NOT_SEEDED;
    const rc = p256Ecdh(PREMASTER, EPHEMERAL_PRIVATE, SERVER_EPHEMERAL, P256_PUBLIC_KEY_BYTES);
    zeroize(EPHEMERAL_PRIVATE, 32);
    if (rc != P256_OK) return conn.E_SERVER_KEY_REJECTED;
    pmsLen = 32;
    putHandshakeHeader(m, HT_CLIENT_KEY_EXCHANGE, 1 + P256_PUBLIC_KEY_BYTES, sendMessageSeq++);
    putU8(m + <usize>HS_HEADER_BYTES, <u32>P256_PUBLIC_KEY_BYTES);
    memory.copy(m + <usize>(HS_HEADER_BYTES + 1), EPHEMERAL_PUBLIC, <usize>P256_PUBLIC_KEY_BYTES);
    const ckeLen = HS_HEADER_BYTES + 1 + P256_PUBLIC_KEY_BYTES;
    sha256Update(TRANSCRIPT, m, ckeLen);
    m += <usize>ckeLen;
  } else {
    // ClientKeyExchange: the PSK identity (RFC 4279 §2)
    const ckeBody = 2 + identityLen;
    putHandshakeHeader(m, HT_CLIENT_KEY_EXCHANGE, ckeBody, sendMessageSeq++);
    putU16(m + <usize>HS_HEADER_BYTES, <u32>identityLen);
    memory.copy(m + <usize>(HS_HEADER_BYTES + 2), IDENTITY, <usize>identityLen);
    const ckeLen = HS_HEADER_BYTES + ckeBody;
    sha256Update(TRANSCRIPT, m, ckeLen);
    m += <usize>ckeLen;
    // premaster = uint16(N) || N zero bytes || uint16(N) || psk (RFC 4279 §2)
    const n = pskLen;
    putU16(PREMASTER, <u32>n);
    memory.fill(PREMASTER + 2, 0, <usize>n);
    putU16(PREMASTER + 2 + <usize>n, <u32>n);
    memory.copy(PREMASTER + 4 + <usize>n, PSK, <usize>n);
    pmsLen = 4 + 2 * n;
  }
  // The transcript through ClientKeyExchange: EMS's session_hash (RFC 7627 §3), and what
  // CertificateVerify signs (RFC 5246 §7.4.8: every message before it).
  transcriptHash(HASH);
  if (extendedMasterSecret) {
    tlsPrfSha256(PREMASTER, pmsLen, LABEL_EMS, LABEL_EMS_LEN, HASH, 32, MASTER_SECRET, 48);
  } else {
    memory.copy(SEED, CLIENT_RANDOM, 32);
    memory.copy(SEED + 32, SERVER_RANDOM, 32);
    tlsPrfSha256(PREMASTER, pmsLen, LABEL_MS, LABEL_MS_LEN, SEED, 64, MASTER_SECRET, 48);
  }
  zeroize(PREMASTER, pmsLen);
  if (credKind == CRED_ECDHE && certificateRequested) {
    if (p256Sign(SIGNATURE, DEVICE_PRIVATE_KEY, HASH) != P256_OK) return conn.E_NOT_PROVISIONED;
    const body = m + <usize>HS_HEADER_BYTES;
    putU16(body, SIGALG_ECDSA_SECP256R1_SHA256);
    const derLen = derEncodeSignature(body + 4, SIGNATURE);
    putU16(body + 2, <u32>derLen);
    putHandshakeHeader(m, HT_CERTIFICATE_VERIFY, 4 + derLen, sendMessageSeq++);
    const cvLen = HS_HEADER_BYTES + 4 + derLen;
    sha256Update(TRANSCRIPT, m, cvLen);
    m += <usize>cvLen;
  }
  deriveKeys();

  // Finished = PRF(master, "client finished", Hash(messages))[12]
  const finishedAt = <i32>(m - FLIGHT);
  transcriptHash(HASH);
  putHandshakeHeader(m, HT_FINISHED, FINISHED_BYTES, sendMessageSeq++);
  tlsPrfSha256(MASTER_SECRET, 48, LABEL_CLIENT_FINISHED, LABEL_FINISHED_LEN, HASH, 32, m + <usize>HS_HEADER_BYTES, FINISHED_BYTES);
  sha256Update(TRANSCRIPT, m, HS_HEADER_BYTES + FINISHED_BYTES);
  flightFinishedAt = finishedAt;
  flightLen = finishedAt + HS_HEADER_BYTES + FINISHED_BYTES;
  return conn.E_NONE;
}

/** key_block = PRF(master, "key expansion", server_random || client_random). */
function deriveKeys(): void {
  memory.copy(SEED, SERVER_RANDOM, 32);
  memory.copy(SEED + 32, CLIENT_RANDOM, 32);
  tlsPrfSha256(MASTER_SECRET, 48, LABEL_KEY_EXPANSION, LABEL_KEY_EXPANSION_LEN, SEED, 64, KEY_BLOCK, 40);
  aes128ExpandKey(conn.CLIENT_WRITE, KEY_BLOCK);
  aes128ExpandKey(conn.SERVER_WRITE, KEY_BLOCK + 16);
  memory.copy(conn.CLIENT_IV, KEY_BLOCK + 32, 4);
  memory.copy(conn.SERVER_IV, KEY_BLOCK + 36, 4);
  conn.keyGeneration++;
  zeroize(KEY_BLOCK, 40);
  zeroize(SEED, 64);
}

function transcriptHash(out: usize): void {
  memory.copy(TRANSCRIPT_COPY, TRANSCRIPT, SHA256_CTX_BYTES);
  sha256Final(TRANSCRIPT_COPY, out);
}

// --- The last flight: kept as handshake messages so that retransmissions get fresh record numbers

/** (Re)sends the stored flight as one datagram with fresh record sequence numbers. */
function sendFlight(): void {
  if (!conn.beginDatagram()) return;
  if (flightFinishedAt < 0) {
    conn.appendPlainRecord(CT_HANDSHAKE, FLIGHT, flightLen);
  } else {
    conn.appendPlainRecord(CT_HANDSHAKE, FLIGHT, flightFinishedAt);
    conn.appendPlainRecord(CT_CHANGE_CIPHER_SPEC, CCS_BODY, 1);
    conn.appendProtectedRecord(CT_HANDSHAKE, FLIGHT + <usize>flightFinishedAt, flightLen - flightFinishedAt);
  }
  conn.endDatagram();
}
const CCS_BODY: usize = memory.data<u8>([1]);

export function retransmit(): void {
  C.count(C.C_FLIGHT_RETRANSMISSIONS);
  sendFlight();
}

// --- Messages from the server ---------------------------------------------------------------------

/** One record may carry several handshake messages or fragments. */
export function handleHandshakeRecord(now: i64, body: usize, len: i32): void {
  if (len == 0) {
    C.count(C.C_DROP_MALFORMED_MESSAGE);
    return;
  }
  let at = body;
  const end = body + <usize>len;
  let accepted = false;
  while (at < end) {
    if (at + <usize>HS_HEADER_BYTES > end) {
      C.count(C.C_DROP_MALFORMED_MESSAGE);
      return;
    }
    const type = load<u8>(at);
    const msgLen = <i32>getU24(at + 1);
    const seq = getU16(at + 4);
    const fragOff = <i32>getU24(at + 6);
    const fragLen = <i32>getU24(at + 9);
    const frag = at + <usize>HS_HEADER_BYTES;
    if (frag + <usize>fragLen > end || fragOff + fragLen > msgLen) {
      C.count(C.C_DROP_MALFORMED_MESSAGE);
      return;
    }
    at = frag + <usize>fragLen;
    if (seq < recvMessageSeq) {
      conn.peerRetransmitted = true; // a message we already processed: the server resent its flight
      C.count(C.C_PEER_RETRANSMISSIONS);
      continue;
    }
    if (seq > recvMessageSeq && !firstServerMessage()) {
      C.count(C.C_DROP_OUT_OF_ORDER);
      continue;
    }
    if (fragOff == 0 && fragLen == msgLen) {
      if (handleMessage(now, type, seq, frag, msgLen)) accepted = true;
    } else {
      const msg = reassemble(type, seq, msgLen, fragOff, frag, fragLen);
      if (msg == REASM) {
        if (handleMessage(now, type, seq, REASM, msgLen)) accepted = true;
      } else if (msg == FRAGMENT_STORED) {
        accepted = true; // kept for reassembly
      }
    }
    if (conn.state == conn.S_FAILED || conn.state == conn.S_CONNECTED) break;
  }
  if (accepted) C.count(C.C_RX_RECORDS_OK);
}

/** The first server message (HelloVerifyRequest or ServerHello) sets the server's numbering. */
function firstServerMessage(): bool {
  return conn.state == conn.S_WAIT_SERVER_HELLO;
}

const FRAGMENT_STORED: usize = 1;

/** Adds a fragment; returns REASM when the message is complete, FRAGMENT_STORED, or 0 if refused. */
function reassemble(type: u8, seq: u32, msgLen: i32, fragOff: i32, frag: usize, fragLen: i32): usize {
  if (msgLen > cfg.MAX_HANDSHAKE_MESSAGE_BYTES) {
    C.count(C.C_DROP_FRAGMENT_REFUSED);
    return 0;
  }
  if (!reasmActive || reasmSeq != seq || reasmType != type || reasmLen != msgLen) {
    reasmActive = true;
    reasmSeq = seq;
    reasmType = type;
    reasmLen = msgLen;
    memory.fill(REASM_BITMAP, 0, <usize>(cfg.MAX_HANDSHAKE_MESSAGE_BYTES / 8));
  }
  memory.copy(REASM + <usize>fragOff, frag, <usize>fragLen);
  for (let i = fragOff; i < fragOff + fragLen; i++) {
    const b = REASM_BITMAP + <usize>(i >> 3);
    store<u8>(b, load<u8>(b) | <u8>(1 << <u8>(i & 7)));
  }
  for (let i = 0; i < msgLen; i++) {
    if (((<u32>load<u8>(REASM_BITMAP + <usize>(i >> 3)) >> <u32>(i & 7)) & 1) == 0) return FRAGMENT_STORED;
  }
  reasmActive = false;
  C.count(C.C_FRAGMENTS_REASSEMBLED);
  return REASM;
}

const HEADER_SCRATCH: usize = memory.data(HS_HEADER_BYTES);

/** Hashes a received message as if it had arrived unfragmented (RFC 6347 §4.2.6). */
function hashMessage(type: u8, seq: u32, body: usize, len: i32): void {
  putHandshakeHeader(HEADER_SCRATCH, type, len, seq);
  sha256Update(TRANSCRIPT, HEADER_SCRATCH, HS_HEADER_BYTES);
  sha256Update(TRANSCRIPT, body, len);
}

/** Returns true when the message was accepted. */
function handleMessage(now: i64, type: u8, seq: u32, body: usize, len: i32): bool {
  switch (conn.state) {
    case conn.S_WAIT_SERVER_HELLO:
      if (type == HT_HELLO_VERIFY_REQUEST && recEpoch == 0) return onHelloVerifyRequest(now, seq, body, len);
      if (type == HT_SERVER_HELLO && recEpoch == 0) return onServerHello(now, seq, body, len);
      break;
    case conn.S_WAIT_SERVER_HELLO_DONE:
      if (recEpoch != 0) break;
      if (credKind == CRED_ECDHE) {
        if (type == HT_CERTIFICATE && serverStep == STEP_SERVER_HELLO) return onServerCertificate(now, seq, body, len);
        if (type == HT_SERVER_KEY_EXCHANGE && serverStep == STEP_CERTIFICATE) return onEcdheServerKeyExchange(now, seq, body, len);
        if (type == HT_CERTIFICATE_REQUEST && serverStep == STEP_KEY_EXCHANGE) return onCertificateRequest(now, seq, body, len);
        if (type == HT_SERVER_HELLO_DONE && serverStep >= STEP_KEY_EXCHANGE) return onServerHelloDone(now, seq, body, len);
        break;
      }
      if (type == HT_SERVER_KEY_EXCHANGE && serverStep == STEP_SERVER_HELLO) return onServerKeyExchange(seq, body, len);
      if (type == HT_SERVER_HELLO_DONE) return onServerHelloDone(now, seq, body, len);
      break;
    case conn.S_WAIT_SERVER_FINISHED:
      if (type == HT_FINISHED && recEpoch == 1) return onServerFinished(now, seq, body, len);
      break;
    case conn.S_CONNECTED:
      if (type == HT_HELLO_REQUEST) break; // renegotiation is not supported: ignore (RFC 5746)
      break;
  }
  C.count(C.C_DROP_UNEXPECTED_MESSAGE);
  return false;
}

function onHelloVerifyRequest(now: i64, seq: u32, body: usize, len: i32): bool {
  // It carries the message_seq of the ClientHello it answers (RFC 6347 §4.2.2). A copy answering
  // an earlier ClientHello (ours was retransmitted and both were answered) must not start another
  // cookie round: we would move on to a ClientHello the server's flight no longer matches.
  if (seq != sendMessageSeq) {
    C.count(C.C_DROP_UNEXPECTED_MESSAGE);
    return false;
  }
  if (len < 3) {
    C.count(C.C_DROP_MALFORMED_MESSAGE);
    return false;
  }
  const version = getU16(body);
  const n = <i32>load<u8>(body + 2);
  if ((version != VERSION_DTLS12 && version != VERSION_DTLS10) || 3 + n != len) {
    C.count(C.C_DROP_MALFORMED_MESSAGE);
    return false;
  }
  if (helloVerifyRounds >= MAX_HELLO_VERIFY_ROUNDS) {
    C.count(C.C_DROP_UNEXPECTED_MESSAGE);
    return false;
  }
  helloVerifyRounds++;
  memory.copy(COOKIE, body + 3, <usize>n);
  cookieLen = n;
  // The cookie round: same random, next message_seq; neither message enters the transcript.
  sendMessageSeq++;
  buildClientHello();
  sendFlight();
  conn.transition(conn.S_WAIT_SERVER_HELLO, conn.E_NONE, now);
  return true;
}

function onServerHello(now: i64, seq: u32, body: usize, len: i32): bool {
  // The server numbers its ServerHello like the ClientHello it answers (RFC 6347 §4.2.2). One that
  // answers an earlier ClientHello (before a second cookie round) would hash a different transcript.
  if (seq != sendMessageSeq) {
    C.count(C.C_DROP_UNEXPECTED_MESSAGE);
    return false;
  }
  // version(2) random(32) session_id<0..32> cipher_suite(2) compression(1) extensions<0..2^16-1>
  const end = body + <usize>len;
  if (len < 38) return malformed();
  if (getU16(body) != VERSION_DTLS12) return malformed();
  const sidLen = <i32>load<u8>(body + 34);
  if (sidLen > 32) return malformed();
  let p = body + 35 + <usize>sidLen;
  if (p + 3 > end) return malformed();
  const suite = credKind == CRED_ECDHE ? SUITE_ECDHE_ECDSA_AES_128_CCM_8 : SUITE_PSK_AES_128_CCM_8;
  if (getU16(p) != suite || load<u8>(p + 2) != 0) return malformed();
  p += 3;
  let ems = false, cid = false, reneg = false;
  let pointFormats = false, serverRawKey = false, clientRawKey = false;
  let cidAt: usize = 0, cidLen = 0;
  if (p < end) {
    if (p + 2 > end) return malformed();
    const extEnd = p + 2 + <usize>getU16(p);
    if (extEnd != end) return malformed();
    p += 2;
    while (p < extEnd) {
      if (p + 4 > extEnd) return malformed();
      const extType = getU16(p);
      const extLen = <i32>getU16(p + 2);
      const data = p + 4;
      if (data + <usize>extLen > extEnd) return malformed();
      if (extType == EXT_EXTENDED_MASTER_SECRET) {
        if (extLen != 0 || ems) return malformed();
        ems = true;
      } else if (extType == EXT_RENEGOTIATION_INFO) {
        // initial handshake: an empty renegotiated_connection (RFC 5746 §3.4)
        if (extLen != 1 || load<u8>(data) != 0 || reneg) return malformed();
        reneg = true;
      } else if (extType == EXT_EC_POINT_FORMATS && credKind == CRED_ECDHE) {
        // the server's formats; uncompressed must be among them (RFC 8422 §5.2)
        if (pointFormats || extLen < 2 || <i32>load<u8>(data) + 1 != extLen) return malformed();
        let uncompressed = false;
        for (let i = 1; i < extLen; i++) if (load<u8>(data + <usize>i) == POINT_FORMAT_UNCOMPRESSED) uncompressed = true;
        if (!uncompressed) return malformed();
        pointFormats = true;
      } else if (extType == EXT_SERVER_CERTIFICATE_TYPE && credKind == CRED_ECDHE) {
        // in a ServerHello: the one type chosen (RFC 7250 §4); we offered raw keys alone
        if (serverRawKey || extLen != 1 || load<u8>(data) != CERT_TYPE_RAW_PUBLIC_KEY) return malformed();
        serverRawKey = true;
      } else if (extType == EXT_CLIENT_CERTIFICATE_TYPE && credKind == CRED_ECDHE) {
        if (clientRawKey || extLen != 1 || load<u8>(data) != CERT_TYPE_RAW_PUBLIC_KEY) return malformed();
        clientRawKey = true;
      } else if (extType == EXT_CONNECTION_ID && cfg.offerConnectionId) {
        if (extLen < 1 || cid) return malformed();
        cidLen = <i32>load<u8>(data);
        if (cidLen + 1 != extLen || cidLen > cfg.MAX_CID_BYTES) return malformed();
        cidAt = data + 1;
        cid = true;
      } else {
        return malformed(); // an extension we did not offer
      }
      p = data + <usize>extLen;
    }
  }
  if (cfg.requireExtendedMasterSecret && !ems) {
    return refuseHandshake(now, conn.E_NO_EXTENDED_MASTER_SECRET);
  }
  if (credKind == CRED_ECDHE && !serverRawKey) {
    // Without the extension the server would send an X.509 chain (RFC 7250 §4), which we do not read.
    return refuseHandshake(now, conn.E_SERVER_KEY_REJECTED);
  }
  clientRawKeyAgreed = clientRawKey;
  serverStep = STEP_SERVER_HELLO;
  memory.copy(SERVER_RANDOM, body + 2, 32);
  extendedMasterSecret = ems;
  conn.peerCidLen = 0;
  conn.cidInUse = cid && ownCidLen > 0;
  if (cid && cidLen > 0) {
    memory.copy(conn.PEER_CID, cidAt, <usize>cidLen);
    conn.peerCidLen = cidLen;
  }
  // The transcript starts with the ClientHello this ServerHello answers.
  sha256Init(TRANSCRIPT);
  sha256Update(TRANSCRIPT, FLIGHT, flightLen);
  hashMessage(HT_SERVER_HELLO, seq, body, len);
  recvMessageSeq = seq + 1;
  sendMessageSeq++;
  conn.transition(conn.S_WAIT_SERVER_HELLO_DONE, conn.E_NONE, now);
  return true;
}

/**
 * A server message received whole, parsed and refused (a key other than the pinned one, a bad
 * signature, no extended master secret…): the handshake fails. Like a fatal alert or a wrong
 * Finished, the record was acted on, so the datagram counts accepted — not dropped with no drop*
 * reason (the outcome counters' invariant; the fuzz harness found it on the ECDHE refusals).
 */
function refuseHandshake(now: i64, error: i32): bool {
  C.count(C.C_RX_RECORDS_OK);
  conn.transition(conn.S_FAILED, error, now);
  return false;
}

function malformed(): bool {
  C.count(C.C_DROP_MALFORMED_MESSAGE);
  return false;
}

function onServerKeyExchange(seq: u32, body: usize, len: i32): bool {
  // psk_identity_hint<0..2^16-1> (RFC 4279 §2); the hint is not used.
  if (len < 2 || 2 + <i32>getU16(body) != len) return malformed();
  hashMessage(HT_SERVER_KEY_EXCHANGE, seq, body, len);
  recvMessageSeq = seq + 1;
  serverStep = STEP_KEY_EXCHANGE;
  return true;
}

/**
 * The server's raw public key (RFC 7250 §3): it must be the key pinned at provisioning. Anything
 * else ends the handshake: a server we cannot authenticate is not retried on the same flight.
 */
function onServerCertificate(now: i64, seq: u32, body: usize, len: i32): bool {
  if (len < 3 || 3 + <i32>getU24(body) != len) return malformed();
  if (len != 3 + SPKI_BYTES || !ctEqual(body + 3, SPKI_PREFIX, SPKI_PREFIX_BYTES)
    || !ctEqual(body + <usize>(3 + SPKI_PREFIX_BYTES), SERVER_PUBLIC_KEY, P256_PUBLIC_KEY_BYTES)) {
    return refuseHandshake(now, conn.E_SERVER_KEY_REJECTED);
  }
  hashMessage(HT_CERTIFICATE, seq, body, len);
  recvMessageSeq = seq + 1;
  serverStep = STEP_CERTIFICATE;
  return true;
}

/**
 * ServerECDHParams (named curve secp256r1, an uncompressed point) and their signature by the
 * pinned key over client_random ‖ server_random ‖ params (RFC 8422 §5.4). A bad signature ends
 * the handshake (E_SERVER_KEY_REJECTED); a bad point too, when ECDH refuses it.
 */
function onEcdheServerKeyExchange(now: i64, seq: u32, body: usize, len: i32): bool {
  const paramsLen = 4 + P256_PUBLIC_KEY_BYTES;
  if (len < paramsLen + 4) return malformed();
  if (load<u8>(body) != CURVE_TYPE_NAMED || getU16(body + 1) != GROUP_SECP256R1
    || <i32>load<u8>(body + 3) != P256_PUBLIC_KEY_BYTES) return malformed();
  const sigAt = body + <usize>paramsLen;
  const derLen = <i32>getU16(sigAt + 2);
  if (paramsLen + 4 + derLen != len) return malformed();
  if (getU16(sigAt) != SIGALG_ECDSA_SECP256R1_SHA256 || derLen > DER_SIGNATURE_MAX_BYTES
    || !derDecodeSignature(sigAt + 4, derLen, SIGNATURE)) {
    return refuseHandshake(now, conn.E_SERVER_KEY_REJECTED);
  }
  memory.copy(SIGNED_PARAMS, CLIENT_RANDOM, 32);
  memory.copy(SIGNED_PARAMS + 32, SERVER_RANDOM, 32);
  memory.copy(SIGNED_PARAMS + 64, body, <usize>paramsLen);
  sha256Init(TRANSCRIPT_COPY);
  sha256Update(TRANSCRIPT_COPY, SIGNED_PARAMS, 64 + paramsLen);
  sha256Final(TRANSCRIPT_COPY, HASH);
  if (p256Verify(SERVER_PUBLIC_KEY, P256_PUBLIC_KEY_BYTES, HASH, SIGNATURE) != P256_OK
    || !p256ValidPublicKey(body + 4, P256_PUBLIC_KEY_BYTES)) {
    return refuseHandshake(now, conn.E_SERVER_KEY_REJECTED);
  }
  memory.copy(SERVER_EPHEMERAL, body + 4, <usize>P256_PUBLIC_KEY_BYTES);
  hashMessage(HT_SERVER_KEY_EXCHANGE, seq, body, len);
  recvMessageSeq = seq + 1;
  serverStep = STEP_KEY_EXCHANGE;
  return true;
}

/**
 * certificate_types<1..2^8-1>, supported_signature_algorithms<2..2^16-2>,
 * certificate_authorities<0..2^16-1> (RFC 5246 §7.4.4). We can answer only with an ECDSA raw key
 * signed with SHA-256; a server that wants anything else gets no handshake from us.
 */
function onCertificateRequest(now: i64, seq: u32, body: usize, len: i32): bool {
  const end = body + <usize>len;
  if (len < 1) return malformed();
  const typesLen = <i32>load<u8>(body);
  let p = body + 1 + <usize>typesLen;
  if (typesLen < 1 || p + 2 > end) return malformed();
  let ecdsa = false;
  for (let i = 0; i < typesLen; i++) if (load<u8>(body + 1 + <usize>i) == CLIENT_CERT_TYPE_ECDSA_SIGN) ecdsa = true;
  const algsLen = <i32>getU16(p);
  p += 2;
  if (algsLen < 2 || (algsLen & 1) != 0 || p + <usize>algsLen + 2 > end) return malformed();
  let sha256 = false;
  for (let i = 0; i < algsLen; i += 2) if (getU16(p + <usize>i) == SIGALG_ECDSA_SECP256R1_SHA256) sha256 = true;
  p += <usize>algsLen;
  if (p + 2 + <usize>getU16(p) != end) return malformed();
  if (!ecdsa || !sha256 || !clientRawKeyAgreed) {
    return refuseHandshake(now, conn.E_SERVER_KEY_REJECTED);
  }
  hashMessage(HT_CERTIFICATE_REQUEST, seq, body, len);
  recvMessageSeq = seq + 1;
  certificateRequested = true;
  serverStep = STEP_CERTIFICATE_REQUEST;
  return true;
}

function onServerHelloDone(now: i64, seq: u32, body: usize, len: i32): bool {
  if (len != 0) return malformed();
  hashMessage(HT_SERVER_HELLO_DONE, seq, body, len);
  recvMessageSeq = seq + 1;
  const failure = buildClientFinishedFlight();
  if (failure != conn.E_NONE) {
    conn.transition(conn.S_FAILED, failure, now);
    return true; // acted on, like a fatal alert
  }
  conn.writeEpoch = 1;
  conn.writeSeq1 = 0;
  replayReset(conn.WINDOW1);
  sendFlight();
  conn.transition(conn.S_WAIT_SERVER_FINISHED, conn.E_NONE, now);
  return true;
}

function onServerFinished(now: i64, seq: u32, body: usize, len: i32): bool {
  if (!serverCcsSeen) {
    C.count(C.C_DROP_UNEXPECTED_MESSAGE);
    return false;
  }
  if (len != FINISHED_BYTES) return malformed();
  transcriptHash(HASH);
  tlsPrfSha256(MASTER_SECRET, 48, LABEL_SERVER_FINISHED, LABEL_FINISHED_LEN, HASH, 32, VERIFY, FINISHED_BYTES);
  if (!ctEqual(VERIFY, body, FINISHED_BYTES)) {
    // Authenticated by the record layer yet wrong: the server derived different secrets. The
    // record was received whole and acted on (like a fatal alert): the datagram counts accepted.
    C.count(C.C_RX_RECORDS_OK);
    conn.transition(conn.S_FAILED, conn.E_BAD_SERVER_FINISHED, now);
    return false;
  }
  recvMessageSeq = seq + 1;
  conn.transition(conn.S_CONNECTED, conn.E_NONE, now);
  return true;
}
