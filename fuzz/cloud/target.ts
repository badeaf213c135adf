/**
 * Jazzer.js target `cloud`: the cloud's sans-IO core (CloudCore.handleDatagram / handleTimeout)
 * and its wire parsers, with a fixed clock, cloud secret and randomness. Only the public entry
 * points are used, so the harness survives refactors inside host/cloud/.
 *
 * Input: ops until the input ends (op byte mod 5):
 *   0 RAW        from u8 (one of 4 addresses), len u16, bytes: one datagram as it arrives
 *   1 COOKIE     len u16, bytes: a ClientHello datagram; when the cloud answers with a
 *                HelloVerifyRequest, the same datagram is sent again carrying that cookie — so
 *                what lies behind the stateless cookie check is reached
 *   2 SESSION    len u16, bytes: application data sealed by a client that completed a real
 *                handshake (done on first use), i.e. CoAP behind record authentication
 *   3 TIMER      dt u16 (×100 ms): advance the clock and run handleTimeout
 *   4 PARSERS    len u16, bytes: parseRecord and parseCoap directly
 *   0xF5 CLIENT  (the byte 0xF5, before the mod 5) a structure-aware handshake: a real client (TestDtlsClient) whose options come
 *                from the input — identity (the device's or other bytes), offered CID (none or
 *                1-5 bytes), cipher suites, extended master secret, ClientHello fragments, first
 *                sequence number — answers the cloud's HelloVerifyRequest with the right cookie
 *                by itself; each datagram it sends may get one byte XORed (pos u16, x u8; x = 0:
 *                unchanged); up to `rounds` flights. Fuzzer-made input gets past the cookie.
 *                Suite lists with 0xC0AE make it an ECDHE-ECDSA client with raw public keys (the
 *                registered device's key pair, or with flags bit 0 an unregistered one), so the
 *                Certificate / ClientKeyExchange / CertificateVerify paths are reached too (the
 *                cloud's ECDSA nonce is OpenSSL's: bytes differ between runs, verdicts do not).
 * Invariants: no exception escapes; `internal_errors` stays 0; every in-process table stays
 * within its configured bound.
 */
import crypto from 'node:crypto';
import { CloudCore, type CoreConfig } from '../../host/cloud/core.ts';
import { ServerKey } from '../../host/cloud/p256.ts';
import { parseCoap } from '../../host/cloud/coap.ts';
import { DeviceRegistry, deviceHandle } from '../../host/cloud/devices.ts';
import { MemoryStore } from '../../host/cloud/store.ts';
import { parseRecord } from '../../host/cloud/wire.ts';
import { SeededEntropy } from '../../host/board/board.ts';
import { TestDtlsClient } from '../../test/host/fixtures/cloud-client.ts';

export const PSK = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');
const SECRET = Buffer.alloc(32, 0x42);
const ADDRESSES = ['10.0.0.1:5683', '10.0.0.2:5683', '10.0.0.3:40000', '[::1]:5684'];
/** Small bounds, so that exceeding one is reachable in a short input. */
export const BOUNDS: Partial<CoreConfig> = {
  maxPendingHandshakes: 3,
  coapDedupeEntries: 4,
  keyCacheEntries: 2,
  cidDirectoryEntries: 2,
  healRateEntries: 4,
};
const TABLE_BOUND: Record<string, number> = {
  pending: BOUNDS.maxPendingHandshakes!,
  dedupe: BOUNDS.coapDedupeEntries!,
  keyCache: BOUNDS.keyCacheEntries!,
  cidDirectory: BOUNDS.cidDirectoryEntries!,
  resetLimiter: BOUNDS.healRateEntries!,
  malformedLimiter: BOUNDS.healRateEntries!,
};

class Reader {
  at = 0;
  constructor(readonly b: Buffer) {}
  get more(): boolean {
    return this.at < this.b.length;
  }
  u8(): number {
    return this.at < this.b.length ? this.b[this.at++] : 0;
  }
  u16(): number {
    return this.u8() | (this.u8() << 8);
  }
  bytes(n: number): Buffer {
    const out = this.b.subarray(this.at, Math.min(this.b.length, this.at + n));
    this.at += out.length;
    return out;
  }
}

