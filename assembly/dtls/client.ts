// DTLS 1.2 PSK client for TLS_PSK_WITH_AES_128_CCM_8 (RFC 6347, RFC 4279, RFC 6655, RFC 7627,
// RFC 9146). Sans-IO: time comes in as `now` (ms), datagrams come in through the I/O buffer and
// leave through a transmit queue drained by poll_transmit. All connection state changes go
// through `transition`.
import {
  AES128_CTX_BYTES, SHA256_CTX_BYTES, aes128ExpandKey, ctEqual, hmacDrbgGenerate, sha256Final,
  sha256Init, sha256Update, tlsPrfSha256, zeroize,
} from '../crypto/index';
import * as cfg from '../config';
import { getU16, getU24, putU16, putU24, putU48, putU8 } from './bytes';
import * as C from './counters';
import {
  CT_ALERT, CT_APPLICATION_DATA, CT_CHANGE_CIPHER_SPEC, CT_HANDSHAKE, EXPLICIT_NONCE_BYTES,
  HEADER_BYTES, MAX_SEQUENCE, PARSE_OK, PROTECTED_OVERHEAD, REPLAY_WINDOW_BYTES, VERSION_DTLS10, VERSION_DTLS12,
  parseRecord, protectRecord, protectedRecordBytes, recBody, recBodyLen, recEnd, recEpoch, recSeq,
  recType, recVersion, replayCheck, replayReset, replayUpdate, unprotectRecord, OWN_CID, ownCidLen,
  recCidLen,
} from './record';
import { DRBG, isSeeded } from '../entropy';

// --- States and outcomes (ABI: docs/abi.md) -----------------------------------------------------
export const S_IDLE: i32 = 0;
export const S_WAIT_SERVER_HELLO: i32 = 1; // ClientHello sent (with or without cookie)
export const S_WAIT_SERVER_HELLO_DONE: i32 = 2; // ServerHello accepted
export const S_WAIT_SERVER_FINISHED: i32 = 3; // ClientKeyExchange/CCS/Finished sent
export const S_CONNECTED: i32 = 4;
export const S_FAILED: i32 = 5;
export const S_CLOSED: i32 = 6; // close_notify received or sent

export const E_NONE: i32 = 0;
export const E_HANDSHAKE_TIMEOUT: i32 = 1;
export const E_ALERT_RECEIVED: i32 = 2;
export const E_BAD_SERVER_FINISHED: i32 = 3;
export const E_NOT_PROVISIONED: i32 = 4;
export const E_NOT_SEEDED: i32 = 5;
export const E_NO_EXTENDED_MASTER_SECRET: i32 = 6;
export const E_SEQUENCE_EXHAUSTED: i32 = 7;
export const E_CLOSED_BY_APPLICATION: i32 = 8;

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
const ALERT_CLOSE_NOTIFY: u8 = 0;

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

// --- Provisioned credentials and connection state -----------------------------------------------
const IDENTITY: usize = memory.data(cfg.MAX_IDENTITY_BYTES);
let identityLen: i32 = 0;
const PSK: usize = memory.data(cfg.MAX_PSK_BYTES);
let pskLen: i32 = 0;

export let state: i32 = S_IDLE;
export let lastError: i32 = E_NONE;
export let lastAlert: i32 = -1;

const CLIENT_RANDOM: usize = memory.data(32);
const SERVER_RANDOM: usize = memory.data(32);
const COOKIE: usize = memory.data(255);
let cookieLen: i32 = 0;
let helloVerifyRounds: i32 = 0;
let sendMessageSeq: u32 = 0;
let recvMessageSeq: u32 = 0;
let extendedMasterSecret: bool = false;
export const PEER_CID: usize = memory.data(cfg.MAX_CID_BYTES);
export let peerCidLen: i32 = 0;
let serverCcsSeen: bool = false;
/** The server agreed to put our CID in its records (we offered a non-empty one). */
let cidInUse: bool = false;

const TRANSCRIPT: usize = memory.data(<i32>SHA256_CTX_BYTES, 8);
const TRANSCRIPT_COPY: usize = memory.data(<i32>SHA256_CTX_BYTES, 8);
const HASH: usize = memory.data(32);
const PREMASTER: usize = memory.data(4 + 2 * cfg.MAX_PSK_BYTES);
export const MASTER_SECRET: usize = memory.data(48);
const KEY_BLOCK: usize = memory.data(40);
const SEED: usize = memory.data(64);
const VERIFY: usize = memory.data(FINISHED_BYTES);

