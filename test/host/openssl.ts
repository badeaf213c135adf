/** Starts `openssl s_server` for DTLS 1.2 PSK interop tests. */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { freeUdpPort } from '../../host/free-port.ts';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function opensslAvailable(): string | null {
  const r = spawnSync('openssl', ['version'], { encoding: 'utf8' });
  return r.status === 0 ? null : 'openssl not found on PATH';
}

export interface SServer {
  port: number;
  proc: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  waitForStdout(text: string, timeoutMs?: number): Promise<void>;
  stop(): void;
}

/** An OpenSSL config that turns off the extended master secret (RFC 7627). */
export function noEmsConfig(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sleepy-openssl-'));
  const path = join(dir, 'no-ems.cnf');
  writeFileSync(path, [
    'openssl_conf = openssl_init', '[openssl_init]', 'ssl_conf = ssl_sect', '[ssl_sect]',
    'system_default = system_default_sect', '[system_default_sect]', 'Options = -ExtendedMasterSecret', '',
  ].join('\n'));
  return path;
}

export async function startSServer(opts: { pskHex: string; identity: string; opensslConf?: string }): Promise<SServer> {
  const port = await freeUdpPort();
  const env = { ...process.env };
  if (opts.opensslConf) env.OPENSSL_CONF = opts.opensslConf;
  const proc = spawn('openssl', [
    's_server', '-dtls1_2', '-nocert', '-psk', opts.pskHex, '-psk_identity', opts.identity,
    '-cipher', 'PSK-AES128-CCM8', '-accept', `127.0.0.1:${port}`, '-quiet',
  ], { env });
  let out = '', err = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (err += d));
  // s_server has no ready signal with -quiet; the client's retransmissions cover a slow start.
  await new Promise((r) => setTimeout(r, 150));
  return {
    port, proc, stdout: () => out, stderr: () => err,
    waitForStdout: (text, timeoutMs = 5000) =>
      new Promise((resolve, reject) => {
        const t0 = Date.now();
        const tick = () => {
          if (out.includes(text)) return resolve();
          if (Date.now() - t0 > timeoutMs) return reject(new Error(`s_server never printed ${JSON.stringify(text)}; stdout=${JSON.stringify(out)} stderr=${JSON.stringify(err)}`));
          setTimeout(tick, 20);
        };
        tick();
      }),
    stop: () => proc.kill('SIGKILL'),
  };
}
