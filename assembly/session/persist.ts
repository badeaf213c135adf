// The persisted record (docs/abi.md, "Persisted layout"): credentials, then two session slots
// written alternately (A/B), each with a generation number and a CRC-32. A write cut at any byte
// leaves the other slot intact, so boot always finds the old or the new record, never a torn one.
import { crc32 } from './crc32';

export const REGION_BYTES: i32 = 1280;
export const CREDS_AT: i32 = 0;
export const CREDS_BYTES: i32 = 192;
export const SLOT_BYTES: i32 = 544;
export const SLOT_A_AT: i32 = CREDS_BYTES;
export const SLOT_B_AT: i32 = CREDS_BYTES + SLOT_BYTES;

// Credentials block
const CREDS_MAGIC: u32 = 0x31445243; // "CRD1"
export const C_PROFILE: usize = 4;
export const C_ID_LEN: usize = 5;
export const C_IDENTITY_LEN: usize = 6;
export const C_PSK_LEN: usize = 7;
export const C_DEVICE_ID: usize = 8; // 48 bytes
export const C_IDENTITY: usize = 56; // 64 bytes
export const C_PSK: usize = 120; // 64 bytes
export const C_CRC: usize = 184;
export const MAX_DEVICE_ID_BYTES: i32 = 48;

// Session slot
const SLOT_MAGIC: u32 = 0x31504c53; // "SLP1"
export const S_GENERATION: usize = 4;
export const S_CREDS_CRC: usize = 8;
export const S_FLAGS: usize = 12;
export const S_USE_COUNTER: usize = 13;
export const S_NEXT_MID: usize = 14; // u16
export const S_NEXT_EVENT_SEQ: usize = 16; // u32
export const S_KEYS: usize = 20; // 40: client key, server key, client IV, server IV
export const S_WRITE_RESERVED: usize = 60; // u64
export const S_READ_MAX: usize = 68; // u64
export const S_CREATED_MS: usize = 76; // i64
export const S_CONFIRMED_MS: usize = 84; // i64
export const S_FAILED_AUTH: usize = 92; // u32
export const S_PEER_CID_LEN: usize = 96; // u8, then 32 bytes
export const S_PEER_CID: usize = 97;
export const S_RESET_TOKEN: usize = 132; // 16
export const S_OUTBOX_COUNT: usize = 148; // u8
export const S_OUTBOX: usize = 149;
export const S_CRC: usize = 540;

export const FLAG_HAS_SESSION: u8 = 1;
export const FLAG_CID_IN_USE: u8 = 2;
export const FLAG_HAS_TOKEN: u8 = 4;
export const FLAG_HAS_READ: u8 = 8;

export const OUTBOX_SLOTS: i32 = 6;
export const OUTBOX_ENTRY_BYTES: i32 = 64;
// Outbox entry: seq u32, name length u8, name[15], data length u8, data[43]
export const E_SEQ: usize = 0;
export const E_NAME_LEN: usize = 4;
export const E_NAME: usize = 5;
export const E_DATA_LEN: usize = 20;
export const E_DATA: usize = 21;
export const MAX_EVENT_NAME_BYTES: i32 = 15;
export const MAX_EVENT_DATA_BYTES: i32 = 43;

/** The credentials and the current session slot image, as in persistent memory. */
export const CREDS: usize = memory.data(CREDS_BYTES, 8);
export const SLOT: usize = memory.data(SLOT_BYTES, 8);
/** Which slot (0 = A, 1 = B) the current record lives in; the next write goes to the other. */
let currentSlot: i32 = 1;
let generation: u32 = 0;

export function credsValid(p: usize): bool {
  return load<u32>(p) == CREDS_MAGIC && load<u32>(p + C_CRC) == crc32(p, <i32>C_CRC);
}

export function sealCreds(): void {
  store<u32>(CREDS, CREDS_MAGIC);
  store<u32>(CREDS + C_CRC, crc32(CREDS, <i32>C_CRC));
}

export function credsChecksum(): u32 {
  return load<u32>(CREDS + C_CRC);
}

function slotValid(p: usize): bool {
  return load<u32>(p) == SLOT_MAGIC && load<u32>(p + S_CRC) == crc32(p, <i32>S_CRC);
}

/**
 * Loads the newest valid slot from a region image into SLOT; false when neither is valid (then
 * SLOT is blank). Generations are compared with wrap-around.
 */
export function loadNewestSlot(region: usize): bool {
  const a = region + <usize>SLOT_A_AT, b = region + <usize>SLOT_B_AT;
  const aOk = slotValid(a), bOk = slotValid(b);
  memory.fill(SLOT, 0, <usize>SLOT_BYTES);
  if (!aOk && !bOk) {
    currentSlot = 1;
    generation = 0;
    return false;
  }
  let useB = bOk;
  if (aOk && bOk) useB = <i32>(load<u32>(b + S_GENERATION) - load<u32>(a + S_GENERATION)) > 0;
  memory.copy(SLOT, useB ? b : a, <usize>SLOT_BYTES);
  currentSlot = useB ? 1 : 0;
  generation = load<u32>(SLOT + S_GENERATION);
  return true;
}

export function blankSlot(): void {
  memory.fill(SLOT, 0, <usize>SLOT_BYTES);
}

// --- Writes waiting for poll_store: region offset + bytes -----------------------------------------
const QUEUE_SLOTS: i32 = 3;
const QUEUE_ENTRY_BYTES: i32 = SLOT_BYTES;
const QUEUE: usize = memory.data(QUEUE_SLOTS * QUEUE_ENTRY_BYTES, 8);
const QUEUE_AT: usize = memory.data(QUEUE_SLOTS * 4, 4);
const QUEUE_LEN: usize = memory.data(QUEUE_SLOTS * 4, 4);
let queueHead: i32 = 0;
let queueCount: i32 = 0;

function enqueue(at: i32, src: usize, len: i32): void {
  let i: i32;
  if (queueCount == QUEUE_SLOTS) {
    // The host has not drained: the newest image supersedes the last queued one (same target kept
    // so that the alternate slot still holds the previous valid record).
    i = (queueHead + queueCount - 1) % QUEUE_SLOTS;
    at = load<i32>(QUEUE_AT + <usize>(i << 2));
  } else {
    i = (queueHead + queueCount) % QUEUE_SLOTS;
    queueCount++;
  }
  memory.copy(QUEUE + <usize>(i * QUEUE_ENTRY_BYTES), src, <usize>len);
  store<i32>(QUEUE_AT + <usize>(i << 2), at);
  store<i32>(QUEUE_LEN + <usize>(i << 2), len);
}

/** Queues the credentials block. */
export function writeCreds(): void {
  enqueue(CREDS_AT, CREDS, CREDS_BYTES);
}

/** Seals SLOT with the next generation and queues it for the slot not holding the current record. */
export function writeSlot(): void {
  generation++;
  store<u32>(SLOT, SLOT_MAGIC);
  store<u32>(SLOT + S_GENERATION, generation);
  store<u32>(SLOT + S_CRC, crc32(SLOT, <i32>S_CRC));
  currentSlot ^= 1;
  enqueue(currentSlot == 0 ? SLOT_A_AT : SLOT_B_AT, SLOT, SLOT_BYTES);
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
