// What a postmortem author asks of the replay: every device as a row (--export), "what if" the
// cache had come back, the heal had rolled out otherwise, had come sooner, more devices slept at
// once, the firmware gave up later (--cache-back, --rollout, --heal-delay, --quick-sleepers,
// --give-up), two runs side by side (--compare) and one parameter swept (--sweep).
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runFleet, type FleetRun } from '../../host/sim/fleet/run.ts';
import { DEFAULT_FLEET, HOUR_MS, deviceSpec, may, type FleetOptions } from '../../host/sim/fleet/spec.ts';
import { EXPORT_COLUMNS, exportRows, exportText } from '../../host/sim/fleet/export.ts';
import { compareText, optionDiff } from '../../host/sim/fleet/compare.ts';
import { parseRollout, whatIf } from '../../host/sim/fleet/whatif.ts';

const run = (...args: string[]) => spawnSync(process.execPath, ['bin/sleepy-session.mjs', ...args], { encoding: 'utf8', timeout: 60_000 });
const BASE: FleetOptions = { ...DEFAULT_FLEET, devices: 10, days: 10, seed: 'what-if', profiles: ['legacy'], workers: 2 };
const apply = (name: string, value: string, o = BASE) => whatIf(name)!.apply(o, value);

describe('what-ifs, export, compare, sweep', () => {
  let base: FleetRun;
  before(async () => {
    base = await runFleet(BASE);
  });
  const legacyStuck = (r: FleetRun) => r.devices.get('legacy')!.filter((d) => d.stuckWakes > 0);

  it('--export: one row per device and profile, CSV or JSON Lines, stuck from/to as PDT times', () => {
    const rows = exportRows(base.devices, BASE.days * 24 * HOUR_MS);
    assert.equal(rows.length, BASE.devices);
    const stuck = rows.filter((r) => r.stuck);
    assert.equal(stuck.length, legacyStuck(base).length);
    assert.ok(stuck.length > 0, 'stuck.length > 0');
    for (const r of stuck) {
      assert.match(String(r.stuck_from), /^2019-05-\d\dT\d\d:\d\d:\d\d-07:00$/);
      if (r.stuck_to !== null) assert.ok(String(r.stuck_to) > String(r.stuck_from), 'String(r.stuck_to) > String(r.stuck_from)');
      else assert.equal(r.heal_mechanism, null);
      assert.equal(Number(r.events_delivered) + Number(r.events_lost) + Number(r.events_queued), r.events_published);
    }
    const csv = exportText('x.csv', rows).trimEnd().split('\n');
    assert.equal(csv[0], EXPORT_COLUMNS.join(','));
    assert.equal(csv.length, rows.length + 1);
    const jsonl = exportText('x.jsonl', rows).trimEnd().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(jsonl, rows);
  });

  it('--cache-back 24: the stuck legacy devices come back by themselves once the cache does, none by the malformed heal', async () => {
    const r = await runFleet(apply('cache-back', '24'));
    const back = BASE.timeline.crashAtMs + 24 * HOUR_MS;
    const stuck = legacyStuck(r);
    assert.ok(stuck.length > 0, 'stuck.length > 0');
    for (const d of stuck) {
      assert.equal(d.healedBy, 'cache-back', `device ${d.index}`);
      assert.ok(d.healedAtMs! >= back && d.healedAtMs! < back + 25 * HOUR_MS, `device ${d.index} at ${d.healedAtMs}`);
    }
    assert.match(r.result.timeline.map((e) => e.label).join('\n'), /what-if: the session cache comes back/);
  });

  it('--rollout never: the legacy devices stuck stay stuck; --rollout moves the heal to its first step', async () => {
    const never = await runFleet(apply('rollout', 'never'));
    const p = never.result.profiles[0];
    assert.equal(p.stuck.stillStuckAtEnd, p.stuck.devices);
    const late = await runFleet(apply('rollout', '9 12:00=1'));
    const healed = legacyStuck(late).filter((d) => d.healedBy === 'truncated-record');
    assert.ok(healed.length > 0, 'healed.length > 0');
    for (const d of healed) assert.ok(d.healedAtMs! >= may(9, 12), `device ${d.index}`);
    assert.throws(() => parseRollout('8 13:00=2'), /--rollout must be 'never' or steps/);
    assert.throws(() => parseRollout('8 13:00=1,7 16:00=0.1'), /in time order/);
  });

  it('--heal-delay 0: a quick sleeper is healed by the rollout instead of waiting for May 15; --quick-sleepers 1 makes every sleepy device one', async () => {
    const o = apply('quick-sleepers', '1', { ...BASE, days: 9 });
    for (let i = 0; i < o.devices; i++) {
      const d = deviceSpec(o, i);
      if (d.kind === 'sleepy') assert.equal(d.pattern, 'quick-sleeper');
    }
    const slow = await runFleet(o);
    const fast = await runFleet(apply('heal-delay', '0', o));
    const stuckSlow = legacyStuck(slow);
    assert.ok(stuckSlow.length > 0, 'stuckSlow.length > 0');
    for (const d of stuckSlow) assert.ok(d.healedAtMs === null || d.healedAtMs >= o.timeline.inlineHealAtMs, `device ${d.index}: the 5 s late heal reached a quick sleeper`);
    const healed = legacyStuck(fast).filter((d) => d.healedAtMs !== null);
    assert.ok(healed.length > 0, 'a heal without delay reaches quick sleepers');
    for (const d of healed) assert.equal(d.healedBy, 'truncated-record');
  });

  it('--update-window-share: 1 makes every sleepy device an update window (none asleep before the give-up sticks), 0 none; out of range names the range', async () => {
    const o = { ...BASE, devices: 24, days: 4 };
    const all = apply('update-window-share', '1', o);
    const none = apply('update-window-share', '0', o);
    const patterns = (x: FleetOptions) => Array.from({ length: x.devices }, (_, i) => deviceSpec(x, i)).filter((d) => d.kind === 'sleepy').map((d) => d.pattern);
    assert.ok(patterns(all).length > 0 && patterns(all).every((p) => p === 'update-window'), "patterns(all).length > 0 && patterns(all).every((p) => p === 'update-window')");
    assert.ok(!patterns(none).includes('update-window') && patterns(none).includes('publish-and-wait'), "!patterns(none).includes('update-window') && patterns(none).includes('publish-and-wait')");
    const [rAll, rNone] = [await runFleet(all), await runFleet(none)];
    // Whether a device sticks follows from its awake time against the 60 s give-up (docs/fleet.md).
    for (const d of legacyStuck(rAll)) assert.ok(deviceSpec(all, d.index).awakeMs < 95_000, `device ${d.index} awake ${deviceSpec(all, d.index).awakeMs} ms`);
    assert.ok(legacyStuck(rNone).length > legacyStuck(rAll).length, `stuck: share 0 → ${legacyStuck(rNone).length}, share 1 → ${legacyStuck(rAll).length}`);
    const bad = run('start', '--update-window-share', '1.5');
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--update-window-share must be a number 0\.\.1 \(got '1\.5'\)/);
  });

  it('--give-up 900: the always-connected devices (awake 120 s a round) are stuck too; out of range names the range', async () => {
    const o = apply('give-up', '900', { ...BASE, days: 4 });
    assert.equal(o.coapAckTimeoutMs, 60_000);
    const r = await runFleet(o);
    const ac = r.devices.get('legacy')!.filter((d) => d.kind === 'always-connected');
    assert.ok(ac.length > 0 && ac.every((d) => d.stuckWakes > 0), 'ac.length > 0 && ac.every((d) => d.stuckWakes > 0)');
    assert.ok(base.devices.get('legacy')!.filter((d) => d.kind === 'always-connected').every((d) => d.stuckWakes === 0), "base.devices.get('legacy')!.filter((d) => d.kind === 'always-connected').every((d) => d.stuckWake...");
    const bad = run('start', '--give-up', '5');
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /^sleepy-session: start: --give-up must be a number 15\.\.900 \(got '5'\)\n$/);
  });

  it('--compare: two runs side by side, with the options that differ', async () => {
    const b = await runFleet(apply('cache-back', '24'));
    assert.deepEqual(optionDiff(base.result, b.result), ['timeline.cacheBackAfterMs: – → 86400000']);
    const text = compareText(base.result, b.result, 'a.json', 'b.json');
    assert.match(text, /timeline\.cacheBackAfterMs: – → 86400000/);
    assert.match(text, /^legacy +A +\d+ \(\d+ %\)/m);
    const dir = mkdtempSync(join(tmpdir(), 'sleepy-compare-'));
    writeFileSync(join(dir, 'a.json'), JSON.stringify(base.result));
    writeFileSync(join(dir, 'b.json'), JSON.stringify(b.result));
    const cli = run('start', '--compare', join(dir, 'a.json'), join(dir, 'b.json'));
    assert.equal(cli.status, 0, cli.stderr);
    assert.equal(cli.stdout.trimEnd(), text.replace('a.json', join(dir, 'a.json')).replace('b.json', join(dir, 'b.json')));
    const page = run('start', '--compare', join(dir, 'a.json'), join(dir, 'b.json'), '--report', join(dir, 'cmp.html'));
    assert.equal(page.status, 0, page.stderr);
    const html = readFileSync(join(dir, 'cmp.html'), 'utf8');
    assert.equal((html.match(/<svg\b/g) ?? []).length, 1, 'devices stuck, A and B');
    assert.match(html, /timeline\.cacheBackAfterMs: – → 86400000/);
    const wrong = run('start', '--compare', join(dir, 'a.json'));
    assert.equal(wrong.status, 2);
    assert.match(wrong.stderr, /--compare takes two JSON files/);
  });

  it('--sweep and --export from the command line: a table per value and profile, a plotted page; the CSV', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sleepy-sweep-'));
    const r = run('start', '--devices', '4', '--days', '3', '--profile', 'legacy', '--seed', 'what-if', '--sweep', 'give-up=60,900', '--report', join(dir, 's.html'));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^Sweep of --give-up \(2 runs, 4 devices, 3 days each\)/);
    assert.match(r.stdout, /^60 +legacy /m);
    assert.match(r.stdout, /^900 +legacy +4 \(100 %\)/m);
    const html = readFileSync(join(dir, 's.html'), 'utf8');
    assert.equal((html.match(/<svg\b/g) ?? []).length, 2);
    assert.equal(JSON.parse(readFileSync(join(dir, 's.json'), 'utf8')).points.length, 2);
    const bad = run('start', '--sweep', 'colour=red,blue');
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--sweep must be PARAM=a,b,c with PARAM one of sleepy-share, /);
    const csv = join(dir, 'd.csv');
    const e = run('start', '--devices', '3', '--days', '1', '--profile', 'legacy,default', '--export', csv, '--report', join(dir, 'r.html'));
    assert.equal(e.status, 0, e.stderr);
    assert.match(e.stdout, /export: \S+d\.csv \(6 rows\)/);
    assert.equal(readFileSync(csv, 'utf8').trimEnd().split('\n').length, 7);
    const again = run('start', '--devices', '3', '--days', '1', '--export', csv, '--report', join(dir, 'r.html'));
    assert.equal(again.status, 2);
    assert.match(again.stderr, /--export: \S+d\.csv exists/);
  });
});
