#!/usr/bin/env node
// npm run fuzz -- TARGET [--time S] [--keep-going]   fuzz one target (native or `cloud`)
// node fuzz/run.mjs regress [TARGET...]                 run every corpus and regression input once
// node fuzz/run.mjs minimize TARGET                     merge the working corpus into fuzz/corpus/TARGET
// node fuzz/run.mjs repro TARGET FILE                   run one input (what a crash report prints)
//
// Native targets run build/fuzz/fuzz-TARGET (node fuzz/build.mjs builds them); the working corpus
// is build/fuzz/work/TARGET, seeded from fuzz/corpus/TARGET and fuzz/regressions/TARGET. Crashes
// land in build/fuzz/crashes/TARGET/ with a one-line reproduction command printed for each.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BUILD = join(ROOT, 'build/fuzz');
export const NATIVE = ['datagram', 'abi', 'boot', 'coap'];
const ALL = [...NATIVE, 'cloud'];
/** libFuzzer's -timeout (seconds per input) for every fuzzing run. */
export const TIMEOUT_S = 10;

function die(msg) {
  console.error(`fuzz: ${msg}`);
  process.exit(2);
}

function checkTarget(t) {
  if (!ALL.includes(t)) die(`unknown target '${t ?? ''}' (allowed: ${ALL.join(', ')})`);
}

function ensureBuilt(t) {
  if (t === 'cloud') return;
  const bin = join(BUILD, `fuzz-${t}`);
  const wasm = join(ROOT, 'build/session.wasm');
  if (!existsSync(wasm)) die("build/session.wasm missing: run 'npm run build' first");
  if (!existsSync(bin) || statSync(bin).mtimeMs < statSync(wasm).mtimeMs) {
    const r = spawnSync(process.execPath, [join(ROOT, 'fuzz/build.mjs')], { stdio: 'inherit' });
    if (r.status !== 0) die('fuzz/build.mjs failed');
  }
}

const dirsOf = (t) => [join(ROOT, 'fuzz/corpus', t), join(ROOT, 'fuzz/regressions', t)].filter(existsSync);

function files(dir) {
  return existsSync(dir) ? readdirSync(dir).filter((f) => !f.startsWith('.') && !f.endsWith('.md')).map((f) => join(dir, f)) : [];
}

/** The command that reproduces one input (printed with each crash). */
export function reproCommand(t, file) {
  return `node fuzz/run.mjs repro ${t} ${relative(ROOT, file)}`;
}

function fuzz(t, seconds, keepGoing) {
  ensureBuilt(t);
  if (t === 'cloud') {
    const r = spawnSync(process.execPath, [join(ROOT, 'fuzz/cloud/run.mjs'), '--time', String(seconds)], { stdio: 'inherit', cwd: ROOT });
    process.exit(r.status ?? 1);
  }
  const work = join(BUILD, 'work', t);
  const crashes = join(BUILD, 'crashes', t);
  mkdirSync(work, { recursive: true });
  mkdirSync(crashes, { recursive: true });
  for (const d of dirsOf(t)) for (const f of files(d)) {
    const dst = join(work, `${relative(ROOT, d).replace(/\//g, '_')}_${f.split('/').pop()}`);
    if (!existsSync(dst)) copyFileSync(f, dst);
  }
  const before = new Set(files(crashes));
  // An input runs in well under 100 ms; one that takes TIMEOUT_S is a hang (saved as timeout-*).
  const args = [`-max_total_time=${seconds}`, `-timeout=${TIMEOUT_S}`, `-artifact_prefix=${crashes}/`, '-print_final_stats=1', '-use_value_profile=1', `-dict=${join(ROOT, 'fuzz/harness/dtls.dict')}`];
  if (keepGoing) args.push('-fork=1', '-ignore_crashes=1', '-ignore_ooms=1', '-ignore_timeouts=1');
  args.push(work);
  console.log(`fuzz: ${t} for ${seconds} s (corpus ${relative(ROOT, work)}, crashes ${relative(ROOT, crashes)})`);
  // A private copy: rebuilding the targets must not swap the binary under a running (forking) fuzzer.
  const bin = join(BUILD, 'run', `fuzz-${t}-${process.pid}`);
  mkdirSync(dirname(bin), { recursive: true });
  copyFileSync(join(BUILD, `fuzz-${t}`), bin);
  const r = spawnSync(bin, args, { stdio: 'inherit' });
  rmSync(bin, { force: true });
  // libFuzzer also saves slow units there: reported, not crashes.
  const found = files(crashes).filter((f) => !before.has(f) && /\/(crash|leak|timeout|oom)-/.test(f));
  for (const f of found) console.log(`fuzz: crash saved: ${relative(ROOT, f)}\n  reproduce: ${reproCommand(t, f)}`);
  if (found.length > 0 || (r.status !== 0 && !keepGoing)) process.exit(1);
}

