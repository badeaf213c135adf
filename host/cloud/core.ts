/**
 * The cloud's protocol core, sans-IO (like quinn-proto): fed `(datagram, from, nowMs)` it returns
 * the datagrams to send and the events for the application; `handleTimeout(nowMs)` drives
 * retransmission. It owns no socket and no clock, so the fleet simulator can run it over a virtual
 * network in virtual time; server.ts is the node:dgram shell around it.
 *
 * Per datagram: records are parsed in turn; each one is either handled or dropped with a counted
 * reason (`drops{reason}`), and the datagram as a whole is counted accepted (≥ 1 record handled)
 * or dropped. Nothing is remembered about a client before its cookie verifies (except a bounded
 * reassembly buffer for fragmented ClientHellos); after that, bounded in-process handshake tables
 * with per-prefix quotas and fair eviction (core-handshake.ts); after the handshake, everything lives in the
 * session store (core-session.ts), and events go to the event log before they are ACKed.
 */
import crypto from 'node:crypto';
import type { DeviceRegistry } from './devices.ts';
import type { ServerKey } from './p256.ts';
import { MemoryEventLog, type EventLog } from './events.ts';
import { Handshakes } from './core-handshake.ts';
import { Sessions } from './core-session.ts';
import { CloudSecrets } from './heal.ts';
import type { SessionStore } from './store.ts';
import { CT_ALERT, CT_CHANGE_CIPHER_SPEC, CT_HANDSHAKE, CT_TLS12_CID, RECORD_HEADER_BYTES, parseRecord, type RecordView } from './wire.ts';

export { EVENT_PATH, RESET_TOKEN_PATH, EVENT_SEQ_BYTES, MAX_EVENT_NAME_BYTES, INCARNATION_BYTES } from './core-coap.ts';
export { OPT_EVENT_INCARNATION } from './coap.ts';

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
  /** Handshakes waiting for a ClientKeyExchange, in all. */
  maxPendingHandshakes: number;
  /** Of those, per source prefix — IPv4 /24, IPv6 /64 (beyond it, that prefix's oldest is forgotten). */
  maxPendingPerAddress: number;
  /** Handshakes that presented a known PSK identity and wait for the Finished, in all / per prefix. */
  maxKeyedHandshakes: number;
  maxKeyedPerAddress: number;
  /** Fragmented ClientHellos in reassembly (before any cookie: kept small and short-lived). */
  maxHelloReassemblies: number;
  helloReassemblyMs: number;
  finalFlightLifetimeMs: number;
  maxFinalFlights: number;
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
  /** Hand a reset token to devices at the handshake (false: a cloud without reset tokens, as in 2019). */
  issueResetTokens: boolean;
}

export const DEFAULT_CONFIG: CoreConfig = {
  cookieRotationMs: 60_000,
  sessionTtlMs: 7 * 24 * 3600_000,
  handshakeRetransmitInitialMs: 1000,
  handshakeRetransmitMaxMs: 8000,
  handshakeMaxRetransmits: 5,
  handshakeLifetimeMs: 60_000,
  maxPendingHandshakes: 10_000,
  maxPendingPerAddress: 1024,
  maxKeyedHandshakes: 10_000,
  maxKeyedPerAddress: 1024,
  maxHelloReassemblies: 1024,
  helloReassemblyMs: 5000,
  finalFlightLifetimeMs: 30_000,
  maxFinalFlights: 10_000,
  healIntervalMs: 1000,
  healGlobalPerSec: 2000,
  healRateEntries: 65_536,
  maxResetCandidates: 4,
  coapAckTimeoutMs: 2000,
  coapMaxRetransmit: 4,
  coapDedupeLifetimeMs: 247_000, // RFC 7252 EXCHANGE_LIFETIME
  coapDedupeEntries: 100_000,
  eventClaimTtlMs: 7 * 24 * 3600_000,
  keyCacheEntries: 20_000,
  cidDirectoryEntries: 100_000,
  identityHint: null,
  issueResetTokens: true,
};

export interface Transmit {
  to: string;
  data: Buffer;
}

export type CloudEvent =
  | { kind: 'handshake'; deviceId: string; sessionId: string; cid: string; from: string; tokenIssued: boolean }
  | { kind: 'handshake_failed'; from: string; reason: string; identity: string | null }
  | {
      kind: 'event';
      deviceId: string;
      incarnation: string | null;
      name: string;
      seq: number;
      data: Buffer;
      from: string;
      receivedMs: number;
    }
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

/** true: the record was handled; a string: why it was dropped. */
export type Verdict = true | string;

