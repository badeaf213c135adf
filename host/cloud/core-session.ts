/**
 * The session half of the core: records of established sessions (docs/protocol.md §4–§6) —
 * window and sequence numbers through the store, CoAP (core-coap.ts), events through the event
 * log before the ACK, alerts, a refused renegotiation, the final flight for a client that lost
 * it, the reset-token CON, and the heals for records of sessions the store does not have.
 */
import { planCoap, type CoapPlan, type DedupeTable } from './core-coap.ts';
import type { CoreContext, CoreOutput, Verdict } from './core.ts';
import { BoundedMap, compact } from './bounded.ts';
import { openRecord, sealRecord, trafficKeys, type TrafficKeys } from './crypto.ts';
import { ALERT_CLOSE_NOTIFY, ALERT_FATAL, HT_FINISHED, alertBody, parseHandshakeFragments } from './handshake.ts';
import { HealRateLimiter, handleOfCid, malformedDatagram, resetDatagram } from './heal.ts';
import type { StoredSession } from './store.ts';
import { CT_ALERT, CT_APPLICATION_DATA, CT_HANDSHAKE, CT_TLS12_CID, type RecordView } from './wire.ts';

export const ALERT_WARNING = 1;
export const ALERT_NO_RENEGOTIATION = 100;

/** The reset-token CON waiting for the device's ACK. */
export interface ServerCon {
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

/** What a verified client Finished produces: the session to store and our final flight. */
export interface Completion {
  sid: string;
  session: StoredSession;
  records: Buffer[];
  con?: ServerCon;
  clientVerify: Buffer;
}

export class Sessions {
  readonly #finalFlights: BoundedMap<string, { flight: Buffer; to: string; expiresMs: number }>;
  readonly #dedupe: DedupeTable;
  readonly #serverCons: BoundedMap<string, ServerCon>;
  readonly #cidDirectory: BoundedMap<string, { deviceId: string; peerCid: string }>;
  readonly #keyCache: BoundedMap<string, TrafficKeys>;
  readonly #resetLimiter: HealRateLimiter;
  readonly #malformedLimiter: HealRateLimiter;

  constructor(readonly ctx: CoreContext) {
    const c = ctx.config;
    this.#finalFlights = new BoundedMap(c.maxFinalFlights);
    this.#dedupe = new BoundedMap(c.coapDedupeEntries);
    this.#serverCons = new BoundedMap(c.maxFinalFlights);
    this.#cidDirectory = new BoundedMap(c.cidDirectoryEntries);
    this.#keyCache = new BoundedMap(c.keyCacheEntries);
    this.#resetLimiter = new HealRateLimiter(c.healIntervalMs, c.healGlobalPerSec, c.healRateEntries);
    this.#malformedLimiter = new HealRateLimiter(c.healIntervalMs, c.healGlobalPerSec, c.healRateEntries);
  }

  tableSizes(): Record<string, number> {
    return {
      finalFlights: this.#finalFlights.size,
      dedupe: this.#dedupe.size,
      serverCons: this.#serverCons.size,
      cidDirectory: this.#cidDirectory.size,
      keyCache: this.#keyCache.size,
      resetLimiter: this.#resetLimiter.size,
      malformedLimiter: this.#malformedLimiter.size,
    };
  }

  storeError(op: string): Verdict {
    this.ctx.stats.inc('store_errors', op);
    return 'store_error';
  }

  /** A handshake finished and its session is in the store: send our flight, remember what helps later. */
  completed(done: Completion, keys: TrafficKeys, from: string, nowMs: number, out: CoreOutput): void {
    const { config: c, stats } = this.ctx;
    const { sid, session, records, con } = done;
    const flight = compact(Buffer.concat(records));
    this.#finalFlights.set(sid, { flight, to: from, expiresMs: nowMs + c.finalFlightLifetimeMs });
    this.#keyCache.set(session.keys, keys);
    if (con) {
      con.deadlineMs = nowMs + c.coapAckTimeoutMs;
      con.message = compact(con.message);
      this.#serverCons.set(sid, con);
    }
    if (session.cid) this.#cidDirectory.set(session.cid, { deviceId: session.deviceId, peerCid: session.peerCid });
    out.transmits.push({ to: from, data: flight });
    stats.inc('records_in', 'handshake');
    stats.inc('records_out', 'change_cipher_spec');
    stats.inc('records_out', 'handshake');
    if (con) {
      stats.inc('records_out', 'application_data');
      stats.inc('reset_tokens_issued');
    }
    stats.inc('handshakes', 'completed');
    out.events.push({ kind: 'handshake', deviceId: session.deviceId, sessionId: sid, cid: session.cid, from, tokenIssued: session.token });
  }

