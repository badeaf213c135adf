// The session lifecycle across deep sleep: boot from the persisted record, resume without a
// handshake, confirm, expire, destroy keys before sleep, heal. Every change of the session state
// goes through `transition`, which also emits the application events and persists what changed.
import {
  SHA256_CTX_BYTES, ctEqual, hmacDrbgGenerate, sha256Final, sha256Init, sha256Update, zeroize,
} from '../crypto/index';
import { P256_OK, P256_PUBLIC_KEY_BYTES, p256Keygen, p256PublicKey, p256ValidPublicKey } from '../crypto/p256';
import { DRBG, isSeeded } from '../entropy';
import * as cfg from '../config';
import * as dtls from '../dtls/client';
import * as C from '../dtls/counters';
import { setOwnCid } from '../dtls/record';
import * as coap from '../coap/message';
import * as P from './persist';
import * as policy from './policy';

// --- Session states (ABI: docs/abi.md) ----------------------------------------------------------
export const SS_OFF: i32 = 0; // not booted: the module is a raw DTLS client
export const SS_HANDSHAKING: i32 = 1;
export const SS_RESUMED: i32 = 2; // restored at wake; nothing from the cloud has authenticated yet
export const SS_CONFIRMED: i32 = 3; // the cloud has answered under the current keys since wake
export const SS_NO_SESSION: i32 = 4; // no keys (a handshake failed, or keys destroyed before sleep)

// Why a session ended (event SESSION_DISCARDED, reason)
export const R_MAX_AGE: u32 = 1;
export const R_UNCONFIRMED_RESTORES: u32 = 2;
export const R_RECORD_LIMIT: u32 = 3;
export const R_FAILED_AUTH_LIMIT: u32 = 4;
export const R_COAP_RST: u32 = 5;
export const R_COAP_GIVE_UP: u32 = 6;
export const R_RESET_TOKEN: u32 = 7;
export const R_TRUNCATED_RECORD: u32 = 8;
export const R_CREDENTIALS_CHANGED: u32 = 9;
export const R_PEER_CLOSED: u32 = 10;
export const R_HANDSHAKE_FAILED: u32 = 11;
export const R_CLOSED: u32 = 12; // the application closed the connection (close) or it ended under the session
export const R_RECONNECT: u32 = 13; // the application asked for a new handshake (connect)
export const R_PERSISTED_INVALID: u32 = 14; // the newest slot's CRC matched but its content is out of range
export const R_PERSISTED_SLOT_LOST: u32 = 15; // one slot failed its CRC: the surviving one may be stale
export const R_EVENT_NUMBER_CONFLICT: u32 = 16; // the cloud holds an event number of ours with other content
export const R_NONE: u32 = 0;

// Application events (poll_event): type, then two u32 arguments
export const EV_RESUMED: u8 = 1; // a: use counter after this restore
export const EV_HANDSHAKE_STARTED: u8 = 2; // a: reason the previous session ended (R_*), 0 none
export const EV_CONNECTED: u8 = 3; // handshake completed
export const EV_CONFIRMED: u8 = 4; // first authenticated record since wake
export const EV_EVENT_ACKED: u8 = 5; // a: event sequence number
export const EV_SESSION_DISCARDED: u8 = 6; // a: reason (R_*)
export const EV_HANDSHAKE_FAILED: u8 = 7; // a: DTLS error (docs/abi.md)
export const EV_EVENT_DROPPED: u8 = 8; // a: event sequence number (unconfirmed at sleep)
export const EV_HINT_IGNORED: u8 = 9; // a truncated record was seen and not acted on

export const ERR_NOT_PROVISIONED: i32 = -1;
export const ERR_NOT_SEEDED: i32 = -5;
export const ERR_BAD_ARGUMENT: i32 = -2;
export const ERR_OUTBOX_FULL: i32 = -3;
export const ERR_NOT_BOOTED: i32 = -4;

export let sessState: i32 = SS_OFF;
let wokeAtMs: i64 = 0;
/** When this wake's prepare_sleep first found our key-exchange flight out, the server's Finished not in (-1: not yet). */
let finishedWaitFromMs: i64 = -1;
let seenAuthenticated: u32 = 0;
/** dtls.keyGeneration when the current session's keys were installed: any other value means the
 * connection under the persisted keys is gone, whichever export ended it. */
let sessionKeyGeneration: u32 = 0;
let dirty: bool = false;
let wakePingDue: bool = false;
/**
 * The wake ping waits this long, so that an event the application publishes right after boot
 * confirms the session instead (one exchange, not two).
 */
const WAKE_PING_DELAY_MS: i64 = 100;
let wakePingAtMs: i64 = -1;

// CoAP exchange in flight (NSTART = 1, RFC 7252 §4.7)
const KIND_NONE: i32 = 0;
const KIND_PING: i32 = 1;
const KIND_EVENT: i32 = 2;
let outKind: i32 = KIND_NONE;
const EVENT_TOKEN_BYTES: i32 = 4;
const OUT_TOKEN: usize = memory.data(EVENT_TOKEN_BYTES, 4);
let outMid: u32 = 0;
let outEventSeq: u32 = 0;
let outTransmissions: i32 = 0;
let outTimeoutMs: i64 = 0;
let outDeadlineMs: i64 = -1;
const MESSAGE_BYTES: i32 = 128;
const MESSAGE: usize = memory.data(MESSAGE_BYTES, 8);
let messageLen: i32 = 0;

// Recently answered confirmable requests from the cloud, for de-duplication (mid, response code)
const SEEN_SLOTS: i32 = 4;
const SEEN_MID: usize = memory.data(SEEN_SLOTS * 4, 4);
const SEEN_CODE: usize = memory.data(SEEN_SLOTS, 4);
let seenNext: i32 = 0;

// Events for the application
const EVENT_BYTES: i32 = 12;
const EVENT_SLOTS: i32 = 32;
const EVENTS: usize = memory.data(EVENT_SLOTS * EVENT_BYTES, 4);
let eventHead: i32 = 0;
let eventCount: i32 = 0;

