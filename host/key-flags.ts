/**
 * The P-256 key flags of the device-side commands (`device --server-key`, `connect --server-key`,
 * `connect --key`), read in the forms a user has: the 130 hex digits `sleepy-session cloud --key
 * FILE --print-public-key` prints (or a file holding them), and PEM files as openssl writes them.
 * A bad value is a UsageError naming the flag; a file's content is never quoted, and a private key
 * given where the cloud's public key belongs is refused (a device must never hold the cloud's
 * private key), not quietly turned into its public half.
 */
import crypto from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { UsageError } from './cli-flags.ts';
import { publicKeyOfPem, publicKeyOfPoint, P256_SCALAR_BYTES } from './cloud/p256.ts';

const POINT_HEX = /^[0-9a-fA-F]{130}$/;
const PRIVATE_PEM = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;
const SERVER_KEY_FORMS = "130 hex digits (04 || X || Y, what 'sleepy-session cloud --key FILE --print-public-key' prints), a file holding them, or a PEM public key file";

/** Reads a key file for `--flag`; the caller wipes the buffer. */
function readKeyFile(command: string, flag: string, path: string, expected: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new UsageError(`${command}: --${flag} ${path}: cannot read the file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); expected ${expected}`);
  }
}

/**
 * The server's (cloud's) public key a device pins: 65 bytes, 0x04 ‖ X ‖ Y, on the curve. `value`
 * is the hex itself, or a file with the hex or a PEM SubjectPublicKeyInfo.
 */
export function serverPublicKeyFlag(command: string, flag: string, value: string): Buffer {
  const onCurve = (hex: string, where: string): Buffer => {
    const key = publicKeyOfPoint(Buffer.from(hex, 'hex'));
    if (!key) throw new UsageError(`${command}: --${flag}${where}: not a P-256 public key (04 || X || Y with the point on the curve)`);
    return key.point;
  };
  if (POINT_HEX.test(value)) return onCurve(value, '');
  if (/^[0-9a-fA-F]+$/.test(value) && !existsSync(value)) {
    throw new UsageError(`${command}: --${flag} must be ${SERVER_KEY_FORMS} (got ${value.length} hex digits)`);
  }
  const text = readKeyFile(command, flag, value, SERVER_KEY_FORMS);
  try {
    const s = text.toString('latin1');
    if (PRIVATE_PEM.test(s)) {
      throw new UsageError(`${command}: --${flag} ${value}: is a private key; a device pins the cloud's public key only (sleepy-session cloud --key ${value} --print-public-key prints it)`);
    }
    const trimmed = s.trim();
    if (POINT_HEX.test(trimmed)) return onCurve(trimmed, ` ${value}`);
    if (trimmed.startsWith('-----BEGIN PUBLIC KEY-----')) {
      const key = publicKeyOfPem(trimmed);
      if (!key) throw new UsageError(`${command}: --${flag} ${value}: not a P-256 public key (a PEM public key of another curve or type, or damaged)`);
      return key.point;
    }
    throw new UsageError(`${command}: --${flag} ${value}: the file holds neither 130 hex digits nor a PEM public key ("-----BEGIN PUBLIC KEY-----"); expected ${SERVER_KEY_FORMS}`);
  } finally {
    text.fill(0);
  }
}

/**
 * A device's P-256 private key from a PEM file (SEC1 "EC PRIVATE KEY" as `openssl ecparam -genkey
 * -noout` writes, or PKCS#8): the 32-byte scalar, big-endian. The caller zeroizes it after use.
 */
export function devicePrivateKeyFile(command: string, flag: string, path: string): Buffer {
  const expected = 'a PEM P-256 private key (make one: openssl ecparam -name prime256v1 -genkey -noout -out FILE)';
  const text = readKeyFile(command, flag, path, expected);
  let key: crypto.KeyObject;
  try {
    key = crypto.createPrivateKey({ key: text, format: 'pem' });
  } catch {
    // OpenSSL's message may quote the input: say only what was expected.
    throw new UsageError(`${command}: --${flag} ${path}: not a PEM private key; expected ${expected}`);
  } finally {
    text.fill(0);
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new UsageError(`${command}: --${flag} ${path}: not a P-256 key (got ${key.asymmetricKeyType}${key.asymmetricKeyDetails?.namedCurve ? ` ${key.asymmetricKeyDetails.namedCurve}` : ''}); expected ${expected}`);
  }
  const scalar = Buffer.alloc(P256_SCALAR_BYTES);
  const d = Buffer.from(key.export({ format: 'jwk' }).d!, 'base64url');
  d.copy(scalar, P256_SCALAR_BYTES - d.length);
  d.fill(0);
  return scalar;
}
