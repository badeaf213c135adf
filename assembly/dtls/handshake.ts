// DTLS 1.2 PSK client, the handshake half: the credentials, the flights we send (ClientHello,
// ClientKeyExchange/ChangeCipherSpec/Finished) and their retransmission, the server's messages
// (reassembled when fragmented), the transcript and the key derivation (RFC 6347, RFC 4279,
// RFC 7627, RFC 9146). State changes go through the connection half's `transition` (client.ts).
import {
  SHA256_CTX_BYTES, aes128ExpandKey, ctEqual, hmacDrbgGenerate, sha256Final, sha256Init,
  sha256Update, tlsPrfSha256, zeroize,
} from '../crypto/index';
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
const HT_SERVER_KEY_EXCHANGE: u8 = 12;
const HT_SERVER_HELLO_DONE: u8 = 14;
const HT_CLIENT_KEY_EXCHANGE: u8 = 16;
const HT_FINISHED: u8 = 20;

const SUITE_PSK_AES_128_CCM_8: u32 = 0xc0a8;
const SUITE_RENEGOTIATION_SCSV: u32 = 0x00ff;
const EXT_EXTENDED_MASTER_SECRET: u32 = 0x0017;
const EXT_CONNECTION_ID: u32 = 0x0036; // 54, RFC 9146
const EXT_RENEGOTIATION_INFO: u32 = 0xff01;
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
const IDENTITY: usize = memory.data(cfg.MAX_IDENTITY_BYTES);
let identityLen: i32 = 0;
export const PSK: usize = memory.data(cfg.MAX_PSK_BYTES);
let pskLen: i32 = 0;

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
  zeroize(PSK, cfg.MAX_PSK_BYTES);
  zeroize(IDENTITY, cfg.MAX_IDENTITY_BYTES); // a shorter identity leaves nothing of the old one
  memory.copy(IDENTITY, identity, <usize>idLen);
  identityLen = idLen;
  memory.copy(PSK, psk, <usize>keyLen);
  pskLen = keyLen;
  return 0;
}

export function isProvisioned(): bool {
  return pskLen > 0;
}

export function wipeHandshakeSecrets(): void {
  zeroize(PREMASTER, 4 + 2 * cfg.MAX_PSK_BYTES);
  zeroize(KEY_BLOCK, 40);
  zeroize(TRANSCRIPT, <i32>SHA256_CTX_BYTES);
  zeroize(TRANSCRIPT_COPY, <i32>SHA256_CTX_BYTES);
  zeroize(HASH, 32);
  zeroize(VERIFY, FINISHED_BYTES);
  zeroize(FLIGHT, 640);
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
  putU16(p, SUITE_PSK_AES_128_CCM_8); p += 2;
  putU16(p, SUITE_RENEGOTIATION_SCSV); p += 2;
  putU8(p, 1); p += 1;
  putU8(p, 0); p += 1; // null compression
  const extStart = p;
  p += 2;
  putU16(p, EXT_EXTENDED_MASTER_SECRET); putU16(p + 2, 0); p += 4;
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

/** Flight 5: ClientKeyExchange, ChangeCipherSpec, Finished. Derives the keys on the way. */
function buildClientFinishedFlight(): void {
  // ClientKeyExchange: the PSK identity (RFC 4279 §2)
  let m = FLIGHT;
  const ckeBody = 2 + identityLen;
  putHandshakeHeader(m, HT_CLIENT_KEY_EXCHANGE, ckeBody, sendMessageSeq++);
  putU16(m + <usize>HS_HEADER_BYTES, <u32>identityLen);
  memory.copy(m + <usize>(HS_HEADER_BYTES + 2), IDENTITY, <usize>identityLen);
  const ckeLen = HS_HEADER_BYTES + ckeBody;
  sha256Update(TRANSCRIPT, m, ckeLen);

  // premaster = uint16(N) || N zero bytes || uint16(N) || psk (RFC 4279 §2)
  const n = pskLen;
  putU16(PREMASTER, <u32>n);
  memory.fill(PREMASTER + 2, 0, <usize>n);
  putU16(PREMASTER + 2 + <usize>n, <u32>n);
  memory.copy(PREMASTER + 4 + <usize>n, PSK, <usize>n);
  const pmsLen = 4 + 2 * n;
  if (extendedMasterSecret) {
    transcriptHash(HASH); // session_hash: through ClientKeyExchange (RFC 7627 §3)
    tlsPrfSha256(PREMASTER, pmsLen, LABEL_EMS, LABEL_EMS_LEN, HASH, 32, MASTER_SECRET, 48);
  } else {
    memory.copy(SEED, CLIENT_RANDOM, 32);
    memory.copy(SEED + 32, SERVER_RANDOM, 32);
    tlsPrfSha256(PREMASTER, pmsLen, LABEL_MS, LABEL_MS_LEN, SEED, 64, MASTER_SECRET, 48);
  }
  zeroize(PREMASTER, pmsLen);
  deriveKeys();

  // Finished = PRF(master, "client finished", Hash(messages))[12]
  transcriptHash(HASH);
  m = FLIGHT + <usize>ckeLen;
  putHandshakeHeader(m, HT_FINISHED, FINISHED_BYTES, sendMessageSeq++);
  tlsPrfSha256(MASTER_SECRET, 48, LABEL_CLIENT_FINISHED, LABEL_FINISHED_LEN, HASH, 32, m + <usize>HS_HEADER_BYTES, FINISHED_BYTES);
  sha256Update(TRANSCRIPT, m, HS_HEADER_BYTES + FINISHED_BYTES);
  flightFinishedAt = ckeLen;
  flightLen = ckeLen + HS_HEADER_BYTES + FINISHED_BYTES;
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
      if (type == HT_SERVER_KEY_EXCHANGE) return onServerKeyExchange(seq, body, len);
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
  if (getU16(p) != SUITE_PSK_AES_128_CCM_8 || load<u8>(p + 2) != 0) return malformed();
  p += 3;
  let ems = false, cid = false, reneg = false;
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
    conn.transition(conn.S_FAILED, conn.E_NO_EXTENDED_MASTER_SECRET, now);
    return false;
  }
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

function malformed(): bool {
  C.count(C.C_DROP_MALFORMED_MESSAGE);
  return false;
}

function onServerKeyExchange(seq: u32, body: usize, len: i32): bool {
  // psk_identity_hint<0..2^16-1> (RFC 4279 §2); the hint is not used.
  if (len < 2 || 2 + <i32>getU16(body) != len) return malformed();
  hashMessage(HT_SERVER_KEY_EXCHANGE, seq, body, len);
  recvMessageSeq = seq + 1;
  return true;
}

function onServerHelloDone(now: i64, seq: u32, body: usize, len: i32): bool {
  if (len != 0) return malformed();
  hashMessage(HT_SERVER_HELLO_DONE, seq, body, len);
  recvMessageSeq = seq + 1;
  buildClientFinishedFlight();
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