function check(core: CloudCore, what: string): void {
  const errors = core.stats.get('internal_errors');
  if (errors !== 0) throw new Error(`cloud fuzz: internal_errors = ${errors} after ${what}`);
  for (const [table, size] of Object.entries(core.tableSizes())) {
    const bound = TABLE_BOUND[table];
    if (bound !== undefined && size > bound) throw new Error(`cloud fuzz: table ${table} holds ${size} entries (bound ${bound}) after ${what}`);
  }
}

/** The cookie of a HelloVerifyRequest datagram, or null. */
function hvrCookie(d: Buffer): Buffer | null {
  if (d.length < 13 + 12 + 3 || d[0] !== 22 || d[13] !== 3) return null;
  const len = d[13 + 12 + 2];
  return d.length >= 13 + 12 + 3 + len ? d.subarray(13 + 12 + 3, 13 + 12 + 3 + len) : null;
}

/** The same ClientHello record with `cookie` in place of its cookie, lengths fixed up; null if it does not parse that far. */
function withCookie(d: Buffer, cookie: Buffer): Buffer | null {
  if (d.length < 13 + 12 + 35 || d[0] !== 22 || d[13] !== 1) return null;
  const body = 13 + 12;
  const sidLen = d[body + 34];
  const cookieAt = body + 35 + sidLen;
  if (cookieAt >= d.length) return null;
  const oldLen = d[cookieAt];
  if (cookieAt + 1 + oldLen > d.length) return null;
  const out = Buffer.concat([d.subarray(0, cookieAt), Buffer.from([cookie.length]), cookie, d.subarray(cookieAt + 1 + oldLen)]);
  const bodyLen = out.length - body;
  out.writeUIntBE(bodyLen, 14, 3); // handshake length
  out.writeUIntBE(0, 19, 3); // fragment offset
  out.writeUIntBE(bodyLen, 22, 3); // fragment length
  out.writeUInt16BE(out.length - 13, 11); // record length
  return out;
}

/** What the inputs reach (fuzz/cloud/reach.ts counts the kept inputs that get a ServerHello). */
export const reached = { serverHello: false };

function isServerHello(d: Buffer): boolean {
  return d.length > 13 && d[0] === 22 && d[1] === 0xfe && d[3] === 0 && d[4] === 0 && d[13] === 2;
}

const SUITES = [[0xc0a8], [0xc0a8, 0x00ff], [0x00a8], [0xc0a8, 0xc0a4], [0x1301], [], [0xc0ae, 0x00ff], [0xc0ae, 0xc0a8]];

/** A P-256 key pair from a fixed scalar (reproducible inputs). */
function fixedKeyPair(fill: number): { privateKey: crypto.KeyObject; publicKey: crypto.KeyObject; point: Buffer } {
  const d = Buffer.alloc(32, fill);
  const ecdh = crypto.createECDH('prime256v1');
  ecdh.setPrivateKey(d);
  const point = ecdh.getPublicKey();
  const b64 = (b: Buffer) => b.toString('base64url');
  const privateKey = crypto.createPrivateKey({ key: { kty: 'EC', crv: 'P-256', d: b64(d), x: b64(point.subarray(1, 33)), y: b64(point.subarray(33)) }, format: 'jwk' });
  return { privateKey, publicKey: crypto.createPublicKey(privateKey), point };
}
const SERVER_KEY = ServerKey.fromScalar(Buffer.alloc(32, 0x11));
const DEVICE_KEYS = fixedKeyPair(0x22);
const STRANGER_KEYS = fixedKeyPair(0x33);

