/**
 * The handshake half of the core (docs/protocol.md §2): stateless cookies, then two bounded
 * tables of handshakes in progress, each with a per-prefix quota (IPv4 /24, IPv6 /64) and fair
 * eviction (QuotaTable):
 *  - `hellos`: cookie verified, server flight sent, waiting for the ClientKeyExchange. This is
 *    what a half-open flood fills; a new handshake from a prefix over its quota forgets that
 *    prefix's oldest one, and a full table forgets from the prefix holding the most, so many
 *    addresses — of one prefix or of many — cannot push a client of another prefix out.
 *  - `keyed`: a known PSK identity was presented (PSK), or the client's CertificateVerify verified
 *    with a registered public key (ECDHE-ECDSA), waiting for the Finished. Hello floods never
 *    evict these, and completed handshakes (final flights, sessions) are never evicted by either.
 * Two suites (docs/protocol.md §1): TLS_PSK_WITH_AES_128_CCM_8 and, with raw public keys (RFC
 * 7250), TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8.
 * Entries are small: the transcript is kept as the bytes it hashes, not as a hash object.
 */
import crypto from 'node:crypto';
import { BoundedMap } from './bounded.ts';
import { COAP_CON, CODE_POST, encodeCoap, pathOptions } from './coap.ts';
import { RESET_TOKEN_PATH } from './core-coap.ts';
import type { CoreContext, CoreOutput, Verdict } from './core.ts';
import type { Completion, Sessions } from './core-session.ts';
import { extendedMasterSecret, finishedVerifyData, keyBlock, openRecord, pskPremaster, sealRecord, trafficKeys, type TrafficKeys } from './crypto.ts';
import { HANDLE_BYTES, type Device } from './devices.ts';
import { ecdhSharedX, ephemeralKey, publicKeyOfSpki, verifyEcdsaSha256 } from './p256.ts';
import {
  ALERT_BAD_CERTIFICATE,
  ALERT_DECODE_ERROR,
  ALERT_ILLEGAL_PARAMETER,
  ALERT_UNSUPPORTED_CERTIFICATE,
  CERT_TYPE_RAW_PUBLIC_KEY,
  EXT_CLIENT_CERTIFICATE_TYPE,
  EXT_EC_POINT_FORMATS,
  EXT_SERVER_CERTIFICATE_TYPE,
  EXT_SIGNATURE_ALGORITHMS,
  EXT_SUPPORTED_GROUPS,
  GROUP_SECP256R1,
  HT_CERTIFICATE,
  HT_CERTIFICATE_REQUEST,
  HT_CERTIFICATE_VERIFY,
  POINT_FORMAT_UNCOMPRESSED,
  SIG_ECDSA_SECP256R1_SHA256,
  SUITE_ECDHE_ECDSA_AES128_CCM8,
  certificateBody,
  certificateRequestBody,
  ecdhParams,
  parseRawPublicKeyCertificate,
  parseCertificateVerify,
  parseClientKeyExchangeEcdhe,
  parseU16List,
  parseU8List,
  serverKeyExchangeEcdheBody,
  serverKeyExchangeSigned,
  type ClientHello,
  ALERT_DECRYPT_ERROR,
  ALERT_FATAL,
  ALERT_HANDSHAKE_FAILURE,
  ALERT_PROTOCOL_VERSION,
  ALERT_UNKNOWN_PSK_IDENTITY,
  EXT_CONNECTION_ID,
  EXT_EXTENDED_MASTER_SECRET,
  EXT_RENEGOTIATION_INFO,
  HANDSHAKE_HEADER_BYTES,
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
import { handleOfCid } from './heal.ts';
import type { StoredSession } from './store.ts';
import {
  CT_ALERT,
  CT_APPLICATION_DATA,
  CT_CHANGE_CIPHER_SPEC,
  CT_HANDSHAKE,
  CT_TLS12_CID,
  DTLS_1_0,
  DTLS_1_2,
  MAX_SEQ,
  RECORD_HEADER_BYTES,
  plainRecord,
  type RecordView,
} from './wire.ts';

const MAX_HANDSHAKE_MESSAGE_BYTES = 2048;
/** Epoch-0 records we may still number after the client's: our flight, alerts. */
const SEQ_HEADROOM = 64;
/** Offset of the random in a ServerHello record of our flight: record header, handshake header, version. */
const SERVER_RANDOM_AT = RECORD_HEADER_BYTES + HANDSHAKE_HEADER_BYTES + 2;

interface Reassembly {
  msgType: number;
  messageSeq: number;
  body: Buffer;
  have: Uint8Array;
  missing: number;
}

/** One handshake in progress. A class, so every entry shares one hidden class (and stays small). */
class Pending {
  /** PSK: wait_cke → wait_finished. ECDHE-ECDSA: wait_certificate → wait_cke → wait_certificate_verify → wait_finished. */
  state: 'wait_certificate' | 'wait_cke' | 'wait_certificate_verify' | 'wait_finished' = 'wait_cke';
  suite = SUITE_PSK_AES128_CCM8;
  /** ECDHE: our ephemeral private scalar, zeroed and dropped at the ClientKeyExchange. */
  ephemeral: Buffer | null = null;
  retransmits = 0;
  completing = false;
  /** Highest record sequence number of the client's Finished (it may come in several records). */
  finishedTop = -1;
  /** The client's handshake messages after our flight, before its Finished (as hashed into the transcript). */
  received: Buffer[] = [];
  device: Device | null = null;
  master: Buffer | null = null;
  keys: TrafficKeys | null = null;
  /** Set once the client's Finished verified; a failed store write is retried with it. */
  completion: Completion | null = null;
  fragments: Map<number, Reassembly> | null = null;
  /**
   * The ClientHello message (as hashed into the transcript), our flight (records; the server
   * messages are inside it) and both CIDs, packed into one allocation of its own: small slices of
   * Node's shared buffer pool would each pin an 8 KiB pool chunk for the entry's lifetime.
   */
  readonly #bytes: Buffer;
  readonly #helloLen: number;
  readonly #flightLen: number;
  readonly #clientCidLen: number;
  readonly #serverCidLen: number;

  constructor(
    readonly from: string,
    /** What the handshake quotas count by (prefixOf). */
    readonly prefix: string,
    readonly createdMs: number,
    public deadlineMs: number,
    hello: Buffer,
    flight: Buffer,
    clientCid: Buffer | null,
    serverCid: Buffer | null,
    readonly helloSeq: number,
    public nextRecvSeq: number,
    readonly serverMsgSeq: number,
    /** Next epoch-0 record sequence number of ours. */
    public serverSeq0: number,
  ) {
    const parts = [hello, flight, clientCid ?? Buffer.alloc(0), serverCid ?? Buffer.alloc(0)];
    this.#bytes = Buffer.allocUnsafeSlow(parts.reduce((n, b) => n + b.length, 0));
    let off = 0;
    for (const b of parts) off += b.copy(this.#bytes, off);
    this.#helloLen = hello.length;
    this.#flightLen = flight.length;
    this.#clientCidLen = clientCid ? clientCid.length : -1;
    this.#serverCidLen = serverCid ? serverCid.length : -1;
  }

  get hello(): Buffer {
    return this.#bytes.subarray(0, this.#helloLen);
  }

  get flight(): Buffer {
    return this.#bytes.subarray(this.#helloLen, this.#helloLen + this.#flightLen);
  }

  get clientCid(): Buffer | null {
    const at = this.#helloLen + this.#flightLen;
    return this.#clientCidLen < 0 ? null : this.#bytes.subarray(at, at + this.#clientCidLen);
  }

  get serverCid(): Buffer | null {
    const at = this.#helloLen + this.#flightLen + Math.max(0, this.#clientCidLen);
    return this.#serverCidLen < 0 ? null : this.#bytes.subarray(at, at + this.#serverCidLen);
  }

  get clientRandom(): Buffer {
    return this.hello.subarray(HANDSHAKE_HEADER_BYTES + 2, HANDSHAKE_HEADER_BYTES + 34);
  }

  get serverRandom(): Buffer {
    return this.flight.subarray(SERVER_RANDOM_AT, SERVER_RANDOM_AT + 32);
  }

  /** Handshake messages hashed so far (the flight without its record headers). */
  transcript(...more: Buffer[]): Buffer {
    const parts = [this.hello];
    const flight = this.flight;
    for (let off = 0; off < flight.length; ) {
      const len = flight.readUInt16BE(off + RECORD_HEADER_BYTES - 2);
      parts.push(flight.subarray(off + RECORD_HEADER_BYTES, off + RECORD_HEADER_BYTES + len));
      off += RECORD_HEADER_BYTES + len;
    }
    return Buffer.concat([...parts, ...this.received, ...more]);
  }
}

/** The IP of "ip:port" / "[v6]:port". */
export function ipOf(from: string): string {
  return from.slice(0, from.lastIndexOf(':'));
}

/**
 * What the handshake quotas count by: an IPv4 address's /24, an IPv6 address's /64 (one host may
 * hold a whole /64 — RFC 4941 temporary addresses, or a /64 routed to it — so counting by address
 * would give it unlimited quota). An IPv4-mapped IPv6 address counts as its IPv4 address. Takes
 * what ipOf returns ("1.2.3.4" or "[v6]"); anything else counts as itself.
 */
export function prefixOf(ip: string): string {
  let a = ip.startsWith('[') ? ip.slice(1, -1) : ip;
  const zone = a.indexOf('%');
  if (zone >= 0) a = a.slice(0, zone);
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  if (mapped) a = mapped[1];
  if (/^\d+\.\d+\.\d+\.\d+$/.test(a)) return a.slice(0, a.lastIndexOf('.')) + '.0/24';
  if (!a.includes(':')) return ip;
  const halves = a.toLowerCase().split('::');
  if (halves.length > 2) return ip;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  if (tail.length > 0 && tail[tail.length - 1].includes('.')) tail.splice(tail.length - 1, 1, '0', '0'); // embedded IPv4: low 32 bits
  const groups = halves.length === 2 ? [...head, ...Array(Math.max(0, 8 - head.length - tail.length)).fill('0'), ...tail] : head;
  if (groups.length !== 8) return ip;
  return groups.slice(0, 4).map((g) => (parseInt(g, 16) || 0).toString(16)).join(':') + '::/64';
}

/** One prefix's entries of a QuotaTable, oldest first. */
interface Group {
  readonly prefix: string;
  readonly keys: BoundedMap<string, true>;
}

/**
 * A bounded table with a per-prefix quota and fair eviction, all O(1):
 *  - beyond a prefix's quota, that prefix's oldest entry goes;
 *  - beyond the table's bound, the oldest entry of the prefix holding the most entries goes (the new
 *    entry's own prefix when it is among the largest). An entry is pushed out by others only when
 *    every prefix in the table holds as few entries as its own: a client alone in its prefix
 *    survives any fill from fewer prefixes than the table's bound (10,000 /24s or /64s by default),
 *    however many addresses each prefix has and however slow the client is.
 * The prefixes are kept in buckets by size, so the largest one is found without a scan.
 */
class QuotaTable<V extends { prefix: string }> {
  readonly all: BoundedMap<string, V>;
  readonly #groups = new Map<string, Group>();
  /** Prefixes by how many entries they hold; every bucket 1..#largest is kept, possibly empty. */
  readonly #bySize: Set<Group>[] = [new Set()];
  #largest = 0;

  constructor(
    readonly max: number,
    readonly quota: number,
    readonly onEvict: (key: string, v: V) => void,
  ) {
    this.all = new BoundedMap(Infinity);
  }

  get size(): number {
    return this.all.size;
  }

  get(key: string): V | undefined {
    return this.all.get(key);
  }

  set(key: string, v: V): void {
    if (this.all.has(key)) this.delete(key);
    const prefix = v.prefix;
    let g = this.#groups.get(prefix);
    if (!g) {
      g = { prefix, keys: new BoundedMap(Infinity) };
      this.#groups.set(prefix, g);
    }
    if (g.keys.size >= this.quota) this.#evictFrom(g);
    this.#resize(g, () => g.keys.set(key, true));
    this.all.set(key, v);
    while (this.all.size > this.max) {
      this.#evictFrom(g.keys.size === this.#largest ? g : this.#bySize[this.#largest].values().next().value!);
    }
  }

  delete(key: string): void {
    const v = this.all.get(key);
    if (!v) return;
    this.all.delete(key);
    const g = this.#groups.get(v.prefix);
    if (g) this.#resize(g, () => g.keys.delete(key));
  }

  #evictFrom(g: Group): void {
    const oldest = g.keys.oldest();
    if (!oldest) return;
    const v = this.all.get(oldest[0])!;
    this.delete(oldest[0]);
    this.onEvict(oldest[0], v);
  }

  /** Runs a change of g's entries, keeping the size buckets and #largest true (sizes move by one). */
  #resize(g: Group, change: () => void): void {
    const before = g.keys.size;
    change();
    const after = g.keys.size;
    if (after === before) return;
    if (before > 0) this.#bySize[before].delete(g);
    if (after > 0) {
      while (this.#bySize.length <= after) this.#bySize.push(new Set());
      this.#bySize[after].add(g);
    } else {
      this.#groups.delete(g.prefix);
    }
    if (after > this.#largest) this.#largest = after;
    while (this.#largest > 0 && this.#bySize[this.#largest].size === 0) this.#largest--;
  }
}

export class Handshakes {
  readonly #hellos: QuotaTable<Pending>;
  readonly #keyed: QuotaTable<Pending>;
  /** Fragmented ClientHellos (before the cookie): bounded, short-lived. */
  readonly #helloParts: BoundedMap<string, Reassembly & { expiresMs: number }>;

  constructor(
    readonly ctx: CoreContext,
    readonly sessions: Sessions,
  ) {
    const c = ctx.config;
    this.#hellos = new QuotaTable(c.maxPendingHandshakes, c.maxPendingPerAddress, () => ctx.stats.inc('handshakes', 'evicted'));
    this.#keyed = new QuotaTable(c.maxKeyedHandshakes, c.maxKeyedPerAddress, () => ctx.stats.inc('handshakes', 'evicted'));
    this.#helloParts = new BoundedMap(c.maxHelloReassemblies);
  }

  tableSizes(): Record<string, number> {
    return { pending: this.#hellos.size, keyed: this.#keyed.size, helloReassembly: this.#helloParts.size };
  }

  #pending(from: string): Pending | undefined {
    return this.#hellos.get(from) ?? this.#keyed.get(from);
  }

  #forget(p: Pending): void {
    if (this.#hellos.get(p.from) === p) this.#hellos.delete(p.from);
    if (this.#keyed.get(p.from) === p) this.#keyed.delete(p.from);
  }

  changeCipherSpec(rec: RecordView, from: string): Verdict {
    const p = this.#pending(from);
    if (!p || p.state !== 'wait_finished' || rec.body.length !== 1 || rec.body[0] !== 1) return 'unexpected_change_cipher_spec';
    this.ctx.stats.inc('records_in', 'change_cipher_spec');
    return true;
  }

  /** An epoch ≥ 1 record that belongs to a handshake in progress, or null when it does not. */
  epoch1Record(rec: RecordView, from: string, nowMs: number, out: CoreOutput): Promise<Verdict> | null {
    const p = this.#pending(from);
    if (!p) return null;
    const forPending = rec.type === CT_HANDSHAKE || (rec.type === CT_TLS12_CID && p.serverCid !== null && rec.cid!.equals(p.serverCid));
    return forPending ? this.#clientFinished(p, rec, from, nowMs, out) : null;
  }

  async epoch0Handshake(rec: RecordView, from: string, nowMs: number, out: CoreOutput): Promise<Verdict> {
    const frags = parseHandshakeFragments(rec.body);
    if (!frags || frags.length === 0) return 'bad_handshake_message';
    if (frags[0].msgType === HT_CLIENT_HELLO) {
      let verdict: Verdict = 'bad_client_hello';
      for (const f of frags) {
        if (f.msgType !== HT_CLIENT_HELLO) return 'bad_client_hello';
        const whole = this.#helloFragment(f, from, nowMs);
        if (whole === 'bad') return 'bad_client_hello';
        if (whole === null) verdict = true;
        else verdict = this.#clientHello(rec, f.messageSeq, whole, from, nowMs, out);
      }
      if (verdict === true) this.ctx.stats.inc('records_in', 'handshake');
      return verdict;
    }
    const p = this.#pending(from);
    if (!p) return 'no_handshake_in_progress';
    let verdict: Verdict = true;
    for (const f of frags) {
      const v = this.#pendingMessage(p, f, nowMs, out);
      if (v !== true) verdict = v;
      if (this.#pending(from) !== p) break; // failed and removed
    }
    return verdict;
  }

  /** The whole ClientHello body once every fragment is in; null while parts are missing. */
  #helloFragment(f: HandshakeFragment, from: string, nowMs: number): Buffer | null | 'bad' {
    if (f.fragmentOffset === 0 && f.fragment.length === f.length) return f.fragment;
    if (f.length > MAX_HANDSHAKE_MESSAGE_BYTES) return 'bad';
    let r = this.#helloParts.get(from);
    if (r && (r.expiresMs <= nowMs || r.messageSeq !== f.messageSeq || r.body.length !== f.length)) r = undefined;
    if (!r) {
      r = { msgType: f.msgType, messageSeq: f.messageSeq, body: Buffer.alloc(f.length), have: new Uint8Array(f.length), missing: f.length, expiresMs: nowMs + this.ctx.config.helloReassemblyMs };
      this.#helloParts.set(from, r);
    }
    const body = addFragment(r, f);
    if (body !== null) this.#helloParts.delete(from);
    return body;
  }

  #clientHello(rec: RecordView, messageSeq: number, body: Buffer, from: string, nowMs: number, out: CoreOutput): Verdict {
    const ch = parseClientHello(body);
    if (typeof ch === 'string') return 'bad_client_hello';
    const { config: c, stats, secrets } = this.ctx;
    if (!secrets.verifyCookie(ch.cookie, from, ch.cookieless, nowMs, c.cookieRotationMs)) {
      if (ch.cookie.length > 0) stats.inc('cookies_invalid');
      // Stateless: the HelloVerifyRequest reuses the ClientHello's record and message sequence numbers.
      const cookie = secrets.cookie(from, ch.cookieless, nowMs, c.cookieRotationMs);
      const msg = handshakeMessage(HT_HELLO_VERIFY_REQUEST, messageSeq, helloVerifyRequestBody(cookie));
      out.transmits.push({ to: from, data: plainRecord(CT_HANDSHAKE, rec.seq, msg, DTLS_1_0) });
      stats.inc('hello_verify_requests');
      stats.inc('records_out', 'handshake');
      return true;
    }
    // Our flight and any alert are numbered after the client's record: leave room below 2^48.
    if (rec.seq > MAX_SEQ - SEQ_HEADROOM) return 'record_sequence_exhausted';
    // Likewise our messages and the client's next ones are numbered after its message_seq (16 bits).
    if (messageSeq > 0xffff - 8) return 'message_sequence_exhausted';
    const existing = this.#pending(from);
    if (existing && existing.clientRandom.equals(ch.random)) {
      // The client did not get our flight: send it again (RFC 6347 §4.2.4).
      if (existing.received.length === 0) this.#resendFlight(existing, nowMs, out);
      return true;
    }
    const fail = (reason: string, alert: number) => this.#failHello(from, rec.seq, reason, alert, out);
    if (ch.clientVersion !== DTLS_1_2) return fail('unsupported_version', ALERT_PROTOCOL_VERSION);
    const suite = this.#chooseSuite(ch);
    if (typeof suite !== 'number') return fail(suite[0], suite[1]);
    if (!ch.compressionMethods.includes(0)) return fail('no_null_compression', ALERT_HANDSHAKE_FAILURE);
    if (!ch.extensions.has(EXT_EXTENDED_MASTER_SECRET)) return fail('no_extended_master_secret', ALERT_HANDSHAKE_FAILURE);
    let clientCid: Buffer | null = null;
    let serverCid: Buffer | null = null;
    const cidExt = ch.extensions.get(EXT_CONNECTION_ID);
    if (cidExt) {
      clientCid = parseCidExtension(cidExt);
      if (!clientCid) return fail('bad_connection_id_extension', ALERT_DECODE_ERROR);
      clientCid = Buffer.from(clientCid);
      serverCid = this.ctx.secrets.makeServerCid(clientCid.length === HANDLE_BYTES ? clientCid : null, this.ctx.random);
    }
    const reneg = ch.extensions.get(EXT_RENEGOTIATION_INFO);
    if (reneg && !(reneg.length === 1 && reneg[0] === 0)) return fail('bad_renegotiation_info', ALERT_HANDSHAKE_FAILURE);
    const secureRenegotiation = reneg !== undefined || ch.cipherSuites.includes(SCSV_RENEGOTIATION);
    if (existing) this.#forget(existing); // a new ClientHello from the same address starts over
    let msgSeq = messageSeq;
    const serverRandom = this.ctx.random(32);
    const messages = [handshakeMessage(HT_SERVER_HELLO, msgSeq++, serverHelloBody({ random: serverRandom, secureRenegotiation, cid: serverCid, suite, pointFormats: ch.extensions.has(EXT_EC_POINT_FORMATS) }))];
    let ephemeral: Buffer | null = null;
    if (suite === SUITE_ECDHE_ECDSA_AES128_CCM8) {
      // RFC 7250 Certificate, signed ephemeral key, request for the client's raw key.
      const key = this.ctx.serverKey!;
      const eph = ephemeralKey(this.ctx.random);
      ephemeral = eph.scalar;
      const params = ecdhParams(eph.point);
      const signature = key.sign(serverKeyExchangeSigned(ch.random, serverRandom, params), this.ctx.signatureNonces);
      messages.push(handshakeMessage(HT_CERTIFICATE, msgSeq++, certificateBody(key.spki)));
      messages.push(handshakeMessage(HT_SERVER_KEY_EXCHANGE, msgSeq++, serverKeyExchangeEcdheBody(params, signature)));
      messages.push(handshakeMessage(HT_CERTIFICATE_REQUEST, msgSeq++, certificateRequestBody()));
    } else if (c.identityHint !== null) {
      messages.push(handshakeMessage(HT_SERVER_KEY_EXCHANGE, msgSeq++, serverKeyExchangeBody(Buffer.from(c.identityHint, 'utf8'))));
    }
    messages.push(handshakeMessage(HT_SERVER_HELLO_DONE, msgSeq++, Buffer.alloc(0)));
    let seq0 = rec.seq;
    const flight = Buffer.concat(messages.map((m) => plainRecord(CT_HANDSHAKE, seq0++, m)));
    const p = new Pending(
      from,
      prefixOf(ipOf(from)),
      nowMs,
      nowMs + c.handshakeRetransmitInitialMs,
      handshakeMessage(HT_CLIENT_HELLO, messageSeq, body),
      flight,
      clientCid,
      serverCid,
      messageSeq,
      messageSeq + 1,
      msgSeq,
      seq0,
    );
    if (suite === SUITE_ECDHE_ECDSA_AES128_CCM8) {
      p.suite = suite;
      p.state = 'wait_certificate';
      p.ephemeral = ephemeral;
    }
    this.#hellos.set(from, p);
    out.transmits.push({ to: from, data: flight });
    stats.inc('records_out', 'handshake', messages.length);
    stats.inc('handshakes', 'started');
    return true;
  }

  /**
   * ECDHE-ECDSA when the client offers it and can do it with us (raw public keys both ways, P-256,
   * uncompressed points, ecdsa_secp256r1_sha256) and we have a key and devices registered by public
   * key; else PSK when offered. A client offering both whose CID is the handle of PSK-only devices
   * gets PSK (the handle is public and unauthenticated, but it only picks the suite; the device
   * still proves itself). Otherwise: [reason, alert].
   */
  #chooseSuite(ch: ClientHello): number | [string, number] {
    const psk = ch.cipherSuites.includes(SUITE_PSK_AES128_CCM8);
    if (!ch.cipherSuites.includes(SUITE_ECDHE_ECDSA_AES128_CCM8)) return psk ? SUITE_PSK_AES128_CCM8 : ['no_shared_cipher_suite', ALERT_HANDSHAKE_FAILURE];
    const refusal = this.#ecdheRefusal(ch);
    if (refusal) return psk ? SUITE_PSK_AES128_CCM8 : refusal;
    if (psk) {
      const cid = ch.extensions.get(EXT_CONNECTION_ID);
      const handle = cid ? parseCidExtension(cid) : null;
      const named = handle && handle.length === HANDLE_BYTES ? this.ctx.devices.byHandle(handle) : [];
      if (named.length > 0 && named.every((d) => d.publicKey === null)) return SUITE_PSK_AES128_CCM8;
    }
    return SUITE_ECDHE_ECDSA_AES128_CCM8;
  }

  /** Why ECDHE-ECDSA cannot be chosen for this ClientHello ([reason, alert]), or null. */
  #ecdheRefusal(ch: ClientHello): [string, number] | null {
    if (!this.ctx.serverKey || this.ctx.devices.publicKeyDevices === 0) return ['no_shared_cipher_suite', ALERT_HANDSHAKE_FAILURE]; // we do not speak it here
    const list = (type: number, parse: (d: Buffer) => number[] | null): number[] | null | 'bad' => {
      const data = ch.extensions.get(type);
      if (data === undefined) return null;
      return parse(data) ?? 'bad';
    };
    // RFC 7250: without the extension the peer means X.509, which this cloud does not have.
    for (const ext of [EXT_SERVER_CERTIFICATE_TYPE, EXT_CLIENT_CERTIFICATE_TYPE]) {
      const types = list(ext, parseU8List);
      if (types === 'bad') return ['bad_certificate_type_extension', ALERT_DECODE_ERROR];
      if (!types?.includes(CERT_TYPE_RAW_PUBLIC_KEY)) return ['no_raw_public_key', ALERT_UNSUPPORTED_CERTIFICATE];
    }
    const groups = list(EXT_SUPPORTED_GROUPS, parseU16List);
    if (groups === 'bad') return ['bad_supported_groups', ALERT_DECODE_ERROR];
    if (groups && !groups.includes(GROUP_SECP256R1)) return ['no_shared_group', ALERT_HANDSHAKE_FAILURE];
    const formats = list(EXT_EC_POINT_FORMATS, parseU8List);
    if (formats === 'bad') return ['bad_ec_point_formats', ALERT_DECODE_ERROR];
    if (formats && !formats.includes(POINT_FORMAT_UNCOMPRESSED)) return ['no_uncompressed_points', ALERT_ILLEGAL_PARAMETER];
    // Without signature_algorithms TLS 1.2 means SHA-1 (RFC 5246 §7.4.1.4.1), which we do not sign with.
    const sigs = list(EXT_SIGNATURE_ALGORITHMS, parseU16List);
    if (sigs === 'bad') return ['bad_signature_algorithms', ALERT_DECODE_ERROR];
    if (!sigs?.includes(SIG_ECDSA_SECP256R1_SHA256)) return ['no_shared_signature_algorithm', ALERT_HANDSHAKE_FAILURE];
    return null;
  }

  /** A fatal plaintext alert for a ClientHello we refuse (after its cookie verified). */
  #failHello(from: string, seq: number, reason: string, alert: number, out: CoreOutput): Verdict {
    out.transmits.push({ to: from, data: plainRecord(CT_ALERT, seq, alertBody(ALERT_FATAL, alert)) });
    this.ctx.stats.inc('records_out', 'alert');
    this.#failed(from, reason, null, out);
    return reason;
  }

  #failPending(p: Pending, reason: string, alert: number | null, out: CoreOutput, identity: string | null = p.device ? (p.device.identity ?? p.device.id) : null): Verdict {
    p.ephemeral?.fill(0);
    p.ephemeral = null;
    if (alert !== null) {
      out.transmits.push({ to: p.from, data: plainRecord(CT_ALERT, p.serverSeq0++, alertBody(ALERT_FATAL, alert)) });
      this.ctx.stats.inc('records_out', 'alert');
    }
    this.#forget(p);
    this.#failed(p.from, reason, identity, out);
    return reason;
  }

  #failed(from: string, reason: string, identity: string | null, out: CoreOutput): void {
    this.ctx.stats.inc('handshakes', 'failed');
    this.ctx.stats.inc('handshake_failures', reason);
    out.events.push({ kind: 'handshake_failed', from, reason, identity });
  }

  #resendFlight(p: Pending, nowMs: number, out: CoreOutput): void {
    out.transmits.push({ to: p.from, data: p.flight });
    this.ctx.stats.inc('handshake_retransmits');
    p.retransmits++;
    const c = this.ctx.config;
    p.deadlineMs = nowMs + Math.min(c.handshakeRetransmitInitialMs * 2 ** p.retransmits, c.handshakeRetransmitMaxMs);
  }

  /** Reassembles a fragmented handshake message of a handshake in progress (bounded). */
  #assemble(p: Pending, f: HandshakeFragment): Buffer | null | 'bad' {
    if (f.fragmentOffset === 0 && f.fragment.length === f.length) return f.fragment;
    if (f.length > MAX_HANDSHAKE_MESSAGE_BYTES) return 'bad';
    p.fragments ??= new Map();
    let r = p.fragments.get(f.messageSeq);
    if (!r) {
      if (p.fragments.size >= 4) return 'bad';
      r = { msgType: f.msgType, messageSeq: f.messageSeq, body: Buffer.alloc(f.length), have: new Uint8Array(f.length), missing: f.length };
      p.fragments.set(f.messageSeq, r);
    }
    const body = addFragment(r, f);
    if (body === 'bad' || body !== null) p.fragments.delete(f.messageSeq);
    return body;
  }

  #pendingMessage(p: Pending, f: HandshakeFragment, nowMs: number, out: CoreOutput): Verdict {
    if (f.messageSeq < p.nextRecvSeq) {
      if (f.messageSeq === p.helloSeq && p.received.length === 0) this.#resendFlight(p, nowMs, out);
      return 'duplicate_handshake_message';
    }
    if (f.messageSeq > p.nextRecvSeq) return 'handshake_message_out_of_order';
    const body = this.#assemble(p, f);
    if (body === 'bad') return 'bad_handshake_fragment';
    // The client has our flight: from now on its retransmissions drive, not our timer.
    p.deadlineMs = Infinity;
    const stats = this.ctx.stats;
    if (body === null) {
      stats.inc('records_in', 'handshake');
      return true;
    }
    const message = handshakeMessage(f.msgType, f.messageSeq, body);
    let verdict: Verdict;
    if (p.suite === SUITE_PSK_AES128_CCM8) {
      if (f.msgType !== HT_CLIENT_KEY_EXCHANGE || p.state !== 'wait_cke') return 'unexpected_handshake_message';
      verdict = this.#pskKeyExchange(p, body, message, out);
    } else if (f.msgType === HT_CERTIFICATE && p.state === 'wait_certificate') {
      verdict = this.#clientCertificate(p, body, message, out);
    } else if (f.msgType === HT_CLIENT_KEY_EXCHANGE && p.state === 'wait_cke') {
      verdict = this.#ecdheKeyExchange(p, body, message, out);
    } else if (f.msgType === HT_CERTIFICATE_VERIFY && p.state === 'wait_certificate_verify') {
      verdict = this.#certificateVerify(p, body, message, out);
    } else {
      return 'unexpected_handshake_message';
    }
    if (verdict !== true) return verdict;
    p.nextRecvSeq++;
    stats.inc('records_in', 'handshake');
    return true;
  }

  /** PSK ClientKeyExchange: the identity names the device; keys follow from its PSK. */
  #pskKeyExchange(p: Pending, body: Buffer, message: Buffer, out: CoreOutput): Verdict {
    const identity = parseClientKeyExchange(body);
    if (!identity) return this.#failPending(p, 'bad_client_key_exchange', ALERT_DECODE_ERROR, out);
    const device = this.ctx.devices.byIdentity(identity);
    // For the log: what the client claimed to be, cut short (it is unauthenticated input).
    if (!device || !device.psk) return this.#failPending(p, 'unknown_psk_identity', ALERT_UNKNOWN_PSK_IDENTITY, out, identity.subarray(0, 64).toString('utf8'));
    p.received.push(message);
    p.device = device;
    this.#deriveKeys(p, pskPremaster(device.psk.reveal()));
    p.state = 'wait_finished';
    this.#hellos.delete(p.from);
    this.#keyed.set(p.from, p);
    return true;
  }

  /** ECDHE: the client's Certificate carries its raw public key (RFC 7250 §3), which names the device. */
  #clientCertificate(p: Pending, body: Buffer, message: Buffer, out: CoreOutput): Verdict {
    const spki = parseRawPublicKeyCertificate(body);
    if (!spki) return this.#failPending(p, 'bad_certificate_message', ALERT_DECODE_ERROR, out);
    const key = publicKeyOfSpki(spki);
    if (!key) return this.#failPending(p, 'bad_client_public_key', ALERT_BAD_CERTIFICATE, out);
    const device = this.ctx.devices.byPublicKey(key.point);
    // For the log: which key was presented (public; the X coordinate's first 8 bytes).
    if (!device) return this.#failPending(p, 'unknown_public_key', ALERT_HANDSHAKE_FAILURE, out, `key:${key.point.subarray(1, 9).toString('hex')}`);
    p.received.push(message);
    p.device = device;
    p.state = 'wait_cke';
    return true;
  }

  /** ECDHE ClientKeyExchange: the client's ephemeral point, validated on the curve; premaster = shared X. */
  #ecdheKeyExchange(p: Pending, body: Buffer, message: Buffer, out: CoreOutput): Verdict {
    const point = parseClientKeyExchangeEcdhe(body);
    if (!point) return this.#failPending(p, 'bad_client_key_exchange', ALERT_DECODE_ERROR, out);
    const shared = ecdhSharedX(p.ephemeral!, point);
    p.ephemeral!.fill(0);
    p.ephemeral = null;
    if (!shared) return this.#failPending(p, 'invalid_curve_point', ALERT_ILLEGAL_PARAMETER, out);
    p.received.push(message);
    this.#deriveKeys(p, shared);
    shared.fill(0);
    p.state = 'wait_certificate_verify';
    return true;
  }

  /** ECDHE CertificateVerify: the device proves its private key over the transcript so far. */
  #certificateVerify(p: Pending, body: Buffer, message: Buffer, out: CoreOutput): Verdict {
    const cv = parseCertificateVerify(body);
    if (!cv) return this.#failPending(p, 'bad_certificate_verify_message', ALERT_DECODE_ERROR, out);
    // We asked for ecdsa_secp256r1_sha256 only (CertificateRequest).
    if (cv.algorithm !== SIG_ECDSA_SECP256R1_SHA256) return this.#failPending(p, 'bad_signature_algorithm', ALERT_ILLEGAL_PARAMETER, out);
    if (!verifyEcdsaSha256(p.device!.publicKey!.key, p.transcript(), cv.signature)) return this.#failPending(p, 'bad_certificate_verify', ALERT_DECRYPT_ERROR, out);
    p.received.push(message);
    p.state = 'wait_finished';
    // Proven: from now on it is safe from hello floods.
    this.#hellos.delete(p.from);
    this.#keyed.set(p.from, p);
    return true;
  }

  /** Master secret (RFC 7627) over the transcript through the ClientKeyExchange, and the traffic keys. */
  #deriveKeys(p: Pending, premaster: Buffer): void {
    const sessionHash = crypto.createHash('sha256').update(p.transcript()).digest();
    p.master = extendedMasterSecret(premaster, sessionHash);
    p.keys = trafficKeys(keyBlock(p.master, p.clientRandom, p.serverRandom));
    this.ctx.keyLog?.(`CLIENT_RANDOM ${p.clientRandom.toString('hex')} ${p.master.toString('hex')}`);
  }

  async #clientFinished(p: Pending, rec: RecordView, from: string, nowMs: number, out: CoreOutput): Promise<Verdict> {
    if (p.state !== 'wait_finished' || !p.keys || !p.master || !p.device) return 'handshake_message_out_of_order';
    if (p.completing) return 'handshake_completing';
    if (rec.epoch !== 1) return 'bad_epoch';
    const opened = openRecord(p.keys.client, rec);
    if (!opened) {
      // With PSK, the usual sign of a wrong PSK: the device's keys differ from ours.
      this.ctx.stats.inc('handshake_failures', 'finished_not_authentic');
      const reason = p.suite === SUITE_PSK_AES128_CCM8 ? 'finished_not_authentic (wrong PSK?)' : 'finished_not_authentic';
      out.events.push({ kind: 'handshake_failed', from, reason, identity: p.device.identity ?? p.device.id });
      return 'bad_mac_finished';
    }
    if (opened.type !== CT_HANDSHAKE) return 'unexpected_content_in_handshake';
    const frags = parseHandshakeFragments(opened.content);
    if (!frags || frags.length === 0) return this.#failPending(p, 'bad_finished', ALERT_DECODE_ERROR, out);
    let verify: Buffer | null = null;
    for (const f of frags) {
      if (f.msgType !== HT_FINISHED || f.messageSeq !== p.nextRecvSeq || f.length !== 12) return this.#failPending(p, 'bad_finished', ALERT_DECODE_ERROR, out);
      const body = this.#assemble(p, f);
      if (body === 'bad') return this.#failPending(p, 'bad_finished', ALERT_DECODE_ERROR, out);
      if (body !== null) verify = Buffer.from(body);
    }
    p.finishedTop = Math.max(p.finishedTop, rec.seq);
    if (verify === null) {
      this.ctx.stats.inc('records_in', 'handshake');
      return true; // more fragments of the Finished to come
    }
    if (p.completion) {
      // A repeated Finished after a failed store write: it must be the one we verified.
      if (!crypto.timingSafeEqual(p.completion.clientVerify, verify)) return this.#failPending(p, 'bad_finished', ALERT_DECRYPT_ERROR, out);
    } else {
      const expected = finishedVerifyData(p.master, 'client finished', crypto.createHash('sha256').update(p.transcript()).digest());
      if (!crypto.timingSafeEqual(expected, verify)) return this.#failPending(p, 'bad_finished', ALERT_DECRYPT_ERROR, out);
      const finished = handshakeMessage(HT_FINISHED, p.nextRecvSeq, verify);
      const serverVerify = finishedVerifyData(p.master, 'server finished', crypto.createHash('sha256').update(p.transcript(finished)).digest());
      p.completion = this.#completion(p, verify, serverVerify, from, nowMs);
    }
    p.completing = true;
    try {
      await this.ctx.store.put(p.completion.sid, p.completion.session, { top: p.finishedTop, nextOutSeq: p.completion.records.length - 1 }, this.ctx.config.sessionTtlMs, nowMs);
    } catch {
      // The client retransmits its Finished; we try again then.
      p.completing = false;
      return this.sessions.storeError('put');
    }
    this.#forget(p);
    if (p.serverCid && !p.completion.session.token) {
      this.ctx.stats.inc('reset_tokens_not_issued', p.clientCid!.length === HANDLE_BYTES ? 'handle_mismatch' : 'no_handle');
    }
    this.sessions.completed(p.completion, p.keys, from, nowMs, out);
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
    const tokenIssued = this.ctx.config.issueResetTokens && p.serverCid !== null && handleOfCid(p.serverCid).equals(device.handle) && p.clientCid!.equals(device.handle);
    let con: Completion['con'];
    if (tokenIssued) {
      const mid = this.ctx.random(2).readUInt16BE(0);
      const message = encodeCoap({
        type: COAP_CON,
        code: CODE_POST,
        mid,
        token: this.ctx.random(2),
        options: pathOptions([RESET_TOKEN_PATH]),
        payload: this.ctx.secrets.resetToken(device.id, p.serverCid!),
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

  nextTimeoutMs(): number {
    let t = Infinity;
    const life = this.ctx.config.handshakeLifetimeMs;
    for (const p of this.#hellos.all.values()) t = Math.min(t, p.deadlineMs, p.createdMs + life);
    for (const p of this.#keyed.all.values()) t = Math.min(t, p.createdMs + life);
    return t;
  }

  handleTimeout(nowMs: number, out: CoreOutput): void {
    const c = this.ctx.config;
    for (const [from, p] of this.#hellos.all) {
      if (nowMs - p.createdMs >= c.handshakeLifetimeMs) {
        this.#hellos.delete(from);
        this.ctx.stats.inc('handshakes', 'timed_out');
        continue;
      }
      if (nowMs < p.deadlineMs) continue;
      // Retransmissions spent, the handshake is kept for its lifetime all the same: a Cortex-M
      // computing ECDHE under an interpreter answers 20–60 s after our flight (test/host/slow-device.test.ts).
      if (p.retransmits >= c.handshakeMaxRetransmits) p.deadlineMs = Infinity;
      else this.#resendFlight(p, nowMs, out);
    }
    for (const [from, p] of this.#keyed.all) {
      if (nowMs - p.createdMs < c.handshakeLifetimeMs || p.completing) continue;
      this.#keyed.delete(from);
      this.ctx.stats.inc('handshakes', 'timed_out');
    }
    for (const [from, r] of this.#helloParts) {
      if (r.expiresMs > nowMs) break;
      this.#helloParts.delete(from);
    }
  }
}

/** Adds a fragment to a reassembly; the whole body when complete, null while parts are missing. */
function addFragment(r: Reassembly, f: HandshakeFragment): Buffer | null | 'bad' {
  if (r.msgType !== f.msgType || r.body.length !== f.length) return 'bad';
  f.fragment.copy(r.body, f.fragmentOffset);
  for (let i = f.fragmentOffset; i < f.fragmentOffset + f.fragment.length; i++) {
    if (!r.have[i]) {
      r.have[i] = 1;
      r.missing--;
    }
  }
  return r.missing > 0 ? null : r.body;
}
