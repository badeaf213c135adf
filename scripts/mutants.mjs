#!/usr/bin/env node
// `npm run test:mutants`: a mutation check of the tests themselves. Each mutant is a small source
// patch that puts one bug back (a defect issue 9 found, or a rule of the session removed); the
// relevant tests must fail on it. Firmware mutants are built from a patched copy of assembly/ in a
// temporary folder (so two run at once) and the tests load that build through SLEEPY_FIRMWARE;
// cloud mutants patch host/cloud in place, one at a time, and are always restored. Exit 1 when any
// mutant survives or no longer applies (the source moved: update its patch).
//   npm run test:mutants                  every mutant
//   npm run test:mutants -- ID [ID ...]   only these
//   … -- --tests FILE[,FILE] ID …         those mutants against other tests (e.g. only the model test)
//   … -- --check                          only check that every patch still applies
//   … -- --show ID …                      also print why each killed mutant failed (its failing tests)
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const asc = join(root, 'node_modules/.bin/asc');

const HARDENING = 'test/host/hardening.test.ts';
const MODEL = 'test/host/model-abi.test.ts';
const LIFECYCLE = 'test/host/lifecycle.test.ts';
const FLOOD = 'test/host/lifecycle-flood.test.ts';
const POWER = 'test/host/lifecycle-power.test.ts';
const WEBHOOK = 'test/host/cloud-webhook.test.ts';
const CORE = 'test/host/cloud-core.test.ts';
const GAPS = 'test/host/mutation-gaps.test.ts';
const ECDHE_INTEROP = 'test/host/dtls-gnutls.test.ts';
const ECDHE_FAULTS = 'test/host/dtls-ecdhe.test.ts';

