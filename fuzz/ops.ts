/**
 * The op encoding shared by capture.ts (writes transcripts) and the native harness
 * (fuzz/harness/ops.h reads them): one op byte, then its fields, integers little-endian.
 */
export const OP = {
  RESET: 1, // fresh module state (deep sleep / power cut): RAM lost, persisted region kept
  PROVISION_DEVICE: 2, // profile u8, idLen u8, identityLen u8, pskLen u8, bytes
  SEED: 3, // len u8, entropy
  BOOT: 4, // now i64 (the region is the harness's persisted image)
  DATAGRAM: 5, // now i64, len u16, bytes
  TIMEOUT: 6, // now i64
  PUBLISH: 7, // now i64, nameLen u8, dataLen u8, name, data
  PREPARE_SLEEP: 8, // now i64
  MARK: 9, // snapshot index u8 (MARKS, then ECDHE_MARKS from MARKS.length)
  PROVISION_DEVICE_ECDHE: 10, // profile u8, idLen u8, injectKey u8 (0/1), id, server public key (65), [device private key (32)]
} as const;

/** Where fuzz targets can start, in the order of the harness's snapshot table. */
export const MARKS = [
  'idle', 'client-hello', 'hello-verify', 'wait-server-hello-done', 'wait-finished', 'connected', 'resumed', 'confirmed',
] as const;

/**
 * Snapshots along the ECDHE-ECDSA conversation (TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, raw public
 * keys): indexes MARKS.length + i in the harness's table. The server flight is fed one message at a
 * time, so each of its messages can be mutated from the state that expects it.
 */
export const ECDHE_MARKS = [
  'ecdhe-client-hello', 'ecdhe-hello-verify', 'ecdhe-server-hello', 'ecdhe-certificate', 'ecdhe-server-key-exchange',
  'ecdhe-certificate-request', 'ecdhe-wait-finished', 'ecdhe-connected',
] as const;
