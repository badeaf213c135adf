// Issue 18, the cloud's command line as a user runs it (`sleepy-session cloud …`, `sleepy-session
// events …`): values that used to be accepted — a back-off cap of 11,000 years, a reclaim timer of
// 1 ms, an empty identity hint, a heal feature listed twice — and a Redis port out of range (which
// said "Invalid URL" without naming the flag) are refused before anything starts: exit 2, one line
// on stderr naming the flag and what is allowed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import crypto from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeDevicesFile } from './fixtures/cloud-tools.ts';
import { skipOrFail } from './engines.ts';

const devices = writeDevicesFile({ devices: [{ id: 'cli-dev', identity: 'cli-id', psk: '00112233445566778899aabbccddeeff' }] });
/** A command that ends by itself (a refused flag, --print-public-key); the bound only stops a hang. */
const run = (...args: string[]) => spawnSync(process.execPath, ['bin/sleepy-session.mjs', ...args], { encoding: 'utf8', timeout: 120_000 });

/**
 * A cloud that starts: stopped with SIGTERM (a clean exit 0) once it says it listens, however long
 * starting takes on a loaded machine.
 */
async function runUntilListening(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['bin/sleepy-session.mjs', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '', stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
    if (/cloud listening/.test(stdout)) child.kill('SIGTERM');
  });
  child.stderr.on('data', (d) => (stderr += d));
  const bound = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const [status] = (await once(child, 'exit')) as [number | null];
  clearTimeout(bound);
  return { status, stdout, stderr };
}

describe('sleepy-session cloud / events: flag values out of range', () => {
  const cases: [string[], RegExp][] = [
    [['cloud', '--devices', devices, '--port', '0', '--webhook', 'http://127.0.0.1:9/', '--webhook-max-delay', '99999999h'], /^sleepy-session cloud: --webhook-max-delay must be a duration 100ms\.\.24h \(got '99999999h'\)\n$/],
    [['cloud', '--devices', devices, '--port', '0', '--webhook', 'http://127.0.0.1:9/', '--webhook-max-delay', '10ms'], /^sleepy-session cloud: --webhook-max-delay must be a duration 100ms\.\.24h \(got '10ms'\)\n$/],
    [['cloud', '--devices', devices, '--port', '0', '--webhook', 'http://127.0.0.1:9/', '--event-reclaim-after', '1ms'], /^sleepy-session cloud: --event-reclaim-after must be a duration 1s\.\.24h \(got '1ms'\)\n$/],
    [['cloud', '--devices', devices, '--port', '0', '--webhook', 'http://127.0.0.1:9/', '--event-reclaim-after', '25h'], /^sleepy-session cloud: --event-reclaim-after must be a duration 1s\.\.24h \(got '25h'\)\n$/],
    [['cloud', '--devices', devices, '--port', '0', '--identity-hint', ''], /^sleepy-session cloud: --identity-hint must be 1\.\.255 bytes of UTF-8 text \(got 0 bytes\)\n$/],
    [['cloud', '--devices', devices, '--port', '0', '--identity-hint', 'h'.repeat(300)], /^sleepy-session cloud: --identity-hint must be 1\.\.255 bytes of UTF-8 text \(got 300 bytes\)\n$/],
    [['cloud', '--devices', devices, '--port', '0', '--heal', 'reset-token,reset-token'], /^sleepy-session cloud: --heal: 'reset-token' is listed twice; allowed: reset-token, malformed \(comma-separated, each at most once\) or none\n$/],
    [['cloud', '--devices', devices, '--port', '0', '--heal', 'reset-token,'], /^sleepy-session cloud: --heal: empty item in 'reset-token,'; allowed: reset-token, malformed \(comma-separated, each at most once\) or none\n$/],
    [['cloud', '--devices', devices, '--port', '0', '--events', 'redis://127.0.0.1:99999'], /^sleepy-session cloud: --events must be memory or redis:\/\/HOST:PORT with a port 1\.\.65535 \(got 'redis:\/\/127\.0\.0\.1:99999'\)\n$/],
    [['cloud', '--devices', devices, '--port', '0', '--store', 'redis://127.0.0.1:0'], /^sleepy-session cloud: --store must be memory or redis:\/\/HOST:PORT with a port 1\.\.65535 \(got 'redis:\/\/127\.0\.0\.1:0'\)\n$/],
    [['events', '--events', 'redis://127.0.0.1:99999'], /^sleepy-session events: --events must be redis:\/\/HOST:PORT with a port 1\.\.65535 \(got 'redis:\/\/127\.0\.0\.1:99999'\)\n$/],
  ];
  for (const [args, pattern] of cases) {
    it(`${args.slice(args.indexOf('--port') >= 0 ? args.indexOf('--port') + 2 : 1).join(' ').slice(0, 80)}: exit 2, one line naming the flag`, () => {
      const r = run(...args);
      assert.equal(r.status, 2, `status ${r.status}; stderr: ${r.stderr}`);
      assert.match(r.stderr, pattern);
      assert.equal(r.stdout, '');
    });
  }

  it('the bounds themselves are accepted (the flags parse; the cloud starts and is stopped)', async () => {
    const r = await runUntilListening('cloud', '--devices', devices, '--port', '0', '--webhook', 'http://127.0.0.1:9/', '--webhook-max-delay', '24h', '--event-reclaim-after', '1s', '--identity-hint', 'h'.repeat(255), '--heal', 'malformed,reset-token');
    assert.equal(r.status, 0, `the cloud ran until stopped; stderr: ${r.stderr}`);
    assert.match(r.stdout, /^cloud listening udp=127\.0\.0\.1:\d+/);
  });
});

