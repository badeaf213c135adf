/**
 * The cloud's protocol core, sans-IO (like quinn-proto): fed `(datagram, from, nowMs)` it returns
 * the datagrams to send and the events for the application; `handleTimeout(nowMs)` drives
 * retransmission. It owns no socket and no clock, so the fleet simulator can run it over a virtual
 * network in virtual time; server.ts is the node:dgram shell around it.
 *
 * Per datagram: records are parsed in turn; each one is either handled or dropped with a counted
 * reason (`drops{reason}`), and the datagram as a whole is counted accepted (≥ 1 record handled)
 * or dropped. Nothing is remembered about a client before its cookie verifies; after that, a
 * bounded in-process handshake table; after the handshake, everything lives in the session store.
 */
import crypto from 'node:crypto';
import {
  COAP_ACK,
  COAP_CON,
  COAP_NON,
  COAP_RST,
  CODE_BAD_REQUEST,
  CODE_CHANGED,
  CODE_EMPTY,
  CODE_METHOD_NOT_ALLOWED,
  CODE_NOT_FOUND,
  CODE_POST,
  encodeCoap,
  parseCoap,
  OPT_EVENT_INCARNATION,
  pathOptions,
  uriPath,
  type CoapMessage,
} from './coap.ts';
import {
  extendedMasterSecret,
  finishedVerifyData,
  keyBlock,
  openRecord,
  pskPremaster,
  sealRecord,
  trafficKeys,
  type TrafficKeys,
} from './crypto.ts';
import { HANDLE_BYTES, type Device, type DeviceRegistry } from './devices.ts';
import {
  ALERT_CLOSE_NOTIFY,
  ALERT_DECODE_ERROR,
  ALERT_DECRYPT_ERROR,
  ALERT_FATAL,
  ALERT_HANDSHAKE_FAILURE,
  ALERT_PROTOCOL_VERSION,
  ALERT_UNKNOWN_PSK_IDENTITY,
  EXT_CONNECTION_ID,
  EXT_EXTENDED_MASTER_SECRET,
  EXT_RENEGOTIATION_INFO,
  HT_CLIENT_HELLO,
  HT_CLIENT_KEY_EXCHANGE,
  HT_FINISHED,
  HT_HELLO_VERIFY_REQUEST,
  HT_SERVER_HELLO,
  HT_SERVER_HELLO_DONE,
  HT_SERVER_KEY_EXCHANGE,
  SCSV_RENEGOTIATION,
  SUITE_PSK_AES128_CCM8,
  alertBody,
  handshakeMessage,
  helloVerifyRequestBody,
  parseCidExtension,
  parseClientHello,
  parseClientKeyExchange,
  parseHandshakeFragments,
  serverHelloBody,
  serverKeyExchangeBody,
  type HandshakeFragment,
} from './handshake.ts';
import { CloudSecrets, HealRateLimiter, handleOfCid, makeServerCid, malformedDatagram, resetDatagram } from './heal.ts';
import type { SessionStore, StoredSession } from './store.ts';
import {
  CT_ALERT,
  CT_APPLICATION_DATA,
  CT_CHANGE_CIPHER_SPEC,
  CT_HANDSHAKE,
  CT_TLS12_CID,
  DTLS_1_0,
  DTLS_1_2,
  RECORD_HEADER_BYTES,
  parseRecord,
  plainRecord,
  type RecordView,
} from './wire.ts';

/** Which heal features answer records for unknown sessions. */
export interface HealFlags {
  resetToken: boolean;
  malformed: boolean;
}

export const DEFAULT_HEAL: HealFlags = { resetToken: true, malformed: false };

/** Every tunable of the core, with units in the names. */
export interface CoreConfig {
  cookieRotationMs: number;
  sessionTtlMs: number;
  handshakeRetransmitInitialMs: number;
  handshakeRetransmitMaxMs: number;
  handshakeMaxRetransmits: number;
  handshakeLifetimeMs: number;
  maxPendingHandshakes: number;
  finalFlightLifetimeMs: number;
  healIntervalMs: number;
  healGlobalPerSec: number;
  healRateEntries: number;
  /** Devices sharing one handle answered at most this many resets per record. */
  maxResetCandidates: number;
  coapAckTimeoutMs: number;
  coapMaxRetransmit: number;
  coapDedupeLifetimeMs: number;
  coapDedupeEntries: number;
  eventClaimTtlMs: number;
  keyCacheEntries: number;
  cidDirectoryEntries: number;
  /** PSK identity hint; when set, a ServerKeyExchange carries it. */
  identityHint: string | null;
}

export const DEFAULT_CONFIG: CoreConfig = {
  cookieRotationMs: 60_000,
  sessionTtlMs: 7 * 24 * 3600_000,
  handshakeRetransmitInitialMs: 1000,
  handshakeRetransmitMaxMs: 8000,
  handshakeMaxRetransmits: 5,
  handshakeLifetimeMs: 60_000,
  maxPendingHandshakes: 10_000,
  finalFlightLifetimeMs: 30_000,
  healIntervalMs: 1000,
  healGlobalPerSec: 2000,
  healRateEntries: 65_536,
  maxResetCandidates: 4,
  coapAckTimeoutMs: 2000,
  coapMaxRetransmit: 4,
  coapDedupeLifetimeMs: 247_000, // RFC 7252 EXCHANGE_LIFETIME
  coapDedupeEntries: 100_000,
  eventClaimTtlMs: 7 * 24 * 3600_000,
  keyCacheEntries: 100_000,
  cidDirectoryEntries: 100_000,
  identityHint: null,
};

