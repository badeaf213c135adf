#!/usr/bin/env node
// Time-to-find of planted firmware bugs: do the targets and their invariants see them?
//   node fuzz/plant.mjs PLANT [--time S] [--target T] [--corpus-from REV]
// Copies the committed tree (git archive HEAD) to a temporary directory, applies the plant there
// (never in this tree), builds the firmware and the native targets from that copy, then fuzzes
// the target (fresh working corpus from fuzz/corpus + fuzz/regressions — or, with --corpus-from,
// the kept corpus of an older commit, which the current kept corpus may already make trivial —
// and the flags of run.mjs)
// until the first crash or S seconds (default 120). Prints the wall time from the fuzzer's start
// to the crash, the executions, and the crash's first line; exit 0 when found, 1 when not.
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Each plant: the file, the exact text, what it becomes, and the target expected to find it. */
export const PLANTS = {
  // The record-length check accepts one byte more than the datagram holds: an over-read inside
  // wasm memory (the byte after the datagram in the I/O buffer), invisible to ASan.
  'record-length': {
    file: 'assembly/dtls/record.ts',
    from: 'if (recBody + <usize>length > end) return C.C_DROP_LENGTH_BEYOND_DATAGRAM;',
    to: 'if (recBody + <usize>length > end + 1) return C.C_DROP_LENGTH_BEYOND_DATAGRAM;',
    target: 'datagram',
  },
  // publish refuses with 5 unconfirmed events (-3, outbox full) where 6 fit.
  'outbox-full': {
    file: 'assembly/session/session.ts',
    from: 'if (n >= P.OUTBOX_SLOTS) return ERR_OUTBOX_FULL;',
    to: 'if (n >= P.OUTBOX_SLOTS - 1) return ERR_OUTBOX_FULL;',
    target: 'datagram',
  },
  // A discarded session's keys stay in the RAM image of the slot (and so in the keyless record).
  'keys-kept': {
    file: 'assembly/session/session.ts',
    from: '  zeroize(s + P.SLOT_KEYS, P.SLOT_KEYS_BYTES);\n  zeroize(s + P.SLOT_RESET_TOKEN, 16);',
    to: '  zeroize(s + P.SLOT_RESET_TOKEN, 16);',
    target: 'datagram',
  },
  // boot refuses a record with a full outbox (6 events), which the firmware itself writes.
  'slot-refused': {
    file: 'assembly/session/persist.ts',
    from: 'if (n > OUTBOX_SLOTS) return false;',
    to: 'if (n >= OUTBOX_SLOTS) return false;',
    target: 'abi',
  },
};

function die(msg) {
  console.error(`fuzz/plant.mjs: ${msg}`);
  process.exit(2);
}

const argv = process.argv.slice(2);
const name = argv[0];
if (!PLANTS[name]) die(`usage: node fuzz/plant.mjs PLANT [--time S] [--target T]; plants: ${Object.keys(PLANTS).join(', ')}`);
const plant = PLANTS[name];
let seconds = 120, target = plant.target, corpusFrom = null;
for (let i = 1; i < argv.length; i++) {
  if (argv[i] === '--time') seconds = Number(argv[++i]);
  else if (argv[i] === '--corpus-from') corpusFrom = argv[++i] ?? die('--corpus-from needs a commit');
  else if (argv[i] === '--target') target = argv[++i];
  else die(`unknown argument '${argv[i]}'`);
}
if (!Number.isInteger(seconds) || seconds <= 0) die('--time needs a positive whole number of seconds');

const dir = mkdtempSync(join(tmpdir(), `plant-${name}-`));
const src = join(dir, 'src');
mkdirSync(src);
execFileSync('sh', ['-c', `git -C "${ROOT}" archive HEAD | tar -x -C "${src}"`]);
symlinkSync(join(ROOT, 'node_modules'), join(src, 'node_modules'));
const file = join(src, plant.file);
const text = readFileSync(file, 'utf8');
if (text.split(plant.from).length !== 2) die(`${plant.file}: the text to plant in is not there exactly once (the firmware changed: update PLANTS)`);
writeFileSync(file, text.replace(plant.from, plant.to));
// The named build (names kept) so that crashes name the firmware function.
const wasm = join(dir, 'planted.wasm');
execFileSync(join(src, 'node_modules/.bin/asc'), ['assembly/index.ts', '--target', 'release', '--debug', '-o', wasm], { cwd: src, stdio: 'inherit' });
const out = join(dir, 'fuzz');
execFileSync(process.execPath, [join(ROOT, 'fuzz/build.mjs'), '--wasm', wasm, '--out', out], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });

const work = join(dir, 'work');
const crashes = join(dir, 'crashes');
mkdirSync(work);
mkdirSync(crashes);
if (corpusFrom) {
  const old = join(dir, 'old');
  mkdirSync(old);
  execFileSync('sh', ['-c', `git -C "${ROOT}" archive "${corpusFrom}" fuzz/corpus/${target} | tar -x -C "${old}"`]);
  for (const f of readdirSync(join(old, 'fuzz/corpus', target))) copyFileSync(join(old, 'fuzz/corpus', target, f), join(work, f));
} else {
  for (const d of ['fuzz/corpus', 'fuzz/regressions'].map((x) => join(ROOT, x, target)).filter(existsSync))
    for (const f of readdirSync(d)) copyFileSync(join(d, f), join(work, `${d.split('/').at(-2)}_${f}`));
}
const args = [`-max_total_time=${seconds}`, '-timeout=10', `-artifact_prefix=${crashes}/`, '-use_value_profile=1',
  `-dict=${join(ROOT, 'fuzz/harness/dtls.dict')}`, work];
// Known open defects (fuzz/regressions/known-open.json) are suppressed: the plant is what is looked for.
const known = JSON.parse(readFileSync(join(ROOT, 'fuzz/regressions/known-open.json'), 'utf8')).open;
const suppress = known.filter((k) => k.target === target).map((k) => k.message).join('|');
console.log(`fuzz/plant.mjs: ${name} planted in ${plant.file}; fuzzing '${target}' up to ${seconds} s from the kept corpus${corpusFrom ? ` of ${corpusFrom}` : ''} (in ${dir})`);
const t0 = process.hrtime.bigint();
const child = spawn(join(out, `fuzz-${target}`), args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, FUZZ_SUPPRESS: suppress } });
let log = '', found = null, execs = 0, inited = null;
child.stderr.on('data', (b) => {
  log += b.toString();
  const at = Number(process.hrtime.bigint() - t0) / 1e9;
  if (inited === null && /INITED/.test(log)) inited = at;
  for (const m of log.matchAll(/^#(\d+)\s/gm)) execs = Number(m[1]);
  const crash = log.match(/^(INVARIANT: .*|==\d+==ERROR: .*)$/m);
  if (crash && !found) found = { at, line: crash[1] };
});
child.on('close', () => {
  if (found) {
    console.log(`fuzz/plant.mjs: ${name} FOUND by '${target}' after ${found.at.toFixed(1)} s (${inited !== null ? `${(found.at - inited).toFixed(1)} s after the seed corpus loaded, ` : ''}≈${execs} execs)\n  ${found.line}`);
    process.exit(0);
  }
  console.log(`fuzz/plant.mjs: ${name} NOT found by '${target}' in ${seconds} s (${execs} execs)`);
  process.exit(1);
});
