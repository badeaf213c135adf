// Counters the host reads with `counters_read`. Indexes are ABI (docs/abi.md): append only.

export const C_RX_DATAGRAMS: i32 = 0;
export const C_RX_RECORDS_OK: i32 = 1;
// Records dropped silently (RFC 6347 §4.1.2.7), one counter per reason.
export const C_DROP_SHORT: i32 = 2; // fewer bytes than a record header
export const C_DROP_BAD_HEADER: i32 = 3; // unknown content type, CID record we did not ask for
export const C_DROP_BAD_VERSION: i32 = 4;
export const C_DROP_WRONG_EPOCH: i32 = 5;
export const C_DROP_REPLAYED: i32 = 6;
export const C_DROP_LENGTH_BEYOND_DATAGRAM: i32 = 7;
export const C_DROP_AUTH_FAILED: i32 = 8;
export const C_DROP_UNEXPECTED_MESSAGE: i32 = 9; // well-formed but not wanted in this state
export const C_DROP_MALFORMED_MESSAGE: i32 = 10; // handshake/alert/CCS body that does not parse
export const C_DROP_FRAGMENT_REFUSED: i32 = 11; // fragment of a message too big to reassemble
export const C_DROP_OUT_OF_ORDER: i32 = 12; // handshake message from a future message_seq
export const C_DROP_RX_QUEUE_FULL: i32 = 13;
export const C_TX_DATAGRAMS: i32 = 14;
export const C_TX_RECORDS: i32 = 15;
export const C_HANDSHAKES_STARTED: i32 = 16;
export const C_HANDSHAKES_COMPLETED: i32 = 17;
export const C_HANDSHAKES_FAILED: i32 = 18;
export const C_FLIGHT_RETRANSMISSIONS: i32 = 19;
export const C_PEER_RETRANSMISSIONS: i32 = 20; // server flights seen again
export const C_ALERTS_RECEIVED: i32 = 21;
export const C_TX_QUEUE_FULL: i32 = 22;
export const C_RX_APP_RECORDS: i32 = 23;
export const C_TX_APP_RECORDS: i32 = 24;
export const C_FRAGMENTS_REASSEMBLED: i32 = 25;
export const C_DROP_UNKNOWN_CID: i32 = 26; // tls12_cid record with a CID that is not ours
// Session layer (assembly/session)
export const C_SESSION_RESTORES: i32 = 27;
export const C_SESSION_DISCARDS: i32 = 28;
export const C_RESET_TOKENS_RECEIVED: i32 = 29;
export const C_RESETS_ACCEPTED: i32 = 30;
export const C_TRUNCATED_FATAL: i32 = 31;
export const C_HINTS_ACTED: i32 = 32;
export const C_HINTS_IGNORED: i32 = 33;
export const C_COAP_RETRANSMISSIONS: i32 = 34;
export const C_COAP_GIVE_UPS: i32 = 35;
export const C_EVENTS_ACKED: i32 = 36;
export const C_EVENTS_DROPPED: i32 = 37;
export const C_COAP_MALFORMED: i32 = 38;
export const C_STORE_WRITES: i32 = 39;
export const C_DROP_DATAGRAM_TOO_LONG: i32 = 40; // handle_datagram with a length outside the I/O buffer
export const C_DROP_RX_TOO_LARGE: i32 = 41; // authenticated application record larger than its reader's buffer
export const C_COAP_STALE_IGNORED: i32 = 42; // CoAP ACK/RST for nothing in flight
export const C_COAP_NON_IGNORED: i32 = 43; // CoAP NON from the cloud (nothing the device acts on)
export const C_PERSISTED_REFUSED: i32 = 44; // newest slot sealed but out of range: session refused, keys erased
// Every datagram ends in exactly one of these three (and rxDatagrams is their sum).
export const C_DATAGRAMS_ACCEPTED: i32 = 45; // at least one record in it was accepted
export const C_DATAGRAMS_RETRANSMITTED: i32 = 46; // nothing new: a server flight seen again
export const C_DATAGRAMS_DROPPED: i32 = 47; // nothing accepted; the drop* counters say why
export const C_PERSISTED_SLOT_LOST: i32 = 48; // one slot sealed, the other not (torn or rotten): treated as possibly stale
export const COUNTER_COUNT: i32 = 49;

const COUNTERS: usize = memory.data(COUNTER_COUNT * 4, 4);

export function count(index: i32): void {
  const p = COUNTERS + (<usize>index << 2);
  store<u32>(p, load<u32>(p) + 1);
}

export function value(index: i32): u32 {
  return load<u32>(COUNTERS + (<usize>index << 2));
}

export function countersPtr(): usize {
  return COUNTERS;
}