/** CoAP path of device events: POST /e/<name>, payload = event seq (u32 big-endian) || data. */
export const EVENT_PATH = 'e';
/** CoAP path of the reset-token message the cloud sends after a handshake. */
export const RESET_TOKEN_PATH = 'rt';
export const EVENT_SEQ_BYTES = 4;
export const MAX_EVENT_NAME_BYTES = 64;

/** One device event as the cloud reads it; (device, incarnation, seq) is its idempotency key. */
export interface DeviceEvent {
  /** Hex of the Event-Incarnation option, null when the device sent none. */
  incarnation: string | null;
  name: string;
  seq: number;
  data: Buffer;
}

export interface Transmit {
  to: string;
  data: Buffer;
}

export type CloudEvent =
  | { kind: 'handshake'; deviceId: string; sessionId: string; cid: string; from: string; tokenIssued: boolean }
  | { kind: 'event'; deviceId: string; incarnation: string | null; name: string; seq: number; data: Buffer; from: string; receivedMs: number }
  | { kind: 'closed'; deviceId: string; sessionId: string; reason: string };

export interface CoreOutput {
  transmits: Transmit[];
  events: CloudEvent[];
}

/** Counters keyed by name and label values; metrics.ts exposes them in Prometheus format. */
export class Counters {
  readonly values = new Map<string, number>();
  inc(name: string, label?: string, n = 1): void {
    const key = label === undefined ? name : `${name}|${label}`;
    this.values.set(key, (this.values.get(key) ?? 0) + n);
  }
  get(name: string, label?: string): number {
    return this.values.get(label === undefined ? name : `${name}|${label}`) ?? 0;
  }
  /** Sum over all label values of a counter. */
  sum(name: string): number {
    let s = 0;
    for (const [k, v] of this.values) if (k === name || k.startsWith(name + '|')) s += v;
    return s;
  }
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.values);
  }
}

interface Pending {
  from: string;
  state: 'wait_cke' | 'wait_finished';
  createdMs: number;
  clientRandom: Buffer;
  serverRandom: Buffer;
  /** The client's own CID (null when it offered no connection_id extension). */
  clientCid: Buffer | null;
  serverCid: Buffer | null;
  transcript: crypto.Hash;
  /** message_seq the client's next handshake message must carry. */
  nextRecvSeq: number;
  /** message_seq of the client's ClientHello (its retransmission makes us resend). */
  helloSeq: number;
  serverMsgSeq: number;
  /** Next epoch-0 record sequence number. */
  serverSeq0: number;
  flight: Buffer;
  deadlineMs: number;
  retransmits: number;
  device?: Device;
  master?: Buffer;
  keys?: TrafficKeys;
  completing: boolean;
  /** Set once the client's Finished verified; a failed store write is retried with it. */
  completion?: Completion;
  fragments: Map<number, { msgType: number; body: Buffer; have: Uint8Array; missing: number }>;
}

interface Completion {
  sid: string;
  session: StoredSession;
  records: Buffer[];
  con?: ServerCon;
  clientVerify: Buffer;
}

interface ServerCon {
  sessionId: string;
  mid: number;
  message: Buffer;
  to: string;
  epoch: number;
  keys: TrafficKeys;
  peerCid: Buffer | null;
  deadlineMs: number;
  tries: number;
}

interface CoapPlan {
  /** Outgoing records to reserve with the window update. */
  outCount: number;
  response: Buffer | null;
  event?: DeviceEvent;
  dedupeKey?: string;
  ackedMid?: { mid: number; rst: boolean };
  /** A CoAP-level drop reason (the record itself authenticated). */
  drop?: string;
  kind: string;
}

type Verdict = true | string;

const MAX_HANDSHAKE_MESSAGE_BYTES = 2048;

export interface CloudCoreOptions {
  devices: DeviceRegistry;
  store: SessionStore;
  /** The cloud secret (≥ 32 bytes) shared by every cloud process; cookie and reset keys derive from it. */
  cloudSecret: Buffer;
  heal?: HealFlags;
  config?: Partial<CoreConfig>;
  /** Randomness (crypto.randomBytes by default); the simulator passes a seeded one. */
  random?: (n: number) => Buffer;
}

export class CloudCore {
  readonly stats = new Counters();
  readonly config: CoreConfig;
  readonly heal: HealFlags;
  readonly devices: DeviceRegistry;
  readonly store: SessionStore;
  readonly secrets: CloudSecrets;
  readonly #random: (n: number) => Buffer;
  readonly #pending = new Map<string, Pending>();
  readonly #finalFlights = new Map<string, { flight: Buffer; to: string; expiresMs: number }>();
  readonly #dedupe = new Map<string, { response: Buffer | null; expiresMs: number }>();
  readonly #serverCons = new Map<string, ServerCon>();
  readonly #cidDirectory = new Map<string, { deviceId: string; peerCid: string }>();
  readonly #keyCache = new Map<string, TrafficKeys>();
  readonly #resetLimiter: HealRateLimiter;
  readonly #malformedLimiter: HealRateLimiter;

  constructor(opts: CloudCoreOptions) {
    this.config = { ...DEFAULT_CONFIG, ...opts.config };
    this.heal = { ...(opts.heal ?? DEFAULT_HEAL) };
    this.devices = opts.devices;
    this.store = opts.store;
    this.secrets = new CloudSecrets(opts.cloudSecret);
    this.#random = opts.random ?? ((n) => crypto.randomBytes(n));
    const c = this.config;
    this.#resetLimiter = new HealRateLimiter(c.healIntervalMs, c.healGlobalPerSec, c.healRateEntries);
    this.#malformedLimiter = new HealRateLimiter(c.healIntervalMs, c.healGlobalPerSec, c.healRateEntries);
  }

