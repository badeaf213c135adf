// Issue 18, the cloud's command line as a user runs it (`sleepy-session cloud …`, `sleepy-session
// events …`): values that used to be accepted — a back-off cap of 11,000 years, a reclaim timer of
// 1 ms, an empty identity hint, a heal feature listed twice — and a Redis port out of range (which
// said "Invalid URL" without naming the flag) are refused before anything starts: exit 2, one line
// on stderr naming the flag and what is allowed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeDevicesFile } from './fixtures/cloud-tools.ts';

const devices = writeDevicesFile({ devices: [{ id: 'cli-dev', identity: 'cli-id', psk: '00112233445566778899aabbccddeeff' }] });
/** A cloud that starts is stopped (SIGTERM: a clean exit 0) after `timeout` ms. */
const run = (...args: string[]) => spawnSync(process.execPath, ['bin/sleepy-session.mjs', ...args], { encoding: 'utf8', timeout: 4000 });

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

  it('the bounds themselves are accepted (the flags parse; the cloud starts and is stopped)', () => {
    const r = run('cloud', '--devices', devices, '--port', '0', '--webhook', 'http://127.0.0.1:9/', '--webhook-max-delay', '24h', '--event-reclaim-after', '1s', '--identity-hint', 'h'.repeat(255), '--heal', 'malformed,reset-token');
    assert.equal(r.status, 0, `the cloud ran until stopped; stderr: ${r.stderr}`);
    assert.match(r.stdout, /^cloud listening udp=127\.0\.0\.1:\d+/);
  });
});
