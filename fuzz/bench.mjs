#!/usr/bin/env node
// npm run bench:fuzz [-- --time S]: executions per second of every fuzz target, each fuzzing for
// S seconds (default 20) from its kept corpus in a fresh working directory, one after the other.
// Prints a markdown table (BENCHMARKS.md records one run) and writes reports/fuzz-bench.json.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
let seconds = 20;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--time' && Number.isInteger(Number(args[i + 1])) && Number(args[i + 1]) > 0) seconds = Number(args[++i]);
  else {
    console.error(`bench:fuzz: unknown argument '${args[i]}' (allowed: --time S, S a positive whole number)`);
    process.exit(2);
  }
}
const build = spawnSync(process.execPath, [join(ROOT, 'fuzz/build.mjs')], { stdio: 'inherit' });
if (build.status !== 0) process.exit(1);

const rows = [];
for (const t of ['datagram', 'abi', 'boot', 'coap', 'cloud']) {
  const work = mkdtempSync(join(tmpdir(), `fuzz-bench-${t}-`));
  const r = t === 'cloud'
    ? spawnSync(process.execPath, [join(ROOT, 'fuzz/cloud/run.mjs'), '--time', String(seconds)], { encoding: 'utf8' })
    : spawnSync(join(ROOT, 'build/fuzz', `fuzz-${t}`), [`-max_total_time=${seconds}`, '-print_final_stats=1', `-artifact_prefix=${work}/`,
      `-dict=${join(ROOT, 'fuzz/harness/dtls.dict')}`, work, join(ROOT, 'fuzz/corpus', t)], { encoding: 'utf8' });
  rmSync(work, { recursive: true, force: true });
  const out = r.stdout + r.stderr;
  const execs = Number(out.match(/stat::number_of_executed_units:\s+(\d+)/)?.[1] ?? NaN);
  const secs = Number(out.match(/Done \d+ runs in (\d+) second/)?.[1] ?? NaN);
  rows.push({ target: t, engine: t === 'cloud' ? 'Jazzer.js (V8)' : 'wasm2c + libFuzzer, ASan+UBSan', execs, seconds: secs, execPerSec: Math.round(execs / secs) });
}
const base = rows[0].execPerSec;
console.log(`| target | engine | executions | s | exec/s | vs datagram |\n|---|---|---|---|---|---|`);
for (const r of rows) console.log(`| ${r.target} | ${r.engine} | ${r.execs.toLocaleString('en')} | ${r.seconds} | ${r.execPerSec.toLocaleString('en')} | ${(r.execPerSec / base).toFixed(2)} |`);
mkdirSync(join(ROOT, 'reports'), { recursive: true });
writeFileSync(join(ROOT, 'reports/fuzz-bench.json'), JSON.stringify({ seconds, rows }, null, 2));
