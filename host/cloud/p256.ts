/**
 * P-256 for the ECDHE-ECDSA suite (RFC 8422, RFC 7250 raw public keys), all from node:crypto
 * (OpenSSL): ephemeral ECDH, ECDSA-SHA256 with DER signatures, SubjectPublicKeyInfo encoding and
 * decoding, and the cloud's own long-term key pair (`ServerKey`), which never prints.
 *
 * Points are 65-byte uncompressed encodings (04 || X || Y) everywhere outside this module. Every
 * point that comes from outside goes through OpenSSL's decoder, which refuses points not on the
 * curve (invalid-curve attacks) and the point at infinity.
 */
import crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';

export const P256_POINT_BYTES = 65;
export const P256_SCALAR_BYTES = 32;
/** DER prefix of an id-ecPublicKey / prime256v1 SubjectPublicKeyInfo with a 65-byte BIT STRING (RFC 5480). */
const SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');
export const P256_SPKI_BYTES = SPKI_PREFIX.length + P256_POINT_BYTES;

/** The SubjectPublicKeyInfo (DER) of an uncompressed P-256 point: what an RFC 7250 Certificate carries. */
export function spkiOfPoint(point: Buffer): Buffer {
  return Buffer.concat([SPKI_PREFIX, point]);
}

function pointOfKey(key: crypto.KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  return Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
}

/** A validated P-256 public key: the uncompressed point and the KeyObject that verifies with it. */
export interface P256PublicKey {
  point: Buffer;
  key: crypto.KeyObject;
}

