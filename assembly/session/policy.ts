// The three behaviours one firmware can have, chosen at provisioning (docs/abi.md, "Profiles").
// Every number is a documented default the host may change with config_set before boot.

export const PROFILE_LEGACY: u8 = 0; // Device OS 1.1.0
export const PROFILE_FIXED: u8 = 1; // Device OS 1.2.x
export const PROFILE_DEFAULT: u8 = 2; // ours

export let profile: u8 = PROFILE_DEFAULT;

// CoAP (RFC 7252 §4.8, Device OS constants)
export let coapAckTimeoutMs: i64 = 4000;
/** ACK_RANDOM_FACTOR 1.5, in percent so the firmware needs no floating point. */
export let coapAckRandomFactorPct: i32 = 150;
export let coapMaxRetransmit: i32 = 3;

/** Restores without any record from the cloud before the session is discarded (Device OS 1.2: 3). */
export let maxUnconfirmedRestores: i32 = 3;
/** Longest prepare_sleep will keep the device awake for pending confirmations. */
export let sleepWaitMaxMs: i64 = 15_000;
/** Sessions older than this are destroyed before sleep (default profile). */
export let maxSessionAgeMs: i64 = 3 * 24 * 3600 * 1000;
/** Records sent under one key before it is retired (default profile). */
export let maxRecordsPerKey: u64 = 1 << 24;
/** Records that failed authentication under one key before it is retired (RFC 9147 §4.5.3). */
export let maxFailedAuthPerKey: u32 = 1 << 16;
/** At most one truncated-record hint acted on per window (default profile). */
export let truncatedHintWindowMs: i64 = 10 * 60 * 1000;
/** Sequence numbers reserved in the persisted record ahead of use. */
export const SEQUENCE_RESERVE_BLOCK: u64 = 32;

/** Keys set through config_set: a profile does not override what the host chose. */
let overridden: u32 = 0;

export function setProfile(p: u8): void {
  profile = p;
  // Device OS 1.1.0 had neither a use counter nor a wait before deep sleep. The fixed profile's
  // wait (15 s) is shorter than the CoAP give-up (~45-93 s), as in Device OS 1.2: it sleeps first.
  if (!(overridden & (1 << (CONFIG_MAX_UNCONFIRMED_RESTORES - 20)))) maxUnconfirmedRestores = p == PROFILE_LEGACY ? 0 : 3;
  if (!(overridden & (1 << (CONFIG_SLEEP_WAIT_MAX_MS - 20)))) {
    sleepWaitMaxMs = p == PROFILE_LEGACY ? 0 : (p == PROFILE_FIXED ? 15_000 : 30_000);
  }
}

/**
 * Default profile: once our key-exchange flight is out and the server's Finished is not in, the
 * device stays up this long from the first prepare_sleep that finds it so, past sleepWaitMaxMs if
 * need be, once per wake: computing the flight may have used the whole budget (ECDHE under wasm3 on
 * a Cortex-M: 20–60 s), and sleeping then would throw the handshake away at every wake. Covers
 * three transmissions of the flight (1 s, 2 s, 4 s). Legacy and fixed keep Device OS's rule.
 */
export function finishedWaitMs(): i64 {
  return profile == PROFILE_DEFAULT && sleepWaitMaxMs > 0 ? 8_000 : 0;
}

/** Stateless reset tokens are understood (default profile only). */
export function usesResetToken(): bool {
  return profile == PROFILE_DEFAULT;
}

/** The 2019 truncated record is a fatal read error (legacy, fixed) rather than a hint (default). */
export function truncatedRecordIsFatal(): bool {
  return profile != PROFILE_DEFAULT;
}

/** Unconfirmed events survive sleep in the persisted outbox (default profile only). */
export function keepsEventsAcrossSleep(): bool {
  return profile == PROFILE_DEFAULT;
}

/** Age, record-count and failed-authentication limits are enforced (default profile only). */
export function enforcesKeyLimits(): bool {
  return profile == PROFILE_DEFAULT;
}

export const CONFIG_COAP_ACK_TIMEOUT_MS: i32 = 20;
export const CONFIG_COAP_MAX_RETRANSMIT: i32 = 21;
export const CONFIG_MAX_UNCONFIRMED_RESTORES: i32 = 22;
export const CONFIG_SLEEP_WAIT_MAX_MS: i32 = 23;
export const CONFIG_MAX_SESSION_AGE_MS: i32 = 24;
export const CONFIG_MAX_RECORDS_PER_KEY: i32 = 25;
export const CONFIG_MAX_FAILED_AUTH_PER_KEY: i32 = 26;
export const CONFIG_TRUNCATED_HINT_WINDOW_MS: i32 = 27;

/** Returns 0, -1 unknown key, -2 out of range. */
export function policySet(key: i32, value: i64): i32 {
  const rc = policySetValue(key, value);
  if (rc == 0) overridden |= 1 << (key - 20);
  return rc;
}

function policySetValue(key: i32, value: i64): i32 {
  if (value < 0) return -2;
  switch (key) {
    case CONFIG_COAP_ACK_TIMEOUT_MS: if (value < 10 || value > 600_000) return -2; coapAckTimeoutMs = value; return 0;
    case CONFIG_COAP_MAX_RETRANSMIT: if (value > 20) return -2; coapMaxRetransmit = <i32>value; return 0;
    case CONFIG_MAX_UNCONFIRMED_RESTORES: if (value > 255) return -2; maxUnconfirmedRestores = <i32>value; return 0;
    case CONFIG_SLEEP_WAIT_MAX_MS: if (value > 3_600_000) return -2; sleepWaitMaxMs = value; return 0;
    case CONFIG_MAX_SESSION_AGE_MS: if (value < 1000) return -2; maxSessionAgeMs = value; return 0;
    case CONFIG_MAX_RECORDS_PER_KEY: if (value < 64) return -2; maxRecordsPerKey = <u64>value; return 0;
    case CONFIG_MAX_FAILED_AUTH_PER_KEY: if (value < 1 || value > 0xffffffff) return -2; maxFailedAuthPerKey = <u32>value; return 0;
    case CONFIG_TRUNCATED_HINT_WINDOW_MS: truncatedHintWindowMs = value; return 0;
  }
  return -1;
}