// Epoch-1 keys (AES_128_CCM_8: 16-byte keys, 4-byte implicit IVs; no MAC keys).
export const CLIENT_WRITE: usize = memory.data(<i32>AES128_CTX_BYTES, 8);
export const SERVER_WRITE: usize = memory.data(<i32>AES128_CTX_BYTES, 8);
export const CLIENT_IV: usize = memory.data(4);
export const SERVER_IV: usize = memory.data(4);

export let writeEpoch: u32 = 0;
let writeSeq0: u64 = 0; // epoch 0 sequence numbers (handshake)
export let writeSeq1: u64 = 0; // epoch 1 sequence numbers
let readEpoch: u32 = 0;
export const WINDOW1: usize = memory.data(<i32>REPLAY_WINDOW_BYTES, 8);

// --- What the session layer watches (assembly/session) -------------------------------------------
/** Records from the server that authenticated under the current keys (epoch 1). */
export let authenticatedRecords: u32 = 0;
/** Records that failed authentication under the current keys. */
export let failedAuthThisKey: u32 = 0;
/**
 * Moves whenever connection keys are installed or destroyed. The session layer remembers the value
 * its persisted keys came with: any other value means that connection is gone, whoever ended it.
 */
export let keyGeneration: u32 = 0;
/** Sequence numbers below this may be used without persisting first (reserved ahead). */
export let writeSeqReserved: u64 = 0;
/** The reservation moved: the session must persist it before the next datagram leaves. */
export let reservationMoved: bool = false;
/** Stateless reset token (docs/protocol.md) and whether the last datagram carried it. */
export const RESET_TOKEN: usize = memory.data(16);
export let resetTokenArmed: bool = false;
export let resetTokenSeen: bool = false;
/** The last datagram held the 2019 truncated record (header valid, bytes missing). */
export let truncatedRecordSeen: bool = false;
const TOKEN_SCRATCH: usize = memory.data(16);
/** Sequence numbers between reservations (persisted ahead of use). */
let reserveBlock: u64 = 32;

export function setReserveBlock(n: u64): void {
  reserveBlock = n;
}

export function armResetToken(token: usize): void {
  memory.copy(RESET_TOKEN, token, 16);
  resetTokenArmed = true;
}

export function disarmResetToken(): void {
  zeroize(RESET_TOKEN, 16);
  resetTokenArmed = false;
}

export function clearReservationMoved(): void {
  reservationMoved = false;
}

// --- Timer ---------------------------------------------------------------------------------------
let deadlineMs: i64 = -1;
let currentTimeoutMs: i64 = 0;
let flightTransmissions: i32 = 0;

// --- Last flight, kept as handshake messages so that retransmissions get fresh record numbers ----
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
let peerRetransmitted: bool = false;
/** When our last flight went out; a server retransmission within this spacing is not answered. */
let flightSentMs: i64 = 0;
const PEER_RETRANSMIT_SPACING_MS: i64 = 500;

// --- Transmit queue: whole datagrams, drained by poll_transmit ---------------------------------
export const TX_SLOT_BYTES: i32 = 1152;
const TX_SLOTS: i32 = 4;
const TX: usize = memory.data(TX_SLOTS * TX_SLOT_BYTES, 8);
const TX_LEN: usize = memory.data(TX_SLOTS * 4, 4);
let txHead: i32 = 0;
let txCount: i32 = 0;
let building: usize = 0; // slot being filled, 0 when none
let buildingLen: i32 = 0;

// --- Received application data: length-prefixed entries in a ring ------------------------------
const RX_BYTES: i32 = 2048;
const RX: usize = memory.data(RX_BYTES, 4);
let rxUsed: i32 = 0;

// ================================================================================================

