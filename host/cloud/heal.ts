/**
 * Cloud secrets and the stateless pieces built from them: HelloVerifyRequest cookies, connection
 * IDs, reset tokens, the two heal datagrams (reset-token and the 2019 "malformed" record), and the
 * per-address rate limiter that bounds them. Formats are specified in docs/protocol.md.
 */
import crypto from 'node:crypto';
import { BoundedMap } from './bounded.ts';
import { HANDLE_BYTES } from './devices.ts';
import { CT_APPLICATION_DATA, CT_TLS12_CID, RECORD_HEADER_BYTES, SERVER_CID_BYTES, recordHeader } from './wire.ts';

export const RESET_TOKEN_BYTES = 16;
export const COOKIE_BYTES = 16;
/** The tag at the end of every CID the cloud issues (§3): HMAC-SHA-256(CID key, the first 8 bytes)[:4]. */
export const CID_TAG_BYTES = 4;

/** Keys derived (HKDF-SHA-256) from the one cloud secret that every cloud process shares. */
export class CloudSecrets {
  readonly #cookieKey: Buffer;
  readonly #resetKey: Buffer;
  readonly #cidKey: Buffer;
  readonly #periodSecrets = new Map<number, Buffer>();

  constructor(cloudSecret: Buffer) {
    if (cloudSecret.length < 32) throw new Error('cloud secret must be at least 32 bytes');
    const derive = (info: string): Buffer => Buffer.from(crypto.hkdfSync('sha256', cloudSecret, Buffer.alloc(0), info, 32));
    this.#cookieKey = derive('sleepy-session cookie');
    this.#resetKey = derive('sleepy-session reset');
    this.#cidKey = derive('sleepy-session cid');
  }