const SCRATCH: usize = memory.data(64, 8);
const SCRATCH_RX_BYTES: i32 = 1024;
const SCRATCH_RX: usize = memory.data(SCRATCH_RX_BYTES, 8);
const HANDLE_LABEL: usize = memory.data<u8>([
  0x73, 0x6c, 0x65, 0x65, 0x70, 0x79, 0x2d, 0x73, 0x65, 0x73, 0x73, 0x69, 0x6f, 0x6e, 0x20, 0x68, 0x61, 0x6e, 0x64, 0x6c, 0x65,
]); // "sleepy-session handle"
const HANDLE_LABEL_LEN: i32 = 21;
/**
 * How far the event sequence number and the CoAP message ID move past a surviving slot whose
 * sibling was lost (docs/persistence.md). One export publishes at most one event and sends at most
 * a transmit queue's worth of CoAP messages, and every export that moves either ends in a slot
 * write: the lost slot, one write newer, is at most that far ahead. The margins are far larger.
 */
const SLOT_LOST_EVENT_SEQ_MARGIN: u32 = 1024;
const SLOT_LOST_MID_MARGIN: u16 = 4096;
/**
 * Failed authentications are folded into the record every this many, not only at sleep: a power
 * cut loses fewer than this many, and forged records cannot wear the flash out faster than one
 * write per this many (the limit of 2^16 takes at most 64 such writes).
 */
const FAILED_AUTH_PERSIST_STEP: u32 = 1024;
const PATH_EVENTS: usize = memory.data<u8>([0x65]); // "e"
const PATH_RESET_TOKEN: usize = memory.data<u8>([0x72, 0x74]); // "rt"

function emit(type: u8, a: u32, b: u32): void {
  if (eventCount == EVENT_SLOTS) { // the application is not reading: drop the oldest
    eventHead = (eventHead + 1) % EVENT_SLOTS;
    eventCount--;
  }
  const p = EVENTS + <usize>(((eventHead + eventCount) % EVENT_SLOTS) * EVENT_BYTES);
  store<u8>(p, type);
  store<u32>(p + 4, a);
  store<u32>(p + 8, b);
  eventCount++;
}

export function pollEvent(out: usize): i32 {
  if (eventCount == 0) return 0;
  memory.copy(out, EVENTS + <usize>(eventHead * EVENT_BYTES), <usize>EVENT_BYTES);
  eventHead = (eventHead + 1) % EVENT_SLOTS;
  eventCount--;
  return EVENT_BYTES;
}

// --- Provisioning ---------------------------------------------------------------------------------

/** Writes the credentials block (a factory step). Any stored session is refused at the next boot. */
export function provisionDevice(profileId: u8, id: usize, idLen: i32, identity: usize, identityLen: i32, psk: usize, pskLen: i32): i32 {
  if (profileId > policy.PROFILE_DEFAULT || idLen < 1 || idLen > P.MAX_DEVICE_ID_BYTES) return ERR_BAD_ARGUMENT;
  if (identityLen < 1 || identityLen > P.MAX_STORED_IDENTITY_BYTES || pskLen < 1 || pskLen > P.MAX_STORED_PSK_BYTES) return ERR_BAD_ARGUMENT;
  beginCredentials(profileId, id, idLen);
  store<u8>(P.CREDS_IMAGE + P.CRED_IDENTITY_LEN, <u8>identityLen);
  store<u8>(P.CREDS_IMAGE + P.CRED_PSK_LEN, <u8>pskLen);
  memory.copy(P.CREDS_IMAGE + P.CRED_IDENTITY, identity, <usize>identityLen);
  memory.copy(P.CREDS_IMAGE + P.CRED_PSK, psk, <usize>pskLen);
  // The DTLS client's copy of the old credentials goes too: a raw `connect` after this must
  // not complete a handshake with credentials the device no longer has.
  dtls.provision(P.CREDS_IMAGE + P.CRED_IDENTITY, identityLen, P.CREDS_IMAGE + P.CRED_PSK, pskLen);
  endCredentials(false);
  return 0;
}

/**
 * ECDHE-ECDSA credentials (docs/abi.md): the server's public key to pin (65 bytes, 0x04 ‖ X ‖ Y)
 * and the device's private key — injected (32 bytes at `privateKey`) or, when `privateKey` is 0,
 * generated here from the DRBG so that it never exists outside the device. ERR_BAD_ARGUMENT for a
 * server key off the curve or a private key outside [1, n − 1], ERR_NOT_SEEDED when a key must be
 * generated and the DRBG has no entropy. Nothing is changed when it fails.
 */
export function provisionDeviceEcdhe(profileId: u8, id: usize, idLen: i32, serverKey: usize, privateKey: usize): i32 {
  if (profileId > policy.PROFILE_DEFAULT || idLen < 1 || idLen > P.MAX_DEVICE_ID_BYTES) return ERR_BAD_ARGUMENT;
  if (!p256ValidPublicKey(serverKey, P256_PUBLIC_KEY_BYTES)) return ERR_BAD_ARGUMENT;
  if (privateKey == 0) {
    if (!isSeeded() || p256Keygen(DRBG, KEY_SCRATCH, KEY_SCRATCH + 32) != P256_OK) {
      zeroize(KEY_SCRATCH, KEY_SCRATCH_BYTES);
      return ERR_NOT_SEEDED;
    }
  } else {
    memory.copy(KEY_SCRATCH, privateKey, 32);
    if (p256PublicKey(KEY_SCRATCH + 32, KEY_SCRATCH) != P256_OK) {
      zeroize(KEY_SCRATCH, KEY_SCRATCH_BYTES);
      return ERR_BAD_ARGUMENT;
    }
  }
  beginCredentials(profileId, id, idLen);
  memory.copy(P.CREDS_IMAGE + P.CRED_SERVER_KEY, serverKey + 1, 64);
  memory.copy(P.CREDS_IMAGE + P.CRED_DEVICE_KEY, KEY_SCRATCH, 32);
  zeroize(KEY_SCRATCH, KEY_SCRATCH_BYTES);
  dtls.provisionEcdhe(P.CREDS_IMAGE + P.CRED_SERVER_KEY, P.CREDS_IMAGE + P.CRED_DEVICE_KEY);
  endCredentials(true);
  return 0;
}
const KEY_SCRATCH_BYTES: i32 = 32 + P256_PUBLIC_KEY_BYTES;
const KEY_SCRATCH: usize = memory.data(KEY_SCRATCH_BYTES, 8);

