// The persisted record (docs/abi.md, "Persisted layout"): credentials, then two session slots
// written alternately (A/B), each with a generation number and a CRC-32. A write cut at any byte
// leaves the other slot intact, so boot always finds the old or the new record, never a torn one.
//
// A matching CRC says only that the bytes are the ones some writer meant: flash can be written by
// a bug, by another firmware version or by someone with the board in hand. Every length and enum
// read from flash is therefore checked against its field before anything uses it.
import { crc32 } from './crc32';

export const REGION_BYTES: i32 = 1280;
export const CREDS_AT: i32 = 0;
export const CREDS_BYTES: i32 = 192;
export const SLOT_BYTES: i32 = 544;
export const SLOT_A_AT: i32 = CREDS_BYTES;
export const SLOT_B_AT: i32 = CREDS_BYTES + SLOT_BYTES;

// Credentials block: field offsets
const CREDS_MAGIC: u32 = 0x31445243; // "CRD1": PSK credentials
const CREDS_MAGIC_ECDHE: u32 = 0x314b5243; // "CRK1": ECDHE-ECDSA credentials (raw public keys)
export const CRED_PROFILE: usize = 4;
export const CRED_ID_LEN: usize = 5;
export const CRED_IDENTITY_LEN: usize = 6; // 0 with ECDHE credentials
export const CRED_PSK_LEN: usize = 7; // 0 with ECDHE credentials
export const CRED_DEVICE_ID: usize = 8; // 48 bytes
export const CRED_IDENTITY: usize = 56; // 64 bytes
export const CRED_PSK: usize = 120; // 64 bytes
// ECDHE-ECDSA credentials use the identity and PSK fields for their keys:
export const CRED_SERVER_KEY: usize = 56; // the pinned server key's X ‖ Y (64 bytes)
export const CRED_DEVICE_KEY: usize = 120; // the device's private key (32 bytes); 152..183 zero
export const CRED_CRC: usize = 184;
export const MAX_DEVICE_ID_BYTES: i32 = 48;
export const MAX_STORED_IDENTITY_BYTES: i32 = 64;
export const MAX_STORED_PSK_BYTES: i32 = 64;
const MAX_PROFILE: u8 = 2;

// Session slot: field offsets
const SLOT_MAGIC: u32 = 0x32504c53; // "SLP2" (SLP1 had no incarnation; its records are not read)
export const SLOT_GENERATION: usize = 4;
export const SLOT_CREDS_CRC: usize = 8;
export const SLOT_FLAGS: usize = 12;
export const SLOT_USE_COUNTER: usize = 13;
export const SLOT_NEXT_MID: usize = 14; // u16
export const SLOT_NEXT_EVENT_SEQ: usize = 16; // u32
export const SLOT_KEYS: usize = 20; // 40: client key, server key, client IV, server IV
export const SLOT_KEYS_BYTES: i32 = 40;
export const SLOT_WRITE_RESERVED: usize = 60; // u64
export const SLOT_READ_MAX: usize = 68; // u64
export const SLOT_CREATED_MS: usize = 76; // i64
/** Random identity of the event stream, chosen with every fresh record; sequence numbers restart under it. */
export const SLOT_INCARNATION: usize = 84; // u32
/** Seconds (RTC / 1000) + 1 when a truncated-record hint was last acted on; 0 never. */
export const SLOT_HINT_ACTED_S: usize = 88; // u32
export const SLOT_FAILED_AUTH: usize = 92; // u32
export const SLOT_PEER_CID_LEN: usize = 96; // u8, then 32 bytes
export const SLOT_PEER_CID: usize = 97;
export const SLOT_PEER_CID_BYTES: i32 = 32;
export const SLOT_RESET_TOKEN: usize = 132; // 16
export const SLOT_OUTBOX_COUNT: usize = 148; // u8
export const SLOT_OUTBOX: usize = 149;
export const SLOT_CRC: usize = 540;

export const FLAG_HAS_SESSION: u8 = 1;
export const FLAG_CID_IN_USE: u8 = 2;
export const FLAG_HAS_TOKEN: u8 = 4;
export const FLAG_HAS_READ: u8 = 8;
const KNOWN_FLAGS: u8 = FLAG_HAS_SESSION | FLAG_CID_IN_USE | FLAG_HAS_TOKEN | FLAG_HAS_READ;

export const OUTBOX_SLOTS: i32 = 6;
export const OUTBOX_ENTRY_BYTES: i32 = 64;
// Outbox entry: field offsets (seq u32, name length u8, name[15], data length u8, data[43])
export const OUTBOX_SEQ: usize = 0;
export const OUTBOX_NAME_LEN: usize = 4;
export const OUTBOX_NAME: usize = 5;
export const OUTBOX_DATA_LEN: usize = 20;
export const OUTBOX_DATA: usize = 21;
export const MAX_EVENT_NAME_BYTES: i32 = 15;
export const MAX_EVENT_DATA_BYTES: i32 = 43;

