/**
 * GnuTLS (Debian gnutls-bin) as the ECDHE-ECDSA peer: DTLS 1.2, TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,
 * P-256, RFC 7250 raw public keys on both sides (flags: ../shared/docs/toolchain-notes.md).
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import crypto from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeUdpPort } from '../../host/free-port.ts';

/** The one suite, group and certificate type this project speaks over ECDHE. */
export const GNUTLS_PRIORITY = 'NORMAL:-VERS-ALL:+VERS-DTLS1.2:-CIPHER-ALL:+AES-128-CCM-8:-KX-ALL:+ECDHE-ECDSA'
  + ':-GROUP-ALL:+GROUP-SECP256R1:-CTYPE-ALL:+CTYPE-CLI-RAWPK:+CTYPE-SRV-RAWPK';

export function gnutlsAvailable(tool: 'gnutls-serv' | 'gnutls-cli'): string | null {
  const r = spawnSync(tool, ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? null : `${tool} not found on PATH (Debian package gnutls-bin)`;
}

/** A P-256 key pair as the firmware (raw bytes) and GnuTLS (PEM files) want it. */
export interface P256KeyPair {
  privateKey: Buffer; // 32 bytes
  publicKey: Buffer; // 65 bytes, 0x04 || X || Y
  keyFile: string; // PKCS#8 PEM
  pubFile: string; // SubjectPublicKeyInfo PEM
}

export function p256KeyPair(name: string): P256KeyPair {
  const dir = mkdtempSync(join(tmpdir(), 'sleepy-gnutls-'));
  const k = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const keyFile = join(dir, `${name}.key`), pubFile = join(dir, `${name}.pub`);
  writeFileSync(keyFile, k.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(pubFile, k.publicKey.export({ type: 'spki', format: 'pem' }));
  return {
    privateKey: Buffer.from(k.privateKey.export({ format: 'jwk' }).d!, 'base64url'),
    publicKey: rawPublicKey(k.publicKey),
    keyFile, pubFile,
  };
}

/** 0x04 || X || Y of a P-256 public key (the last 65 bytes of its SubjectPublicKeyInfo). */
export function rawPublicKey(k: crypto.KeyObject): Buffer {
  return Buffer.from((k.export({ type: 'spki', format: 'der' }) as Buffer).subarray(-65));
}

export interface GnutlsServ {
  port: number;
  proc: ChildProcessWithoutNullStreams;
  output(): string;
  stop(): void;
}

/** `gnutls-serv -u --echo` with the server's raw key; `requireClientKey` asks for the client's (-r). */
export async function startGnutlsServ(server: P256KeyPair, opts: { requireClientKey?: boolean } = {}): Promise<GnutlsServ> {
  const port = await freeUdpPort();
  const args = ['-u', '-p', String(port), '--echo', `--rawpkkeyfile=${server.keyFile}`, `--rawpkfile=${server.pubFile}`, '--priority', GNUTLS_PRIORITY];
  if (opts.requireClientKey !== false) args.push('-r');
  const proc = spawn('gnutls-serv', args);
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  // It prints "listening" once bound; the client's retransmissions cover anything slower.
  const t0 = Date.now();
  while (!out.includes('listening') && Date.now() - t0 < 20_000 && proc.exitCode === null) await new Promise((r) => setTimeout(r, 20));
  return { port, proc, output: () => out, stop: () => proc.kill('SIGKILL') };
}