/** Runs inputs once each; returns the failures (file and the harness's message). */
export function runInputs(t, inputs, env = {}) {
  const failures = [];
  for (let i = 0; i < inputs.length; i += 200) {
    const batch = inputs.slice(i, i + 200);
    const r = spawnSync(join(BUILD, `fuzz-${t}`), ['-runs=1', ...batch], { encoding: 'utf8', env: { ...process.env, ...env } });
    if (r.status === 0) continue;
    // libFuzzer stops at the first failing input: run the batch one by one to name each.
    for (const f of batch) {
      const one = spawnSync(join(BUILD, `fuzz-${t}`), [f], { encoding: 'utf8', env: { ...process.env, ...env } });
      if (one.status !== 0) {
        const line = (one.stderr.match(/^(INVARIANT: .*|==\d+==ERROR: .*|.*runtime error: .*)$/m) ?? [`exit ${one.status}`])[0];
        failures.push({ file: f, message: line });
      }
    }
  }
  return failures;
}

function regress(targets) {
  let bad = 0;
  for (const t of targets) {
    checkTarget(t);
    if (t === 'cloud') continue;
    ensureBuilt(t);
    const inputs = dirsOf(t).flatMap(files);
    const failures = runInputs(t, inputs);
    console.log(`fuzz regress ${t}: ${inputs.length} inputs, ${failures.length} failing`);
    for (const f of failures) console.log(`  ${relative(ROOT, f.file)}: ${f.message}\n    reproduce: ${reproCommand(t, f.file)}`);
    bad += failures.length;
  }
  process.exit(bad ? 1 : 0);
}

function minimize(t) {
  checkTarget(t);
  if (t === 'cloud') {
    const r = spawnSync(process.execPath, [join(ROOT, 'fuzz/cloud/run.mjs'), '--minimize'], { stdio: 'inherit', cwd: ROOT });
    process.exit(r.status ?? 1);
  }
  ensureBuilt(t);
  const dst = join(ROOT, 'fuzz/corpus', t);
  const work = join(BUILD, 'work', t);
  if (!existsSync(work)) die(`no working corpus ${relative(ROOT, work)}: run 'npm run fuzz -- ${t}' first`);
  const fresh = join(BUILD, 'min', t);
  spawnSync('rm', ['-rf', fresh]);
  mkdirSync(fresh, { recursive: true });
  const r = spawnSync(join(BUILD, `fuzz-${t}`), ['-merge=1', fresh, dst, work], { stdio: 'inherit' });
  if (r.status !== 0) die('merge failed');
  spawnSync('rm', ['-rf', dst]);
  mkdirSync(dst, { recursive: true });
  for (const f of files(fresh)) copyFileSync(f, join(dst, f.split('/').pop()));
  console.log(`fuzz minimize ${t}: ${files(dst).length} inputs in ${relative(ROOT, dst)}`);
}

function repro(t, file) {
  checkTarget(t);
  if (!file || !existsSync(file)) die(`repro: input file '${file ?? ''}' not found`);
  if (t === 'cloud') {
    const r = spawnSync(process.execPath, [join(ROOT, 'fuzz/cloud/run.mjs'), '--repro', file], { stdio: 'inherit', cwd: ROOT });
    process.exit(r.status ?? 1);
  }
  ensureBuilt(t);
  const r = spawnSync(join(BUILD, `fuzz-${t}`), [file], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [cmd, ...rest] = process.argv.slice(2);
  if (cmd === 'regress') regress(rest.length ? rest : NATIVE);
  else if (cmd === 'minimize') minimize(rest[0]);
  else if (cmd === 'repro') repro(rest[0], rest[1]);
  else {
    const t = cmd;
    checkTarget(t);
    let seconds = 60, keepGoing = false;
    for (let i = 0; i < rest.length; i++) {
      if (rest[i] === '--time') {
        seconds = Number(rest[++i]);
        if (!Number.isInteger(seconds) || seconds <= 0) die(`--time: '${rest[i] ?? ''}' is not a positive whole number of seconds`);
      } else if (rest[i] === '--keep-going') keepGoing = true;
      else die(`unknown argument '${rest[i]}' (allowed: --time S, --keep-going)`);
    }
    fuzz(t, seconds, keepGoing);
  }
}