/** @typedef {{ file: string, from: string, to: string }} Edit */
/** @type {{ id: string, why: string, edits: Edit[], tests: string[], pattern?: string, timeoutS?: number, testBuild?: boolean }[]} */
export const MUTANTS = [
  // --- issue 9, the nine reproduced defects -----------------------------------------------------
  {
    id: 'session-guard-removed', why: '9.1 connect/close after boot bypass the session: keys persisted with a reservation of 0',
    edits: [
      { file: 'assembly/index.ts', from: 'return session.reconnect(now);', to: 'return dtls.connect(now);' },
      { file: 'assembly/index.ts', from: 'else session.closeSession(now);', to: 'else dtls.close(now);' },
      { file: 'assembly/session/session.ts', from: 'if (hasSession() && dtls.keyGeneration != sessionKeyGeneration) {', to: 'if (false) {' },
      { file: 'assembly/session/session.ts', from: 'if (dtls.writeSeqReserved > reserved) store<u64>', to: 'store<u64>' },
    ],
    tests: [MODEL, HARDENING],
  },
  {
    id: 'slot-bounds-unchecked', why: '9.3 a CRC-valid slot is trusted: lengths read from flash overrun RAM',
    edits: [{ file: 'assembly/session/persist.ts', from: 'if (!slotContentValid(newest)) return SLOT_REFUSED;', to: '' }],
    tests: [MODEL, HARDENING],
  },
  {
    id: 'creds-bounds-unchecked', why: '9.3 credentials with identity length 128 put the PSK in the ClientKeyExchange',
    edits: [{ file: 'assembly/session/persist.ts', from: '  return identityLen >= 1 && identityLen <= MAX_STORED_IDENTITY_BYTES', to: '  return true || identityLen >= 1 && identityLen <= MAX_STORED_IDENTITY_BYTES' }],
    tests: [HARDENING, MODEL],
  },
  {
    id: 'rx-too-large-blocks', why: '9.4 a record over 1024 bytes wedges the receive queue',
    edits: [{ file: 'assembly/dtls/client.ts', from: '  const fits = len <= capacity;', to: '  const fits = len <= capacity;\n  if (!fits) return RX_TOO_LARGE;' }],
    tests: [HARDENING], pattern: 'too large for a CoAP message', timeoutS: 60, // the session loop spins on the record: a hang is the failure
  },
  {
    id: 'boot-keeps-queues', why: '9.4 boot does not reset the transmit/receive queues',
    edits: [{ file: 'assembly/session/session.ts', from: '  dtls.resetQueues();', to: '' }],
    tests: [HARDENING],
  },
  {
    id: 'provision-keeps-slots', why: '9.5 re-provisioning leaves the old keys in both slots',
    edits: [{ file: 'assembly/session/session.ts', from: '  P.blankSlot();\n  persistNow();\n  persistNow();\n}', to: '}' }],
    tests: [HARDENING],
  },
  {
    id: 'credentials-changed-not-checked', why: '9.5 a record of other credentials is resumed',
    edits: [{ file: 'assembly/session/session.ts', from: '} else if (found == P.SLOT_LOADED && load<u32>(P.SLOT_IMAGE + P.SLOT_CREDS_CRC) != P.credsChecksum()) {', to: '} else if (false) {' }],
    tests: [HARDENING],
  },
  {
    id: 'hint-before-confirm', why: '9.6 a forged truncated record behind a genuine one destroys the session it confirmed',
    edits: [{ file: 'assembly/session/session.ts', from: '  if (sessState == SS_RESUMED && dtls.authenticatedRecords > seenAuthenticated) transition(SS_CONFIRMED, R_NONE, now);\n  if (dtls.truncatedRecordSeen', to: '  if (dtls.truncatedRecordSeen' }],
    tests: [MODEL, HARDENING],
  },
  {
    id: 'failed-auth-counted-twice', why: '9.7 each prepare_sleep adds the failed authentications again',
    edits: [{ file: 'assembly/session/session.ts', from: '    dtls.clearFailedAuth();', to: '' }],
    tests: [HARDENING],
  },
  {
    id: 'datagram-too-long-uncounted', why: '9.9 handle_datagram with len > 2048 changes no counter',
    edits: [{ file: 'assembly/index.ts', from: '    dtls.refuseDatagram();', to: '' }],
    tests: [HARDENING, MODEL],
  },
  {
    id: 'stale-coap-uncounted', why: '9.9 stale CoAP ACKs are ignored without a counter',
    edits: [{ file: 'assembly/session/session.ts', from: '      C.count(C.C_COAP_STALE_IGNORED); // an ACK or RST for nothing in flight (late duplicate)', to: '' }],
    tests: [HARDENING],
  },
  {
    id: 'token-left-in-scratch', why: "9.9 the reset token's plaintext stays in the CoAP scratch buffer",
    edits: [
      { file: 'assembly/session/session.ts', from: '      zeroize(SCRATCH_RX, n); // it may have carried the reset token', to: '' },
      { file: 'assembly/index.ts', from: '  zeroize(IO, len); // records were decrypted in place: no plaintext stays behind', to: '' },
    ],
    tests: [HARDENING],
  },
  {
    id: 'token-scratch-kept', why: '9.9 the record tail that matched the reset token stays in RAM',
    edits: [{ file: 'assembly/dtls/client.ts', from: '  zeroize(TOKEN_SCRATCH, 16); // when it matched, it is the token itself', to: '' }],
    tests: [HARDENING], pattern: "reset token's plaintext",
  },
  {
    id: 'hint-window-volatile', why: '9.9 the hint rate limit resets at every boot',
    edits: [{ file: 'assembly/session/session.ts', from: '  if (acted == 0) return true;', to: '  if (acted == 0 || now >= 0) return true;' }],
    tests: [HARDENING],
  },
  {
    id: 'ems-optional-by-default', why: '9.9 the default profile accepts a server without the extended master secret',
    edits: [{ file: 'assembly/config.ts', from: 'requireExtendedMasterSecret = isDefaultProfile;', to: 'requireExtendedMasterSecret = false;' }],
    tests: [HARDENING],
  },
  {
    id: 'stale-hello-verify-accepted', why: 'a second HelloVerifyRequest for the first ClientHello starts another cookie round',
    edits: [{ file: 'assembly/dtls/handshake.ts', from: '  if (seq != sendMessageSeq) {\n    C.count(C.C_DROP_UNEXPECTED_MESSAGE);\n    return false;\n  }\n  if (len < 3) {', to: '  if (len < 3) {' }],
    tests: [HARDENING], pattern: 'second HelloVerifyRequest',
  },
  // --- expiry rules -----------------------------------------------------------------------------------
  {
    id: 'max-age-removed', why: 'sessions older than maxSessionAgeMs are kept',
    edits: [{ file: 'assembly/session/session.ts', from: '>= policy.maxSessionAgeMs) return R_MAX_AGE;', to: '>= policy.maxSessionAgeMs && false) return R_MAX_AGE;' }],
    tests: [FLOOD], pattern: 'destroys an expired session',
  },
  {
    id: 'record-limit-removed', why: 'records per key unlimited',
    edits: [{ file: 'assembly/session/session.ts', from: 'if (sent >= policy.maxRecordsPerKey) return R_RECORD_LIMIT;', to: '' }],
    tests: [HARDENING],
  },
  {
    id: 'failed-auth-limit-removed', why: 'failed authentications per key unlimited',
    edits: [{ file: 'assembly/session/session.ts', from: 'if (failedAuthTotal() >= <u64>policy.maxFailedAuthPerKey) return R_FAILED_AUTH_LIMIT;', to: '' }],
    tests: [HARDENING, 'test/host/single-fault.test.ts'],
  },
  {
    id: 'use-counter-removed', why: 'unconfirmed restores never retire the session (Device OS 1.2 rule)',
    edits: [{ file: 'assembly/session/session.ts', from: 'if (atRestore && uses >= policy.maxUnconfirmedRestores) return R_UNCONFIRMED_RESTORES;', to: '' }],
    tests: [LIFECYCLE], pattern: 'fixed heals',
  },
  // --- heal rules ------------------------------------------------------------------------------------
  {
    id: 'coap-rst-ignored', why: 'a CoAP RST for the message in flight is taken as an ACK',
    edits: [{ file: 'assembly/session/session.ts', from: '      discardAndHandshake(R_COAP_RST, now);\n      return;', to: '' }],
    tests: [HARDENING],
  },
  {
    id: 'coap-give-up-removed', why: 'an unanswered message is retransmitted forever',
    edits: [{ file: 'assembly/session/session.ts', from: '  if (outTransmissions > policy.coapMaxRetransmit) {', to: '  if (outTransmissions > policy.coapMaxRetransmit && false) {' }],
    tests: [HARDENING],
  },
  {
    id: 'reset-token-ignored', why: 'the stateless reset token does not end the session',
    edits: [{ file: 'assembly/session/session.ts', from: 'if (dtls.resetTokenSeen && policy.usesResetToken() && hasSession()) {', to: 'if (false) {' }],
    tests: [LIFECYCLE], pattern: 'default heals',
  },
  {
    id: 'truncated-not-fatal-legacy', why: 'legacy/fixed treat the 2019 truncated record as a hint (the 2019 heal would not work)',
    edits: [{ file: 'assembly/session/policy.ts', from: '  return profile != PROFILE_DEFAULT;', to: '  return false;' }],
    tests: [LIFECYCLE, HARDENING], pattern: 'legacy stays stuck|truncated record is fatal',
  },
  {
    id: 'hint-rate-limit-removed', why: 'every truncated-record hint is acted on',
    edits: [{ file: 'assembly/session/session.ts', from: '  return sinceMs < 0 || sinceMs >= policy.truncatedHintWindowMs;', to: '  return true;' }],
    tests: [HARDENING],
  },
  {
    id: 'peer-closed-ignored', why: "the cloud's close_notify leaves a dead session in place",
    edits: [{ file: 'assembly/session/session.ts', from: '      discardAndHandshake(R_PEER_CLOSED, now);\n      return;', to: '' }],
    tests: [HARDENING],
  },
  {
    id: 'replay-jump-unguarded', why: 'the replay window accepts records 64 or more behind (shift wraps)',
    edits: [{ file: 'assembly/dtls/record.ts', from: '  if (behind >= 64) return false;', to: '' }],
    tests: [HARDENING],
  },
  // --- persistence and key wipes -----------------------------------------------------------------------
  {
    id: 'destroy-writes-one-slot', why: 'a destroyed session stays in the older slot',
    edits: [{ file: 'assembly/session/session.ts', from: '  // Twice: the older of the A/B slots still holds the keys until it is overwritten too.\n  persistNow();\n  persistNow();', to: '  persistNow();' }],
    tests: [MODEL, FLOOD],
  },
  {
    id: 'destroy-keeps-keys', why: 'destroying a session leaves its keys in the record',
    edits: [{ file: 'assembly/session/session.ts', from: '  zeroize(s + P.SLOT_KEYS, P.SLOT_KEYS_BYTES);', to: '' }],
    tests: [MODEL, FLOOD],
  },
  {
    id: 'reservation-not-persisted', why: 'records beyond the reservation leave before it is on flash',
    edits: [{ file: 'assembly/dtls/client.ts', from: '    reservationMoved = true;', to: '' }],
    tests: [HARDENING, POWER], pattern: 'reserved on flash|every cut',
  },
  {
    id: 'restore-from-zero', why: 'a restored session sends from sequence 0 again',
    edits: [{ file: 'assembly/dtls/client.ts', from: '  writeSeq1 = writeFrom;', to: '  writeSeq1 = 0;' }],
    tests: [MODEL],
  },
  {
    id: 'outbox-overwrites', why: 'publish past a full outbox overwrites an unconfirmed event',
    edits: [{ file: 'assembly/session/session.ts', from: '  if (n >= P.OUTBOX_SLOTS) return ERR_OUTBOX_FULL;', to: '  if (n >= P.OUTBOX_SLOTS + 1) return ERR_OUTBOX_FULL;' }],
    tests: [HARDENING, MODEL],
  },
  {
    id: 'refused-slot-not-erased', why: 'a refused record keeps its keys on flash',
    edits: [{ file: 'assembly/session/session.ts', from: '    emit(EV_SESSION_DISCARDED, R_PERSISTED_INVALID, 0);\n    eraseBothSlots = true;', to: '    emit(EV_SESSION_DISCARDED, R_PERSISTED_INVALID, 0);' }],
    tests: [HARDENING],
  },
  {
    id: 'closed-after-finished-waits', why: "a close_notify behind the server's Finished leaves the session handshaking with no timer",
    edits: [{ file: 'assembly/session/session.ts', from: '} else if (dtls.state == dtls.S_FAILED || dtls.state == dtls.S_CLOSED) {', to: '} else if (dtls.state == dtls.S_FAILED) {' }],
    tests: ['test/host/single-fault.test.ts'], pattern: 'close_notify in one datagram',
  },
  {
    id: 'event-ack-token-unchecked', why: "an ACK with the event's message ID but another request's token is taken as its ACK (rollback: reused IDs)",
    edits: [{ file: 'assembly/session/session.ts', from: "    if (outKind == KIND_EVENT && type == coap.COAP_ACK\n", to: "    if (false && outKind == KIND_EVENT && type == coap.COAP_ACK\n" }],
    tests: ['test/host/single-fault.test.ts'], pattern: 'another token',
  },
  {
    id: 'cloud-dedupe-by-id-only', why: 'the cloud answers a reused message ID with other content from its cache: the request is never read',
    edits: [{ file: 'host/cloud/core-coap.ts', from: 'if (seen && seen.expiresMs > nowMs && seen.request === requestDigest) {', to: 'if (seen && seen.expiresMs > nowMs) {' }],
    tests: ['test/host/cloud-units.test.ts'], pattern: 'reused message ID',
  },
  // --- issue 17: bugs an outside mutation audit planted that no test caught -----------------------------
  // The keyGeneration guard in commit(): no export of the shipped module reaches it (every path that
  // ends the connection under a booted session is the session's own); the test build's
  // selftest_end_connection ends it behind the session's back, and single-fault.test.ts checks the guard.
  {
    id: 'key-generation-guard-off', why: 'a connection ended behind the session leaves its keys persisted (resumable with a stale reservation)',
    edits: [{ file: 'assembly/session/session.ts', from: 'if (hasSession() && dtls.keyGeneration != sessionKeyGeneration) {', to: 'if (false) {' }],
    tests: ['test/host/single-fault.test.ts'], pattern: 'behind the session', testBuild: true,
  },
  {
    id: 'key-generation-not-bumped', why: 'wiping the connection does not move keyGeneration: the guard cannot see the end',
    edits: [{ file: 'assembly/dtls/client.ts', from: '  writeSeqReserved = 0;\n  keyGeneration++;', to: '  writeSeqReserved = 0;' }],
    tests: ['test/host/single-fault.test.ts'], pattern: 'behind the session', testBuild: true,
  },
  // --- issue 17: the firmware's single-fault fixes ---------------------------------------------------
  {
    id: 'slot-lost-resumed', why: '17.1 a slot lost next to a valid one: the older slot resumed (its reservation is behind the wire)',
    edits: [{ file: 'assembly/session/session.ts', from: 'const slotLost = found == P.SLOT_LOADED && P.oneSlotLost;', to: 'const slotLost = false;' }],
    tests: ['test/host/single-fault.test.ts', 'test/host/fault-enumeration.test.ts'],
  },
  {
    id: 'rotten-slot-keys-kept', why: '17.1 the keys of a session lost to rot stay in the unsealed slot until the writes get round to it',
    edits: [{ file: 'assembly/session/session.ts', from: 'if (found == P.SLOT_NONE || P.oneSlotLost) eraseBothSlots = true;', to: '' }],
    tests: ['test/host/single-fault.test.ts'], pattern: 'keys in a slot that rotted',
  },
  {
    id: 'read-window-lags', why: '17.3 a record after confirmation is not persisted: replayed at the next wake it confirms',
    edits: [{ file: 'assembly/session/session.ts', from: 'if (dirty || dtls.reservationMoved || readWindowAhead()) persistNow();', to: 'if (dirty || dtls.reservationMoved) persistNow();' }],
    tests: ['test/host/single-fault.test.ts'], pattern: 'replayed at the next one',
  },
  {
    id: 'failed-auth-checked-at-sleep-only', why: '17.4 forged records past the limit within a wake: the key keeps answering',
    edits: [{ file: 'assembly/session/session.ts', from: 'if (policy.enforcesKeyLimits() && failedAuthTotal() >= <u64>policy.maxFailedAuthPerKey) {', to: 'if (false) {' }],
    tests: ['test/host/single-fault.test.ts'], pattern: 'failed-authentication limit',
  },
  {
    id: 'failed-auth-not-persisted', why: '17.4 the failure count lives in RAM until sleep: a power cut resets it',
    edits: [{ file: 'assembly/session/session.ts', from: 'if (dtls.failedAuthThisKey >= FAILED_AUTH_PERSIST_STEP) dirty = true;', to: '' }],
    tests: ['test/host/single-fault.test.ts'], pattern: 'failed-authentication limit',
  },
  {
    id: 'reprovision-keeps-psk', why: "17.5 re-provisioning a booted module leaves the old PSK in the DTLS client",
    edits: [{ file: 'assembly/session/session.ts', from: '  dtls.provision(P.CREDS_IMAGE + P.CRED_IDENTITY, identityLen, P.CREDS_IMAGE + P.CRED_PSK, pskLen);', to: '' }],
    tests: ['test/host/single-fault.test.ts'], pattern: 're-provisioning',
  },
  {
    id: 'conflict-taken-as-ack', why: 'a 4.09 Conflict to an event (numbers gone back in time) is taken as delivered',
    edits: [{ file: 'assembly/session/session.ts', from: 'if (outKind == KIND_EVENT && coap.msgCode == coap.CODE_CONFLICT && policy.keepsEventsAcrossSleep()) {', to: 'if (false) {' }],
    tests: ['test/host/single-fault.test.ts'], pattern: 'Conflict',
  },
  // --- issue 17: bugs an outside mutation audit planted that no test caught -----------------------------
  {
    id: 'replay-shift-wraps', why: 'a jump of 64 or more ahead keeps stale bits (a wasm shift by 64 is a shift by 0): fresh records refused',
    edits: [{ file: 'assembly/dtls/record.ts', from: '(ahead >= 64 ? 0 : bits << ahead) | 1', to: '(bits << ahead) | 1' }],
    tests: [GAPS], pattern: 'replay window after a jump',
  },
  {
    id: 'hint-clock-back-closes', why: 'an RTC set back before the last acted-on hint closes the hint window until the clock catches up',
    edits: [{ file: 'assembly/session/session.ts', from: 'return sinceMs < 0 || sinceMs >= policy.truncatedHintWindowMs;', to: 'return sinceMs >= policy.truncatedHintWindowMs;' }],
    tests: [GAPS], pattern: 'RTC went backwards',
  },
  {
    id: 'restore-window-top-only', why: 'after a wake only the persisted highest record counts as seen: older cloud records (1..63 behind) get in and confirm',
    edits: [{ file: 'assembly/dtls/client.ts', from: 'store<u64>(WINDOW1, 0xffffffffffffffff, 8);', to: 'store<u64>(WINDOW1, 1, 8);' }],
    tests: [GAPS], pattern: 'persisted highest is a replay',
  },
  // --- the cloud --------------------------------------------------------------------------------------------
  {
    id: 'cloud-claims-ignore-incarnation', why: "a re-provisioned device's events are swallowed as duplicates",
    edits: [{ file: 'host/cloud/events.ts', from: 'return (ev.incarnation === null ? [device, ev.seq] : [device, ev.incarnation, ev.seq]).join(\':\');', to: "return [device, ev.seq].join(':');" }],
    tests: [HARDENING], pattern: 're-provisioned device starts a new event stream',
  },
  {
    id: 'cloud-no-dedupe', why: 'every retransmitted event is delivered again',
    edits: [{ file: 'host/cloud/events.ts', from: "if (claim !== undefined && claim.expMs > nowMs) return claim.hash === hash ? 'duplicate' : 'conflict';", to: "if (claim !== undefined && claim.expMs > nowMs && claim.hash !== hash) return 'conflict';" }],
    tests: [WEBHOOK],
  },
  // --- issue 18: bugs in the Redis event log that its tests missed -----------------------------------------
  {
    id: 'cloud-redis-claim-not-exclusive', why: 'the Redis claim ignores an existing claim (NX dropped): every retransmission is appended and delivered again',
    edits: [{ file: 'host/cloud/redis-events.ts', from: "local claimed = redis.call('GET', KEYS[1])", to: 'local claimed = false' }],
    tests: [WEBHOOK], pattern: 'redis event log',
  },
  {
    id: 'cloud-redis-backlog-bound-off-by-one', why: 'the Redis log holds one event more than its bound (>= became >)',
    edits: [{ file: 'host/cloud/redis-events.ts', from: "redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[3])", to: "redis.call('XLEN', KEYS[2]) > tonumber(ARGV[3])" }],
    tests: ['test/host/cloud-events.test.ts'], pattern: 'holds exactly its bound',
  },
  {
    id: 'cloud-redis-dead-letter-stays', why: 'a dead letter is not removed from the Redis log (XDEL dropped): the backlog grows until the log is full',
    edits: [{ file: 'host/cloud/redis-events.ts', from: "redis.call('XDEL', KEYS[1], ARGV[1])", to: '' }],
    tests: ['test/host/cloud-events.test.ts'], pattern: 'dead letters are listed',
  },
  {
    id: 'cloud-cluster-ack-without-replica', why: 'on a Redis Cluster an event is ACKed before a replica has it (no WAIT): a master failover loses ACKed events',
    edits: [{ file: 'host/cloud/redis-events.ts', from: '(reply) => Number(reply[0]) === 1 || Number(reply[0]) === 0,', to: '() => false,' }],
    tests: ['test/host/cloud-redis-cluster.test.ts'], pattern: 'WAIT',
  },
  {
    id: 'finished-wait-removed', why: "a device whose flight took longer than the awake budget to compute sleeps before the server's Finished, at every wake",
    edits: [{ file: 'assembly/session/policy.ts', from: 'return profile == PROFILE_DEFAULT && sleepWaitMaxMs > 0 ? 8_000 : 0;', to: 'return 0;' }],
    tests: ['test/host/slow-device.test.ts'],
  },
  {
    id: 'cloud-hello-dropped-when-retransmits-spent', why: 'the cloud forgets a handshake once its retransmissions are spent (≈ 31 s): a device computing ECDHE longer never gets a session',
    edits: [{ file: 'host/cloud/core-handshake.ts', from: 'if (p.retransmits >= c.handshakeMaxRetransmits) p.deadlineMs = Infinity;', to: 'if (p.retransmits >= c.handshakeMaxRetransmits) this.#hellos.delete(from);' }],
    tests: ['test/host/slow-device.test.ts'],
  },
  // --- issue 19, the ECDHE-ECDSA handshake -----------------------------------------------------
  {
    id: 'ecdhe-server-key-unpinned', why: '19: any raw key in the server Certificate is taken (a man in the middle)',
    edits: [{ file: 'assembly/dtls/handshake.ts', from: '|| !ctEqual(body + <usize>(3 + SPKI_PREFIX_BYTES), SERVER_PUBLIC_KEY, P256_PUBLIC_KEY_BYTES)) {', to: ') {' }],
    tests: [ECDHE_INTEROP, ECDHE_FAULTS], pattern: 'pinned',
  },
  {
    id: 'ecdhe-ske-signature-unchecked', why: '19: the ServerKeyExchange signature is not verified (anyone on path picks the ephemeral key)',
    edits: [{ file: 'assembly/dtls/handshake.ts', from: 'if (p256Verify(SERVER_PUBLIC_KEY, P256_PUBLIC_KEY_BYTES, HASH, SIGNATURE) != P256_OK\n    || !p256ValidPublicKey', to: 'if (!p256ValidPublicKey' }],
    tests: [ECDHE_FAULTS], pattern: 'ServerKeyExchange',
  },
  {
    id: 'ecdhe-ephemeral-kept', why: '19: the ephemeral private key stays in RAM after the handshake (forward secrecy lost to a RAM read-out)',
    edits: [{ file: 'assembly/dtls/handshake.ts', from: '  zeroize(EPHEMERAL_PRIVATE, 32);\n  zeroize(SIGNED_PARAMS', to: '  zeroize(SIGNED_PARAMS' }, { file: 'assembly/dtls/handshake.ts', from: '    zeroize(EPHEMERAL_PRIVATE, 32);\n    if (rc != P256_OK)', to: '    if (rc != P256_OK)' }],
    tests: [ECDHE_FAULTS], pattern: 'ephemeral',
  },
  {
    id: 'ecdhe-der-lenient', why: '19: a non-minimal DER INTEGER is accepted (signature malleability in encodings)',
    edits: [{ file: 'assembly/dtls/ecdsa-der.ts', from: 'if (n > 1 && first == 0 && (load<u8>(v + 1) & 0x80) == 0) return 0; // not minimal', to: '' }],
    tests: [ECDHE_FAULTS], pattern: 'DER',
  },
];

