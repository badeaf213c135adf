/**
 * CoAP inside a session: what the cloud answers to each message (docs/protocol.md §5) and the
 * event request format. Pure decisions; the session layer (core-session.ts) applies them.
 */
import {
  COAP_ACK,
  COAP_CON,
  COAP_NON,
  COAP_RST,
  CODE_BAD_OPTION,
  CODE_BAD_REQUEST,
  CODE_CHANGED,
  CODE_CONFLICT,
  CODE_EMPTY,
  CODE_METHOD_NOT_ALLOWED,
  CODE_NOT_FOUND,
  CODE_POST,
  OPT_EVENT_INCARNATION,
  OPT_URI_PATH,
  encodeCoap,
  parseCoap,
  uriPath,
  type CoapMessage,
} from './coap.ts';
import { createHash } from 'node:crypto';
import { BoundedMap } from './bounded.ts';

/** CoAP path of device events: POST /e/<name>, payload = event seq (u32 big-endian) || data. */
export const EVENT_PATH = 'e';
/** CoAP path of the reset-token message the cloud sends after a handshake. */
export const RESET_TOKEN_PATH = 'rt';
export const EVENT_SEQ_BYTES = 4;
export const MAX_EVENT_NAME_BYTES = 64;
/** Bytes of the Event-Incarnation option (OPT_EVENT_INCARNATION, docs/protocol.md §5.2), as the firmware sends it. */
export const INCARNATION_BYTES = 4;

export interface EventRequest {
  name: string;
  seq: number;
  /** Hex of the 4-byte incarnation, or null for devices that do not send one. */
  incarnation: string | null;
  data: Buffer;
}

export interface CoapPlan {
  /** Outgoing records to reserve with the window update. */
  outCount: number;
  response: Buffer | null;
  event?: EventRequest;
  /** For an event: the answer instead of `response` when its id is claimed for other content (4.09; null for a NON). */
  conflictResponse?: Buffer | null;
  dedupeKey?: string;
  /** Digest of the request under `dedupeKey`: only the same bytes again are a retransmission. */
  requestDigest?: string;
  ackedMid?: { mid: number; rst: boolean };
  /** A CoAP-level drop reason (the record itself authenticated). */
  drop?: string;
  kind: string;
}

/**
 * Answers already given per (session, message id), for EXCHANGE_LIFETIME (RFC 7252 §4.5). The
 * answer is kept as a latin1 string: a few bytes in the heap rather than a pool slice that pins
 * 8 KiB (100,000 entries).
 */
export type DedupeTable = BoundedMap<string, { response: string | null; expiresMs: number; request: string }>;

/** Decides the CoAP reaction before the window update, so the reply's sequence number is reserved with it. */
export function planCoap(dedupe: DedupeTable, sid: string, content: Buffer, nowMs: number): CoapPlan {
  const m = parseCoap(content);
  if (typeof m === 'string') return { outCount: 0, response: null, drop: 'coap_malformed', kind: 'malformed' };
  if (m.type === COAP_ACK || m.type === COAP_RST) {
    return { outCount: 0, response: null, ackedMid: { mid: m.mid, rst: m.type === COAP_RST }, kind: m.type === COAP_ACK ? 'ack' : 'rst' };
  }
  const dedupeKey = `${sid}|${m.mid}`;
  const seen = dedupe.get(dedupeKey);
  // A retransmission is the same message again. The same message ID with other bytes is a device
  // whose state went back (an older flash image): answering it from the cache would ACK a request
  // never read, so it is taken as new (docs/persistence.md).
  const requestDigest = createHash('sha256').update(content).digest('base64').slice(0, 12);
  if (seen && seen.expiresMs > nowMs && seen.request === requestDigest) {
    return { outCount: seen.response !== null ? 1 : 0, response: seen.response !== null ? Buffer.from(seen.response, 'latin1') : null, kind: 'duplicate' };
  }
  if (m.type === COAP_CON) {
    if (m.code === CODE_EMPTY) {
      // CoAP ping. RFC 7252 §4.3 answers with RST; we answer with an empty ACK, because the
      // legacy device profile treats any RST as "discard the session" (docs/protocol.md).
      return { outCount: 1, response: encodeCoap({ type: COAP_ACK, code: CODE_EMPTY, mid: m.mid }), dedupeKey, requestDigest, kind: 'ping' };
    }
    if (m.code >= 0x20) {
      // A response in a CON from the device: nothing of ours is waiting for it; reject.
      return { outCount: 1, response: encodeCoap({ type: COAP_RST, code: CODE_EMPTY, mid: m.mid }), dedupeKey, requestDigest, kind: 'unexpected_response' };
    }
  }
  if (m.type === COAP_NON && m.code === CODE_EMPTY) return { outCount: 0, response: null, drop: 'coap_malformed', kind: 'malformed' };
  const { code, event, kind } = request(m);
  const answer = (c: number) => (m.type === COAP_CON ? encodeCoap({ type: COAP_ACK, code: c, mid: m.mid, token: m.token }) : null);
  const response = answer(code);
  return { outCount: response ? 1 : 0, response, dedupeKey, requestDigest, event, kind, ...(event ? { conflictResponse: answer(CODE_CONFLICT) } : {}) };
}

/** Uri-Host, Uri-Port (this cloud is the only origin, so they change nothing), Uri-Path, Uri-Query. */
const KNOWN_CRITICAL = new Set([3, 7, OPT_URI_PATH, 15]);

function request(m: CoapMessage): { code: number; event?: EventRequest; kind: string } {
  let incarnation: string | null = null;
  for (const o of m.options) {
    if (o.number === OPT_EVENT_INCARNATION) {
      if (incarnation !== null || o.value.length !== INCARNATION_BYTES) return { code: CODE_BAD_REQUEST, kind: 'bad_event' };
      incarnation = o.value.toString('hex');
    } else if (o.number & 1 && !KNOWN_CRITICAL.has(o.number)) {
      // An unknown critical option must not be ignored (RFC 7252 §5.4.1).
      return { code: CODE_BAD_OPTION, kind: 'bad_option' };
    }
  }
  const path = uriPath(m);
  if (path.length !== 2 || path[0] !== EVENT_PATH) return { code: CODE_NOT_FOUND, kind: 'not_found' };
  if (m.code !== CODE_POST) return { code: CODE_METHOD_NOT_ALLOWED, kind: 'method_not_allowed' };
  const name = path[1];
  if (name.length === 0 || Buffer.byteLength(name) > MAX_EVENT_NAME_BYTES || m.payload.length < EVENT_SEQ_BYTES) {
    return { code: CODE_BAD_REQUEST, kind: 'bad_event' };
  }
  const seq = m.payload.readUInt32BE(0);
  return { code: CODE_CHANGED, event: { name, seq, incarnation, data: Buffer.from(m.payload.subarray(EVENT_SEQ_BYTES)) }, kind: 'event' };
}
