// The exported ABI of build/session.wasm (documented in docs/abi.md). Thin: decode arguments from
// the shared I/O buffer, call into the layers below, encode results back into it.
import { zeroize } from './crypto/index';
// Loads the abort handler that asconfig.json routes abort() to.
import './trap';
import { configSet } from './config';
import { seedEntropy } from './entropy';
import * as dtls from './dtls/client';
import { COUNTER_COUNT, countersPtr } from './dtls/counters';
import { setOwnCid } from './dtls/record';
import * as session from './session/session';
import { policySet } from './session/policy';
import { pollStore } from './session/persist';
import { IO, IO_CAPACITY, fitsIo } from './io';

/** Raw-mode exports refused once `boot` has run (the lifecycle owns what they would change). */
const ERR_BOOTED: i32 = -6;

export function io_ptr(): usize {
  return IO;
}

export function io_capacity(): i32 {
  return IO_CAPACITY;
}

/**
 * The stub allocator's bump pointer. The firmware never allocates after start, so this must not
 * move; tests read it before and after long runs. Allocating zero bytes and freeing the block at
 * once leaves the pointer where it was.
 */
export function heap_offset(): usize {
  const p = __alloc(0);
  __free(p);
  return p - 16; // BLOCK_OVERHEAD in the stub runtime: the pointer sat at the block header
}

// --- Session ------------------------------------------------------------------------------------
// Time is `now` in milliseconds from an RTC that keeps running through deep sleep (i64).

/**
 * A credential export refused its arguments: whatever key the host wrote into io goes anyway
 * (the lengths cannot be trusted to say where it is).
 */
function refuseCredentials(rc: i32): i32 {
  zeroize(IO, IO_CAPACITY);
  return rc;
}

/** io = identity || psk. The PSK bytes are wiped from the I/O buffer. Returns 0 or -2. */
export function provision(identityLen: i32, pskLen: i32): i32 {
  if (!fitsIo(identityLen, pskLen)) return refuseCredentials(-2);
  if (session.sessState != session.SS_OFF) return refuseCredentials(ERR_BOOTED); // the credentials block owns them
  const rc = dtls.provision(IO, identityLen, IO + <usize>identityLen, pskLen);
  zeroize(IO + <usize>identityLen, pskLen);
  return rc;
}

/**
 * Raw-mode ECDHE-ECDSA credentials: io = the server's public key (65 bytes, 0x04 ‖ X ‖ Y) ‖ the
 * device's private key (32 bytes). The private key is wiped from the I/O buffer. Returns 0, -2
 * (a key that is not a P-256 point or scalar), or -6 after boot.
 */
export function provision_ecdhe(): i32 {
  if (session.sessState != session.SS_OFF) return refuseCredentials(ERR_BOOTED);
  const ok = load<u8>(IO) == 0x04;
  if (ok) dtls.provisionEcdhe(IO + 1, IO + 65);
  zeroize(IO + 65, 32);
  if (ok && dtls.validateEcdheCredentials()) return 0;
  dtls.wipeCredentials(); // nothing half-set stays
  return -2;
}

/** io = entropy (at least 32 bytes from the board's TRNG). Returns 0 or -2. */
export function seed_entropy(len: i32): i32 {
  if (!fitsIo(len)) return -2;
  const rc = seedEntropy(IO, len);
  zeroize(IO, len);
  return rc;
}

/**
 * io = the connection ID (0..32 bytes) the device offers in its ClientHello: when the server
 * agrees (RFC 9146) it puts it in every record to the device. Takes effect at the next connect.
 */
export function set_connection_id(len: i32): i32 {
  if (len < 0 || len > 32) return -2;
  if (session.sessState != session.SS_OFF) return ERR_BOOTED; // boot sets the device's own CID
  setOwnCid(IO, len);
  return 0;
}

/** Sets one tunable (keys in docs/abi.md). Returns 0, -1 unknown key, -2 value out of range. */
export function config_set(key: i32, value: i64): i32 {
  return key >= 20 ? policySet(key, value) : configSet(key, value);
}

/** Starts a full handshake; the ClientHello is then ready for poll_transmit. Returns 0 or -error. */
export function connect(now: i64): i32 {
  return session.reconnect(now);
}

/** io = one received datagram of `len` bytes. Returns the connection state afterwards. */
export function handle_datagram(now: i64, len: i32): i32 {
  if (!fitsIo(len)) {
    dtls.refuseDatagram();
    return dtls.state;
  }
  if (session.sessState == session.SS_OFF) dtls.handleDatagram(now, IO, len);
  else session.handleDatagram(now, IO, len);
  zeroize(IO, len); // records were decrypted in place: no plaintext stays behind
  return dtls.state;
}

/** Call when now >= next_timeout(). Returns the connection state afterwards. */
export function handle_timeout(now: i64): i32 {
  if (session.sessState == session.SS_OFF) dtls.handleTimeout(now);
  else session.handleTimeout(now);
  return dtls.state;
}