  /** Sizes of every in-process table (for the bounded-memory tests). */
  tableSizes(): Record<string, number> {
    return {
      pending: this.#pending.size,
      finalFlights: this.#finalFlights.size,
      dedupe: this.#dedupe.size,
      serverCons: this.#serverCons.size,
      cidDirectory: this.#cidDirectory.size,
      keyCache: this.#keyCache.size,
      resetLimiter: this.#resetLimiter.size,
      malformedLimiter: this.#malformedLimiter.size,
    };
  }

  // ---------------------------------------------------------------- datagrams

  async handleDatagram(data: Buffer, from: string, nowMs: number): Promise<CoreOutput> {
    const out: CoreOutput = { transmits: [], events: [] };
    this.stats.inc('datagrams_in');
    this.stats.inc('bytes_in', undefined, data.length);
    if (data.length < RECORD_HEADER_BYTES) {
      this.#drop(data.length <= 1 ? 'keepalive' : 'short_datagram');
      this.stats.inc('datagrams_dropped');
      return out;
    }
    let handled = 0;
    let off = 0;
    while (off < data.length) {
      const rec = parseRecord(data, off);
      if (typeof rec === 'string') {
        this.#drop(rec);
        break;
      }
      off += rec.size;
      let verdict: Verdict;
      try {
        verdict = await this.#record(rec, data.length, from, nowMs, out);
      } catch (e) {
        // A bug must not take the server down; it is counted, and the test suite asserts zero.
        this.stats.inc('internal_errors');
        verdict = 'internal_error';
        if (process.env.SLEEPY_CLOUD_DEBUG) console.error(e);
      }
      if (verdict === true) handled++;
      else this.#drop(verdict);
    }
    this.stats.inc(handled > 0 ? 'datagrams_accepted' : 'datagrams_dropped');
    for (const t of out.transmits) {
      this.stats.inc('datagrams_out');
      this.stats.inc('bytes_out', undefined, t.data.length);
    }
    return out;
  }

