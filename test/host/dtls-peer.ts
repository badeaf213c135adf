/**
 * A scripted DTLS 1.2 server for tests, built on node:crypto and the reference in dtls-ref.ts:
 * enough of RFC 6347/4279/7627/9146 (PSK) and RFC 7251/8422/7250 (ECDHE-ECDSA with raw public
 * keys) to take the firmware client through every state in process, with knobs to misbehave. Not
 * the product's cloud (host/cloud/).
 */
import crypto from 'node:crypto';
import { keyBlock, openRecord, parseRecords, plainRecord, prf, pskPremaster, sealRecord, type KeyBlock } from './dtls-ref.ts';
import { derSignature, p256Ecdh, p256Public, p256PrivateFrom, p256SignDeterministic, publicKeyObject, spkiOf } from './p256-ref.ts';

export interface PeerOptions {
  psk: Uint8Array;
  helloVerify?: boolean;
  ems?: boolean;
  /** Connection ID the server asks the client to use (RFC 9146); empty = none. */
  cid?: Uint8Array;
  identityHint?: string;
  /** Split each server handshake message into fragments of at most this many bytes. */
  fragmentBytes?: number;
  /** Where the server random and the cookie come from (default crypto.randomBytes); seeded runs inject their own. */
  random?: (n: number) => Buffer;
  /**
   * ECDHE-ECDSA with raw public keys (0xC0AE) instead of PSK: the server's long-term private key
   * (32 bytes); it asks for the client's key unless `requestClientKey` is false.
   */
  ecdhe?: {
    serverPrivateKey: Uint8Array;
    requestClientKey?: boolean;
    /** Misbehaviour in the ServerKeyExchange: a signature that does not verify, a valid one in non-minimal DER, or a point off the curve (signed). */
    misbehave?: 'bad-signature' | 'non-minimal-der' | 'point-off-curve' | 'other-certificate';
  };
}

function u24(n: number): Buffer {
  const b = Buffer.alloc(3);
  b.writeUIntBE(n, 0, 3);
  return b;
}

function hsHeader(type: number, len: number, seq: number, fragOff = 0, fragLen = len): Buffer {
  const h = Buffer.alloc(12);
  h[0] = type;
  h.writeUIntBE(len, 1, 3);
  h.writeUInt16BE(seq, 4);
  h.writeUIntBE(fragOff, 6, 3);
  h.writeUIntBE(fragLen, 9, 3);
  return h;
}

export class TestPeer {
  private transcript: Buffer[] = [];
  private readonly random: (n: number) => Buffer;
  private serverRandom: Buffer;
  private clientRandom = Buffer.alloc(0);
  sendSeq0 = 0n;
  sendSeq1 = 0n;
  private msgSeq = 0;
  private emsOffered = false;
  private cidOffered = false;
  master: Buffer = Buffer.alloc(0);
  keys: KeyBlock | undefined;
  connected = false;
  identity = '';
  /** ECDHE: the client's raw public key from its Certificate, and whether its CertificateVerify verified. */
  clientPublicKey: Buffer | undefined;
  clientKeyVerified = false;
  private ephemeralPrivate: Buffer = Buffer.alloc(0);
  /** Application data the client sent, decrypted. */
  received: Buffer[] = [];
  /** The datagrams this peer sent, for fuzz corpora. */
  sent: Buffer[] = [];

  constructor(readonly opts: PeerOptions) {
    this.random = opts.random ?? crypto.randomBytes;
    this.serverRandom = this.random(32);
  }

  /** The CID the client offered: records to the client carry it once the extension is agreed. */
  clientCid = Buffer.alloc(0);

  /** The server answers the connection_id extension (opts.cid given, possibly empty). */
  get agreesCid(): boolean {
    return this.cidOffered && this.opts.cid !== undefined;
  }

  get usesCid(): boolean {
    return this.agreesCid && this.opts.cid!.length > 0;
  }

  /** Feeds one datagram from the client; returns the datagrams to send back. */
  handle(datagram: Uint8Array): Buffer[] {
    const out: Buffer[] = [];
    for (const r of parseRecords(datagram, this.opts.cid?.length ?? 0)) {
      if (r.epoch === 0 && r.type === 22) {
        // A record may carry several whole messages (the client's Certificate, key exchange, CertificateVerify).
        for (let at = 0; at + 12 <= r.body.length;) {
          const msg = r.body.subarray(at, at + 12 + r.body.readUIntBE(at + 9, 3));
          at += msg.length;
          const type = msg[0];
          const body = msg.subarray(12);
          if (type === 1) out.push(...this.onClientHello(msg, body));
          else if (type === 11) this.onClientCertificate(msg, body);
          else if (type === 16) this.onClientKeyExchange(msg, body);
          else if (type === 15) this.onCertificateVerify(msg, body);
        }
      } else if (r.epoch === 1 && this.keys) {
        const opened = openRecord(r, this.keys.clientKey, this.keys.clientIv);
        if (!opened) continue;
        if (opened.type === 22 && opened.content[0] === 20) out.push(...this.onFinished(opened.content));
        else if (opened.type === 23) this.received.push(opened.content);
      }
    }
    this.sent.push(...out);
    return out;
  }