/** The absolute time (ms) at which handle_timeout wants to run, or -1 when no timer is armed. */
export function next_timeout(): i64 {
  return session.sessState == session.SS_OFF ? dtls.nextTimeout() : session.nextTimeout();
}

// --- Session lifecycle (docs/abi.md, "Lifecycle") ---------------------------------------------------

/** io = device id || identity || psk. Queues the credentials block for poll_store. 0 or -2. */
export function provision_device(profile: i32, idLen: i32, identityLen: i32, pskLen: i32): i32 {
  if (profile < 0 || profile > 2 || !fitsIo(idLen, identityLen, pskLen)) return refuseCredentials(-2);
  const rc = session.provisionDevice(<u8>profile, IO, idLen, IO + <usize>idLen, identityLen, IO + <usize>(idLen + identityLen), pskLen);
  zeroize(IO, idLen + identityLen + pskLen);
  return rc;
}

/**
 * io = device id (`idLen` bytes) ‖ the server's public key to pin (65 bytes, 0x04 ‖ X ‖ Y)
 * [‖ the device's private key (32 bytes) when `injectKey` is 1]. With `injectKey` 0 the key pair
 * is generated on the device (seed_entropy first). Queues the credentials block for poll_store;
 * read the public key with device_public_key. 0, -2 bad argument or key, -5 not seeded.
 */
export function provision_device_ecdhe(profile: i32, idLen: i32, injectKey: i32): i32 {
  const total = idLen + 65 + (injectKey == 1 ? 32 : 0);
  if (profile < 0 || profile > 2 || (injectKey != 0 && injectKey != 1) || !fitsIo(idLen, 65) || !fitsIo(total)) return refuseCredentials(-2);
  const key = IO + <usize>idLen;
  const rc = session.provisionDeviceEcdhe(<u8>profile, IO, idLen, key, injectKey == 1 ? key + 65 : 0);
  zeroize(IO, total);
  return rc;
}

/** io = the device's ECDHE public key (65 bytes, 0x04 ‖ X ‖ Y), for registering it with the cloud. 65, or -1 without ECDHE credentials. */
export function device_public_key(): i32 {
  return session.devicePublicKey(IO);
}

/** io = the persisted region as read at power-up (len bytes; docs/abi.md). Returns the session state or < 0. */
export function boot(now: i64, len: i32): i32 {
  if (len < 0 || len > IO_CAPACITY) return -2;
  const rc = session.boot(now, IO, len);
  zeroize(IO, len);
  return rc;
}

export function session_state(): i32 {
  return session.sessState;
}

/** io = name || data. Queues an event; returns its sequence number, or -2 bad size, -3 outbox full, -4 not booted. */
export function publish(now: i64, nameLen: i32, dataLen: i32): i64 {
  if (!fitsIo(nameLen, dataLen)) return -2;
  return session.publish(now, IO, nameLen, IO + <usize>nameLen, dataLen);
}

/** Milliseconds to stay awake for pending confirmations, or 0: expired keys are destroyed, sleep now. */
export function prepare_sleep(now: i64): i64 {
  return session.prepareSleep(now);
}

/** Moves the next persistent-memory write into io: offset (u32 LE) || bytes. Length, 0 when none. */
export function poll_store(): i32 {
  return pollStore(IO, IO_CAPACITY);
}

/** Moves the next application event into io: type u8, 3 zero bytes, a u32, b u32. 12, or 0 when none. */
export function poll_event(): i32 {
  return session.pollEvent(IO);
}

/** Moves the next datagram to send into io; returns its length, 0 when there is none. */
export function poll_transmit(): i32 {
  return dtls.pollTransmit(IO, IO_CAPACITY);
}

/** io = application data. Queues one record. 0, -1 not connected, -2 too long, -3 queue full. */
export function send(len: i32): i32 {
  const rc = dtls.sendApplicationData(IO, len);
  session.commit(); // after boot: a moved sequence reservation is persisted before the record leaves
  return rc;
}

/** Moves the oldest received application data into io; returns its length, -1 when none. */
export function recv(): i32 {
  return dtls.receiveApplicationData(IO, IO_CAPACITY);
}

/** Sends close_notify when connected and destroys the connection keys. */
export function close(now: i64): i32 {
  if (session.sessState == session.SS_OFF) dtls.close(now);
  else session.closeSession(now);
  return dtls.state;
}

export function state(): i32 {
  return dtls.state;
}

/** Why the connection last failed or closed (docs/abi.md), 0 when it did not. */
export function last_error(): i32 {
  return dtls.lastError;
}

/** The description of the last alert received, -1 when none. */
export function last_alert(): i32 {
  return dtls.lastAlert;
}

/** Copies the u32 counters into io; returns how many. */
export function counters_read(): i32 {
  memory.copy(IO, countersPtr(), <usize>(COUNTER_COUNT * 4));
  return COUNTER_COUNT;
}