/** Ends the old credentials' session and starts a blank credentials image with the common fields. */
function beginCredentials(profileId: u8, id: usize, idLen: i32): void {
  // Booted: the session belongs to the old credentials; its keys go before the new block is queued.
  if (sessState != SS_OFF) {
    if (hasSession()) destroySession(R_CREDENTIALS_CHANGED);
    transition(SS_OFF, R_NONE, 0);
  }
  memory.fill(P.CREDS_IMAGE, 0, <usize>P.CREDS_BYTES);
  store<u8>(P.CREDS_IMAGE + P.CRED_PROFILE, profileId);
  store<u8>(P.CREDS_IMAGE + P.CRED_ID_LEN, <u8>idLen);
  memory.copy(P.CREDS_IMAGE + P.CRED_DEVICE_ID, id, <usize>idLen);
}

function endCredentials(ecdhe: bool): void {
  P.sealCreds(ecdhe);
  P.writeCreds();
  C.count(C.C_STORE_WRITES);
  // Both slots blank: whatever session the old credentials had leaves flash now, not at some later
  // boot. (Their credentials checksum is 0, so the next boot starts a fresh record and stream.)
  P.blankSlot();
  persistNow();
  persistNow();
}

/** The device's public key (65 bytes, 0x04 ‖ X ‖ Y) into out; 65, or ERR_NOT_PROVISIONED without ECDHE credentials. */
export function devicePublicKey(out: usize): i32 {
  const pub = dtls.devicePublicKey();
  if (pub == 0) return ERR_NOT_PROVISIONED;
  memory.copy(out, pub, <usize>P256_PUBLIC_KEY_BYTES);
  return P256_PUBLIC_KEY_BYTES;
}

// --- Boot -----------------------------------------------------------------------------------------

/** Cold start from the persisted region (`len` bytes at `region`; 0 bytes = blank memory). */
export function boot(now: i64, region: usize, len: i32): i32 {
  resetVolatile(now);
  if (len < P.REGION_BYTES) return ERR_NOT_PROVISIONED;
  if (!P.credsValid(region)) return ERR_NOT_PROVISIONED;
  if (!isSeeded()) return ERR_NOT_SEEDED;
  memory.copy(P.CREDS_IMAGE, region, <usize>P.CREDS_BYTES);
  policy.setProfile(load<u8>(P.CREDS_IMAGE + P.CRED_PROFILE));
  cfg.applyProfileDefaults(policy.profile == policy.PROFILE_DEFAULT);
  if (P.credsAreEcdhe()) {
    dtls.provisionEcdhe(P.CREDS_IMAGE + P.CRED_SERVER_KEY, P.CREDS_IMAGE + P.CRED_DEVICE_KEY);
  } else {
    const rc = dtls.provision(P.CREDS_IMAGE + P.CRED_IDENTITY, <i32>load<u8>(P.CREDS_IMAGE + P.CRED_IDENTITY_LEN),
      P.CREDS_IMAGE + P.CRED_PSK, <i32>load<u8>(P.CREDS_IMAGE + P.CRED_PSK_LEN));
    if (rc != 0) return ERR_NOT_PROVISIONED;
  }
  // Our CID is the 4-byte handle the cloud derives from the device id (docs/protocol.md).
  sha256Concat(HANDLE_LABEL, HANDLE_LABEL_LEN, P.CREDS_IMAGE + P.CRED_DEVICE_ID, <i32>load<u8>(P.CREDS_IMAGE + P.CRED_ID_LEN), SCRATCH);
  setOwnCid(SCRATCH, 4);
  dtls.setReserveBlock(policy.SEQUENCE_RESERVE_BLOCK);

  const found = P.loadNewestSlot(region);
  // Keys that must not stay on flash: a refused record, a record of other credentials, or the
  // older slot still holding a session the newest one has destroyed (a cut between the two writes).
  let eraseBothSlots = P.otherSlotHoldsSession && !hasSession();
  // An unsealed slot may still hold the keys of a session lost to rot: overwrite both now rather
  // than whenever the alternating writes get to it.
  if (found == P.SLOT_NONE || P.oneSlotLost) eraseBothSlots = true;
  let fresh = found != P.SLOT_LOADED;
  // The lost slot may have been the newer one (rot, not a torn write): its sequence reservation,
  // event numbers and message IDs may be on the wire already. The session is not resumed (its
  // keys are erased from both slots below), and numbering continues past anything it could hold.
  const slotLost = found == P.SLOT_LOADED && P.oneSlotLost;
  if (slotLost) {
    C.count(C.C_PERSISTED_SLOT_LOST);
    store<u32>(P.SLOT_IMAGE + P.SLOT_NEXT_EVENT_SEQ, load<u32>(P.SLOT_IMAGE + P.SLOT_NEXT_EVENT_SEQ) + SLOT_LOST_EVENT_SEQ_MARGIN);
    store<u16>(P.SLOT_IMAGE + P.SLOT_NEXT_MID, load<u16>(P.SLOT_IMAGE + P.SLOT_NEXT_MID) + SLOT_LOST_MID_MARGIN);
    dirty = true;
  }
  if (found == P.SLOT_REFUSED) {
    C.count(C.C_PERSISTED_REFUSED);
    emit(EV_SESSION_DISCARDED, R_PERSISTED_INVALID, 0);
    eraseBothSlots = true;
  } else if (found == P.SLOT_LOADED && load<u32>(P.SLOT_IMAGE + P.SLOT_CREDS_CRC) != P.credsChecksum()) {
    // The credentials changed since this record was written: refuse all of it.
    const had = hasSession();
    P.blankSlot();
    if (had) emit(EV_SESSION_DISCARDED, R_CREDENTIALS_CHANGED, 0);
    eraseBothSlots = true;
    fresh = true;
  }
  store<u32>(P.SLOT_IMAGE + P.SLOT_CREDS_CRC, P.credsChecksum());
  if (fresh) {
    // A random first message ID (RFC 7252 §4.4), and a new random identity for the event stream
    // whose sequence numbers restart at 0: a cloud that still holds claims for the old stream
    // (re-provisioning, a lost record) tells the new events from the old (docs/protocol.md).
    hmacDrbgGenerate(DRBG, SCRATCH, 6, 0, 0);
    store<u16>(P.SLOT_IMAGE + P.SLOT_NEXT_MID, load<u16>(SCRATCH));
    store<u32>(P.SLOT_IMAGE + P.SLOT_INCARNATION, load<u32>(SCRATCH, 2));
    dirty = true;
  }
  if (eraseBothSlots) {
    persistNow();
    persistNow();
  }
  let ended = R_NONE;
  if (hasSession()) {
    ended = slotLost ? R_PERSISTED_SLOT_LOST : expiryReason(now, true);
    if (ended != R_NONE) destroySession(ended);
    else restore(now);
  }
  if (!hasSession()) transition(SS_HANDSHAKING, ended, now);
  kick(now);
  commit();
  return sessState;
}

