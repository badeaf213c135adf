#!/usr/bin/env node
// The `cloud` target under Jazzer.js: bundles fuzz/cloud/target.ts (and the cloud it imports)
// into one CommonJS file Jazzer instruments, then fuzzes it.
//   node fuzz/cloud/run.mjs --time S      fuzz; crashes in build/fuzz/crashes/cloud/
//   node fuzz/cloud/run.mjs --regress     run every input of fuzz/corpus/cloud once (no Jazzer)
//   node fuzz/cloud/run.mjs --repro FILE  run one input (no Jazzer)
//   node fuzz/cloud/run.mjs --minimize    merge the working corpus into fuzz/corpus/cloud
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jazzerEnv } from './jazzer-compat.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const BUILD = join(ROOT, 'build/fuzz');
const BUNDLE = join(BUILD, 'cloud-target.cjs');
const CORPUS = join(ROOT, 'fuzz/corpus/cloud');

function die(msg) {
  console.error(`fuzz cloud: ${msg}`);
  process.exit(2);
}

async function bundle() {
  const esbuild = await import('esbuild');
  mkdirSync(BUILD, { recursive: true });
  await esbuild.build({ entryPoints: [join(ROOT, 'fuzz/cloud/target.ts')], bundle: true, platform: 'node', format: 'cjs', target: 'node20', outfile: BUNDLE, logLevel: 'warning' });
}

async function runInputs(files) {
  await bundle();
  const { createRequire } = await import('node:module');
  const { fuzz } = createRequire(import.meta.url)(BUNDLE);
  const failures = [];
  for (const f of files) {
    try {
      await fuzz(readFileSync(f));
    } catch (e) {
      failures.push(`${relative(ROOT, f)}: ${e.message}`);
    }
  }
  return failures;
}

const args = process.argv.slice(2);
if (args[0] === '--repro' || args[0] === '--regress') {
  const files = args[0] === '--repro' ? [args[1]] : readdirSync(CORPUS).map((f) => join(CORPUS, f));
  if (files.some((f) => !f || !existsSync(f))) die(`input '${args[1] ?? ''}' not found`);
  const failures = await runInputs(files);
  console.log(`fuzz cloud: ${files.length} inputs, ${failures.length} failing`);
  for (const f of failures) console.log(`  ${f}`);
  process.exit(failures.length ? 1 : 0);
}
if (args[0] === '--minimize') {
  // Merge the working corpus into fuzz/corpus/cloud, keeping only inputs that add coverage.
  await bundle();
  const work = join(BUILD, 'work/cloud');
  const fresh = join(BUILD, 'min/cloud');
  rmSync(fresh, { recursive: true, force: true });
  mkdirSync(fresh, { recursive: true });
  const r = spawnSync(join(ROOT, 'node_modules/.bin/jazzer'), [BUNDLE, fresh, CORPUS, ...(existsSync(work) ? [work] : []), '-i', 'cloud-target', '--', '-merge=1'],
    { stdio: 'inherit', env: { ...process.env, ...jazzerEnv(BUILD) } });
  if (r.status !== 0) die('merge failed');
  rmSync(CORPUS, { recursive: true, force: true });
  mkdirSync(CORPUS, { recursive: true });
  for (const f of readdirSync(fresh)) copyFileSync(join(fresh, f), join(CORPUS, f));
  console.log(`fuzz cloud: ${readdirSync(CORPUS).length} inputs in ${relative(ROOT, CORPUS)}`);
  process.exit(0);
}
let seconds = 60;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--time') {
    seconds = Number(args[++i]);
    if (!Number.isInteger(seconds) || seconds <= 0) die(`--time: '${args[i] ?? ''}' is not a positive whole number of seconds`);
  } else die(`unknown argument '${args[i]}' (allowed: --time S, --regress, --repro FILE)`);
}
await bundle();
const work = join(BUILD, 'work/cloud');
const crashes = join(BUILD, 'crashes/cloud');
mkdirSync(work, { recursive: true });
mkdirSync(crashes, { recursive: true });
const jazzer = join(ROOT, 'node_modules/.bin/jazzer');
const r = spawnSync(jazzer, [BUNDLE, work, CORPUS, '-i', 'cloud-target', '--', `-max_total_time=${seconds}`, '-timeout=10', `-artifact_prefix=${crashes}/`, '-print_final_stats=1'],
  { stdio: 'inherit', env: { ...process.env, ...jazzerEnv(BUILD) } });
if (r.status !== 0) {
  const found = readdirSync(crashes).map((f) => join(crashes, f));
  for (const f of found) console.log(`fuzz cloud: crash saved: ${relative(ROOT, f)}\n  reproduce: node fuzz/run.mjs repro cloud ${relative(ROOT, f)}`);
}
process.exit(r.status ?? 1);