/** What the handshake and session layers share. */
export interface CoreContext {
  readonly config: CoreConfig;
  readonly stats: Counters;
  readonly heal: HealFlags;
  readonly devices: DeviceRegistry;
  readonly store: SessionStore;
  readonly events: EventLog;
  readonly secrets: CloudSecrets;
  readonly random: (n: number) => Buffer;
  /**
   * Where ECDSA nonces come from: null = OpenSSL's own (constant time, the default), or the
   * simulator's seeded source so that its runs replay byte for byte.
   */
  readonly signatureNonces: ((n: number) => Buffer) | null;
  /** The cloud's P-256 key pair; without one, ECDHE-ECDSA is never chosen. */
  readonly serverKey: ServerKey | null;
  /** Receives one NSS key log line per handshake (debugging with Wireshark; secret-bearing). */
  readonly keyLog: ((line: string) => void) | null;
}

export interface CloudCoreOptions {
  devices: DeviceRegistry;
  store: SessionStore;
  /** Where events go before they are ACKed (default: an in-process log that keeps claims only). */
  events?: EventLog;
  /** The cloud secret (≥ 32 bytes) shared by every cloud process; cookie and reset keys derive from it. */
  cloudSecret: Buffer;
  heal?: HealFlags;
  config?: Partial<CoreConfig>;
  /** Randomness (crypto.randomBytes by default); the simulator passes a seeded one. */
  random?: (n: number) => Buffer;
  /** The cloud's P-256 key pair for TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8; without one only PSK is spoken. */
  serverKey?: ServerKey | null;
  /** NSS key log lines ("CLIENT_RANDOM <client random> <master secret>", hex): they decrypt every session. Debugging only. */
  keyLog?: ((line: string) => void) | null;
}

export class CloudCore implements CoreContext {
  readonly stats = new Counters();
  readonly config: CoreConfig;
  readonly heal: HealFlags;
  readonly devices: DeviceRegistry;
  readonly store: SessionStore;
  readonly events: EventLog;
  readonly secrets: CloudSecrets;
  readonly random: (n: number) => Buffer;
  readonly signatureNonces: ((n: number) => Buffer) | null;
  readonly serverKey: ServerKey | null;
  readonly keyLog: ((line: string) => void) | null;
  readonly #handshakes: Handshakes;
  readonly #sessions: Sessions;

  constructor(opts: CloudCoreOptions) {
    this.config = { ...DEFAULT_CONFIG, ...opts.config };
    this.heal = { ...(opts.heal ?? DEFAULT_HEAL) };
    this.devices = opts.devices;
    this.store = opts.store;
    this.events = opts.events ?? new MemoryEventLog({ keepEntries: false });
    this.secrets = new CloudSecrets(opts.cloudSecret);
    this.random = opts.random ?? ((n) => crypto.randomBytes(n));
    // A given random source is a seeded one (simulators): signatures follow it too.
    this.signatureNonces = opts.random ?? null;
    this.serverKey = opts.serverKey ?? null;
    this.keyLog = opts.keyLog ?? null;
    this.#sessions = new Sessions(this);
    this.#handshakes = new Handshakes(this, this.#sessions);
  }

  /** Sizes of every in-process table (for the bounded-memory tests). */
  tableSizes(): Record<string, number> {
    return { ...this.#handshakes.tableSizes(), ...this.#sessions.tableSizes() };
  }

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
    this.#countOut(out);
    return out;
  }

  #countOut(out: CoreOutput): void {
    for (const t of out.transmits) {
      this.stats.inc('datagrams_out');
      this.stats.inc('bytes_out', undefined, t.data.length);
    }
  }

  #drop(reason: string): void {
    this.stats.inc('drops', reason);
  }

  async #record(rec: RecordView, dgramBytes: number, from: string, nowMs: number, out: CoreOutput): Promise<Verdict> {
    if (rec.epoch === 0) {
      if (rec.type === CT_HANDSHAKE) return this.#handshakes.epoch0Handshake(rec, from, nowMs, out);
      if (rec.type === CT_CHANGE_CIPHER_SPEC) return this.#handshakes.changeCipherSpec(rec, from);
      if (rec.type === CT_ALERT) return 'plaintext_alert';
      return 'bad_epoch0_type';
    }
    const hs = this.#handshakes.epoch1Record(rec, from, nowMs, out);
    if (hs !== null) return hs;
    const sid = rec.type === CT_TLS12_CID ? 'c' + rec.cid!.toString('hex') : 'a' + from;
    return this.#sessions.record(sid, rec, dgramBytes, from, nowMs, out);
  }

  /** Earliest time handleTimeout has work to do, or undefined. */
  nextTimeoutMs(): number | undefined {
    const t = Math.min(this.#handshakes.nextTimeoutMs(), this.#sessions.nextTimeoutMs());
    return t === Infinity ? undefined : t;
  }

  /** Retransmits our last handshake flight and the reset-token CON; expires what is stale. */
  async handleTimeout(nowMs: number): Promise<CoreOutput> {
    const out: CoreOutput = { transmits: [], events: [] };
    this.#handshakes.handleTimeout(nowMs, out);
    await this.#sessions.handleTimeout(nowMs, out);
    this.#countOut(out);
    return out;
  }
}