function resetVolatile(now: i64): void {
  sessState = SS_OFF;
  wokeAtMs = now;
  finishedWaitFromMs = -1;
  seenAuthenticated = 0;
  sessionKeyGeneration = 0;
  dirty = false;
  wakePingDue = false;
  wakePingAtMs = -1;
  clearExchange();
  memory.fill(SEEN_MID, 0xff, <usize>(SEEN_SLOTS * 4));
  eventHead = 0;
  eventCount = 0;
  P.resetStoreQueue();
  dtls.discardConnection(now, 0);
  dtls.resetQueues();
  zeroize(SCRATCH_RX, SCRATCH_RX_BYTES);
  zeroize(MESSAGE, MESSAGE_BYTES);
}

const HASH_CTX: usize = memory.data(<i32>SHA256_CTX_BYTES, 8);

function sha256Concat(a: usize, aLen: i32, b: usize, bLen: i32, out: usize): void {
  sha256Init(HASH_CTX);
  sha256Update(HASH_CTX, a, aLen);
  sha256Update(HASH_CTX, b, bLen);
  sha256Final(HASH_CTX, out);
}

function hasSession(): bool {
  return (load<u8>(P.SLOT_IMAGE + P.SLOT_FLAGS) & P.FLAG_HAS_SESSION) != 0;
}

function restore(now: i64): void {
  const flags = load<u8>(P.SLOT_IMAGE + P.SLOT_FLAGS);
  dtls.restoreConnection(P.SLOT_IMAGE + P.SLOT_KEYS, P.SLOT_IMAGE + P.SLOT_PEER_CID, <i32>load<u8>(P.SLOT_IMAGE + P.SLOT_PEER_CID_LEN),
    (flags & P.FLAG_CID_IN_USE) != 0, load<u64>(P.SLOT_IMAGE + P.SLOT_WRITE_RESERVED), load<u64>(P.SLOT_IMAGE + P.SLOT_READ_MAX),
    (flags & P.FLAG_HAS_READ) != 0);
  sessionKeyGeneration = dtls.keyGeneration;
  if ((flags & P.FLAG_HAS_TOKEN) != 0 && policy.usesResetToken()) dtls.armResetToken(P.SLOT_IMAGE + P.SLOT_RESET_TOKEN);
  seenAuthenticated = 0;
  if (policy.maxUnconfirmedRestores > 0) {
    store<u8>(P.SLOT_IMAGE + P.SLOT_USE_COUNTER, load<u8>(P.SLOT_IMAGE + P.SLOT_USE_COUNTER) + 1);
  }
  C.count(C.C_SESSION_RESTORES);
  wakePingDue = true;
  wakePingAtMs = now + WAKE_PING_DELAY_MS;
  transition(SS_RESUMED, R_NONE, now);
}

/** Which expiry rule, if any, retires the stored session. `atRestore`: about to use it again. */
function expiryReason(now: i64, atRestore: bool): u32 {
  const uses = <i32>load<u8>(P.SLOT_IMAGE + P.SLOT_USE_COUNTER);
  if (policy.maxUnconfirmedRestores > 0) {
    // At restore: this would be one restore too many. Before sleep: this wake's restore went
    // unconfirmed and the next one would be refused anyway, so destroy the keys now.
    if (atRestore && uses >= policy.maxUnconfirmedRestores) return R_UNCONFIRMED_RESTORES;
    if (!atRestore && policy.enforcesKeyLimits() && sessState == SS_RESUMED && uses >= policy.maxUnconfirmedRestores) {
      return R_UNCONFIRMED_RESTORES;
    }
  }
  if (!policy.enforcesKeyLimits()) return R_NONE;
  if (now - load<i64>(P.SLOT_IMAGE + P.SLOT_CREATED_MS) >= policy.maxSessionAgeMs) return R_MAX_AGE;
  const sent = atRestore ? load<u64>(P.SLOT_IMAGE + P.SLOT_WRITE_RESERVED) : dtls.writeSeq1;
  if (sent >= policy.maxRecordsPerKey) return R_RECORD_LIMIT;
  if (failedAuthTotal() >= <u64>policy.maxFailedAuthPerKey) return R_FAILED_AUTH_LIMIT;
  return R_NONE;
}

// --- The one state transition -----------------------------------------------------------------------

function transition(to: i32, reason: u32, now: i64): void {
  const from = sessState;
  sessState = to;
  switch (to) {
    case SS_HANDSHAKING:
      clearExchange();
      emit(EV_HANDSHAKE_STARTED, reason, 0);
      dtls.connect(now);
      break;
    case SS_RESUMED:
      emit(EV_RESUMED, <u32>load<u8>(P.SLOT_IMAGE + P.SLOT_USE_COUNTER), 0);
      dirty = true; // the use counter moved
      break;
    case SS_CONFIRMED:
      store<u8>(P.SLOT_IMAGE + P.SLOT_USE_COUNTER, 0);
      if (from == SS_HANDSHAKING) {
        captureNewSession(now);
        emit(EV_CONNECTED, 0, 0);
      } else {
        emit(EV_CONFIRMED, 0, 0);
      }
      dirty = true;
      break;
    case SS_NO_SESSION:
      clearExchange();
      if (reason == R_HANDSHAKE_FAILED) emit(EV_HANDSHAKE_FAILED, <u32>dtls.lastError, 0);
      break;
    case SS_OFF:
      // Not booted any more (re-provisioned): the module is a raw DTLS client until the next boot.
      clearExchange();
      dtls.discardConnection(now, 0);
      break;
  }
}