  #keysOf(s: StoredSession): TrafficKeys {
    let k = this.#keyCache.get(s.keys);
    if (!k) {
      k = trafficKeys(Buffer.from(s.keys, 'hex'));
      this.#keyCache.set(s.keys, k);
    }
    return k;
  }

  async record(sid: string, rec: RecordView, dgramBytes: number, from: string, nowMs: number, out: CoreOutput): Promise<Verdict> {
    const { config: c, stats } = this.ctx;
    let s: StoredSession | undefined;
    try {
      s = await this.ctx.store.get(sid, nowMs);
    } catch {
      return this.storeError('get');
    }
    if (!s) return this.#unknownSession(rec, dgramBytes, from, nowMs, out);
    if (rec.epoch !== s.epoch) return 'bad_epoch';
    const keys = this.#keysOf(s);
    const opened = openRecord(keys.client, rec);
    if (!opened) {
      // Per device: a session whose records stop decrypting (issue 13's alert rule, docs/protocol.md §10).
      if (rec.type === CT_TLS12_CID) stats.inc('undecryptable_records', s.deviceId);
      return 'bad_mac';
    }
    const peerCid = s.peerCid ? Buffer.from(s.peerCid, 'hex') : null;

    if (opened.type === CT_ALERT) return this.#alert(sid, s, rec, opened.content, nowMs, out);
    if (opened.type !== CT_APPLICATION_DATA && opened.type !== CT_HANDSHAKE) return 'unexpected_content_type';

    let plan: CoapPlan;
    let finishedAgain = false;
    if (opened.type === CT_HANDSHAKE) {
      // The client's Finished again means it did not get ours; anything else is a renegotiation,
      // refused with a warning no_renegotiation alert (RFC 5246 §7.2.2), which needs one sequence number.
      const frags = parseHandshakeFragments(opened.content);
      finishedAgain = frags !== null && frags.length > 0 && frags.every((f) => f.msgType === HT_FINISHED);
      plan = { outCount: finishedAgain ? 0 : 1, response: null, kind: 'none' };
    } else plan = planCoap(this.#dedupe, sid, opened.content, nowMs);
    let acc;
    try {
      acc = await this.ctx.store.accept(sid, rec.seq, plan.outCount, c.sessionTtlMs, nowMs);
    } catch {
      return this.storeError('accept');
    }
    if (acc.status === 'missing') return 'session_vanished';
    if (finishedAgain && (acc.status === 'ok' || acc.status === 'replay')) {
      // Clients may repeat the very same record, so a replay is answered too — but only towards
      // the address that made the handshake.
      const ff = this.#finalFlights.get(sid);
      if (!ff || ff.expiresMs < nowMs || ff.to !== from) return acc.status === 'replay' ? 'replay' : 'late_finished';
      out.transmits.push({ to: from, data: ff.flight });
      stats.inc('records_in', 'handshake');
      stats.inc('handshake_retransmits');
      return true;
    }
    if (acc.status !== 'ok') return acc.status;
    if (opened.type === CT_HANDSHAKE) {
      out.transmits.push({ to: from, data: sealRecord(keys.server, CT_ALERT, s.epoch, acc.outSeq, alertBody(ALERT_WARNING, ALERT_NO_RENEGOTIATION), peerCid) });
      stats.inc('records_in', 'handshake');
      stats.inc('records_out', 'alert');
      stats.inc('renegotiations_refused');
      return true;
    }
    stats.inc('records_in', 'application_data');
    this.#finalFlights.delete(sid); // the device has our Finished
    if (plan.drop) return plan.drop;
    if (plan.ackedMid) {
      const con = this.#serverCons.get(sid);
      if (con && con.mid === plan.ackedMid.mid) {
        this.#serverCons.delete(sid);
        stats.inc('coap', plan.ackedMid.rst ? 'reset_token_rejected' : 'reset_token_acked');
      }
    }
    let response = plan.response;
    let reused = false;
    if (plan.event) {
      const ev = { deviceId: s.deviceId, ...plan.event, receivedMs: nowMs };
      let result;
      try {
        result = await this.ctx.events.append(ev, c.eventClaimTtlMs, nowMs);
      } catch {
        stats.inc('event_log_errors', 'append');
        return 'event_log_error'; // no ACK: the device sends it again
      }
      if (result === 'full') return 'event_log_full'; // no ACK either: nothing is lost, the device retries
      stats.inc('events', result === 'appended' ? 'accepted' : result === 'duplicate' ? 'duplicate' : 'id_reuse');
      if (result === 'appended') out.events.push({ kind: 'event', ...ev, from });
      if (result === 'conflict') {
        // The device reused an event id for other content (issue 17, docs/protocol.md §5.3).
        stats.inc('event_id_reuse', s.deviceId);
        response = plan.conflictResponse ?? null;
        reused = true;
      }
    }
    stats.inc('coap', plan.kind);
    if (plan.dedupeKey) {
      // Swept here too: a cloud with no confirmables of its own (the 2019 one) rarely has a timeout.
      this.#sweepDedupe(nowMs);
      this.#dedupe.set(plan.dedupeKey, { response: response && response.toString('latin1'), expiresMs: nowMs + c.coapDedupeLifetimeMs, request: plan.requestDigest ?? '' });
    }
    if (response) {
      out.transmits.push({ to: from, data: sealRecord(keys.server, CT_APPLICATION_DATA, s.epoch, acc.outSeq, response, peerCid) });
      stats.inc('records_out', 'application_data');
    }
    if (reused) return this.#discardForReuse(sid, s, rec, dgramBytes, from, nowMs, out);
    return true;
  }

  /**
   * A device whose event ids went back has lost part of its persisted state (an older flash
   * image, two writers): its session's nonce reservations may have gone back too. The session is
   * deleted and the device told as for a session the cloud lost (the heals of §6), so it
   * handshakes new keys.
   */
  async #discardForReuse(sid: string, s: StoredSession, rec: RecordView, dgramBytes: number, from: string, nowMs: number, out: CoreOutput): Promise<Verdict> {
    try {
      await this.ctx.store.delete(sid);
    } catch {
      return this.storeError('delete');
    }
    this.#forget(sid);
    this.ctx.stats.inc('sessions_closed', 'event_id_reuse');
    out.events.push({ kind: 'closed', deviceId: s.deviceId, sessionId: sid, reason: 'event_id_reuse' });
    this.#heal(rec, dgramBytes, from, nowMs, out);
    return true;
  }