export function provision(identity: usize, idLen: i32, psk: usize, keyLen: i32): i32 {
  if (idLen < 1 || idLen > cfg.MAX_IDENTITY_BYTES || keyLen < 1 || keyLen > cfg.MAX_PSK_BYTES) return -2;
  zeroize(PSK, cfg.MAX_PSK_BYTES);
  memory.copy(IDENTITY, identity, <usize>idLen);
  identityLen = idLen;
  memory.copy(PSK, psk, <usize>keyLen);
  pskLen = keyLen;
  return 0;
}

export function isProvisioned(): bool {
  return pskLen > 0;
}

/**
 * The one place where the connection state changes. It sets the timer for the new state and
 * destroys secrets that the new state no longer needs.
 */
function transition(to: i32, reason: i32, now: i64): void {
  const from = state;
  state = to;
  switch (to) {
    case S_WAIT_SERVER_HELLO:
    case S_WAIT_SERVER_FINISHED:
      // A new flight went out: restart the retransmission timer (RFC 6347 §4.2.4).
      currentTimeoutMs = cfg.handshakeInitialTimeoutMs;
      flightTransmissions = 1;
      deadlineMs = now + currentTimeoutMs;
      flightSentMs = now;
      break;
    case S_WAIT_SERVER_HELLO_DONE:
      break; // keep the ClientHello timer running
    case S_CONNECTED:
      deadlineMs = -1;
      wipeHandshakeSecrets();
      C.count(C.C_HANDSHAKES_COMPLETED);
      break;
    case S_FAILED:
      deadlineMs = -1;
      lastError = reason;
      wipeConnection();
      if (from != S_CONNECTED && from != S_CLOSED) C.count(C.C_HANDSHAKES_FAILED);
      break;
    case S_CLOSED:
    case S_IDLE:
      deadlineMs = -1;
      lastError = reason;
      wipeConnection();
      break;
  }
}