function captureNewSession(now: i64): void {
  const s = P.SLOT_IMAGE;
  zeroize(s + P.SLOT_RESET_TOKEN, 16);
  store<u8>(s + P.SLOT_FLAGS, P.FLAG_HAS_SESSION | (dtls.isCidInUse() ? P.FLAG_CID_IN_USE : 0));
  store<i64>(s + P.SLOT_CREATED_MS, now);
  store<u32>(s + P.SLOT_FAILED_AUTH, 0);
  dtls.exportKeys(s + P.SLOT_KEYS);
  sessionKeyGeneration = dtls.keyGeneration;
  const cidLen = dtls.peerCidLen;
  store<u8>(s + P.SLOT_PEER_CID_LEN, <u8>cidLen);
  zeroize(s + P.SLOT_PEER_CID, 32);
  memory.copy(s + P.SLOT_PEER_CID, dtls.PEER_CID, <usize>cidLen);
  seenAuthenticated = dtls.authenticatedRecords;
}

/** Destroys the session's keys in RAM and in both persisted slots; the outbox and counters stay. */
function destroySession(reason: u32): void {
  dtls.discardConnection(0, 0);
  const s = P.SLOT_IMAGE;
  const hadSession = hasSession();
  store<u8>(s + P.SLOT_FLAGS, 0);
  store<u8>(s + P.SLOT_USE_COUNTER, 0);
  zeroize(s + P.SLOT_KEYS, P.SLOT_KEYS_BYTES);
  zeroize(s + P.SLOT_RESET_TOKEN, 16);
  zeroize(s + P.SLOT_PEER_CID, 32);
  store<u8>(s + P.SLOT_PEER_CID_LEN, 0);
  store<u64>(s + P.SLOT_WRITE_RESERVED, 0);
  store<u64>(s + P.SLOT_READ_MAX, 0);
  store<u32>(s + P.SLOT_FAILED_AUTH, 0);
  store<i64>(s + P.SLOT_CREATED_MS, 0);
  // Twice: the older of the A/B slots still holds the keys until it is overwritten too.
  persistNow();
  persistNow();
  clearExchange();
  if (hadSession) {
    C.count(C.C_SESSION_DISCARDS);
    emit(EV_SESSION_DISCARDED, reason, 0);
  }
}

/** Ends the session and, while awake, handshakes at once. */
function discardAndHandshake(reason: u32, now: i64): void {
  destroySession(reason);
  transition(SS_HANDSHAKING, reason, now);
}

// --- Persisting ---------------------------------------------------------------------------------------

function persistNow(): void {
  if (hasSession()) {
    // The reservation only grows: a lower value would let a later wake reuse a sequence number.
    const reserved = load<u64>(P.SLOT_IMAGE + P.SLOT_WRITE_RESERVED);
    if (dtls.writeSeqReserved > reserved) store<u64>(P.SLOT_IMAGE + P.SLOT_WRITE_RESERVED, dtls.writeSeqReserved);
    store<u32>(P.SLOT_IMAGE + P.SLOT_FAILED_AUTH, <u32>min<u64>(failedAuthTotal(), 0xffffffff));
    dtls.clearFailedAuth();
    const readMax = dtls.readSequenceMax();
    store<u64>(P.SLOT_IMAGE + P.SLOT_READ_MAX, readMax);
    if (dtls.authenticatedRecords > 0 || (load<u8>(P.SLOT_IMAGE + P.SLOT_FLAGS) & P.FLAG_HAS_READ) != 0) {
      store<u8>(P.SLOT_IMAGE + P.SLOT_FLAGS, load<u8>(P.SLOT_IMAGE + P.SLOT_FLAGS) | P.FLAG_HAS_READ);
    }
  }
  P.writeSlot();
  C.count(C.C_STORE_WRITES);
  dtls.clearReservationMoved();
  dirty = false;
}

/** Failed authentications under the session's keys: persisted ones and those since. */
function failedAuthTotal(): u64 {
  return <u64>load<u32>(P.SLOT_IMAGE + P.SLOT_FAILED_AUTH) + <u64>dtls.failedAuthThisKey;
}

/**
 * End of every call: persist what changed, before any queued datagram can leave. Also the guard
 * that owns the persisted keys: if the connection under them ended by any path the session did
 * not take itself (a raw export), the keys are destroyed here rather than resumed later with a
 * sequence reservation that no longer matches what went on the wire.
 */
export function commit(): void {
  if (sessState == SS_OFF) return;
  if (hasSession() && dtls.keyGeneration != sessionKeyGeneration) {
    destroySession(R_CLOSED);
    transition(SS_NO_SESSION, R_CLOSED, 0);
  }
  if (dirty || dtls.reservationMoved || readWindowAhead()) persistNow();
}

/**
 * A record authenticated beyond the persisted read window. Persisted before the call returns: a
 * record the next wake restores as "not yet seen" could be replayed then, and a replayed record
 * must not confirm a restored session (the unconfirmed-restores heal would never fire).
 */
function readWindowAhead(): bool {
  if (!hasSession() || dtls.authenticatedRecords == 0) return false;
  if ((load<u8>(P.SLOT_IMAGE + P.SLOT_FLAGS) & P.FLAG_HAS_READ) == 0) return true;
  return dtls.readSequenceMax() > load<u64>(P.SLOT_IMAGE + P.SLOT_READ_MAX);
}

/** `close` after boot: close_notify under the session's keys, then the keys are destroyed everywhere. */
export function closeSession(now: i64): void {
  if (sessState == SS_OFF) return;
  if (hasSession()) {
    dtls.close(now);
    // The close_notify used a sequence number that may be beyond the reservation: the keys are
    // erased from both slots before it can leave, so no later wake can use them again.
    destroySession(R_CLOSED);
  } else {
    dtls.discardConnection(now, 0);
  }
  transition(SS_NO_SESSION, R_CLOSED, now);
  commit();
}