  #forget(sid: string): void {
    this.#finalFlights.delete(sid);
    this.#serverCons.delete(sid);
  }

  async #alert(sid: string, s: StoredSession, rec: RecordView, content: Buffer, nowMs: number, out: CoreOutput): Promise<Verdict> {
    if (content.length !== 2) return 'bad_alert';
    let acc;
    try {
      acc = await this.ctx.store.accept(sid, rec.seq, 0, this.ctx.config.sessionTtlMs, nowMs);
    } catch {
      return this.storeError('accept');
    }
    if (acc.status === 'missing') return 'session_vanished';
    if (acc.status !== 'ok') return acc.status;
    this.ctx.stats.inc('records_in', 'alert');
    const [level, desc] = content;
    if (desc !== ALERT_CLOSE_NOTIFY && level !== ALERT_FATAL) return true;
    try {
      await this.ctx.store.delete(sid);
    } catch {
      return this.storeError('delete');
    }
    this.#forget(sid);
    const reason = desc === ALERT_CLOSE_NOTIFY ? 'close_notify' : `alert_${desc}`;
    this.ctx.stats.inc('sessions_closed', desc === ALERT_CLOSE_NOTIFY ? 'close_notify' : 'fatal_alert');
    out.events.push({ kind: 'closed', deviceId: s.deviceId, sessionId: sid, reason });
    return true;
  }

  #unknownSession(rec: RecordView, dgramBytes: number, from: string, nowMs: number, out: CoreOutput): Verdict {
    const { stats } = this.ctx;
    const withCid = rec.type === CT_TLS12_CID;
    stats.inc('unknown_session_records', withCid ? 'cid' : 'address');
    if (withCid) {
      // A CID the cloud issued for a device (this process remembers it, or its tag verifies and
      // its handle names one device) whose session the store lacks: that device's records cannot
      // be decrypted — the 2019 incident, per device. A CID that merely starts with a device's
      // public handle proves nothing and is not counted for it (docs/protocol.md §10).
      const known = this.#cidDirectory.get(rec.cid!.toString('hex'));
      const byHandle = known || !this.ctx.secrets.issuedCid(rec.cid!) ? null : this.ctx.devices.byHandle(handleOfCid(rec.cid!));
      const deviceId = known?.deviceId ?? (byHandle && byHandle.length === 1 ? byHandle[0].id : null);
      if (deviceId !== null) stats.inc('undecryptable_records', deviceId);
    }
    this.#heal(rec, dgramBytes, from, nowMs, out);
    return 'unknown_session';
  }

  /** What a device gets whose session the cloud does not have: the heal datagrams `--heal` enables (§6). */
  #heal(rec: RecordView, dgramBytes: number, from: string, nowMs: number, out: CoreOutput): void {
    const { heal, stats } = this.ctx;
    const withCid = rec.type === CT_TLS12_CID;
    if (heal.resetToken) {
      if (!withCid) stats.inc('heals_suppressed', 'reset-token/no_cid');
      else this.#sendResets(rec, dgramBytes, from, nowMs, out);
    }
    if (heal.malformed) {
      if (!this.#malformedLimiter.allow(from, nowMs)) stats.inc('heals_suppressed', 'malformed/rate_limited');
      else {
        out.transmits.push({ to: from, data: malformedDatagram(rec.epoch, this.ctx.random) });
        stats.inc('heals_sent', 'malformed');
      }
    }
  }

  #sendResets(rec: RecordView, dgramBytes: number, from: string, nowMs: number, out: CoreOutput): void {
    const { stats, secrets } = this.ctx;
    const cid = rec.cid!;
    const known = this.#cidDirectory.get(cid.toString('hex'));
    const handle = handleOfCid(cid);
    const targets = known
      ? [{ deviceId: known.deviceId, deviceCid: known.peerCid ? Buffer.from(known.peerCid, 'hex') : null }]
      : this.ctx.devices
          .byHandle(handle)
          .slice(0, this.ctx.config.maxResetCandidates)
          .map((d) => ({ deviceId: d.id, deviceCid: Buffer.from(handle) }));
    if (targets.length === 0) {
      stats.inc('heals_suppressed', 'reset-token/no_device');
      return;
    }
    if (!this.#resetLimiter.allow(from, nowMs)) {
      stats.inc('heals_suppressed', 'reset-token/rate_limited');
      return;
    }
    for (const t of targets) {
      const token = secrets.resetToken(t.deviceId, cid);
      const dg = resetDatagram({ epoch: rec.epoch, deviceCid: t.deviceCid, token, triggerBytes: dgramBytes, random: this.ctx.random });
      if (!dg) {
        stats.inc('heals_suppressed', 'reset-token/trigger_too_short');
        continue;
      }
      out.transmits.push({ to: from, data: dg });
      stats.inc('heals_sent', 'reset-token');
    }
  }

  nextTimeoutMs(): number {
    let t = Infinity;
    for (const con of this.#serverCons.values()) t = Math.min(t, con.deadlineMs);
    return t;
  }

  /** Drops the answers older than EXCHANGE_LIFETIME (one lifetime for all: insertion order is expiry order). */
  #sweepDedupe(nowMs: number): void {
    for (const [k, d] of this.#dedupe) {
      if (d.expiresMs > nowMs) break;
      this.#dedupe.delete(k);
    }
  }

  async handleTimeout(nowMs: number, out: CoreOutput): Promise<void> {
    const { config: c, stats } = this.ctx;
    for (const [sid, f] of this.#finalFlights) {
      if (f.expiresMs > nowMs) break; // set in time order, with one lifetime
      this.#finalFlights.delete(sid);
    }
    this.#sweepDedupe(nowMs);
    const due = [...this.#serverCons.values()].filter((con) => con.deadlineMs <= nowMs);
    for (const con of due) {
      if (con.tries >= c.coapMaxRetransmit) {
        this.#serverCons.delete(con.sessionId);
        stats.inc('coap', 'reset_token_gave_up');
        continue;
      }
      con.tries++;
      con.deadlineMs = nowMs + c.coapAckTimeoutMs * 2 ** con.tries;
      let seq: number | undefined;
      try {
        seq = await this.ctx.store.reserve(con.sessionId, 1, nowMs);
      } catch {
        stats.inc('store_errors', 'reserve');
        continue;
      }
      if (seq === undefined) {
        this.#serverCons.delete(con.sessionId);
        continue;
      }
      out.transmits.push({ to: con.to, data: sealRecord(con.keys.server, CT_APPLICATION_DATA, con.epoch, seq, con.message, con.peerCid) });
      stats.inc('records_out', 'application_data');
      stats.inc('coap', 'reset_token_retransmit');
    }
  }
}