/** The credentials and the current session slot image, as in persistent memory. */
export const CREDS_IMAGE: usize = memory.data(CREDS_BYTES, 8);
export const SLOT_IMAGE: usize = memory.data(SLOT_BYTES, 8);
/** Which slot (0 = A, 1 = B) the current record lives in; the next write goes to the other. */
let currentSlot: i32 = 1;
let generation: u32 = 0;
/** The slot not loaded is sealed and still holds a session (a cut between the two erasing writes). */
export let otherSlotHoldsSession: bool = false;
/**
 * Exactly one slot is sealed, the other not. A torn write and a bit that rotted after a complete
 * write look the same here, and only the torn write makes the surviving slot current: after rot,
 * the lost slot may have been the newer one, whose reservation, event numbers and message IDs have
 * been used on the wire. The session layer treats the surviving slot as possibly stale
 * (docs/persistence.md).
 */
export let oneSlotLost: bool = false;

/** Magic, CRC, and every length and enum within its field. */
export function credsValid(p: usize): bool {
  const magic = load<u32>(p);
  if ((magic != CREDS_MAGIC && magic != CREDS_MAGIC_ECDHE) || load<u32>(p + CRED_CRC) != crc32(p, <i32>CRED_CRC)) return false;
  const idLen = <i32>load<u8>(p + CRED_ID_LEN);
  const identityLen = <i32>load<u8>(p + CRED_IDENTITY_LEN);
  const pskLen = <i32>load<u8>(p + CRED_PSK_LEN);
  if (load<u8>(p + CRED_PROFILE) > MAX_PROFILE || idLen < 1 || idLen > MAX_DEVICE_ID_BYTES) return false;
  if (magic == CREDS_MAGIC_ECDHE) return identityLen == 0 && pskLen == 0;
  return identityLen >= 1 && identityLen <= MAX_STORED_IDENTITY_BYTES
    && pskLen >= 1 && pskLen <= MAX_STORED_PSK_BYTES;
}

/** The credentials image holds ECDHE-ECDSA keys (else a PSK). */
export function credsAreEcdhe(): bool {
  return load<u32>(CREDS_IMAGE) == CREDS_MAGIC_ECDHE;
}

export function sealCreds(ecdhe: bool): void {
  store<u32>(CREDS_IMAGE, ecdhe ? CREDS_MAGIC_ECDHE : CREDS_MAGIC);
  store<u32>(CREDS_IMAGE + CRED_CRC, crc32(CREDS_IMAGE, <i32>CRED_CRC));
}

export function credsChecksum(): u32 {
  return load<u32>(CREDS_IMAGE + CRED_CRC);
}

function slotSealed(p: usize): bool {
  return load<u32>(p) == SLOT_MAGIC && load<u32>(p + SLOT_CRC) == crc32(p, <i32>SLOT_CRC);
}

/** Every length and enum of a sealed slot within its field. */
function slotContentValid(p: usize): bool {
  if ((load<u8>(p + SLOT_FLAGS) & ~KNOWN_FLAGS) != 0) return false;
  if (<i32>load<u8>(p + SLOT_PEER_CID_LEN) > SLOT_PEER_CID_BYTES) return false;
  const n = <i32>load<u8>(p + SLOT_OUTBOX_COUNT);
  if (n > OUTBOX_SLOTS) return false;
  for (let i = 0; i < n; i++) {
    const e = p + SLOT_OUTBOX + <usize>(i * OUTBOX_ENTRY_BYTES);
    const nameLen = <i32>load<u8>(e + OUTBOX_NAME_LEN);
    if (nameLen < 1 || nameLen > MAX_EVENT_NAME_BYTES || <i32>load<u8>(e + OUTBOX_DATA_LEN) > MAX_EVENT_DATA_BYTES) return false;
  }
  return true;
}

export const SLOT_NONE: i32 = 0; // neither slot sealed: blank memory
export const SLOT_LOADED: i32 = 1;
/**
 * The newest sealed slot has out-of-range content. The older slot must not be used instead: it
 * holds an older sequence reservation for the same keys, so resuming from it could reuse a nonce.
 */
export const SLOT_REFUSED: i32 = 2;

/**
 * Loads the newest sealed slot from a region image into SLOT_IMAGE (generations compared with
 * wrap-around). SLOT_NONE and SLOT_REFUSED leave SLOT_IMAGE blank.
 */