  #drop(reason: string): void {
    this.stats.inc('drops', reason);
  }

  async #record(rec: RecordView, dgramBytes: number, from: string, nowMs: number, out: CoreOutput): Promise<Verdict> {
    if (rec.epoch === 0) {
      if (rec.type === CT_HANDSHAKE) return this.#epoch0Handshake(rec, from, nowMs, out);
      if (rec.type === CT_CHANGE_CIPHER_SPEC) {
        const p = this.#pending.get(from);
        if (!p || p.state !== 'wait_finished' || rec.body.length !== 1 || rec.body[0] !== 1) return 'unexpected_change_cipher_spec';
        this.stats.inc('records_in', 'change_cipher_spec');
        return true;
      }
      if (rec.type === CT_ALERT) return 'plaintext_alert';
      return 'bad_epoch0_type';
    }
    const p = this.#pending.get(from);
    if (p) {
      const forPending = rec.type === CT_HANDSHAKE || (rec.type === CT_TLS12_CID && p.serverCid !== null && rec.cid!.equals(p.serverCid));
      if (forPending) return this.#clientFinished(p, rec, from, nowMs, out);
    }
    const sid = rec.type === CT_TLS12_CID ? 'c' + rec.cid!.toString('hex') : 'a' + from;
    return this.#sessionRecord(sid, rec, dgramBytes, from, nowMs, out);
  }

  // ---------------------------------------------------------------- handshake

  async #epoch0Handshake(rec: RecordView, from: string, nowMs: number, out: CoreOutput): Promise<Verdict> {
    const frags = parseHandshakeFragments(rec.body);
    if (!frags || frags.length === 0) return 'bad_handshake_message';
    if (frags[0].msgType === HT_CLIENT_HELLO) {
      if (frags.length !== 1) return 'bad_client_hello';
      return this.#clientHello(rec, frags[0], from, nowMs, out);
    }
    const p = this.#pending.get(from);
    if (!p) return 'no_handshake_in_progress';
    let verdict: Verdict = true;
    for (const f of frags) {
      const v = this.#pendingMessage(p, f, nowMs, out);
      if (v !== true) verdict = v;
      if (this.#pending.get(from) !== p) break; // failed and removed
    }
    return verdict;
  }

  #clientHello(rec: RecordView, f: HandshakeFragment, from: string, nowMs: number, out: CoreOutput): Verdict {
    if (f.fragmentOffset !== 0 || f.fragment.length !== f.length) return 'fragmented_client_hello';
    const ch = parseClientHello(f.fragment);
    if (typeof ch === 'string') return 'bad_client_hello';
    const c = this.config;
    if (!this.secrets.verifyCookie(ch.cookie, from, ch.cookieless, nowMs, c.cookieRotationMs)) {
      if (ch.cookie.length > 0) this.stats.inc('cookies_invalid');
      // Stateless: the HelloVerifyRequest reuses the ClientHello's record and message sequence numbers.
      const cookie = this.secrets.cookie(from, ch.cookieless, nowMs, c.cookieRotationMs);
      const msg = handshakeMessage(HT_HELLO_VERIFY_REQUEST, f.messageSeq, helloVerifyRequestBody(cookie));
      out.transmits.push({ to: from, data: plainRecord(CT_HANDSHAKE, rec.seq, msg, DTLS_1_0) });
      this.stats.inc('hello_verify_requests');
      this.stats.inc('records_in', 'handshake');
      this.stats.inc('records_out', 'handshake');
      return true;
    }
    const existing = this.#pending.get(from);
    if (existing && existing.clientRandom.equals(ch.random)) {
      // The client did not get our flight: send it again (RFC 6347 §4.2.4).
      if (existing.state === 'wait_cke') this.#resendFlight(existing, nowMs, out);
      this.stats.inc('records_in', 'handshake');
      return true;
    }
    if (!existing && this.#pending.size >= c.maxPendingHandshakes) return 'pending_handshakes_full';
    if (ch.clientVersion !== DTLS_1_2) return this.#failHello(from, rec.seq, 'unsupported_version', ALERT_PROTOCOL_VERSION, out);
    if (!ch.cipherSuites.includes(SUITE_PSK_AES128_CCM8)) return this.#failHello(from, rec.seq, 'no_shared_cipher_suite', ALERT_HANDSHAKE_FAILURE, out);
    if (!ch.compressionMethods.includes(0)) return this.#failHello(from, rec.seq, 'no_null_compression', ALERT_HANDSHAKE_FAILURE, out);
    if (!ch.extensions.has(EXT_EXTENDED_MASTER_SECRET)) return this.#failHello(from, rec.seq, 'no_extended_master_secret', ALERT_HANDSHAKE_FAILURE, out);
    let clientCid: Buffer | null = null;
    let serverCid: Buffer | null = null;
    const cidExt = ch.extensions.get(EXT_CONNECTION_ID);
    if (cidExt) {
      clientCid = parseCidExtension(cidExt);
      if (!clientCid) return this.#failHello(from, rec.seq, 'bad_connection_id_extension', ALERT_DECODE_ERROR, out);
      clientCid = Buffer.from(clientCid);
      serverCid = makeServerCid(clientCid.length === HANDLE_BYTES ? clientCid : null, this.#random);
    }
    const reneg = ch.extensions.get(EXT_RENEGOTIATION_INFO);
    if (reneg && !(reneg.length === 1 && reneg[0] === 0)) {
      return this.#failHello(from, rec.seq, 'bad_renegotiation_info', ALERT_HANDSHAKE_FAILURE, out);
    }
    const secureRenegotiation = reneg !== undefined || ch.cipherSuites.includes(SCSV_RENEGOTIATION);
    const serverRandom = this.#random(32);
    const transcript = crypto.createHash('sha256');
    transcript.update(handshakeMessage(HT_CLIENT_HELLO, f.messageSeq, f.fragment));
    let msgSeq = f.messageSeq;
    const messages = [handshakeMessage(HT_SERVER_HELLO, msgSeq++, serverHelloBody({ random: serverRandom, secureRenegotiation, cid: serverCid }))];
    if (c.identityHint !== null) {
      messages.push(handshakeMessage(HT_SERVER_KEY_EXCHANGE, msgSeq++, serverKeyExchangeBody(Buffer.from(c.identityHint, 'utf8'))));
    }
    messages.push(handshakeMessage(HT_SERVER_HELLO_DONE, msgSeq++, Buffer.alloc(0)));
    let seq0 = rec.seq;
    const records: Buffer[] = [];
    for (const m of messages) {
      transcript.update(m);
      records.push(plainRecord(CT_HANDSHAKE, seq0++, m));
    }
    const p: Pending = {
      from,
      state: 'wait_cke',
      createdMs: nowMs,
      clientRandom: Buffer.from(ch.random),
      serverRandom,
      clientCid,
      serverCid,
      transcript,
      nextRecvSeq: f.messageSeq + 1,
      helloSeq: f.messageSeq,
      serverMsgSeq: msgSeq,
      serverSeq0: seq0,
      flight: Buffer.concat(records),
      deadlineMs: nowMs + c.handshakeRetransmitInitialMs,
      retransmits: 0,
      completing: false,
      fragments: new Map(),
    };
    this.#pending.set(from, p);
    out.transmits.push({ to: from, data: p.flight });
    this.stats.inc('records_in', 'handshake');
    this.stats.inc('records_out', 'handshake', records.length);
    this.stats.inc('handshakes', 'started');
    return true;
  }

  /** A fatal plaintext alert for a ClientHello we refuse (after its cookie verified). */
  #failHello(from: string, seq: number, reason: string, alert: number, out: CoreOutput): Verdict {
    out.transmits.push({ to: from, data: plainRecord(CT_ALERT, seq, alertBody(ALERT_FATAL, alert)) });
    this.stats.inc('records_out', 'alert');
    this.stats.inc('handshakes', 'failed');
    this.stats.inc('handshake_failures', reason);
    return reason;
  }

  #failPending(p: Pending, reason: string, alert: number | null, out: CoreOutput): Verdict {
    if (alert !== null) {
      out.transmits.push({ to: p.from, data: plainRecord(CT_ALERT, p.serverSeq0++, alertBody(ALERT_FATAL, alert)) });
      this.stats.inc('records_out', 'alert');
    }
    if (this.#pending.get(p.from) === p) this.#pending.delete(p.from);
    this.stats.inc('handshakes', 'failed');
    this.stats.inc('handshake_failures', reason);
    return reason;
  }

  #resendFlight(p: Pending, nowMs: number, out: CoreOutput): void {
    out.transmits.push({ to: p.from, data: p.flight });
    this.stats.inc('handshake_retransmits');
    p.retransmits++;
    p.deadlineMs = nowMs + Math.min(this.config.handshakeRetransmitInitialMs * 2 ** p.retransmits, this.config.handshakeRetransmitMaxMs);
  }

  /** Reassembles a fragmented handshake message (bounded); returns the whole body when complete. */
  #assemble(p: Pending, f: HandshakeFragment): Buffer | null | 'bad' {
    if (f.fragmentOffset === 0 && f.fragment.length === f.length) return f.fragment;
    if (f.length > MAX_HANDSHAKE_MESSAGE_BYTES) return 'bad';
    let r = p.fragments.get(f.messageSeq);
    if (!r) {
      if (p.fragments.size >= 4) return 'bad';
      r = { msgType: f.msgType, body: Buffer.alloc(f.length), have: new Uint8Array(f.length), missing: f.length };
      p.fragments.set(f.messageSeq, r);
    }
    if (r.msgType !== f.msgType || r.body.length !== f.length) return 'bad';
    f.fragment.copy(r.body, f.fragmentOffset);
    for (let i = f.fragmentOffset; i < f.fragmentOffset + f.fragment.length; i++) {
      if (!r.have[i]) {
        r.have[i] = 1;
        r.missing--;
      }
    }
    if (r.missing > 0) return null;
    p.fragments.delete(f.messageSeq);
    return r.body;
  }

  #pendingMessage(p: Pending, f: HandshakeFragment, nowMs: number, out: CoreOutput): Verdict {
    if (f.messageSeq < p.nextRecvSeq) {
      if (f.messageSeq === p.helloSeq && p.state === 'wait_cke') this.#resendFlight(p, nowMs, out);
      return 'duplicate_handshake_message';
    }
    if (f.messageSeq > p.nextRecvSeq) return 'handshake_message_out_of_order';
    const body = this.#assemble(p, f);
    if (body === 'bad') return 'bad_handshake_fragment';
    if (body === null) {
      this.stats.inc('records_in', 'handshake');
      return true;
    }
    if (f.msgType !== HT_CLIENT_KEY_EXCHANGE || p.state !== 'wait_cke') return 'unexpected_handshake_message';
    const identity = parseClientKeyExchange(body);
    if (!identity) return this.#failPending(p, 'bad_client_key_exchange', ALERT_DECODE_ERROR, out);
    const device = this.devices.byIdentity(identity);
    if (!device) return this.#failPending(p, 'unknown_psk_identity', ALERT_UNKNOWN_PSK_IDENTITY, out);
    p.transcript.update(handshakeMessage(HT_CLIENT_KEY_EXCHANGE, f.messageSeq, body));
    const sessionHash = p.transcript.copy().digest();
    const master = extendedMasterSecret(pskPremaster(device.psk.reveal()), sessionHash);
    p.master = master;
    p.keys = trafficKeys(keyBlock(master, p.clientRandom, p.serverRandom));
    p.device = device;
    p.state = 'wait_finished';
    p.nextRecvSeq++;
    this.stats.inc('records_in', 'handshake');
    return true;
  }

  async #clientFinished(p: Pending, rec: RecordView, from: string, nowMs: number, out: CoreOutput): Promise<Verdict> {
    if (p.state !== 'wait_finished' || !p.keys || !p.master || !p.device) return 'handshake_message_out_of_order';
    if (p.completing) return 'handshake_completing';
    if (rec.epoch !== 1) return 'bad_epoch';
    const opened = openRecord(p.keys.client, rec);
    if (!opened) return 'bad_mac_finished';
    if (opened.type !== CT_HANDSHAKE) return 'unexpected_content_in_handshake';
    const frags = parseHandshakeFragments(opened.content);
    if (!frags || frags.length !== 1) return this.#failPending(p, 'bad_finished', ALERT_DECODE_ERROR, out);
    const f = frags[0];
    if (f.msgType !== HT_FINISHED || f.messageSeq !== p.nextRecvSeq || f.fragmentOffset !== 0 || f.length !== 12 || f.fragment.length !== 12) {
      return this.#failPending(p, 'bad_finished', ALERT_DECODE_ERROR, out);
    }
    if (p.completion) {
      // A repeated Finished after a failed store write: it must be the one we verified.
      if (!crypto.timingSafeEqual(p.completion.clientVerify, f.fragment)) return this.#failPending(p, 'bad_finished', ALERT_DECRYPT_ERROR, out);
    } else {
      const expected = finishedVerifyData(p.master, 'client finished', p.transcript.copy().digest());
      if (!crypto.timingSafeEqual(expected, f.fragment)) return this.#failPending(p, 'bad_finished', ALERT_DECRYPT_ERROR, out);
      p.transcript.update(handshakeMessage(HT_FINISHED, f.messageSeq, f.fragment));
      p.completion = this.#completion(p, Buffer.from(f.fragment), finishedVerifyData(p.master, 'server finished', p.transcript.digest()), from, nowMs);
    }
    const { sid, session, records, con } = p.completion;
    p.completing = true;
    try {
      await this.store.put(sid, session, { top: rec.seq, nextOutSeq: records.length - 1 }, this.config.sessionTtlMs, nowMs);
    } catch {
      // The client retransmits its Finished; we try again then.
      p.completing = false;
      return this.#storeError('put');
    }
    if (this.#pending.get(from) === p) this.#pending.delete(from);
    const flight = Buffer.concat(records);
    this.#bounded(this.#finalFlights, sid, { flight, to: from, expiresMs: nowMs + this.config.finalFlightLifetimeMs }, this.config.maxPendingHandshakes);
    this.#keyCache.set(session.keys, p.keys);
    if (con) {
      con.deadlineMs = nowMs + this.config.coapAckTimeoutMs;
      this.#bounded(this.#serverCons, sid, con, this.config.maxPendingHandshakes);
    }
    if (session.cid) {
      this.#bounded(this.#cidDirectory, session.cid, { deviceId: session.deviceId, peerCid: session.peerCid }, this.config.cidDirectoryEntries);
    }
    if (p.serverCid && !session.token) this.stats.inc('reset_tokens_not_issued', p.clientCid!.length === HANDLE_BYTES ? 'handle_mismatch' : 'no_handle');
    out.transmits.push({ to: from, data: flight });
    this.stats.inc('records_in', 'handshake');
    this.stats.inc('records_out', 'change_cipher_spec');
    this.stats.inc('records_out', 'handshake');
    if (con) {
      this.stats.inc('records_out', 'application_data');
      this.stats.inc('reset_tokens_issued');
    }
    this.stats.inc('handshakes', 'completed');
    out.events.push({ kind: 'handshake', deviceId: session.deviceId, sessionId: sid, cid: session.cid, from, tokenIssued: session.token });
    return true;
  }

  /** Our final flight and the session record, built once when the client's Finished verifies. */
  #completion(p: Pending, clientVerify: Buffer, serverVerify: Buffer, from: string, nowMs: number): Completion {
    const device = p.device!;
    const keys = p.keys!;
    const sid = p.serverCid ? 'c' + p.serverCid.toString('hex') : 'a' + from;
    const peerCid = p.clientCid && p.clientCid.length > 0 ? p.clientCid : null;
    const records = [
      plainRecord(CT_CHANGE_CIPHER_SPEC, p.serverSeq0, Buffer.from([1])),
      sealRecord(keys.server, CT_HANDSHAKE, 1, 0, handshakeMessage(HT_FINISHED, p.serverMsgSeq, serverVerify), peerCid),
    ];
    // The reset token goes to devices whose CID carries their own handle (so it can be recomputed
    // with no session state), inside the same datagram as our Finished.
    const tokenIssued = p.serverCid !== null && handleOfCid(p.serverCid).equals(device.handle) && p.clientCid!.equals(device.handle);
    let con: ServerCon | undefined;
    if (tokenIssued) {
      const mid = this.#random(2).readUInt16BE(0);
      const message = encodeCoap({
        type: COAP_CON,
        code: CODE_POST,
        mid,
        token: this.#random(2),
        options: pathOptions([RESET_TOKEN_PATH]),
        payload: this.secrets.resetToken(device.id, p.serverCid!),
      });
      records.push(sealRecord(keys.server, CT_APPLICATION_DATA, 1, 1, message, peerCid));
      con = { sessionId: sid, mid, message, to: from, epoch: 1, keys, peerCid, deadlineMs: 0, tries: 0 };
    }
    const session: StoredSession = {
      deviceId: device.id,
      epoch: 1,
      cid: p.serverCid ? p.serverCid.toString('hex') : '',
      peerCid: peerCid ? peerCid.toString('hex') : '',
      keys: keys.block.toString('hex'),
      createdMs: nowMs,
      token: tokenIssued,
    };
    return { sid, session, records, con, clientVerify };
  }

  /** Map.set that forgets the oldest entries beyond `max`. */
  #bounded<V>(map: Map<string, V>, key: string, value: V, max: number): void {
    map.delete(key);
    map.set(key, value);
    while (map.size > max) map.delete(map.keys().next().value as string);
  }

  #storeError(op: string): Verdict {
    this.stats.inc('store_errors', op);
    return 'store_error';
  }

  #keysOf(s: StoredSession): TrafficKeys {
    let k = this.#keyCache.get(s.keys);
    if (!k) {
      k = trafficKeys(Buffer.from(s.keys, 'hex'));
      this.#bounded(this.#keyCache, s.keys, k, this.config.keyCacheEntries);
    }
    return k;
  }

  // ---------------------------------------------------------------- sessions

  async #sessionRecord(sid: string, rec: RecordView, dgramBytes: number, from: string, nowMs: number, out: CoreOutput): Promise<Verdict> {
    let s: StoredSession | undefined;
    try {
      s = await this.store.get(sid, nowMs);
    } catch {
      return this.#storeError('get');
    }
    if (!s) return this.#unknownSession(rec, dgramBytes, from, nowMs, out);
    if (rec.epoch !== s.epoch) return 'bad_epoch';
    const keys = this.#keysOf(s);
    const opened = openRecord(keys.client, rec);
    if (!opened) return 'bad_mac';
    const peerCid = s.peerCid ? Buffer.from(s.peerCid, 'hex') : null;

    if (opened.type === CT_ALERT) return this.#sessionAlert(sid, s, rec, opened.content, nowMs, out);
    if (opened.type !== CT_APPLICATION_DATA && opened.type !== CT_HANDSHAKE) return 'unexpected_content_type';

    const handshake = opened.type === CT_HANDSHAKE;
    const plan: CoapPlan = handshake ? { outCount: 0, response: null, kind: 'none' } : this.#planCoap(sid, opened.content, nowMs);
    let acc;
    try {
      acc = await this.store.accept(sid, rec.seq, plan.outCount, this.config.sessionTtlMs, nowMs);
    } catch {
      return this.#storeError('accept');
    }
    if (acc.status === 'missing') return 'session_vanished';
    if (handshake && (acc.status === 'ok' || acc.status === 'replay')) {
      // The client's Finished again: it did not get ours. Clients may repeat the very same record,
      // so a replay is answered too — but only towards the address that made the handshake.
      // Anything else would be renegotiation, which this server refuses.
      const ff = this.#finalFlights.get(sid);
      if (!ff || ff.expiresMs < nowMs || ff.to !== from) return acc.status === 'replay' ? 'replay' : 'renegotiation_refused';
      out.transmits.push({ to: from, data: ff.flight });
      this.stats.inc('records_in', 'handshake');
      this.stats.inc('handshake_retransmits');
      return true;
    }
    if (acc.status !== 'ok') return acc.status;
    if (handshake) return 'renegotiation_refused';
    this.stats.inc('records_in', 'application_data');
    this.#finalFlights.delete(sid); // the device has our Finished
    if (plan.drop) return plan.drop;
    this.stats.inc('coap', plan.kind);
    if (plan.ackedMid) {
      const con = this.#serverCons.get(sid);
      if (con && con.mid === plan.ackedMid.mid) {
        this.#serverCons.delete(sid);
        this.stats.inc('coap', plan.ackedMid.rst ? 'reset_token_rejected' : 'reset_token_acked');
      }
    }
    if (plan.event) {
      let first: boolean;
      try {
        // Claimed per event stream: a re-provisioned device restarts its numbering under a new incarnation.
        const stream = plan.event.incarnation === null ? s.deviceId : `${s.deviceId}/${plan.event.incarnation}`;
        first = await this.store.claimEvent(stream, plan.event.seq, this.config.eventClaimTtlMs, nowMs);
      } catch {
        return this.#storeError('claim'); // no ACK: the device sends it again
      }
      this.stats.inc('events', first ? 'accepted' : 'duplicate');
      if (first) out.events.push({ kind: 'event', deviceId: s.deviceId, ...plan.event, from, receivedMs: nowMs });
    }
    if (plan.dedupeKey) {
      this.#bounded(this.#dedupe, plan.dedupeKey, { response: plan.response, expiresMs: nowMs + this.config.coapDedupeLifetimeMs }, this.config.coapDedupeEntries);
    }
    if (plan.response) {
      out.transmits.push({ to: from, data: sealRecord(keys.server, CT_APPLICATION_DATA, s.epoch, acc.outSeq, plan.response, peerCid) });
      this.stats.inc('records_out', 'application_data');
    }
    return true;
  }

  async #sessionAlert(sid: string, s: StoredSession, rec: RecordView, content: Buffer, nowMs: number, out: CoreOutput): Promise<Verdict> {
      if (content.length !== 2) return 'bad_alert';
      let acc;
      try {
        acc = await this.store.accept(sid, rec.seq, 0, this.config.sessionTtlMs, nowMs);
      } catch {
        return this.#storeError('accept');
      }
      if (acc.status === 'missing') return 'session_vanished';
      if (acc.status !== 'ok') return acc.status;
      this.stats.inc('records_in', 'alert');
      const [level, desc] = content;
      if (desc !== ALERT_CLOSE_NOTIFY && level !== ALERT_FATAL) return true;
      try {
        await this.store.delete(sid);
      } catch {
        return this.#storeError('delete');
      }
      this.#finalFlights.delete(sid);
      this.#serverCons.delete(sid);
      const reason = desc === ALERT_CLOSE_NOTIFY ? 'close_notify' : `alert_${desc}`;
      this.stats.inc('sessions_closed', desc === ALERT_CLOSE_NOTIFY ? 'close_notify' : 'fatal_alert');
      out.events.push({ kind: 'closed', deviceId: s.deviceId, sessionId: sid, reason });
      return true;
  }

  /** Decides the CoAP reaction before the window update, so the reply's sequence number is reserved with it. */
  #planCoap(sid: string, content: Buffer, nowMs: number): CoapPlan {
    const m = parseCoap(content);
    if (typeof m === 'string') return { outCount: 0, response: null, drop: 'coap_malformed', kind: 'malformed' };
    if (m.type === COAP_ACK || m.type === COAP_RST) {
      return { outCount: 0, response: null, ackedMid: { mid: m.mid, rst: m.type === COAP_RST }, kind: m.type === COAP_ACK ? 'ack' : 'rst' };
    }
    const dedupeKey = `${sid}|${m.mid}`;
    const seen = this.#dedupe.get(dedupeKey);
    if (seen && seen.expiresMs > nowMs) {
      return { outCount: seen.response ? 1 : 0, response: seen.response, kind: 'duplicate' };
    }
    if (m.type === COAP_CON) {
      if (m.code === CODE_EMPTY) {
        // CoAP ping. RFC 7252 §4.3 answers with RST; we answer with an empty ACK, because the
        // legacy device profile treats any RST as "discard the session" (docs/protocol.md).
        return { outCount: 1, response: encodeCoap({ type: COAP_ACK, code: CODE_EMPTY, mid: m.mid }), dedupeKey, kind: 'ping' };
      }
      if (m.code >= 0x20) {
        // A response in a CON from the device: nothing of ours is waiting for it; reject.
        return { outCount: 1, response: encodeCoap({ type: COAP_RST, code: CODE_EMPTY, mid: m.mid }), dedupeKey, kind: 'unexpected_response' };
      }
    }
    if (m.type === COAP_NON && m.code === CODE_EMPTY) return { outCount: 0, response: null, drop: 'coap_malformed', kind: 'malformed' };
    const { code, event, kind } = this.#request(m);
    const response = m.type === COAP_CON ? encodeCoap({ type: COAP_ACK, code, mid: m.mid, token: m.token }) : null;
    return { outCount: response ? 1 : 0, response, dedupeKey, event, kind };
  }

  #request(m: CoapMessage): { code: number; event?: DeviceEvent; kind: string } {
    const path = uriPath(m);
    if (path.length !== 2 || path[0] !== EVENT_PATH) return { code: CODE_NOT_FOUND, kind: 'not_found' };
    if (m.code !== CODE_POST) return { code: CODE_METHOD_NOT_ALLOWED, kind: 'method_not_allowed' };
    const name = path[1];
    if (name.length === 0 || Buffer.byteLength(name) > MAX_EVENT_NAME_BYTES || m.payload.length < EVENT_SEQ_BYTES) {
      return { code: CODE_BAD_REQUEST, kind: 'bad_event' };
    }
    const seq = m.payload.readUInt32BE(0);
    const inc = m.options.find((o) => o.number === OPT_EVENT_INCARNATION);
    if (inc && inc.value.length !== 4) return { code: CODE_BAD_REQUEST, kind: 'bad_event' };
    const incarnation = inc ? inc.value.toString('hex') : null;
    return { code: CODE_CHANGED, event: { incarnation, name, seq, data: Buffer.from(m.payload.subarray(EVENT_SEQ_BYTES)) }, kind: 'event' };
  }

  // ---------------------------------------------------------------- heal

  #unknownSession(rec: RecordView, dgramBytes: number, from: string, nowMs: number, out: CoreOutput): Verdict {
    const withCid = rec.type === CT_TLS12_CID;
    this.stats.inc('unknown_session_records', withCid ? 'cid' : 'address');
    if (this.heal.resetToken) {
      if (!withCid) this.stats.inc('heals_suppressed', 'reset-token/no_cid');
      else this.#sendResets(rec, dgramBytes, from, nowMs, out);
    }
    if (this.heal.malformed) {
      if (!this.#malformedLimiter.allow(from, nowMs)) this.stats.inc('heals_suppressed', 'malformed/rate_limited');
      else {
        out.transmits.push({ to: from, data: malformedDatagram(rec.epoch, this.#random) });
        this.stats.inc('heals_sent', 'malformed');
      }
    }
    return 'unknown_session';
  }

  #sendResets(rec: RecordView, dgramBytes: number, from: string, nowMs: number, out: CoreOutput): void {
    const cid = rec.cid!;
    const known = this.#cidDirectory.get(cid.toString('hex'));
    const handle = handleOfCid(cid);
    const targets = known
      ? [{ deviceId: known.deviceId, deviceCid: known.peerCid ? Buffer.from(known.peerCid, 'hex') : null }]
      : this.devices
          .byHandle(handle)
          .slice(0, this.config.maxResetCandidates)
          .map((d) => ({ deviceId: d.id, deviceCid: Buffer.from(handle) }));
    if (targets.length === 0) {
      this.stats.inc('heals_suppressed', 'reset-token/no_device');
      return;
    }
    if (!this.#resetLimiter.allow(from, nowMs)) {
      this.stats.inc('heals_suppressed', 'reset-token/rate_limited');
      return;
    }
    for (const t of targets) {
      const token = this.secrets.resetToken(t.deviceId, cid);
      const dg = resetDatagram({ epoch: rec.epoch, deviceCid: t.deviceCid, token, triggerBytes: dgramBytes, random: this.#random });
      if (!dg) {
        this.stats.inc('heals_suppressed', 'reset-token/trigger_too_short');
        continue;
      }
      out.transmits.push({ to: from, data: dg });
      this.stats.inc('heals_sent', 'reset-token');
    }
  }

  // ---------------------------------------------------------------- time

  /** Earliest time handleTimeout has work to do, or undefined. */
  nextTimeoutMs(): number | undefined {
    let t = Infinity;
    for (const p of this.#pending.values()) {
      t = Math.min(t, p.createdMs + this.config.handshakeLifetimeMs);
      if (p.state === 'wait_cke') t = Math.min(t, p.deadlineMs);
    }
    for (const c of this.#serverCons.values()) t = Math.min(t, c.deadlineMs);
    return t === Infinity ? undefined : t;
  }

  /** Retransmits our last handshake flight and the reset-token CON; expires what is stale. */
  async handleTimeout(nowMs: number): Promise<CoreOutput> {
    const out: CoreOutput = { transmits: [], events: [] };
    const c = this.config;
    for (const [from, p] of this.#pending) {
      if (nowMs - p.createdMs >= c.handshakeLifetimeMs || (p.state === 'wait_cke' && nowMs >= p.deadlineMs && p.retransmits >= c.handshakeMaxRetransmits)) {
        this.#pending.delete(from);
        this.stats.inc('handshakes', 'timed_out');
        continue;
      }
      if (p.state === 'wait_cke' && nowMs >= p.deadlineMs) this.#resendFlight(p, nowMs, out);
    }
    for (const [sid, f] of this.#finalFlights) if (f.expiresMs <= nowMs) this.#finalFlights.delete(sid);
    for (const [k, d] of this.#dedupe) {
      if (d.expiresMs > nowMs) break; // insertion order is time order
      this.#dedupe.delete(k);
    }
    const due = [...this.#serverCons.values()].filter((con) => con.deadlineMs <= nowMs);
    for (const con of due) {
      if (con.tries >= c.coapMaxRetransmit) {
        this.#serverCons.delete(con.sessionId);
        this.stats.inc('coap', 'reset_token_gave_up');
        continue;
      }
      con.tries++;
      con.deadlineMs = nowMs + c.coapAckTimeoutMs * 2 ** con.tries;
      let seq: number | undefined;
      try {
        seq = await this.store.reserve(con.sessionId, 1, nowMs);
      } catch {
        this.stats.inc('store_errors', 'reserve');
        continue;
      }
      if (seq === undefined) {
        this.#serverCons.delete(con.sessionId);
        continue;
      }
      out.transmits.push({ to: con.to, data: sealRecord(con.keys.server, CT_APPLICATION_DATA, con.epoch, seq, con.message, con.peerCid) });
      this.stats.inc('records_out', 'application_data');
      this.stats.inc('coap', 'reset_token_retransmit');
    }
    for (const t of out.transmits) {
      this.stats.inc('datagrams_out');
      this.stats.inc('bytes_out', undefined, t.data.length);
    }
    return out;
  }
}