  private onClientHello(msg: Buffer, body: Buffer): Buffer[] {
    this.clientRandom = Buffer.from(body.subarray(2, 34));
    let p = 34;
    p += 1 + body[p]; // session id
    const cookieLen = body[p];
    p += 1 + cookieLen;
    if (this.opts.helloVerify && cookieLen === 0) {
      const cookie = this.random(20);
      const hvr = Buffer.concat([Buffer.from([0xfe, 0xff, cookie.length]), cookie]);
      return [plainRecord(22, this.sendSeq0++, Buffer.concat([hsHeader(3, hvr.length, 0), hvr]), 0xfeff)];
    }
    p += 2 + body.readUInt16BE(p); // suites
    p += 1 + body[p]; // compression
    const extEnd = p + 2 + body.readUInt16BE(p);
    p += 2;
    while (p < extEnd) {
      const t = body.readUInt16BE(p), l = body.readUInt16BE(p + 2);
      if (t === 0x17) this.emsOffered = true;
      if (t === 54) {
        this.cidOffered = true;
        this.clientCid = Buffer.from(body.subarray(p + 5, p + 5 + body[p + 4]));
      }
      p += 4 + l;
    }
    this.msgSeq = msg.readUInt16BE(4);
    this.transcript = [Buffer.from(msg)];
    const exts: Buffer[] = [Buffer.from([0xff, 0x01, 0, 1, 0])];
    if (this.emsOffered && this.opts.ems !== false) exts.push(Buffer.from([0, 0x17, 0, 0]));
    const ecdhe = this.opts.ecdhe;
    if (ecdhe) {
      // point formats: uncompressed; certificate types (RFC 7250): raw public key both ways
      exts.push(Buffer.from([0, 11, 0, 2, 1, 0]), Buffer.from([0, 20, 0, 1, 2]));
      if (ecdhe.requestClientKey !== false) exts.push(Buffer.from([0, 19, 0, 1, 2]));
    }
    if (this.agreesCid) {
      const cid = Buffer.from(this.opts.cid!);
      exts.push(Buffer.concat([Buffer.from([0, 54, 0, cid.length + 1, cid.length]), cid]));
    }
    const extBytes = Buffer.concat(exts);
    const extLen = Buffer.alloc(2);
    extLen.writeUInt16BE(extBytes.length);
    const sh = Buffer.concat([Buffer.from([0xfe, 0xfd]), this.serverRandom, Buffer.from([0, 0xc0, ecdhe ? 0xae : 0xa8, 0]), extLen, extBytes]);
    const messages: [number, Buffer][] = [[2, sh]];
    if (ecdhe) {
      // 'other-certificate': the Certificate names another key while the signature is by the right one.
      const spki = spkiOf(p256Public(ecdhe.misbehave === 'other-certificate' ? p256PrivateFrom(this.random(32)) : ecdhe.serverPrivateKey));
      messages.push([11, Buffer.concat([u24(spki.length), spki])]);
      let params: Buffer;
      let rs: Buffer;
      for (;;) {
        this.ephemeralPrivate = p256PrivateFrom(this.random(32));
        const point = p256Public(this.ephemeralPrivate);
        if (ecdhe.misbehave === 'point-off-curve') point[64] ^= 1;
        params = Buffer.concat([Buffer.from([3, 0, 23, 65]), point]);
        const signed = crypto.createHash('sha256').update(Buffer.concat([this.clientRandom, this.serverRandom, params])).digest();
        rs = p256SignDeterministic(ecdhe.serverPrivateKey, signed);
        // 'non-minimal-der' pads an integer DER writes in at most 32 bytes (top bit clear): padding a
        // 33-byte one gives 34 bytes, which a decoder refuses for its length alone, lenient or not.
        // When both r and s have the top bit set, another ephemeral key gives another signature.
        if (ecdhe.misbehave !== 'non-minimal-der' || rs[0] < 0x80 || rs[32] < 0x80) break;
      }
      if (ecdhe.misbehave === 'bad-signature') rs[63] ^= 1;
      let sig = derSignature(rs);
      if (ecdhe.misbehave === 'non-minimal-der') {
        // r (or s) with a leading zero byte it does not need: the same integer, not DER
        const rLen = sig[3];
        if (rs[0] < 0x80) sig = Buffer.concat([Buffer.from([0x30, sig[1] + 1, 2, rLen + 1, 0]), sig.subarray(4)]);
        else {
          const sAt = 4 + rLen;
          sig = Buffer.concat([Buffer.from([0x30, sig[1] + 1]), sig.subarray(2, sAt), Buffer.from([2, sig[sAt + 1] + 1, 0]), sig.subarray(sAt + 2)]);
        }
      }
      messages.push([12, Buffer.concat([params, Buffer.from([4, 3, 0, sig.length]), sig])]);
      if (ecdhe.requestClientKey !== false) messages.push([13, Buffer.from([1, 64, 0, 2, 4, 3, 0, 0])]);
    } else if (this.opts.identityHint !== undefined) {
      const hint = Buffer.from(this.opts.identityHint);
      const l = Buffer.alloc(2);
      l.writeUInt16BE(hint.length);
      messages.push([12, Buffer.concat([l, hint])]);
    }
    messages.push([14, Buffer.alloc(0)]);
    const records: Buffer[] = [];
    for (const [type, b] of messages) {
      const seq = this.msgSeq++;
      this.transcript.push(Buffer.concat([hsHeader(type, b.length, seq), b]));
      const step = this.opts.fragmentBytes ?? Math.max(b.length, 1);
      for (let off = 0; off < Math.max(b.length, 1); off += step) {
        const frag = b.subarray(off, off + step);
        records.push(plainRecord(22, this.sendSeq0++, Buffer.concat([hsHeader(type, b.length, seq, off, frag.length), frag])));
      }
    }
    return [Buffer.concat(records)];
  }