export function loadNewestSlot(region: usize): i32 {
  const a = region + <usize>SLOT_A_AT, b = region + <usize>SLOT_B_AT;
  const aOk = slotSealed(a), bOk = slotSealed(b);
  memory.fill(SLOT_IMAGE, 0, <usize>SLOT_BYTES);
  otherSlotHoldsSession = false;
  oneSlotLost = aOk != bOk;
  if (!aOk && !bOk) {
    currentSlot = 1;
    generation = 0;
    return SLOT_NONE;
  }
  let useB = bOk;
  if (aOk && bOk) useB = <i32>(load<u32>(b + SLOT_GENERATION) - load<u32>(a + SLOT_GENERATION)) > 0;
  const newest = useB ? b : a;
  const other = useB ? a : b;
  otherSlotHoldsSession = (useB ? aOk : bOk) && (load<u8>(other + SLOT_FLAGS) & FLAG_HAS_SESSION) != 0;
  currentSlot = useB ? 1 : 0;
  generation = load<u32>(newest + SLOT_GENERATION);
  if (!slotContentValid(newest)) return SLOT_REFUSED;
  memory.copy(SLOT_IMAGE, newest, <usize>SLOT_BYTES);
  return SLOT_LOADED;
}

/** Forgets the session slot's content. */
export function blankSlot(): void {
  memory.fill(SLOT_IMAGE, 0, <usize>SLOT_BYTES);
}

// --- Writes waiting for poll_store: region offset + bytes -----------------------------------------
const QUEUE_SLOTS: i32 = 3;
const QUEUE_ENTRY_BYTES: i32 = SLOT_BYTES;
const QUEUE: usize = memory.data(QUEUE_SLOTS * QUEUE_ENTRY_BYTES, 8);
const QUEUE_AT: usize = memory.data(QUEUE_SLOTS * 4, 4);
const QUEUE_LEN: usize = memory.data(QUEUE_SLOTS * 4, 4);
let queueHead: i32 = 0;
let queueCount: i32 = 0;

/**
 * Queues a write. A write to a target already queued replaces that entry's bytes: the targets are
 * only the credentials and the two slots, so the queue never overflows, and whichever order the
 * host writes them in, each slot holds a whole record and the newest generation wins at boot.
 */
function enqueue(at: i32, src: usize, len: i32): void {
  let i = 0;
  for (; i < queueCount; i++) {
    if (load<i32>(QUEUE_AT + <usize>(((queueHead + i) % QUEUE_SLOTS) << 2)) == at) break;
  }
  const e = (queueHead + i) % QUEUE_SLOTS;
  if (i == queueCount) queueCount++;
  memory.copy(QUEUE + <usize>(e * QUEUE_ENTRY_BYTES), src, <usize>len);
  store<i32>(QUEUE_AT + <usize>(e << 2), at);
  store<i32>(QUEUE_LEN + <usize>(e << 2), len);
}

/** Queues the credentials block. */
export function writeCreds(): void {
  enqueue(CREDS_AT, CREDS_IMAGE, CREDS_BYTES);
}

/** Seals SLOT_IMAGE with the next generation and queues it for the slot not holding the current record. */
export function writeSlot(): void {
  generation++;
  store<u32>(SLOT_IMAGE, SLOT_MAGIC);
  store<u32>(SLOT_IMAGE + SLOT_GENERATION, generation);
  store<u32>(SLOT_IMAGE + SLOT_CRC, crc32(SLOT_IMAGE, <i32>SLOT_CRC));
  currentSlot ^= 1;
  enqueue(currentSlot == 0 ? SLOT_A_AT : SLOT_B_AT, SLOT_IMAGE, SLOT_BYTES);
}

/** Moves the next write into `out` as offset (u32 LE) || bytes; returns 4 + bytes, 0 when none. */
export function pollStore(out: usize, capacity: i32): i32 {
  if (queueCount == 0) return 0;
  const len = load<i32>(QUEUE_LEN + <usize>(queueHead << 2));
  if (4 + len > capacity) return -2;
  store<u32>(out, load<u32>(QUEUE_AT + <usize>(queueHead << 2)));
  const src = QUEUE + <usize>(queueHead * QUEUE_ENTRY_BYTES);
  memory.copy(out + 4, src, <usize>len);
  memory.fill(src, 0, <usize>len); // queued images hold keys
  queueHead = (queueHead + 1) % QUEUE_SLOTS;
  queueCount--;
  return 4 + len;
}

export function resetStoreQueue(): void {
  memory.fill(QUEUE, 0, <usize>(QUEUE_SLOTS * QUEUE_ENTRY_BYTES));
  queueHead = 0;
  queueCount = 0;
}