/** Op 5: a real client's handshake from input-chosen options, its datagrams optionally altered. */
async function clientOp(r: Reader, send: (d: Buffer, from: string) => Promise<{ transmits: { data: Uint8Array }[] }>): Promise<void> {
  const flags = r.u8();
  const identity = flags & 1 ? r.bytes(r.u8() % 16).toString('latin1') : 'id-1';
  const cidLen = r.u8() % 6;
  const entropy = new SeededEntropy(`cloud-fuzz-client-op-${r.at}`);
  const suites = SUITES[(flags >> 2) % SUITES.length];
  const keys = flags & 1 ? STRANGER_KEYS : DEVICE_KEYS;
  const ecdhe = suites.includes(0xc0ae) ? { privateKey: keys.privateKey, publicKey: keys.publicKey, pinned: SERVER_KEY.publicPoint } : undefined;
  let c: TestDtlsClient;
  try {
    c = new TestDtlsClient({
      identity, psk: PSK, ecdhe, offerCid: cidLen ? Buffer.from(r.bytes(cidLen)) : undefined, random: (n) => entropy.bytes(n),
      ems: !(flags & 2), suites, helloFragments: flags & 32 ? 1 + (r.u8() % 3) : undefined,
      epoch0Seq: flags & 64 ? r.u16() : undefined,
    });
  } catch {
    return; // options the test client refuses: nothing sent
  }
  let outbox: Buffer[] = [];
  try {
    outbox = [c.start()];
  } catch {
    return;
  }
  const rounds = 1 + (r.u8() % 6);
  for (let round = 0; round < rounds && outbox.length > 0; round++) {
    const next: Buffer[] = [];
    for (const d0 of outbox) {
      const d = Buffer.from(d0);
      const pos = r.u16(), x = r.u8();
      if (x && d.length > 0) d[pos % d.length] ^= x;
      const out = await send(d, ADDRESSES[2]);
      for (const t of out.transmits) {
        try {
          next.push(...c.receive(Buffer.from(t.data)).send);
        } catch {
          // the test client's own limits are not the cloud's behaviour
        }
      }
    }
    outbox = next;
  }
}

export async function fuzz(data: Buffer): Promise<void> {
  reached.serverHello = false;
  const entropy = new SeededEntropy('cloud-fuzz');
  const core = new CloudCore({
    devices: new DeviceRegistry([{ id: 'dev-1', identity: 'id-1', psk: PSK }, { id: 'dev-ec', publicKey: DEVICE_KEYS.point }]),
    store: new MemoryStore(),
    cloudSecret: SECRET,
    config: BOUNDS,
    random: (n) => entropy.bytes(n),
    serverKey: SERVER_KEY,
  });
  let nowMs = 1_000_000;
  let client: TestDtlsClient | null = null;
  const send = async (d: Buffer, from: string) => {
    const out = await core.handleDatagram(d, from, nowMs);
    if (out.transmits.some((t) => isServerHello(Buffer.from(t.data)))) reached.serverHello = true;
    return out;
  };
  const r = new Reader(data);
  for (let ops = 0; r.more && ops < 32; ops++) {
    const b = r.u8();
    // Op 5 is the byte 0xF5 (existing inputs keep the meaning of `mod 5`).
    if (b === 0xf5) {
      await clientOp(r, send);
      check(core, 'op 5');
      continue;
    }
    const op = b % 5;
    if (op === 0) {
      const from = ADDRESSES[r.u8() % ADDRESSES.length];
      await send(r.bytes(r.u16()), from);
    } else if (op === 1) {
      const ch = r.bytes(r.u16());
      const out = await send(ch, ADDRESSES[1]);
      const cookie = out.transmits.map((t) => hvrCookie(Buffer.from(t.data))).find((c) => c);
      const again = cookie ? withCookie(ch, cookie) : null;
      if (again) await send(again, ADDRESSES[1]);
    } else if (op === 2) {
      const content = r.bytes(r.u16());
      if (!client) client = await handshake(core, () => nowMs);
      if (client) await send(client.app(content), ADDRESSES[0]);
    } else if (op === 3) {
      nowMs += r.u16() * 100;
      await core.handleTimeout(nowMs);
    } else {
      const b = r.bytes(r.u16());
      parseRecord(b, 0);
      parseCoap(b);
    }
    check(core, `op ${op}`);
  }
}

/** A real client's full handshake with the core (HelloVerifyRequest, CID); null if it fails. */
async function handshake(core: CloudCore, now: () => number): Promise<TestDtlsClient | null> {
  const entropy = new SeededEntropy('cloud-fuzz-client');
  const c = new TestDtlsClient({ identity: 'id-1', psk: PSK, offerCid: deviceHandle('dev-1'), random: (n) => entropy.bytes(n) });
  let outbox = [c.start()];
  for (let round = 0; round < 8 && c.state !== 'connected' && outbox.length > 0; round++) {
    const next: Buffer[] = [];
    for (const d of outbox) {
      const out = await core.handleDatagram(d, ADDRESSES[0], now());
      for (const t of out.transmits) next.push(...c.receive(Buffer.from(t.data)).send);
    }
    outbox = next;
  }
  return c.state === 'connected' ? c : null;
}