/** `connect` after boot: the current session is destroyed and a handshake starts. */
export function reconnect(now: i64): i32 {
  if (sessState == SS_OFF) return dtls.connect(now);
  if (hasSession()) destroySession(R_RECONNECT);
  transition(SS_HANDSHAKING, R_RECONNECT, now);
  commit();
  return dtls.state == dtls.S_FAILED ? -dtls.lastError : 0;
}

// --- CoAP exchanges -------------------------------------------------------------------------------------

function clearExchange(): void {
  outKind = KIND_NONE;
  outDeadlineMs = -1;
  outTransmissions = 0;
  messageLen = 0;
}

function nextMid(): u32 {
  const mid = <u32>load<u16>(P.SLOT_IMAGE + P.SLOT_NEXT_MID);
  store<u16>(P.SLOT_IMAGE + P.SLOT_NEXT_MID, <u16>(mid + 1));
  dirty = true;
  return mid;
}

function outboxCount(): i32 {
  return <i32>load<u8>(P.SLOT_IMAGE + P.SLOT_OUTBOX_COUNT);
}

function outboxEntry(i: i32): usize {
  return P.SLOT_IMAGE + P.SLOT_OUTBOX + <usize>(i * P.OUTBOX_ENTRY_BYTES);
}

/** Sends the next confirmable message when nothing is in flight: a queued event, else the wake ping. */
function kick(now: i64): void {
  if (outKind != KIND_NONE) return;
  if (sessState != SS_RESUMED && sessState != SS_CONFIRMED) return;
  if (outboxCount() > 0) {
    const e = outboxEntry(0);
    const mid = nextMid();
    // A random token: message IDs come from flash, and a flash image written back reuses them, so
    // an answer to an earlier request with the same ID (late, or from before the rollback) must not
    // match this one.
    hmacDrbgGenerate(DRBG, OUT_TOKEN, EVENT_TOKEN_BYTES, 0, 0);
    let at = coap.writeHeader(MESSAGE, coap.COAP_CON, coap.CODE_POST, mid, OUT_TOKEN, EVENT_TOKEN_BYTES);
    at = coap.writeUriPath(MESSAGE, at, 0, PATH_EVENTS, 1);
    at = coap.writeUriPath(MESSAGE, at, coap.URI_PATH_OPTION, e + P.OUTBOX_NAME, <i32>load<u8>(e + P.OUTBOX_NAME_LEN));
    at = coap.writeOptionU32(MESSAGE, at, coap.URI_PATH_OPTION, coap.EVENT_INCARNATION_OPTION, P.SLOT_IMAGE + P.SLOT_INCARNATION);
    store<u8>(MESSAGE + <usize>at, 0xff);
    store<u32>(MESSAGE + <usize>at + 1, bswap<u32>(load<u32>(e + P.OUTBOX_SEQ)));
    const dataLen = <i32>load<u8>(e + P.OUTBOX_DATA_LEN);
    memory.copy(MESSAGE + <usize>at + 5, e + P.OUTBOX_DATA, <usize>dataLen);
    messageLen = at + 5 + dataLen;
    outKind = KIND_EVENT;
    outEventSeq = load<u32>(e + P.OUTBOX_SEQ);
    outMid = mid;
    wakePingDue = false; // an event confirms the session as well as a ping would
  } else if (wakePingDue && wakePingAtMs >= 0 && now >= wakePingAtMs) {
    outMid = nextMid();
    messageLen = coap.writeHeader(MESSAGE, coap.COAP_CON, coap.CODE_EMPTY, outMid, 0, 0);
    outKind = KIND_PING;
    wakePingDue = false;
    wakePingAtMs = -1;
  } else {
    return;
  }
  // Initial timeout: ACK_TIMEOUT × a random factor in [1, ACK_RANDOM_FACTOR) (RFC 7252 §4.2).
  hmacDrbgGenerate(DRBG, SCRATCH, 2, 0, 0);
  const spreadPct = <i64>(load<u16>(SCRATCH) % <u16>max(1, policy.coapAckRandomFactorPct - 100));
  outTimeoutMs = policy.coapAckTimeoutMs * (100 + spreadPct) / 100;
  outTransmissions = 0;
  transmitExchange(now);
}

function transmitExchange(now: i64): void {
  outTransmissions++;
  outDeadlineMs = now + outTimeoutMs;
  dtls.sendApplicationData(MESSAGE, messageLen);
}

function exchangeTimeout(now: i64): void {
  if (outKind == KIND_NONE || outDeadlineMs < 0 || now < outDeadlineMs) return;
  if (outTransmissions > policy.coapMaxRetransmit) {
    // Give up (Device OS: CLOSE): the session is wiped and, awake, rebuilt by a handshake.
    C.count(C.C_COAP_GIVE_UPS);
    discardAndHandshake(R_COAP_GIVE_UP, now);
    return;
  }
  C.count(C.C_COAP_RETRANSMISSIONS);
  outTimeoutMs *= 2;
  transmitExchange(now);
}