/** A planted bug may make the firmware loop forever: a run that takes this long counts as failed. */
const MUTANT_TIMEOUT_MS = Number(process.env.MUTANT_TIMEOUT_S ?? 240) * 1000;

function run(cmd, args, env, cwd = root, timeoutMs = MUTANT_TIMEOUT_MS) {
  return new Promise((done) => {
    const p = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    const timer = setTimeout(() => {
      out += `\n(timed out after ${timeoutMs / 1000} s: killed)`;
      try { process.kill(-p.pid, 'SIGKILL'); } catch { /* gone */ }
    }, timeoutMs);
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('close', (code) => {
      clearTimeout(timer);
      done({ code: code ?? 1, out });
    });
  });
}

function patch(text, edit, id) {
  const at = text.indexOf(edit.from);
  if (at < 0 || text.indexOf(edit.from, at + 1) >= 0) throw new Error(`mutant ${id} no longer applies to ${edit.file} (its patch must match exactly once)`);
  return text.slice(0, at) + edit.to + text.slice(at + edit.from.length);
}

async function testsFail(m, env) {
  const args = ['--import', 'tsx', '--test', ...(m.pattern ? ['--test-name-pattern', m.pattern] : []), ...m.tests];
  const r = await run(process.execPath, args, { FC_RUNS: process.env.FC_RUNS ?? '150', ...env }, root, m.timeoutS ? m.timeoutS * 1000 : MUTANT_TIMEOUT_MS);
  return { failed: r.code !== 0, out: r.out };
}