describe('sleepy-session cloud --key (ECDHE-ECDSA, issue 19)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sleepy-key-'));
  const key = join(dir, 'cloud.key');
  // As the docs say to make it: openssl ecparam -name prime256v1 -genkey -noout (SEC1 PEM).
  const made = spawnSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key], { encoding: 'utf8' });
  const opensslMissing = made.error ? `openssl not found (${(made.error as NodeJS.ErrnoException).code})` : null;
  const garbage = join(dir, 'garbage.key');
  writeFileSync(garbage, '-----BEGIN EC PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n-----END EC PRIVATE KEY-----\n');
  const device = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey;
  const pkDevices = writeDevicesFile({ devices: [{ id: 'pk-dev', publicKey: device.export({ type: 'spki', format: 'pem' }) }] });

  const refusals: [string[], RegExp][] = [
    [['cloud', '--devices', pkDevices, '--port', '0'], /^sleepy-session cloud: --key FILE is required: \S+ registers 1 device\(s\) by publicKey, which pin the cloud's public key \(make one: openssl ecparam -name prime256v1 -genkey -noout -out FILE\)\n$/],
    [['cloud', '--devices', devices, '--port', '0', '--key', join(dir, 'nope.key')], /^sleepy-session cloud: --key \S+nope\.key: cannot read '\S+nope\.key': ENOENT\n$/],
    [['cloud', '--devices', devices, '--port', '0', '--key', garbage], /^sleepy-session cloud: --key \S+garbage\.key: not a PEM private key \(expected "-----BEGIN EC PRIVATE KEY-----" or "-----BEGIN PRIVATE KEY-----" for P-256\)\n$/],
    [['cloud', '--print-public-key'], /^sleepy-session cloud: --print-public-key needs --key FILE\n$/],
    [['cloud', '--devices', devices, '--port', '0', '--keylog', join(dir, 'no-such-dir', 'k.log')], /\nsleepy-session cloud: --keylog \S+k\.log: cannot open for appending \(ENOENT\)\n$/],
  ];
  for (const [args, pattern] of refusals) {
    it(`${args.slice(1).join(' ').replace(dir, 'DIR').slice(0, 90)}: refused, naming the flag`, () => {
      const r = run(...args);
      assert.notEqual(r.status, 0, `status ${r.status}; stderr: ${r.stderr}`);
      assert.match(r.stderr, pattern);
      assert.ok(!r.stderr.includes('c2VjcmV0'), 'the key file is never quoted');
    });
  }

  it('--print-public-key prints the 65-byte point of an openssl-made key; the running cloud never logs the private key', async (t) => {
    if (opensslMissing) return skipOrFail(t, opensslMissing);
    const printed = run('cloud', '--key', key, '--print-public-key');
    assert.equal(printed.status, 0, printed.stderr);
    const pub = crypto.createPublicKey(readFileSync(key)).export({ format: 'jwk' });
    assert.equal(printed.stdout, `04${Buffer.from(pub.x!, 'base64url').toString('hex')}${Buffer.from(pub.y!, 'base64url').toString('hex')}\n`);
    const r = await runUntilListening('cloud', '--devices', pkDevices, '--port', '0', '--key', key);
    assert.equal(r.status, 0, `the cloud ran until stopped; stderr: ${r.stderr}`);
    assert.match(r.stderr, /1 devices \(1 by public key\); ECDHE-ECDSA public key 04[0-9a-f]{128}/);
    const d = crypto.createPrivateKey(readFileSync(key)).export({ format: 'jwk' }).d!;
    const pemBody = readFileSync(key, 'utf8').split('\n').filter((l) => l && !l.startsWith('-----')).join('');
    for (const secret of [d, Buffer.from(d, 'base64url').toString('hex'), pemBody.slice(10, 40)]) {
      assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret), 'private key in the output');
    }
  });
});
