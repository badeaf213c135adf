// `sleepy-session start` at its edges: flag errors that name the flag and its range, paths that
// cannot be written fail at once, a capture that exists is not overwritten silently, and the
// progress line (a terminal only; never in CI or a pipe).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Progress, expectedWakes, progressLine } from '../../host/sim/fleet/progress.ts';
import { runFleet } from '../../host/sim/fleet/run.ts';
import { DEFAULT_FLEET } from '../../host/sim/fleet/spec.ts';

const run = (...args: string[]) => spawnSync(process.execPath, ['bin/sleepy-session.mjs', ...args], { encoding: 'utf8', timeout: 30_000 });

describe('sleepy-session start: flags, files and progress', () => {
  for (const [args, pattern] of [
    [['--devices', '-5'], /^sleepy-session: start: --devices must be a whole number 1\.\.1000000 \(got '-5'\)\n$/],
    [['--sleepy-share', '-0.5'], /^sleepy-session: start: --sleepy-share must be a number 0\.\.1 \(got '-0\.5'\)\n$/],
    [['--days', '-1'], /^sleepy-session: start: --days must be a number 0\.5\.\.60 \(got '-1'\)\n$/],
    [['--workers', '-2'], /^sleepy-session: start: --workers must be a whole number 1\.\.64 \(got '-2'\)\n$/],
  ] as [string[], RegExp][]) {
    it(`a negative number names the flag and its range: ${args.join(' ')}`, () => {
      const r = run('start', ...args);
      assert.equal(r.status, 2);
      assert.match(r.stderr, pattern);
    });
  }

  it('a report under /proc fails at once with the reason (it used to hang in mkdir)', () => {
    const t0 = Date.now();
    const r = run('start', '--devices', '2', '--days', '1', '--report', '/proc/x/y.html');
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /^sleepy-session: start: --report: cannot write \/proc\/x\/y\.html \(ENOENT\)\n$/);
    assert.ok(Date.now() - t0 < 20_000, 'Date.now() - t0 < 20_000');
  });

  it('an existing --pcap file is refused, named, unless --overwrite', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sleepy-fleet-cli-'));
    const pcap = join(dir, 'old.pcap');
    writeFileSync(pcap, 'keep me');
    const refused = run('start', '--devices', '2', '--days', '0.5', '--profile', 'legacy', '--pcap', pcap, '--report', join(dir, 'r.html'));
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /--pcap: \S+old\.pcap exists; remove it, name another file, or add --overwrite/);
    assert.equal(readFileSync(pcap, 'utf8'), 'keep me');
    const replaced = run('start', '--devices', '2', '--days', '0.5', '--profile', 'legacy', '--pcap', pcap, '--overwrite', '--report', join(dir, 'r.html'));
    assert.equal(replaced.status, 0, replaced.stderr);
    assert.equal(readFileSync(pcap).readUInt32BE(0), 0xa1b2c3d4);
    // Not a terminal: no progress line on stderr.
    assert.equal(replaced.stderr, '');
  });

  it('the progress line: wakes done of the expected total, rate, time left; shown on a terminal only, never under CI', async () => {
    assert.equal(progressLine(12_000, 80_000, 10_000), 'replay: 12,000 / ~80,000 wakes (15 %), 1,200 wakes/s, about 57 s left');
    assert.equal(progressLine(1000, 200_000, 1000), 'replay: 1,000 / ~200,000 wakes (0 %), 1,000 wakes/s, about 3 min left');
    const written: string[] = [];
    const tty = { isTTY: true, write: (s: string) => written.push(s) };
    assert.equal(new Progress(100, tty, {}).enabled, true);
    assert.equal(new Progress(100, tty, { CI: 'true' }).enabled, false);
    assert.equal(new Progress(100, { isTTY: false, write: (s: string) => written.push(s) }, {}).enabled, false);
    // --progress: a log gets lines (no terminal rewrites) and the totals at the end, CI or not.
    const log: string[] = [];
    const forced = new Progress(100, { isTTY: false, write: (s: string) => log.push(s) }, { CI: 'true' }, true);
    assert.equal(forced.enabled, true);
    forced.add(60);
    forced.end();
    assert.equal(log.length, 1, 'nothing before 30 s, then the totals');
    assert.match(log[0], /^replay: 60 wakes in \d+ s, [\d,]+ wakes\/s\n$/);
    // The estimate the ETA rests on is close to what the replay does.
    const o = { ...DEFAULT_FLEET, devices: 8, days: 3, profiles: ['legacy' as const], workers: 1, seed: 'progress' };
    let reported = 0;
    const r = await runFleet(o, { onWakes: (n) => { reported += n; } });
    assert.equal(reported, r.result.wakes, 'onWakes adds up to every wake');
    const expected = expectedWakes(o);
    assert.ok(Math.abs(expected - r.result.wakes) <= 0.05 * r.result.wakes + 3, `expected ${expected}, ran ${r.result.wakes}`);
  });
});