function wipeHandshakeSecrets(): void {
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

/** Destroys every key of the connection (the provisioned PSK stays). */
function wipeConnection(): void {
  wipeHandshakeSecrets();
  zeroize(MASTER_SECRET, 48);
  zeroize(CLIENT_WRITE, <i32>AES128_CTX_BYTES);
  zeroize(SERVER_WRITE, <i32>AES128_CTX_BYTES);
  zeroize(CLIENT_IV, 4);
  zeroize(SERVER_IV, 4);
  zeroize(CLIENT_RANDOM, 32);
  zeroize(SERVER_RANDOM, 32);
  writeEpoch = 0;
  readEpoch = 0;
  writeSeq1 = 0;
  peerCidLen = 0;
  cidInUse = false;
  replayReset(WINDOW1);
  authenticatedRecords = 0;
  failedAuthThisKey = 0;
  writeSeqReserved = 0;
  keyGeneration++;
  disarmResetToken();
}

export function clearFailedAuth(): void {
  failedAuthThisKey = 0;
}

/** Empties the transmit queue and the received-data ring (boot: nothing from before is sent or read). */
export function resetQueues(): void {
  zeroize(TX, TX_SLOTS * TX_SLOT_BYTES);
  txHead = 0;
  txCount = 0;
  building = 0;
  buildingLen = 0;
  zeroize(RX, RX_BYTES);
  rxUsed = 0;
  writeSeq0 = 0;
}

/** Starts a full handshake. Any previous connection is destroyed first. */
export function connect(now: i64): i32 {
  if (!isProvisioned()) {
    transition(S_FAILED, E_NOT_PROVISIONED, now);
    return -E_NOT_PROVISIONED;
  }
  transition(S_IDLE, E_NONE, now);
  if (!isSeeded() || hmacDrbgGenerate(DRBG, CLIENT_RANDOM, 32, 0, 0) != 0) {
    transition(S_FAILED, E_NOT_SEEDED, now);
    return -E_NOT_SEEDED;
  }
  lastAlert = -1;
  cookieLen = 0;
  helloVerifyRounds = 0;
  sendMessageSeq = 0;
  recvMessageSeq = 0;
  extendedMasterSecret = false;
  serverCcsSeen = false;
  C.count(C.C_HANDSHAKES_STARTED);
  buildClientHello();
  sendFlight();
  transition(S_WAIT_SERVER_HELLO, E_NONE, now);
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
  aes128ExpandKey(CLIENT_WRITE, KEY_BLOCK);
  aes128ExpandKey(SERVER_WRITE, KEY_BLOCK + 16);
  memory.copy(CLIENT_IV, KEY_BLOCK + 32, 4);
  memory.copy(SERVER_IV, KEY_BLOCK + 36, 4);
  keyGeneration++;
  zeroize(KEY_BLOCK, 40);
  zeroize(SEED, 64);
}

function transcriptHash(out: usize): void {
  memory.copy(TRANSCRIPT_COPY, TRANSCRIPT, SHA256_CTX_BYTES);
  sha256Final(TRANSCRIPT_COPY, out);
}

// --- Transmit queue ------------------------------------------------------------------------------

/** Opens a datagram in the next free slot. False when the queue is full. */
function beginDatagram(): bool {
  if (txCount == TX_SLOTS) {
    C.count(C.C_TX_QUEUE_FULL);
    building = 0;
    return false;
  }
  const slot = (txHead + txCount) % TX_SLOTS;
  building = TX + <usize>(slot * TX_SLOT_BYTES);
  buildingLen = 0;
  return true;
}

function endDatagram(): void {
  if (building == 0 || buildingLen == 0) return;
  const slot = (txHead + txCount) % TX_SLOTS;
  store<i32>(TX_LEN + <usize>(slot << 2), buildingLen);
  txCount++;
  building = 0;
  C.count(C.C_TX_DATAGRAMS);
}

/** Appends an unprotected (epoch 0) record carrying `len` bytes from `src`. */
function appendPlainRecord(type: u8, src: usize, len: i32): void {
  if (building == 0 || buildingLen + HEADER_BYTES + len > TX_SLOT_BYTES) return;
  const out = building + <usize>buildingLen;
  putU8(out, type);
  putU16(out + 1, VERSION_DTLS12);
  putU16(out + 3, 0);
  putU48(out + 5, writeSeq0++);
  putU16(out + 11, <u32>len);
  memory.copy(out + <usize>HEADER_BYTES, src, <usize>len);
  buildingLen += HEADER_BYTES + len;
  C.count(C.C_TX_RECORDS);
}

/** Appends an epoch-1 record carrying `len` bytes from `src`. False when it does not fit. */
function appendProtectedRecord(type: u8, src: usize, len: i32): bool {
  if (building == 0) return false;
  if (buildingLen + protectedRecordBytes(len, peerCidLen) > TX_SLOT_BYTES) return false;
  if (writeSeq1 >= MAX_SEQUENCE) return false;
  if (writeSeq1 >= writeSeqReserved) {
    writeSeqReserved = writeSeq1 + reserveBlock;
    reservationMoved = true;
  }
  const out = building + <usize>buildingLen;
  memory.copy(out + <usize>(HEADER_BYTES + peerCidLen + EXPLICIT_NONCE_BYTES), src, <usize>len);
  buildingLen += protectRecord(out, type, 1, writeSeq1++, len, CLIENT_WRITE, CLIENT_IV, PEER_CID, peerCidLen);
  C.count(C.C_TX_RECORDS);
  return true;
}

/** (Re)sends the stored flight as one datagram with fresh record sequence numbers. */
function sendFlight(): void {
  if (!beginDatagram()) return;
  if (flightFinishedAt < 0) {
    appendPlainRecord(CT_HANDSHAKE, FLIGHT, flightLen);
  } else {
    appendPlainRecord(CT_HANDSHAKE, FLIGHT, flightFinishedAt);
    appendPlainRecord(CT_CHANGE_CIPHER_SPEC, CCS_BODY, 1);
    appendProtectedRecord(CT_HANDSHAKE, FLIGHT + <usize>flightFinishedAt, flightLen - flightFinishedAt);
  }
  endDatagram();
}
const CCS_BODY: usize = memory.data<u8>([1]);

/** Copies the next queued datagram into `out`; returns its length, 0 when none. */
export function pollTransmit(out: usize, capacity: i32): i32 {
  if (txCount == 0) return 0;
  const len = load<i32>(TX_LEN + <usize>(txHead << 2));
  if (len > capacity) return -2;
  memory.copy(out, TX + <usize>(txHead * TX_SLOT_BYTES), <usize>len);
  txHead = (txHead + 1) % TX_SLOTS;
  txCount--;
  return len;
}

// --- Timers ---------------------------------------------------------------------------------------

export function nextTimeout(): i64 {
  return deadlineMs;
}

export function handleTimeout(now: i64): void {
  if (deadlineMs < 0 || now < deadlineMs) return;
  if (state != S_WAIT_SERVER_HELLO && state != S_WAIT_SERVER_HELLO_DONE && state != S_WAIT_SERVER_FINISHED) {
    deadlineMs = -1;
    return;
  }
  if (flightTransmissions >= cfg.handshakeMaxTransmissions) {
    transition(S_FAILED, E_HANDSHAKE_TIMEOUT, now);
    return;
  }
  retransmit();
  flightSentMs = now;
  flightTransmissions++;
  currentTimeoutMs = min(currentTimeoutMs * 2, cfg.handshakeMaxTimeoutMs);
  deadlineMs = now + currentTimeoutMs;
}

function retransmit(): void {
  C.count(C.C_FLIGHT_RETRANSMISSIONS);
  sendFlight();
}

// --- Application data ----------------------------------------------------------------------------

/** Queues `len` bytes from `src` as one application-data record. */
export function sendApplicationData(src: usize, len: i32): i32 {
  if (state != S_CONNECTED) return -1;
  if (len < 0 || len > cfg.MAX_APP_DATA_BYTES) return -2;
  if (writeSeq1 >= MAX_SEQUENCE) return -4;
  if (!beginDatagram()) return -3;
  appendProtectedRecord(CT_APPLICATION_DATA, src, len);
  endDatagram();
  C.count(C.C_TX_APP_RECORDS);
  return 0;
}

export const RX_NONE: i32 = -1;
export const RX_TOO_LARGE: i32 = -2;

/**
 * Moves the oldest received application record to `out`; returns its length, RX_NONE when none,
 * or RX_TOO_LARGE when it does not fit `capacity` (it is dropped and counted, so it cannot block
 * the records behind it).
 */
export function receiveApplicationData(out: usize, capacity: i32): i32 {
  if (rxUsed == 0) return RX_NONE;
  const len = load<i32>(RX);
  const fits = len <= capacity;
  if (fits) memory.copy(out, RX + 4, <usize>len);
  const entry = 4 + len;
  memory.copy(RX, RX + <usize>entry, <usize>(rxUsed - entry));
  rxUsed -= entry;
  zeroize(RX + <usize>rxUsed, entry);
  if (!fits) {
    C.count(C.C_DROP_RX_TOO_LARGE);
    return RX_TOO_LARGE;
  }
  return len;
}

function queueReceived(src: usize, len: i32): void {
  if (rxUsed + 4 + len > RX_BYTES) {
    C.count(C.C_DROP_RX_QUEUE_FULL);
    return;
  }
  store<i32>(RX + <usize>rxUsed, len);
  memory.copy(RX + <usize>(rxUsed + 4), src, <usize>len);
  rxUsed += 4 + len;
  C.count(C.C_RX_APP_RECORDS);
}

/** Sends close_notify (if connected) and destroys the connection's keys. */
export function close(now: i64): void {
  if (state == S_CONNECTED && beginDatagram()) {
    appendProtectedRecord(CT_ALERT, CLOSE_NOTIFY_ALERT, 2);
    endDatagram();
  }
  transition(S_CLOSED, E_CLOSED_BY_APPLICATION, now);
}
const CLOSE_NOTIFY_ALERT: usize = memory.data<u8>([1, 0]);

// --- Receive path ---------------------------------------------------------------------------------

/** Processes one datagram of `len` bytes at `p` (modified in place: records decrypt in place). */
export function handleDatagram(now: i64, p: usize, len: i32): void {
  const acceptedBefore = C.value(C.C_RX_RECORDS_OK);
  const retransmissionsBefore = C.value(C.C_PEER_RETRANSMISSIONS);
  handleRecords(now, p, len);
  // One outcome per datagram, whatever its records did.
  if (C.value(C.C_RX_RECORDS_OK) != acceptedBefore) C.count(C.C_DATAGRAMS_ACCEPTED);
  else if (C.value(C.C_PEER_RETRANSMISSIONS) != retransmissionsBefore) C.count(C.C_DATAGRAMS_RETRANSMITTED);
  else C.count(C.C_DATAGRAMS_DROPPED);
}

/** A datagram the host handed over with a length the I/O buffer cannot hold: counted, not read. */
export function refuseDatagram(): void {
  C.count(C.C_RX_DATAGRAMS);
  C.count(C.C_DROP_DATAGRAM_TOO_LONG);
  C.count(C.C_DATAGRAMS_DROPPED);
  peerRetransmitted = false;
  resetTokenSeen = false;
  truncatedRecordSeen = false;
}

function handleRecords(now: i64, p: usize, len: i32): void {
  C.count(C.C_RX_DATAGRAMS);
  const end = p + <usize>len;
  let at = p;
  peerRetransmitted = false;
  resetTokenSeen = false;
  truncatedRecordSeen = false;
  if (len < HEADER_BYTES) {
    C.count(C.C_DROP_SHORT);
    return;
  }
  while (at < end) {
    const rc = parseRecord(at, end);
    if (rc != PARSE_OK) {
      // Record boundaries are lost: the rest of the datagram is dropped with it.
      if (rc == C.C_DROP_LENGTH_BEYOND_DATAGRAM && looksLikeTruncatedRecord()) truncatedRecordSeen = true;
      C.count(rc);
      break;
    }
    const next = recEnd;
    handleRecord(now);
    at = next;
    if (state == S_FAILED || state == S_CLOSED) break;
  }
  if (peerRetransmitted && (state == S_WAIT_SERVER_HELLO || state == S_WAIT_SERVER_FINISHED)
    && now - flightSentMs >= PEER_RETRANSMIT_SPACING_MS) {
    // The server resent its flight: ours was lost, send it again at once (RFC 6347 §4.2.4) —
    // but not for every copy: replayed plaintext records would otherwise make us a reflector.
    retransmit();
    flightSentMs = now;
  }
}

/**
 * The 2019 heal datagram (device-os-reference.md): a header that passes every check — application
 * data (or our CID), DTLS 1.2, the current epoch, a sequence number above the window, a length of
 * at least one protected record and within our buffer — but fewer bytes than the length says.
 */
function looksLikeTruncatedRecord(): bool {
  if (state != S_CONNECTED || readEpoch != 1) return false;
  if (recType != CT_APPLICATION_DATA && !(recCidLen > 0 && cidInUse)) return false;
  if (recVersion != VERSION_DTLS12 || recEpoch != 1) return false;
  if (recBodyLen < PROTECTED_OVERHEAD || recBodyLen > MAX_RECORD_BODY_BYTES) return false;
  return recSeq > load<u64>(WINDOW1) || load<u64>(WINDOW1, 8) == 0;
}
const MAX_RECORD_BODY_BYTES: i32 = 2048;

/** A record of ours that did not authenticate: is it the stateless reset carrying our token? */
function checkResetToken(): void {
  if (resetTokenArmed && recBodyLen >= 16 && ctEqual(TOKEN_SCRATCH, RESET_TOKEN, 16)) resetTokenSeen = true;
  zeroize(TOKEN_SCRATCH, 16); // when it matched, it is the token itself
}

function handleRecord(now: i64): void {
  const epoch = recEpoch;
  if (epoch == 0 && recCidLen > 0) {
    C.count(C.C_DROP_BAD_HEADER); // a CID record is always protected
    return;
  }
  if (epoch == 0) {
    if (state == S_CONNECTED || state == S_IDLE || state == S_FAILED || state == S_CLOSED) {
      C.count(C.C_DROP_WRONG_EPOCH);
      return;
    }
    if (recVersion == VERSION_DTLS10 && recType != CT_HANDSHAKE) {
      C.count(C.C_DROP_BAD_VERSION);
      return;
    }
    // No replay window in epoch 0: anyone can forge a high sequence number there, and moving a
    // window with it would make us drop the genuine server flight. Duplicates are recognised by
    // their handshake message_seq instead.
    handlePlaintext(now, recType, recBody, recBodyLen);
    return;
  }
  if (epoch != 1 || readEpoch != 1) {
    C.count(C.C_DROP_WRONG_EPOCH);
    return;
  }
  // Keep the last 16 bytes: decryption in place would wipe the part a reset token sits in.
  if (resetTokenArmed && recBodyLen >= 16) memory.copy(TOKEN_SCRATCH, recEnd - 16, 16);
  if (!replayCheck(WINDOW1, recSeq)) {
    checkResetToken();
    C.count(C.C_DROP_REPLAYED);
    return;
  }
  if (recCidLen > 0 && !cidInUse) {
    C.count(C.C_DROP_BAD_HEADER); // the server did not agree to send us a CID
    return;
  }
  const seq = recSeq;
  const n = unprotectRecord(SERVER_WRITE, SERVER_IV);
  if (n < 0) {
    if (-1 - n == C.C_DROP_AUTH_FAILED) {
      failedAuthThisKey++;
      checkResetToken();
    }
    C.count(-1 - n);
    return;
  }
  authenticatedRecords++;
  const type = recType; // the real type, also for tls12_cid records
  replayUpdate(WINDOW1, seq); // only now: the record authenticated
  handlePlaintext(now, type, recBody + <usize>EXPLICIT_NONCE_BYTES, n);
}

/** Content of a record that passed the record layer (authenticated when epoch 1). */
function handlePlaintext(now: i64, type: u8, body: usize, len: i32): void {
  switch (type) {
    case CT_HANDSHAKE:
      handleHandshakeRecord(now, body, len);
      return;
    case CT_CHANGE_CIPHER_SPEC:
      if (len != 1 || load<u8>(body) != 1) {
        C.count(C.C_DROP_MALFORMED_MESSAGE);
        return;
      }
      if (state != S_WAIT_SERVER_FINISHED || serverCcsSeen) {
        C.count(C.C_DROP_UNEXPECTED_MESSAGE);
        return;
      }
      serverCcsSeen = true;
      readEpoch = 1;
      C.count(C.C_RX_RECORDS_OK);
      return;
    case CT_ALERT:
      handleAlert(now, body, len);
      return;
    case CT_APPLICATION_DATA:
      if (state != S_CONNECTED || recEpoch != 1) {
        C.count(C.C_DROP_UNEXPECTED_MESSAGE);
        return;
      }
      C.count(C.C_RX_RECORDS_OK);
      queueReceived(body, len);
      return;
  }
  C.count(C.C_DROP_BAD_HEADER);
}

function handleAlert(now: i64, body: usize, len: i32): void {
  if (len != 2) {
    C.count(C.C_DROP_MALFORMED_MESSAGE);
    return;
  }
  const level = load<u8>(body);
  const description = load<u8>(body + 1);
  if (recEpoch == 0 && state == S_CONNECTED) {
    // An unauthenticated alert cannot end an authenticated connection.
    C.count(C.C_DROP_UNEXPECTED_MESSAGE);
    return;
  }
  C.count(C.C_RX_RECORDS_OK);
  C.count(C.C_ALERTS_RECEIVED);
  lastAlert = <i32>description;
  if (description == ALERT_CLOSE_NOTIFY) {
    transition(S_CLOSED, E_ALERT_RECEIVED, now);
  } else if (level == 2) {
    transition(S_FAILED, E_ALERT_RECEIVED, now);
  }
}

/** One record may carry several handshake messages or fragments. */
function handleHandshakeRecord(now: i64, body: usize, len: i32): void {
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
      peerRetransmitted = true; // a message we already processed: the server resent its flight
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
    if (state == S_FAILED || state == S_CONNECTED) break;
  }
  if (accepted) C.count(C.C_RX_RECORDS_OK);
}

