// DTLS 1.2 client for TLS_PSK_WITH_AES_128_CCM_8 and TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 (RFC 6347,
// RFC 4279, RFC 6655, RFC 7251, RFC 7627, RFC 9146), the connection half: states and their one transition function, keys, record numbers
// and the replay window, the transmit queue and received data, timers, the receive path, and what
// the session layer persists. The handshake half (flights, messages, key derivation) is
// handshake.ts. Sans-IO: time comes in as `now` (ms), datagrams come in through the I/O buffer and
// leave through a transmit queue drained by poll_transmit.
import { AES128_CTX_BYTES, aes128ExpandKey, ctEqual, zeroize } from '../crypto/index';
import * as cfg from '../config';
import { putU16, putU48, putU8 } from './bytes';
import {
  CT_ALERT, CT_APPLICATION_DATA, CT_CHANGE_CIPHER_SPEC, CT_HANDSHAKE, EXPLICIT_NONCE_BYTES,
  HEADER_BYTES, MAX_SEQUENCE, PARSE_OK, PROTECTED_OVERHEAD, REPLAY_WINDOW_BYTES, VERSION_DTLS10,
  VERSION_DTLS12, parseRecord, protectRecord, protectedRecordBytes, recBody, recBodyLen, recEnd,
  recEpoch, recSeq, recType, recVersion, replayCheck, replayReset, replayUpdate, unprotectRecord,
  recCidLen,
} from './record';
import * as C from './counters';
import * as hs from './handshake';

// The handshake half's entry points, for the exports and the session layer.
export {
  connect, devicePublicKey, isProvisioned, provision, provisionEcdhe, validateEcdheCredentials, wipeCredentials,
} from './handshake';

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
/** ECDHE-ECDSA: the server's key is not the pinned one, its signature does not verify, or it asked for what we cannot give. */
export const E_SERVER_KEY_REJECTED: i32 = 9;

const ALERT_CLOSE_NOTIFY: u8 = 0;

export let state: i32 = S_IDLE;
export let lastError: i32 = E_NONE;
export let lastAlert: i32 = -1;

export const PEER_CID: usize = memory.data(cfg.MAX_CID_BYTES);
export let peerCidLen: i32 = 0;
/** The server agreed to put our CID in its records (we offered a non-empty one). */
export let cidInUse: bool = false;

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

// --- Server flights seen again -----------------------------------------------------------------
export let peerRetransmitted: bool = false;
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

/**
 * The one place where the connection state changes. It sets the timer for the new state and
 * destroys secrets that the new state no longer needs.
 */
export function transition(to: i32, reason: i32, now: i64): void {
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
      hs.wipeHandshakeSecrets();
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

/** Destroys every key of the connection (the provisioned PSK stays). */
function wipeConnection(): void {
  hs.wipeHandshakeSecrets();
  zeroize(hs.MASTER_SECRET, 48);
  zeroize(CLIENT_WRITE, <i32>AES128_CTX_BYTES);
  zeroize(SERVER_WRITE, <i32>AES128_CTX_BYTES);
  zeroize(CLIENT_IV, 4);
  zeroize(SERVER_IV, 4);
  zeroize(hs.CLIENT_RANDOM, 32);
  zeroize(hs.SERVER_RANDOM, 32);
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

// --- Transmit queue ------------------------------------------------------------------------------

/** Opens a datagram in the next free slot. False when the queue is full. */
export function beginDatagram(): bool {
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

export function endDatagram(): void {
  if (building == 0 || buildingLen == 0) return;
  const slot = (txHead + txCount) % TX_SLOTS;
  store<i32>(TX_LEN + <usize>(slot << 2), buildingLen);
  txCount++;
  building = 0;
  C.count(C.C_TX_DATAGRAMS);
}

/** Appends an unprotected (epoch 0) record carrying `len` bytes from `src`. */
export function appendPlainRecord(type: u8, src: usize, len: i32): void {
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
export function appendProtectedRecord(type: u8, src: usize, len: i32): bool {
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

/** Copies the next queued datagram into `out`; returns its length, 0 when none. */
export function pollTransmit(out: usize, capacity: i32): i32 {
  if (txCount == 0) return 0;
  const len = load<i32>(TX_LEN + <usize>(txHead << 2));
  if (len > capacity) return -2;
  const slot = TX + <usize>(txHead * TX_SLOT_BYTES);
  memory.copy(out, slot, <usize>len);
  zeroize(slot, len); // sent: nothing of it (a handshake flight, a plaintext before sealing) stays behind
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
  hs.retransmit();
  flightSentMs = now;
  flightTransmissions++;
  currentTimeoutMs = min(currentTimeoutMs * 2, cfg.handshakeMaxTimeoutMs);
  deadlineMs = now + currentTimeoutMs;
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
    hs.retransmit();
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
      hs.handleHandshakeRecord(now, body, len);
      return;
    case CT_CHANGE_CIPHER_SPEC:
      if (len != 1 || load<u8>(body) != 1) {
        C.count(C.C_DROP_MALFORMED_MESSAGE);
        return;
      }
      if (state != S_WAIT_SERVER_FINISHED || hs.serverCcsSeen) {
        C.count(C.C_DROP_UNEXPECTED_MESSAGE);
        return;
      }
      hs.serverCcsSeen = true;
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
