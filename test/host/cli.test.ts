// The `sleepy-session` command as a user runs it: the main job's output, and clear flag errors.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const run = (...args: string[]) => spawnSync(process.execPath, ['bin/sleepy-session.mjs', ...args], { encoding: 'utf8' });

describe('sleepy-session command', () => {
  it('start replays a fleet: one column per profile, one verdict line per profile last, a trace on request, and the report', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sleepy-cli-'));
    const report = join(dir, 'incident.html');
    const pcap = join(dir, 'fleet.pcap');
    const r = run('start', '--devices', '8', '--days', '9', '--sleepy-share', '0.5', '--seed', 'cli', '--trace', 'dev-000003', '--report', report, '--pcap', pcap, '--pcap-devices', '2');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^May 2019 replay — 8 devices/);
    assert.match(r.stdout, /May 2 10:00 {2}session cache \(Redis\) crashes/);
    assert.match(r.stdout, /legacy \(Device OS 1\.1\.0\) +fixed \(Device OS 1\.2\.x\) +default \(sleepy-session\)/);
    assert.match(r.stdout, /== dev-000003 under legacy[^\n]*\n {3}May 2 \d\d:\d\d wake {3}1 /);
    const last = r.stdout.trimEnd().split('\n').slice(-3);
    assert.match(last[0], /^ {2}legacy .*devices stuck.*truncated-record.*events lost/);
    assert.match(last[1], /^ {2}fixed .*unconfirmed-restores/);
    assert.match(last[2], /^ {2}default +every device healed on its first wake after the crash.*no event lost/);
    assert.match(readFileSync(report, 'utf8'), /^<!doctype html>/i);
    const json = JSON.parse(readFileSync(report.replace(/\.html$/, '.json'), 'utf8'));
    assert.equal(json.profiles.length, 3);
    assert.equal(json.options.devices, 8);
    const packets = Number(/pcap: \S+ \(([\d,]+) packets of 2 devices\)/.exec(r.stdout)![1].replace(/,/g, ''));
    assert.ok(packets > 0, 'packets > 0');
    assert.equal(readFileSync(pcap).readUInt32BE(0), 0xa1b2c3d4);
  });

  for (const [args, pattern] of [
    [['start', '--engine', 'spidermonkey'], /--engine must be one of v8, wasm3/],
    [['start', '--devices', 'many'], /^sleepy-session: start: --devices must be a whole number 1\.\.1000000 \(got 'many'\)\n$/],
    [['start', '--sleepy-share', '1.5'], /--sleepy-share must be a number 0\.\.1 \(got '1\.5'\)/],
    [['start', '--profile', 'legacy,newest'], /--profile must be one of legacy, fixed, default/],
    [['start', '--workers', '0'], /--workers must be a whole number 1\.\.64/],
    [['start', '--report', 'out.json'], /^sleepy-session: start: --report must name an \.html file/],
    [['start', '--report', '.html'], /^sleepy-session: start: --report must name an \.html file, e\.g\. reports\/incident\.html/],
    [['start', '--devices='], /^sleepy-session: start: --devices must be a whole number 1\.\.1000000 \(got ''\)\n$/],
    [['start', '--seed='], /^sleepy-session: start: --seed must not be empty\n$/],
    [['start', '--report', 'r/q.html', '--pcap', 'r/q.json'], /^sleepy-session: start: --pcap r\/q\.json would overwrite the report/],
    [['start', '--live', '--pcap', 'x.pcap'], /^sleepy-session: start: --pcap does not apply with --live/],
    [['start', '--live', '--speed', '10000'], /--speed must be a number 2\.\.240 \(got '10000'\)/],
    [['start', '--speed', '10'], /^sleepy-session: start: --speed needs --live\n$/],
    [['start', '--live', '--days', '3'], /^sleepy-session: start: --days does not apply with --live/],
    [['start', '--live', '--devices', '5000'], /--devices must be a whole number 1\.\.1000 /],
    [['start', '--pcap-devices', '3'], /^sleepy-session: start: --pcap-devices needs --pcap FILE\n$/],
    [['start', '--pcap', 'x.pcap', '--pcap-devices', '0'], /--pcap-devices must be a whole number 1\.\.150/],
    [['start', '--devices', '5', '--trace', '9'], /--trace must name a device of the fleet: an index 0\.\.4 or its id/],
    [['start', '--colour', 'red'], /unknown flag --colour; allowed: --devices, .*--report\n$/],
    [['device', '--cloud', 'nowhere', '--id', 'x', '--psk', '00'], /--cloud must be HOST:PORT/],
    [['device', '--cloud', '127.0.0.1:9', '--id', 'x', '--psk', '00'.repeat(16), '--profile', 'newest'], /--profile must be one of legacy, fixed, default/],
    [['frobnicate'], /unknown command 'frobnicate'; allowed: start, connect, device, mcu, cloud, events, help/],
    [['mcu', '--cloud', '127.0.0.1:9', '--id', 'x', '--psk', '00'.repeat(16), '--build', 'avr'], /--build must be one of wasm3, wasm2c/],
    [['mcu', '--colour', 'red'], /mcu: Unknown option '--colour'; allowed: --cloud, --id/],
    [['mcu', '--cloud', '127.0.0.1:9', '--id', 'x', '--psk', '00'.repeat(16), '--wakes', '0'], /--wakes must be a whole number 1\.\.100000/],
    [['device', '--cloud', '127.0.0.1:9', '--id', 'x'.repeat(60), '--psk', '00'.repeat(16)], /^sleepy-session: device: --id must be 1\.\.48 bytes \(got 60\)\n$/],
    [['connect', '--server', '127.0.0.1:9', '--identity', 'i'.repeat(200), '--psk', '00'], /^sleepy-session: connect: --identity must be 1\.\.128 bytes \(got 200\)\n$/],
    [['device', '--cloud', 'nowhere.invalid:5684', '--id', 'x', '--psk', '00'.repeat(16)], /^sleepy-session: device: --cloud: cannot resolve host 'nowhere\.invalid'/],
    [['connect', '--server', 'nowhere.invalid:9', '--identity', 'i', '--psk', '00'], /^sleepy-session: connect: --server: cannot resolve host 'nowhere\.invalid'/],
    [['device', '--publish-every-wake=yes'], /^sleepy-session: device: --publish-every-wake takes no value\n$/],
    [['device', '--wakes', '1', '--wakes', '2'], /^sleepy-session: device: flag --wakes given twice\n$/],
    [['device', '--cloud', '127.0.0.1:9', '--id', 'x'], /^sleepy-session: device: --server-key HEX\|FILE is required \(the cloud's public key, from 'sleepy-session cloud --key FILE --print-public-key'\), or --psk HEX for a PSK\n$/],
    [['device', '--cloud', '127.0.0.1:9', '--id', 'x', '--psk', '00'.repeat(16), '--server-key', '04'.repeat(65)], /^sleepy-session: device: --server-key and --psk exclude each other/],
    [['device', '--cloud', '127.0.0.1:9', '--id', 'x', '--server-key', '0412'], /^sleepy-session: device: --server-key must be 130 hex digits \(04 \|\| X \|\| Y, what 'sleepy-session cloud --key FILE --print-public-key' prints\), a file holding them, or a PEM public key file \(got 4 hex digits\)\n$/],
    [['device', '--cloud', '127.0.0.1:9', '--id', 'x', '--server-key', `04${'00'.repeat(64)}`], /^sleepy-session: device: --server-key: not a P-256 public key \(04 \|\| X \|\| Y with the point on the curve\)\n$/],
    [['device', '--cloud', '127.0.0.1:9', '--id', 'x', '--server-key', `04${'00'.repeat(64)}`, '--identity', 'y'], /^sleepy-session: device: --identity goes with --psk/],
    [['device', '--id', 'x', '--print-public-key'], /^sleepy-session: device: --print-public-key needs --flash FILE/],
    [['device', '--flash', 'x.flash', '--cloud', '127.0.0.1:9', '--print-public-key'], /^sleepy-session: device: --cloud does not apply with --print-public-key/],
    [['device', '--flash', 'x.flash', '--psk', '00'.repeat(16), '--print-public-key'], /^sleepy-session: device: --print-public-key: a PSK device \(--psk\) has no public key\n$/],
    [['mcu', '--cloud', '127.0.0.1:9', '--id', 'x'], /^sleepy-session: mcu: --server-key HEX\|FILE is required \(the cloud's public key, from 'sleepy-session cloud --key FILE --print-public-key'\), or --psk HEX for a PSK\n$/],
    [['mcu', '--cloud', '127.0.0.1:9', '--id', 'x', '--psk', '00'.repeat(16), '--server-key', `04${'00'.repeat(64)}`], /^sleepy-session: mcu: --server-key and --psk exclude each other/],
    [['mcu', '--cloud', '127.0.0.1:9', '--id', 'x', '--server-key', `04${'00'.repeat(64)}`], /^sleepy-session: mcu: --server-key: not a P-256 public key/],
    [['mcu', '--print-public-key'], /^sleepy-session: mcu: --print-public-key needs --flash FILE/],
    [['mcu', '--flash', 'x.flash', '--id', 'x', '--print-public-key'], /^sleepy-session: mcu: --print-public-key: --id and --server-key go together/],
    [['connect', '--server', '127.0.0.1:9'], /^sleepy-session: connect: --server-key HEX\|FILE is required \(the server's public key\), or --psk HEX for a PSK\n$/],
    [['connect', '--server', '127.0.0.1:9', '--identity', 'i', '--psk', '00', '--key', 'd.key'], /^sleepy-session: connect: --key goes with --server-key/],
    [['connect', '--server', '127.0.0.1:9', '--server-key', '04'], /^sleepy-session: connect: --server-key must be 130 hex digits/],
    [['events'], /^sleepy-session events: --events redis:\/\/HOST:PORT is required/],
    [['events', '--events', 'redis://127.0.0.1:6379', '--retry', 'some'], /^sleepy-session events: --retry must be 'all' or comma-separated dead-letter ids/],
  ] as [string[], RegExp][]) {
    it(`refuses ${args.join(' ')} naming the flag and what is allowed`, () => {
      const r = run(...args);
      assert.equal(r.status, 2);
      assert.match(r.stderr, pattern);
    });
  }

  it('--help on every subcommand prints its generated flags and exits 0', () => {
    for (const [cmd, flag] of [['start', '--sleepy-share F'], ['connect', '--server HOST:PORT'], ['device', '--publish-every-wake'], ['cloud', '--events SPEC'], ['events', '--retry IDS']]) {
      const r = run(cmd, '--help');
      assert.equal(r.status, 0, `${cmd} --help: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^usage: sleepy-session ${cmd} \\[flags\\]`));
      assert.ok(r.stdout.includes(flag), `${cmd} --help lists ${flag}`);
      assert.equal(r.stderr, '');
    }
  });
});