async function firmwareMutant(m) {
  const dir = mkdtempSync(join(tmpdir(), `mutant-${m.id}-`));
  try {
    cpSync(join(root, 'assembly'), join(dir, 'assembly'), { recursive: true });
    cpSync(join(root, 'asconfig.json'), join(dir, 'asconfig.json'));
    for (const e of m.edits) {
      const f = join(dir, e.file);
      writeFileSync(f, patch(readFileSync(f, 'utf8'), e, m.id));
    }
    const wasm = join(dir, 'session.wasm');
    const built = await run(asc, ['assembly/index.ts', '--target', 'release', '-o', wasm], {}, dir);
    if (built.code !== 0) throw new Error(`mutant ${m.id} does not build:\n${built.out.slice(0, 2000)}`);
    const env = { SLEEPY_FIRMWARE: wasm };
    if (m.testBuild) { // its test drives a test-only export (build/session-test.wasm)
      const testWasm = join(dir, 'session-test.wasm');
      const builtTest = await run(asc, ['assembly/test-build.ts', '--target', 'test', '-o', testWasm], {}, dir);
      if (builtTest.code !== 0) throw new Error(`mutant ${m.id} does not build:\n${builtTest.out.slice(0, 2000)}`);
      env.SLEEPY_TEST_FIRMWARE = testWasm;
    }
    return await testsFail(m, env);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

let restoreInPlace = null;
async function cloudMutant(m) {
  const originals = new Map(m.edits.map((e) => [e.file, readFileSync(join(root, e.file), 'utf8')]));
  restoreInPlace = () => { for (const [f, t] of originals) writeFileSync(join(root, f), t); };
  try {
    const texts = new Map(originals);
    for (const e of m.edits) texts.set(e.file, patch(texts.get(e.file), e, m.id));
    for (const [f, t] of texts) writeFileSync(join(root, f), t);
    return await testsFail(m, {});
  } finally {
    restoreInPlace();
    restoreInPlace = null;
  }
}
process.on('SIGINT', () => { restoreInPlace?.(); process.exit(130); });

/** The failing tests of a node:test run, each with the first line of its error. */
function failures(out) {
  const lines = out.split('\n');
  const picked = [];
  lines.forEach((l, i) => {
    if (!/^\s*not ok \d+ - /.test(l)) return;
    const at = lines.findIndex((x, j) => j > i && /^\s*error: /.test(x));
    if (at < 0 || at > i + 12) return;
    let msg = lines[at].trim().replace(/^error: /, '');
    if (/^[|>]-?$/.test(msg)) msg = (lines[at + 1] ?? '').trim();
    if (/^'\d+ subtests? failed'$/.test(msg)) return; // a suite: its tests are listed already
    picked.push(`    ${l.trim()}\n      ${msg}`);
  });
  return picked.join('\n') || out.slice(-800);
}

async function main() {
  const argv = process.argv.slice(2);
  const t = argv.indexOf('--tests');
  const testsOverride = t >= 0 ? argv.splice(t, 2)[1].split(',') : null;
  const s = argv.indexOf('--show');
  const show = s >= 0 && argv.splice(s, 1).length > 0;
  if (argv[0] === '--check') {
    for (const m of MUTANTS) for (const e of m.edits) patch(readFileSync(join(root, e.file), 'utf8'), e, m.id);
    console.log(`${MUTANTS.length} mutants, every patch applies`);
    return;
  }
  const only = argv;
  if (testsOverride) for (const m of MUTANTS) { m.tests = testsOverride; delete m.pattern; }
  const list = only.length ? MUTANTS.filter((m) => only.includes(m.id)) : MUTANTS;
  if (only.length && list.length !== only.length) throw new Error(`unknown mutant; known: ${MUTANTS.map((m) => m.id).join(', ')}`);
  const started = Date.now();
  const results = [];
  const firmware = list.filter((m) => m.edits.every((e) => e.file.startsWith('assembly/')));
  const cloud = list.filter((m) => !firmware.includes(m));
  const workers = Math.max(1, Math.min(2, cpus().length));
  const queue = [...firmware];
  const report = (m, r, ms) => {
    results.push({ m, r });
    console.log(`${r.failed ? 'killed  ' : 'SURVIVED'} ${m.id.padEnd(34)} ${(ms / 1000).toFixed(1).padStart(5)} s  ${m.why}`);
    if (show && r.failed) console.log(failures(r.out));
  };
  await Promise.all(Array.from({ length: workers }, async () => {
    for (let m = queue.shift(); m; m = queue.shift()) {
      const t = Date.now();
      let r;
      try { r = await firmwareMutant(m); } catch (e) { r = { failed: false, out: String(e.message), error: true }; }
      report(m, r, Date.now() - t);
    }
  }));
  for (const m of cloud) {
    const t = Date.now();
    let r;
    try { r = await cloudMutant(m); } catch (e) { r = { failed: false, out: String(e.message), error: true }; }
    report(m, r, Date.now() - t);
  }
  const survivors = results.filter(({ r }) => !r.failed);
  for (const { m, r } of survivors) console.log(`\n--- ${m.id} ${r.error ? '(error)' : 'survived'}: ${m.tests.join(' ')}\n${r.out.slice(-1500)}`);
  console.log(`\n${results.length - survivors.length} passed, ${survivors.length} failed (mutants killed / survived, ${((Date.now() - started) / 1000).toFixed(0)} s)`);
  process.exit(survivors.length ? 1 : 0);
}

main().catch((e) => { console.error(e.message); process.exit(1); });