  /** token = HMAC-SHA-256(reset key, device id || CID)[:16]. */
  resetToken(deviceId: string, cid: Buffer): Buffer {
    return crypto.createHmac('sha256', this.#resetKey).update(deviceId, 'utf8').update(cid).digest().subarray(0, RESET_TOKEN_BYTES);
  }

  #cidTag(body: Buffer): Buffer {
    return crypto.createHmac('sha256', this.#cidKey).update(body).digest().subarray(0, CID_TAG_BYTES);
  }

  /**
   * The CID this cloud issues: the device's 4-byte handle (its offered client CID) and 4 random
   * bytes — or 8 random bytes when the client offered no handle — followed by a 4-byte tag over
   * them. The random bytes and the tag (which only the cloud can compute) make a CID unguessable,
   * and so keep strangers from triggering reset tokens (§6.1); the tag also lets any cloud process,
   * with no state, tell a CID it issued from a made-up one (issuedCid).
   */
  makeServerCid(handle: Buffer | null, random: (n: number) => Buffer): Buffer {
    const body = handle && handle.length === HANDLE_BYTES ? Buffer.concat([handle, random(SERVER_CID_BYTES - CID_TAG_BYTES - HANDLE_BYTES)]) : random(SERVER_CID_BYTES - CID_TAG_BYTES);
    return Buffer.concat([body, this.#cidTag(body)]);
  }

  /** Whether a cloud process with this secret issued `cid` (its tag verifies). */
  issuedCid(cid: Buffer): boolean {
    if (cid.length !== SERVER_CID_BYTES) return false;
    const at = SERVER_CID_BYTES - CID_TAG_BYTES;
    return crypto.timingSafeEqual(cid.subarray(at), this.#cidTag(cid.subarray(0, at)));
  }

  #periodSecret(period: number): Buffer {
    let s = this.#periodSecrets.get(period);
    if (!s) {
      const p = Buffer.alloc(8);
      p.writeBigUInt64BE(BigInt(Math.max(0, period)));
      s = crypto.createHmac('sha256', this.#cookieKey).update(p).digest();
      if (this.#periodSecrets.size >= 4) this.#periodSecrets.clear();
      this.#periodSecrets.set(period, s);
    }
    return s;
  }

  /** cookie = HMAC-SHA-256(secret of the period, client address || ClientHello without cookie)[:16]. */
  cookie(addr: string, cookieless: Buffer, nowMs: number, rotationMs: number, periodOffset = 0): Buffer {
    const period = Math.floor(nowMs / rotationMs) + periodOffset;
    return crypto.createHmac('sha256', this.#periodSecret(period)).update(addr, 'utf8').update(cookieless).digest().subarray(0, COOKIE_BYTES);
  }

  /** Accepts a cookie of the current or the previous period (so rotation never breaks a handshake). */
  verifyCookie(cookie: Buffer, addr: string, cookieless: Buffer, nowMs: number, rotationMs: number): boolean {
    if (cookie.length !== COOKIE_BYTES) return false;
    for (const off of [0, -1]) {
      if (crypto.timingSafeEqual(cookie, this.cookie(addr, cookieless, nowMs, rotationMs, off))) return true;
    }
    return false;
  }
}

/** The handle inside a server CID (its first 4 bytes). */
export function handleOfCid(cid: Buffer): Buffer {
  return cid.subarray(0, HANDLE_BYTES);
}

/** Extra unpredictable bytes before the token, at most. */
const RESET_MAX_PAD = 24;

/**
 * The stateless reset: a record header (tls12_cid with the device's own CID when it has one, else
 * application_data) whose payload is random bytes followed by the 16-byte token. Always shorter
 * than the record that triggered it; null when that record is too short to answer.
 */
export function resetDatagram(p: { epoch: number; deviceCid: Buffer | null; token: Buffer; triggerBytes: number; random: (n: number) => Buffer }): Buffer | null {
  const cid = p.deviceCid && p.deviceCid.length > 0 ? p.deviceCid : null;
  const headerLen = RECORD_HEADER_BYTES + (cid ? cid.length : 0);
  const minLen = headerLen + RESET_TOKEN_BYTES;
  const total = Math.min(p.triggerBytes - 1, minLen + RESET_MAX_PAD);
  if (total < minLen) return null;
  const pad = p.random(total - minLen);
  const seq = p.random(6).readUIntBE(0, 6);
  const header = recordHeader(cid ? CT_TLS12_CID : CT_APPLICATION_DATA, p.epoch, seq, total - headerLen, cid);
  return Buffer.concat([header, pad, p.token]);
}

/** Length field of the malformed record, and the bytes actually present after its header. */
export const MALFORMED_LENGTH_FIELD = 64;
export const MALFORMED_PRESENT_BYTES = 16;

/**
 * The 2019 heal: type 23, FE FD, the device's epoch, a sequence number far above any window,
 * length field 64 — but only 16 bytes follow the header.
 */
export function malformedDatagram(epoch: number, random: (n: number) => Buffer): Buffer {
  const seq = 2 ** 46 + random(4).readUInt32BE(0);
  return Buffer.concat([recordHeader(CT_APPLICATION_DATA, epoch, seq, MALFORMED_LENGTH_FIELD), random(MALFORMED_PRESENT_BYTES)]);
}

/**
 * At most one heal of a kind per address per `intervalMs`, and at most `globalPerSec` per second
 * overall. Memory is bounded: at most `maxEntries` addresses are remembered (oldest forgotten).
 */
export class HealRateLimiter {
  readonly #last: BoundedMap<string, number>;
  #windowStart = 0;
  #windowCount = 0;

  constructor(
    readonly intervalMs: number,
    readonly globalPerSec: number,
    readonly maxEntries: number,
  ) {
    this.#last = new BoundedMap(maxEntries);
  }

  get size(): number {
    return this.#last.size;
  }

  allow(key: string, nowMs: number): boolean {
    const last = this.#last.get(key);
    if (last !== undefined && nowMs - last < this.intervalMs) return false;
    if (nowMs - this.#windowStart >= 1000) {
      this.#windowStart = nowMs;
      this.#windowCount = 0;
    }
    if (this.#windowCount >= this.globalPerSec) return false;
    this.#windowCount++;
    this.#last.set(key, nowMs);
    return true;
  }
}
