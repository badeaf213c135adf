// Every tunable of the firmware in one place, with units in the names. Values are defaults; the
// host may change them before `connect` through `config_set` (keys below, documented in
// docs/abi.md).

/** DTLS handshake retransmission timer, RFC 6347 §4.2.4: starts here and doubles up to the cap. */
export let handshakeInitialTimeoutMs: i64 = 3000; // Device OS 1.1.0: 3 s
export let handshakeMaxTimeoutMs: i64 = 24000; // Device OS 1.4.1+: 24 s (1.1.0 used 6 s)
/** Sends of one flight (first send included) before the handshake fails with a timeout. */
export let handshakeMaxTransmissions: i32 = 5;
/** Offer RFC 9146 connection IDs in the ClientHello. */
export let offerConnectionId: bool = true;
/** Refuse a server that does not negotiate the extended master secret (RFC 7627). */
export let requireExtendedMasterSecret: bool = false;
/** The host set requireExtendedMasterSecret itself: a profile's default does not override it. */
let requireEmsSetByHost: bool = false;

/**
 * Profile defaults for the DTLS layer, applied at boot. Our cloud always negotiates the extended
 * master secret (RFC 7627), so the default profile refuses a server that does not.
 */
export function applyProfileDefaults(isDefaultProfile: bool): void {
  if (!requireEmsSetByHost) requireExtendedMasterSecret = isDefaultProfile;
}

export const CONFIG_HANDSHAKE_INITIAL_TIMEOUT_MS: i32 = 1;
export const CONFIG_HANDSHAKE_MAX_TIMEOUT_MS: i32 = 2;
export const CONFIG_HANDSHAKE_MAX_TRANSMISSIONS: i32 = 3;
export const CONFIG_OFFER_CONNECTION_ID: i32 = 4;
export const CONFIG_REQUIRE_EXTENDED_MASTER_SECRET: i32 = 5;

/** Returns 0, or -1 for an unknown key, -2 for a value out of range. */
export function configSet(key: i32, value: i64): i32 {
  switch (key) {
    case CONFIG_HANDSHAKE_INITIAL_TIMEOUT_MS:
      if (value < 10 || value > 600_000) return -2;
      handshakeInitialTimeoutMs = value;
      return 0;
    case CONFIG_HANDSHAKE_MAX_TIMEOUT_MS:
      if (value < 10 || value > 600_000) return -2;
      handshakeMaxTimeoutMs = value;
      return 0;
    case CONFIG_HANDSHAKE_MAX_TRANSMISSIONS:
      if (value < 1 || value > 20) return -2;
      handshakeMaxTransmissions = <i32>value;
      return 0;
    case CONFIG_OFFER_CONNECTION_ID:
      offerConnectionId = value != 0;
      return 0;
    case CONFIG_REQUIRE_EXTENDED_MASTER_SECRET:
      requireExtendedMasterSecret = value != 0;
      requireEmsSetByHost = true;
      return 0;
  }
  return -1;
}

// Fixed sizes (buffers are static; these bound them).
/** Largest application payload in one record (Device OS used 800). */
export const MAX_APP_DATA_BYTES: i32 = 800;
export const MAX_PSK_BYTES: i32 = 64;
export const MAX_IDENTITY_BYTES: i32 = 128;
/** Largest connection ID we accept from a server (RFC 9146 allows 255). */
export const MAX_CID_BYTES: i32 = 32;
/** Largest handshake message we reassemble from fragments. */
export const MAX_HANDSHAKE_MESSAGE_BYTES: i32 = 512;