  private onClientCertificate(msg: Buffer, body: Buffer): void {
    this.clientPublicKey = Buffer.from(body.subarray(-65));
    this.transcript.push(Buffer.from(msg));
  }

  private onCertificateVerify(msg: Buffer, body: Buffer): void {
    if (body.readUInt16BE(0) !== 0x0403) throw new Error('test peer: CertificateVerify is not ecdsa_secp256r1_sha256');
    const sig = body.subarray(4, 4 + body.readUInt16BE(2));
    this.clientKeyVerified = crypto.verify('sha256', Buffer.concat(this.transcript), publicKeyObject(this.clientPublicKey!), sig);
    if (!this.clientKeyVerified) throw new Error('test peer: the client CertificateVerify does not verify');
    this.transcript.push(Buffer.from(msg));
  }

  private onClientKeyExchange(msg: Buffer, body: Buffer): void {
    this.transcript.push(Buffer.from(msg));
    const pms = this.opts.ecdhe
      ? p256Ecdh(this.ephemeralPrivate, body.subarray(1, 1 + body[0]))
      : pskPremaster(this.opts.psk);
    if (!this.opts.ecdhe) this.identity = body.subarray(2, 2 + body.readUInt16BE(0)).toString();
    this.master = this.emsOffered && this.opts.ems !== false
      ? prf(pms, 'extended master secret', crypto.createHash('sha256').update(Buffer.concat(this.transcript)).digest(), 48)
      : prf(pms, 'master secret', Buffer.concat([this.clientRandom, this.serverRandom]), 48);
    this.keys = keyBlock(this.master, this.clientRandom, this.serverRandom);
  }

  private onFinished(msg: Buffer): Buffer[] {
    const hash = () => crypto.createHash('sha256').update(Buffer.concat(this.transcript)).digest();
    const expected = prf(this.master, 'client finished', hash(), 12);
    if (!expected.equals(msg.subarray(12))) throw new Error('test peer: client Finished does not verify');
    this.transcript.push(Buffer.from(msg));
    const verify = prf(this.master, 'server finished', hash(), 12);
    const fin = Buffer.concat([hsHeader(20, 12, this.msgSeq++), verify]);
    this.connected = true;
    return [Buffer.concat([plainRecord(20, this.sendSeq0++, Buffer.from([1])), this.seal(22, fin)])];
  }

  /** A protected record from the server, with the client's CID when one was agreed. */
  seal(type: number, content: Uint8Array, seq: bigint = this.sendSeq1++, epoch = 1): Buffer {
    const cid = this.agreesCid ? this.clientCid : undefined;
    return sealRecord({ type, epoch, seq, key: this.keys!.serverKey, iv: this.keys!.serverIv, cid }, content);
  }

  /** Opens a record the client sent (with its CID when negotiated). */
  open(datagram: Uint8Array): { type: number; content: Buffer }[] {
    return parseRecords(datagram, this.opts.cid?.length ?? 0)
      .filter((r) => r.epoch === 1)
      .map((r) => openRecord(r, this.keys!.clientKey, this.keys!.clientIv))
      .filter((x): x is { type: number; content: Buffer } => x !== null);
  }
}

/** Runs client and peer against each other in memory until the client's queue is empty. */
export function pump(client: { drainTransmit(): Uint8Array[]; handleDatagram(now: number, d: Uint8Array): unknown }, peer: TestPeer, nowMs = 0): void {
  for (let round = 0; round < 10; round++) {
    const out = client.drainTransmit();
    if (out.length === 0) return;
    for (const d of out) for (const reply of peer.handle(d)) client.handleDatagram(nowMs, reply);
  }
}
