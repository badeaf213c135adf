#!/usr/bin/env node
// npm run fuzz:coverage — which firmware functions and what share of their branches the kept
// corpora reach, measured with llvm source-based coverage over the wasm2c translation.
//
// Function names: the module is translated from a release build that keeps its name section
// (asc --target release --debug); the check below proves that build is byte-identical to
// build/session.wasm once the names are stripped, so the coverage is that of the shipped code.
// The denominator is every firmware function statically reachable (call graph of the generated C)
// from every export of the module; the share over the functions reachable from handle_datagram,
// boot and handle_timeout alone (the figure reported before issue 17) is printed too.
//
// Writes reports/fuzz-coverage.json; prints the summary and the functions not reached.
// --with-work: count the working corpora of build/fuzz/work too (before minimizing them in).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { namedTwin } from './wasm2c-patch.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(ROOT, 'build/fuzz/cov');
const RUNTIME_DIR = '/usr/share/wabt/wasm2c';
const TARGETS = ['datagram', 'abi', 'boot', 'coap'];
const PACKET_ROOTS = ['handle_datagram', 'boot', 'handle_timeout'];

function die(msg) {
  console.error(`fuzz:coverage: ${msg}`);
  process.exit(2);
}
const cli = process.argv.slice(2);
const withWork = cli.includes('--with-work');
for (const a of cli) if (a !== '--with-work') die(`unknown argument '${a}' (allowed: --with-work: also the working corpora in build/fuzz/work)`);
for (const tool of ['wasm2c', 'wasm-strip', 'clang', 'llvm-profdata', 'llvm-cov']) {
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) die(`${tool} not found (Debian packages: wabt, clang, llvm)`);
}
const shipped = join(ROOT, 'build/session.wasm');
if (!existsSync(shipped)) die("build/session.wasm missing: run 'npm run build' first");
mkdirSync(OUT, { recursive: true });
const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 28, ...opts });

// 1. the named twin of the shipped module, proven identical to it
const named = namedTwin(ROOT, OUT, shipped) ?? die('the named build differs from build/session.wasm beyond its name section: rebuild (npm run build)');

// 2. translate, build every target with coverage, run its kept inputs
run('wasm2c', [named, '-n', 'session', '-o', join(OUT, 'session.c')]);
// the snapshot transcripts and key material come from the fuzz build (node fuzz/build.mjs)
if (!existsSync(join(ROOT, 'build/fuzz/transcripts.h'))) run(process.execPath, ['fuzz/build.mjs'], { stdio: 'inherit' });
const flags = ['-g', '-O0', '-I', OUT, '-I', join(ROOT, 'build/fuzz'), '-I', RUNTIME_DIR, '-DWASM_RT_MEMCHECK_SIGNAL_HANDLER=0', '-D_GNU_SOURCE',
  '-fprofile-instr-generate', '-fcoverage-mapping'];
run('clang', [...flags, '-fsanitize=fuzzer-no-link', '-c', join(OUT, 'session.c'), '-o', join(OUT, 'session.o')]);
run('clang', [...flags, '-c', join(RUNTIME_DIR, 'wasm-rt-impl.c'), '-o', join(OUT, 'wasm-rt-impl.o')]);
const profiles = [];
const known = JSON.parse(readFileSync(join(ROOT, 'fuzz/regressions/known-open.json'), 'utf8')).open;
for (const t of TARGETS) {
  const bin = join(OUT, `cov-${t}`);
  run('clang', [...flags, '-fsanitize=fuzzer', join(ROOT, 'fuzz/harness', `${t}.c`), join(OUT, 'session.o'), join(OUT, 'wasm-rt-impl.o'), '-o', bin, '-lcrypto', '-lm']);
  const dirs = ['fuzz/corpus', 'fuzz/regressions', ...(withWork ? ['build/fuzz/work'] : [])].map((d) => join(ROOT, d, t)).filter(existsSync);
  // Known-open defects abort by design; suppressed here so one process runs every input.
  const suppress = known.filter((k) => k.target === t).map((k) => k.message).join('|');
  for (const f of readdirSync(OUT).filter((x) => x.startsWith(`${t}-`) && x.endsWith('.profraw'))) rmSync(join(OUT, f));
  // -runs=0 over the directories: every input executes once, nothing is mutated.
  const r = spawnSync(bin, ['-runs=0', ...dirs], { env: { ...process.env, FUZZ_SUPPRESS: suppress, LLVM_PROFILE_FILE: join(OUT, `${t}-%p.profraw`) }, encoding: 'utf8' });
  if (r.status !== 0) die(`${t}: an input failed under coverage: ${r.stderr.match(/^INVARIANT: .*$/m)?.[0] ?? r.stderr.slice(-500)}`);
  profiles.push(...readdirSync(OUT).filter((f) => f.startsWith(`${t}-`) && f.endsWith('.profraw')).map((f) => join(OUT, f)));
}
const profdata = join(OUT, 'all.profdata');
run('llvm-profdata', ['merge', '-sparse', '-o', profdata, ...profiles]);
const exported = JSON.parse(run('llvm-cov', ['export', join(OUT, 'cov-datagram'), ...TARGETS.slice(1).flatMap((t) => ['-object', join(OUT, `cov-${t}`)]),
  `-instr-profile=${profdata}`, '-skip-expansions']).toString());