/** Decodes a P-256 SubjectPublicKeyInfo (any point encoding OpenSSL reads); null when it is not one, or not on the curve. */
export function publicKeyOfSpki(spki: Buffer): P256PublicKey | null {
  let key: crypto.KeyObject;
  try {
    key = crypto.createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch {
    return null;
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') return null;
  return { point: pointOfKey(key), key };
}

/** A 65-byte uncompressed point, validated (on the curve); null otherwise. */
export function publicKeyOfPoint(point: Buffer): P256PublicKey | null {
  if (point.length !== P256_POINT_BYTES || point[0] !== 4) return null;
  return publicKeyOfSpki(spkiOfPoint(point));
}

/** A public key given as PEM ("-----BEGIN PUBLIC KEY-----", SPKI); null when it is not a P-256 key. */
export function publicKeyOfPem(pem: string): P256PublicKey | null {
  let key: crypto.KeyObject;
  try {
    key = crypto.createPublicKey({ key: pem, format: 'pem' });
  } catch {
    return null;
  }
  return publicKeyOfSpki(key.export({ format: 'der', type: 'spki' }));
}

/** ECDSA-SHA256 verification of a DER signature; false for any malformed input. */
export function verifyEcdsaSha256(key: crypto.KeyObject, data: Buffer, signature: Buffer): boolean {
  try {
    return crypto.verify('sha256', data, { key, dsaEncoding: 'der' }, signature);
  } catch {
    return false;
  }
}

/**
 * An ephemeral ECDH key from `random` (so that a seeded run is reproducible): 32 random bytes,
 * drawn again in the (2^-32) case that they are not a scalar in 1..n-1. Returns the scalar and the
 * public point.
 */
export function ephemeralKey(random: (n: number) => Buffer): { scalar: Buffer; point: Buffer } {
  for (;;) {
    // An allocation of its own (it lives in a handshake entry; a pool slice would pin 8 KiB), zeroed when refused.
    const scalar = Buffer.allocUnsafeSlow(P256_SCALAR_BYTES);
    random(P256_SCALAR_BYTES).copy(scalar);
    const ecdh = crypto.createECDH('prime256v1');
    try {
      ecdh.setPrivateKey(scalar);
    } catch {
      scalar.fill(0);
      continue;
    }
    return { scalar, point: ecdh.getPublicKey() };
  }
}

/** ECDH: the shared X coordinate (32 bytes, the premaster secret of RFC 8422 §5.10); null when `peerPoint` is not a valid point. */
export function ecdhSharedX(scalar: Buffer, peerPoint: Buffer): Buffer | null {
  if (peerPoint.length !== P256_POINT_BYTES || peerPoint[0] !== 4) return null;
  const ecdh = crypto.createECDH('prime256v1');
  ecdh.setPrivateKey(scalar);
  try {
    return ecdh.computeSecret(peerPoint);
  } catch {
    return null; // ERR_CRYPTO_ECDH_INVALID_PUBLIC_KEY: not on the curve
  }
}

const N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n; // the group order

function bigOf(b: Uint8Array): bigint {
  return BigInt(`0x${Buffer.from(b).toString('hex') || '0'}`);
}

function bytesOf(x: bigint, len = P256_SCALAR_BYTES): Buffer {
  return Buffer.from(x.toString(16).padStart(len * 2, '0'), 'hex');
}

/** a⁻¹ mod n by Fermat (n is prime). Variable time: fine for a cloud, not for a device. */
function invModN(a: bigint): bigint {
  let r = 1n, b = a % N;
  for (let e = N - 2n; e > 0n; e >>= 1n, b = (b * b) % N) if (e & 1n) r = (r * b) % N;
  return r;
}

/**
 * ECDSA over a 32-byte hash with the private scalar `d` and nonces drawn by `nonce` (32 bytes each,
 * rejected until in 1..n-1): r ‖ s, 64 bytes. node:crypto's ECDSA draws its nonce itself; this one
 * takes it from the caller so that a seeded simulator replays byte for byte (k·G by OpenSSL's ECDH).
 */
export function ecdsaSignWithNonce(d: Uint8Array, hash: Uint8Array, nonce: () => Uint8Array): Buffer {
  const e = bigOf(hash) % N;
  const dn = bigOf(d);
  for (;;) {
    const k = bigOf(nonce());
    if (k === 0n || k >= N) continue;
    const ecdh = crypto.createECDH('prime256v1');
    ecdh.setPrivateKey(bytesOf(k));
    const r = bigOf(ecdh.getPublicKey().subarray(1, 33)) % N;
    if (r === 0n) continue;
    const s = (invModN(k) * ((e + r * dn) % N)) % N;
    if (s === 0n) continue;
    return Buffer.concat([bytesOf(r), bytesOf(s)]);
  }
}

/** A private scalar in 1..n-1 from 32 bytes of seed, (x mod (n − 1)) + 1: for simulators that derive keys from a seed. */
export function scalarFromSeed(seed: Uint8Array): Buffer {
  return bytesOf((bigOf(seed) % (N - 1n)) + 1n);
}

/** The public point (65 bytes) of a private scalar. */
export function publicPointOf(scalar: Uint8Array): Buffer {
  const ecdh = crypto.createECDH('prime256v1');
  ecdh.setPrivateKey(Buffer.from(scalar));
  return ecdh.getPublicKey();
}

/** DER ECDSA-Sig-Value of r ‖ s (RFC 5480 §2.2): minimal positive INTEGERs. */
export function derOfSignature(rs: Uint8Array): Buffer {
  const int = (v: Buffer): Buffer => {
    let i = 0;
    while (i < 31 && v[i] === 0) i++;
    const body = v[i] & 0x80 ? Buffer.concat([Buffer.from([0]), v.subarray(i)]) : v.subarray(i);
    return Buffer.concat([Buffer.from([2, body.length]), body]);
  };
  const seq = Buffer.concat([int(Buffer.from(rs.subarray(0, 32))), int(Buffer.from(rs.subarray(32, 64)))]);
  return Buffer.concat([Buffer.from([0x30, seq.length]), seq]);
}

export class ServerKeyError extends Error {}

/**
 * The cloud's long-term P-256 key pair (signs ServerKeyExchange). The private key stays inside a
 * KeyObject; the object prints as "[redacted]" in logs, JSON and util.inspect.
 */
export class ServerKey {
  readonly #private: crypto.KeyObject;
  /** The public key as a 65-byte uncompressed point: what devices pin. */
  readonly publicPoint: Buffer;
  /** The SubjectPublicKeyInfo sent in our Certificate message. */
  readonly spki: Buffer;

  private constructor(privateKey: crypto.KeyObject) {
    if (privateKey.asymmetricKeyType !== 'ec' || privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new ServerKeyError(`not a P-256 key (got ${privateKey.asymmetricKeyType}${privateKey.asymmetricKeyDetails?.namedCurve ? ' ' + privateKey.asymmetricKeyDetails.namedCurve : ''}); make one with: openssl ecparam -name prime256v1 -genkey -noout -out FILE`);
    }
    this.#private = privateKey;
    this.publicPoint = pointOfKey(crypto.createPublicKey(privateKey));
    this.spki = spkiOfPoint(this.publicPoint);
  }

  /** From PEM text: SEC1 "EC PRIVATE KEY" (what `openssl ecparam -genkey -noout` writes) or PKCS#8 "PRIVATE KEY". */
  static fromPem(pem: string | Buffer): ServerKey {
    let key: crypto.KeyObject;
    try {
      key = crypto.createPrivateKey({ key: pem, format: 'pem' });
    } catch {
      // OpenSSL's message may quote the input: say only what was expected.
      throw new ServerKeyError('not a PEM private key (expected "-----BEGIN EC PRIVATE KEY-----" or "-----BEGIN PRIVATE KEY-----" for P-256)');
    }
    return new ServerKey(key);
  }

  static fromFile(path: string): ServerKey {
    let text: Buffer;
    try {
      text = readFileSync(path);
    } catch (e) {
      throw new ServerKeyError(`cannot read '${path}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    try {
      return ServerKey.fromPem(text);
    } finally {
      text.fill(0);
    }
  }

  /** From a 32-byte private scalar (1..n-1): for simulators that derive keys from a seed. */
  static fromScalar(scalar: Buffer): ServerKey {
    const ecdh = crypto.createECDH('prime256v1');
    try {
      ecdh.setPrivateKey(scalar);
    } catch {
      throw new ServerKeyError('the private scalar must be 32 bytes in 1..n-1');
    }
    const pub = ecdh.getPublicKey();
    const b64 = (b: Buffer) => b.toString('base64url');
    return new ServerKey(crypto.createPrivateKey({ key: { kty: 'EC', crv: 'P-256', d: b64(scalar), x: b64(pub.subarray(1, 33)), y: b64(pub.subarray(33)) }, format: 'jwk' }));
  }

  /** A fresh random key pair (tests; a process without --key). */
  static generate(): ServerKey {
    return new ServerKey(crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey);
  }

  /**
   * ECDSA-SHA256 over `data`, DER-encoded (RFC 8422 §5.4). With `nonces` null, by OpenSSL (its own
   * random nonce, constant time): what a cloud uses. With a seeded `nonces` source, the nonce comes
   * from it so that a simulator's runs replay byte for byte — computed with BigInt, which is not
   * constant time: never with a key that guards real devices.
   */
  sign(data: Buffer, nonces: ((n: number) => Buffer) | null): Buffer {
    if (nonces === null) return crypto.sign('sha256', data, { key: this.#private, dsaEncoding: 'der' });
    const random = nonces;
    const d = Buffer.from(this.#private.export({ format: 'jwk' }).d!, 'base64url');
    try {
      return derOfSignature(ecdsaSignWithNonce(d, crypto.createHash('sha256').update(data).digest(), () => random(P256_SCALAR_BYTES)));
    } finally {
      d.fill(0);
    }
  }

  /** PKCS#8 PEM of the private key, for handing the key to a cloud process (`--key FILE`). Secret. */
  toPem(): string {
    return this.#private.export({ type: 'pkcs8', format: 'pem' }) as string;
  }

  toString(): string {
    return `ServerKey(public ${this.publicPoint.toString('hex')})`;
  }
  toJSON(): unknown {
    return { publicKey: this.publicPoint.toString('hex') };
  }
  [inspect.custom](): string {
    return this.toString();
  }
}