/** The first server message (HelloVerifyRequest or ServerHello) sets the server's numbering. */
function firstServerMessage(): bool {
  return state == S_WAIT_SERVER_HELLO;
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
  switch (state) {
    case S_WAIT_SERVER_HELLO:
      if (type == HT_HELLO_VERIFY_REQUEST && recEpoch == 0) return onHelloVerifyRequest(now, body, len);
      if (type == HT_SERVER_HELLO && recEpoch == 0) return onServerHello(now, seq, body, len);
      break;
    case S_WAIT_SERVER_HELLO_DONE:
      if (recEpoch != 0) break;
      if (type == HT_SERVER_KEY_EXCHANGE) return onServerKeyExchange(seq, body, len);
      if (type == HT_SERVER_HELLO_DONE) return onServerHelloDone(now, seq, body, len);
      break;
    case S_WAIT_SERVER_FINISHED:
      if (type == HT_FINISHED && recEpoch == 1) return onServerFinished(now, seq, body, len);
      break;
    case S_CONNECTED:
      if (type == HT_HELLO_REQUEST) break; // renegotiation is not supported: ignore (RFC 5746)
      break;
  }
  C.count(C.C_DROP_UNEXPECTED_MESSAGE);
  return false;
}

function onHelloVerifyRequest(now: i64, body: usize, len: i32): bool {
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
  transition(S_WAIT_SERVER_HELLO, E_NONE, now);
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
    transition(S_FAILED, E_NO_EXTENDED_MASTER_SECRET, now);
    return false;
  }
  memory.copy(SERVER_RANDOM, body + 2, 32);
  extendedMasterSecret = ems;
  peerCidLen = 0;
  cidInUse = cid && ownCidLen > 0;
  if (cid && cidLen > 0) {
    memory.copy(PEER_CID, cidAt, <usize>cidLen);
    peerCidLen = cidLen;
  }
  // The transcript starts with the ClientHello this ServerHello answers.
  sha256Init(TRANSCRIPT);
  sha256Update(TRANSCRIPT, FLIGHT, flightLen);
  hashMessage(HT_SERVER_HELLO, seq, body, len);
  recvMessageSeq = seq + 1;
  sendMessageSeq++;
  transition(S_WAIT_SERVER_HELLO_DONE, E_NONE, now);
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
  writeEpoch = 1;
  writeSeq1 = 0;
  replayReset(WINDOW1);
  sendFlight();
  transition(S_WAIT_SERVER_FINISHED, E_NONE, now);
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
    // Authenticated by the record layer yet wrong: the server derived different secrets.
    transition(S_FAILED, E_BAD_SERVER_FINISHED, now);
    return false;
  }
  recvMessageSeq = seq + 1;
  transition(S_CONNECTED, E_NONE, now);
  return true;
}