// 3. static call graph of the firmware from the generated C
const c = readFileSync(join(OUT, 'session.c'), 'utf8');
const defs = [...c.matchAll(/^static [\w ]+?\b(w2c_\w+)\((?:Z_session_instance_t\* instance|void)[^;{]*\) \{$/gm)];
const calls = new Map();
for (let i = 0; i < defs.length; i++) {
  const body = c.slice(defs[i].index, i + 1 < defs.length ? defs[i + 1].index : c.length);
  calls.set(defs[i][1], new Set([...body.matchAll(/\b(w2c_\w+)\(/g)].map((m) => m[1]).filter((n) => n !== defs[i][1])));
}
const exportTarget = (name) => c.match(new RegExp(`Z_sessionZ_${name}\\([^)]*\\) \\{\\n\\s*(?:return )?(w2c_\\w+)\\(`))?.[1];
// Every export that is a function (the memory export is not).
const ROOTS = [...c.matchAll(/^\w+ Z_sessionZ_(\w+)\(Z_session_instance_t\* instance[^)]*\) \{$/gm)].map((m) => m[1]).filter((n) => exportTarget(n));
for (const r of PACKET_ROOTS) if (!ROOTS.includes(r)) die(`export ${r} not found in the translation`);
function reachableFrom(roots) {
  const seen = new Set();
  const stack = roots.map((r) => exportTarget(r));
  while (stack.length) {
    const f = stack.pop();
    if (seen.has(f) || !calls.has(f)) continue;
    seen.add(f);
    stack.push(...calls.get(f));
  }
  return seen;
}
const reachable = reachableFrom(ROOTS);
const packetReachable = reachableFrom(PACKET_ROOTS);

// Branches wasm2c itself inserts to give wasm's semantics: the call-depth check of every function
// (FUNC_PROLOGUE) and the trap checks of division, remainder and float truncation. Taking one is a
// trap, i.e. a crash the fuzzers would have reported; they are counted apart from the firmware's.
const lines = c.split('\n');
// Such branches sit in the bodies of wasm2c's macros (lines ending in a backslash, or TRAP).
const isGuard = (line) => /\\\s*$|TRAP\(|wasm_rt_call_stack_depth/.test(lines[line - 1] ?? '');
// 4. per function: reached?, branch outcomes covered
const byName = new Map();
const guards = { total: 0, taken: 0 };
for (const fn of exported.data[0].functions) {
  const name = fn.name.replace(/^.*:/, '');
  if (!reachable.has(name)) continue;
  const prev = byName.get(name) ?? { count: 0, branches: new Map() };
  prev.count += fn.count;
  for (const b of fn.branches ?? []) {
    if (isGuard(b[0])) {
      guards.total += 2;
      guards.taken += (b[4] > 0 ? 1 : 0) + (b[5] > 0 ? 1 : 0);
      continue;
    }
    const key = b.slice(0, 4).join(':');
    const [t0, f0] = prev.branches.get(key) ?? [0, 0];
    prev.branches.set(key, [t0 + b[4], f0 + b[5]]);
  }
  byName.set(name, prev);
}
const pretty = (n) => n.replace(/^w2c_/, '').replace(/^assembly_/, '').replace(/_(\w+)$/, '.$1');
let outcomes = 0, covered = 0, packetOutcomes = 0, packetCovered = 0;
const functions = [...reachable].sort().map((name) => {
  const f = byName.get(name) ?? { count: 0, branches: new Map() };
  let o = 0, cv = 0;
  for (const [t, fl] of f.branches.values()) {
    o += 2;
    cv += (t > 0 ? 1 : 0) + (fl > 0 ? 1 : 0);
  }
  outcomes += o;
  covered += cv;
  if (packetReachable.has(name)) packetOutcomes += o, packetCovered += cv;
  return { name: pretty(name), calls: f.count, branchOutcomes: o, covered: cv };
});
const reached = functions.filter((f) => f.calls > 0);
const summary = {
  roots: ROOTS,
  reachableFunctions: functions.length,
  reachedFunctions: reached.length,
  branchOutcomes: outcomes,
  branchOutcomesCovered: covered,
  branchShare: outcomes ? covered / outcomes : 1,
  packetRoots: PACKET_ROOTS,
  packetReachableFunctions: packetReachable.size,
  packetBranchOutcomes: packetOutcomes,
  packetBranchOutcomesCovered: packetCovered,
  runtimeGuardOutcomes: guards.total,
  runtimeGuardOutcomesTaken: guards.taken,
};
mkdirSync(join(ROOT, 'reports'), { recursive: true });
writeFileSync(join(ROOT, 'reports/fuzz-coverage.json'), JSON.stringify({ summary, functions }, null, 2));
console.log(`fuzz:coverage: ${reached.length}/${functions.length} functions reachable from the ${ROOTS.length} exports reached; ` +
  `firmware branches ${covered}/${outcomes} outcomes = ${(100 * summary.branchShare).toFixed(1)}% ` +
  `(besides ${guards.total} outcomes of wasm2c's own trap checks, ${guards.taken} taken: the never-trapping side)`);
console.log(`fuzz:coverage: from ${PACKET_ROOTS.join(', ')} alone: ${packetReachable.size} functions, firmware branches ` +
  `${packetCovered}/${packetOutcomes} = ${(100 * packetCovered / (packetOutcomes || 1)).toFixed(1)}%`);
for (const f of functions.filter((x) => x.calls === 0)) console.log(`  not reached: ${f.name}`);
for (const f of functions.filter((x) => x.calls > 0 && x.covered < x.branchOutcomes).sort((a, b) => (b.branchOutcomes - b.covered) - (a.branchOutcomes - a.covered)).slice(0, 15)) {
  console.log(`  ${f.name}: ${f.covered}/${f.branchOutcomes} branch outcomes`);
}
console.log('fuzz:coverage: per function in reports/fuzz-coverage.json');