function receiveCoap(now: i64, p: usize, len: i32): void {
  if (!coap.parseMessage(p, len)) {
    C.count(C.C_COAP_MALFORMED);
    return;
  }
  const type = coap.msgType;
  if (type == coap.COAP_ACK || type == coap.COAP_RST) {
    if (outKind == KIND_NONE || coap.msgId != outMid) {
      C.count(C.C_COAP_STALE_IGNORED); // an ACK or RST for nothing in flight (late duplicate)
      return;
    }
    if (outKind == KIND_EVENT && type == coap.COAP_ACK
      && (coap.msgTokenLen != EVENT_TOKEN_BYTES || !ctEqual(coap.msgToken, OUT_TOKEN, EVENT_TOKEN_BYTES))) {
      C.count(C.C_COAP_STALE_IGNORED); // the same message ID, another request's answer
      return;
    }
    if (type == coap.COAP_RST) {
      discardAndHandshake(R_COAP_RST, now);
      return;
    }
    if (outKind == KIND_EVENT && coap.msgCode == coap.CODE_CONFLICT && policy.keepsEventsAcrossSleep()) {
      // The cloud has this (incarnation, seq) with other content: our persisted state went back in
      // time (an older image restored, two hosts on one flash). Its numbers and its keys have been
      // used before: the queued events move to a new stream and the session is replaced.
      startNewEventStream();
      discardAndHandshake(R_EVENT_NUMBER_CONFLICT, now);
      return;
    }
    if (outKind == KIND_EVENT) removeAcked(outEventSeq);
    clearExchange();
    kick(now);
    return;
  }
  if (type != coap.COAP_CON) {
    C.count(C.C_COAP_NON_IGNORED); // the cloud sends no NON requests the device acts on
    return;
  }
  for (let i = 0; i < SEEN_SLOTS; i++) {
    if (load<u32>(SEEN_MID + <usize>(i << 2)) == coap.msgId) {
      sendAck(coap.msgId, load<u8>(SEEN_CODE + <usize>i), coap.msgToken, coap.msgTokenLen);
      return;
    }
  }
  let code = coap.CODE_NOT_FOUND;
  if (coap.msgCode == coap.CODE_POST && coap.pathSegments == 1 && coap.path0Len == 2
    && ctEqual(coap.path0, PATH_RESET_TOKEN, 2) && coap.msgPayloadLen == 16 && policy.usesResetToken()) {
    memory.copy(P.SLOT_IMAGE + P.SLOT_RESET_TOKEN, coap.msgPayload, 16);
    store<u8>(P.SLOT_IMAGE + P.SLOT_FLAGS, load<u8>(P.SLOT_IMAGE + P.SLOT_FLAGS) | P.FLAG_HAS_TOKEN);
    dtls.armResetToken(coap.msgPayload);
    C.count(C.C_RESET_TOKENS_RECEIVED);
    dirty = true;
    code = coap.CODE_CHANGED;
  }
  store<u32>(SEEN_MID + <usize>(seenNext << 2), coap.msgId);
  store<u8>(SEEN_CODE + <usize>seenNext, code);
  seenNext = (seenNext + 1) % SEEN_SLOTS;
  sendAck(coap.msgId, code, coap.msgToken, coap.msgTokenLen);
}

const ACK: usize = memory.data(16, 4);

function sendAck(mid: u32, code: u8, token: usize, tokenLen: i32): void {
  const n = coap.writeHeader(ACK, coap.COAP_ACK, code, mid, token, tokenLen);
  dtls.sendApplicationData(ACK, n);
}

/** A new random incarnation; the queued events are renumbered from 0 under it, in order. */
function startNewEventStream(): void {
  hmacDrbgGenerate(DRBG, SCRATCH, 4, 0, 0);
  store<u32>(P.SLOT_IMAGE + P.SLOT_INCARNATION, load<u32>(SCRATCH));
  const n = outboxCount();
  for (let i = 0; i < n; i++) store<u32>(outboxEntry(i) + P.OUTBOX_SEQ, <u32>i);
  store<u32>(P.SLOT_IMAGE + P.SLOT_NEXT_EVENT_SEQ, <u32>n);
  dirty = true;
}

function removeAcked(seq: u32): void {
  const n = outboxCount();
  if (n == 0 || load<u32>(outboxEntry(0) + P.OUTBOX_SEQ) != seq) return;
  memory.copy(outboxEntry(0), outboxEntry(1), <usize>((n - 1) * P.OUTBOX_ENTRY_BYTES));
  zeroize(outboxEntry(n - 1), P.OUTBOX_ENTRY_BYTES);
  store<u8>(P.SLOT_IMAGE + P.SLOT_OUTBOX_COUNT, <u8>(n - 1));
  C.count(C.C_EVENTS_ACKED);
  emit(EV_EVENT_ACKED, seq, 0);
  dirty = true;
}

// --- Inputs ---------------------------------------------------------------------------------------------

export function handleDatagram(now: i64, p: usize, len: i32): void {
  dtls.handleDatagram(now, p, len);
  afterDtls(now);
  commit();
}

export function handleTimeout(now: i64): void {
  dtls.handleTimeout(now);
  afterDtls(now);
  exchangeTimeout(now);
  kick(now); // the wake ping, when its delay is over
  commit();
}

export function nextTimeout(): i64 {
  return earliest(earliest(dtls.nextTimeout(), outDeadlineMs), wakePingDue && outKind == KIND_NONE ? wakePingAtMs : -1);
}

/** The earlier of two deadlines, where -1 means none. */
function earliest(a: i64, b: i64): i64 {
  if (a < 0) return b;
  if (b < 0) return a;
  return min(a, b);
}