// --- Session persistence (assembly/session) --------------------------------------------------------

/** Raw key material for the persisted record: client key, server key, client IV, server IV. */
export function exportKeys(out: usize): void {
  memory.copy(out, CLIENT_WRITE, 16); // the first round key is the key itself
  memory.copy(out + 16, SERVER_WRITE, 16);
  memory.copy(out + 32, CLIENT_IV, 4);
  memory.copy(out + 36, SERVER_IV, 4);
}

export function isCidInUse(): bool {
  return cidInUse;
}

export function readSequenceMax(): u64 {
  return load<u64>(WINDOW1, 8) == 0 ? 0 : load<u64>(WINDOW1);
}

/**
 * Goes straight to "connected" with a persisted session (no handshake, nothing sent), as Device OS
 * did at wake. Sending resumes at the persisted reservation, so no sequence number that might have
 * been used before a power loss is used again; records at or below `readMax` count as replays.
 */
export function restoreConnection(keys: usize, peerCid: usize, cidLen: i32, withOwnCid: bool, writeFrom: u64, readMax: u64, hasRead: bool): void {
  wipeConnection();
  aes128ExpandKey(CLIENT_WRITE, keys);
  aes128ExpandKey(SERVER_WRITE, keys + 16);
  memory.copy(CLIENT_IV, keys + 32, 4);
  memory.copy(SERVER_IV, keys + 36, 4);
  keyGeneration++;
  memory.copy(PEER_CID, peerCid, <usize>cidLen);
  peerCidLen = cidLen;
  cidInUse = withOwnCid;
  writeEpoch = 1;
  readEpoch = 1;
  writeSeq1 = writeFrom;
  writeSeqReserved = writeFrom; // the first send moves the reservation (persisted before it leaves)
  replayReset(WINDOW1);
  if (hasRead) {
    store<u64>(WINDOW1, readMax);
    store<u64>(WINDOW1, 0xffffffffffffffff, 8);
  }
  lastError = E_NONE;
  lastAlert = -1;
  state = S_CONNECTED;
  deadlineMs = -1;
}

/** Destroys the connection without a word on the wire (the cloud has lost it anyway). */
export function discardConnection(now: i64, reason: i32): void {
  transition(S_IDLE, reason, now);
}