/** Reacts to what the DTLS layer saw: heal signals, handshake outcome, confirmation, data. */
function afterDtls(now: i64): void {
  if (dtls.resetTokenSeen && policy.usesResetToken() && hasSession()) {
    C.count(C.C_RESETS_ACCEPTED);
    discardAndHandshake(R_RESET_TOKEN, now);
    return;
  }
  if (dtls.failedAuthThisKey > 0 && hasSession()) {
    // The limit holds as the failures arrive (RFC 9147 §4.5.3), not only at restore and at sleep.
    if (policy.enforcesKeyLimits() && failedAuthTotal() >= <u64>policy.maxFailedAuthPerKey) {
      discardAndHandshake(R_FAILED_AUTH_LIMIT, now);
      return;
    }
    if (dtls.failedAuthThisKey >= FAILED_AUTH_PERSIST_STEP) dirty = true; // persistNow folds them in
  }
  // A record that authenticated confirms the session before any hint in the same datagram is
  // weighed: a forged truncated record behind a genuine one must not undo what the genuine proved.
  if (sessState == SS_RESUMED && dtls.authenticatedRecords > seenAuthenticated) transition(SS_CONFIRMED, R_NONE, now);
  if (dtls.truncatedRecordSeen && hasSession()) {
    if (policy.truncatedRecordIsFatal()) {
      // Device OS: any read error but "want read" is fatal: wipe and reconnect.
      C.count(C.C_TRUNCATED_FATAL);
      discardAndHandshake(R_TRUNCATED_RECORD, now);
      return;
    }
    // Default: only a hint, acted on while unconfirmed since wake, once per window (the window is
    // persisted: a wake does not open a new one).
    if (sessState == SS_RESUMED && hintWindowOpen(now)) {
      store<u32>(P.SLOT_IMAGE + P.SLOT_HINT_ACTED_S, nowSeconds(now) + 1);
      C.count(C.C_HINTS_ACTED);
      discardAndHandshake(R_TRUNCATED_RECORD, now);
      return;
    }
    C.count(C.C_HINTS_IGNORED);
    emit(EV_HINT_IGNORED, 0, 0);
  }
  if (sessState == SS_HANDSHAKING) {
    if (dtls.state == dtls.S_CONNECTED) {
      transition(SS_CONFIRMED, R_NONE, now);
      wakePingDue = false;
      kick(now);
    } else if (dtls.state == dtls.S_FAILED || dtls.state == dtls.S_CLOSED) {
      // Closed counts too: a close_notify right behind the server's Finished (one datagram) ends
      // the connection before the session took it; waiting for it would wait for nothing.
      transition(SS_NO_SESSION, R_HANDSHAKE_FAILED, now);
    }
  } else if (sessState == SS_RESUMED || sessState == SS_CONFIRMED) {
    if (dtls.state == dtls.S_CLOSED || dtls.state == dtls.S_FAILED) {
      discardAndHandshake(R_PEER_CLOSED, now);
      return;
    }
  }
  if (sessState == SS_CONFIRMED || sessState == SS_RESUMED) {
    for (;;) {
      // Too large for a CoAP message of ours: dropped and counted by the DTLS layer, not left to block.
      const n = dtls.receiveApplicationData(SCRATCH_RX, SCRATCH_RX_BYTES);
      if (n == dtls.RX_NONE) break;
      if (n < 0) continue;
      receiveCoap(now, SCRATCH_RX, n);
      zeroize(SCRATCH_RX, n); // it may have carried the reset token
      if (sessState == SS_HANDSHAKING) break;
    }
  }
}

/** RTC seconds, as the persisted hint time keeps them (u32: 136 years). */
function nowSeconds(now: i64): u32 {
  return <u32>(max<i64>(0, now) / 1000);
}

function hintWindowOpen(now: i64): bool {
  const acted = load<u32>(P.SLOT_IMAGE + P.SLOT_HINT_ACTED_S);
  if (acted == 0) return true;
  const sinceMs = (<i64>nowSeconds(now) - <i64>(acted - 1)) * 1000;
  // A clock that went backwards (RTC reset) opens the window rather than closing it for good.
  return sinceMs < 0 || sinceMs >= policy.truncatedHintWindowMs;
}

/** Queues an application event; returns its sequence number (≥ 0) or an error. */
export function publish(now: i64, name: usize, nameLen: i32, data: usize, dataLen: i32): i64 {
  if (sessState == SS_OFF) return ERR_NOT_BOOTED;
  if (nameLen < 1 || nameLen > P.MAX_EVENT_NAME_BYTES || dataLen < 0 || dataLen > P.MAX_EVENT_DATA_BYTES) return ERR_BAD_ARGUMENT;
  const n = outboxCount();
  if (n >= P.OUTBOX_SLOTS) return ERR_OUTBOX_FULL; // never overwrite an unconfirmed event
  const seq = load<u32>(P.SLOT_IMAGE + P.SLOT_NEXT_EVENT_SEQ);
  store<u32>(P.SLOT_IMAGE + P.SLOT_NEXT_EVENT_SEQ, seq + 1);
  const e = outboxEntry(n);
  store<u32>(e + P.OUTBOX_SEQ, seq);
  store<u8>(e + P.OUTBOX_NAME_LEN, <u8>nameLen);
  memory.copy(e + P.OUTBOX_NAME, name, <usize>nameLen);
  store<u8>(e + P.OUTBOX_DATA_LEN, <u8>dataLen);
  memory.copy(e + P.OUTBOX_DATA, data, <usize>dataLen);
  store<u8>(P.SLOT_IMAGE + P.SLOT_OUTBOX_COUNT, <u8>(n + 1));
  dirty = true;
  kick(now);
  commit();
  return <i64>seq;
}

/**
 * Before deep sleep. Returns how long to stay awake for pending confirmations (bounded by the
 * profile), or 0: then every session the expiry rules retire has been destroyed, in RAM and in
 * the persisted record, and the device may sleep.
 */
export function prepareSleep(now: i64): i64 {
  if (sessState == SS_OFF) return 0;
  const pending = outKind != KIND_NONE || sessState == SS_HANDSHAKING
    || (outboxCount() > 0 && (sessState == SS_RESUMED || sessState == SS_CONFIRMED));
  let deadline = wokeAtMs + policy.sleepWaitMaxMs;
  if (sessState == SS_HANDSHAKING && dtls.state == dtls.S_WAIT_SERVER_FINISHED && policy.finishedWaitMs() > 0) {
    if (finishedWaitFromMs < 0) finishedWaitFromMs = now;
    deadline = max<i64>(deadline, finishedWaitFromMs + policy.finishedWaitMs());
  }
  if (pending && now < deadline) {
    let wait = deadline - now;
    const t = nextTimeout();
    if (t >= 0 && t - now < wait) wait = max<i64>(1, t - now);
    return wait;
  }
  if (hasSession()) {
    const expired = expiryReason(now, false);
    if (expired != R_NONE) {
      destroySession(expired);
      transition(SS_NO_SESSION, expired, now);
    } else if (dtls.failedAuthThisKey > 0) {
      dirty = true; // persistNow folds them into the record
    }
  }
  if (!policy.keepsEventsAcrossSleep()) {
    // Device OS kept unconfirmed events only in RAM: deep sleep loses them.
    const n = outboxCount();
    for (let i = 0; i < n; i++) {
      emit(EV_EVENT_DROPPED, load<u32>(outboxEntry(i) + P.OUTBOX_SEQ), 0);
      C.count(C.C_EVENTS_DROPPED);
    }
    if (n > 0) {
      zeroize(outboxEntry(0), n * P.OUTBOX_ENTRY_BYTES);
      store<u8>(P.SLOT_IMAGE + P.SLOT_OUTBOX_COUNT, 0);
      dirty = true;
    }
  }
  clearExchange();
  commit();
  return 0;
}
