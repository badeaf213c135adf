// The fuzz corpora as regression tests (docs/fuzzing.md): every kept input of every native target
// runs once through the wasm2c + libFuzzer build with its invariants, and the same inputs, traced
// call by call, are replayed on V8 and wasm3, which must return the same values, produce the same
// bytes and leave the same memory. Then each target fuzzes for a short bounded time.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFirmware } from '../../host/firmware.ts';
import { replayTrace } from '../../fuzz/replay.ts';
import { writeSeeds } from '../../fuzz/seeds.ts';
import { opensslConversation } from '../../fuzz/openssl-seeds.ts';
import { opensslAvailable } from './openssl.ts';
import { fuzz as cloudFuzz } from '../../fuzz/cloud/target.ts';
import { ENGINES, skipOrFail } from './engines.ts';

const ROOT = join(import.meta.dirname, '../..');
const BUILD = join(ROOT, 'build/fuzz');
const TARGETS = ['datagram', 'abi', 'boot', 'coap'];
/** Seconds each target fuzzes in `npm test` (CI: the whole file stays under a minute on a loaded
 * 2-core machine); FUZZ_CI_SECONDS=0 turns it off locally, campaigns use `npm run fuzz`. */
const FUZZ_SECONDS = Number(process.env.FUZZ_CI_SECONDS ?? 2);
/** Inputs per target replayed on each other engine (the native run checks every one). */
const REPLAY_MAX = 250;
/**
 * Of those, at most this many start from an ECDHE snapshot (first byte 0xC0-0xFF: pick_mark in
 * fuzz/harness/common.h). A traced input replays its conversation from a fresh instance, and the
 * ECDHE one runs about six P-256 scalar multiplications on each engine (~0.2 s on V8 under load,
 * several times that on wasm3): the whole corpus's share would add minutes to CI.
 */
const REPLAY_MAX_ECDHE = 20;
/** libFuzzer's -timeout, as fuzz/run.mjs passes it: an input that runs this long is a hang. */
const TIMEOUT_S = 10;

interface Known {
  target: string;
  file: string;
  message: string;
  issue: string;
}
/** Firmware defects found by fuzzing and not fixed yet: their inputs must still fail, with this message. */
const KNOWN: Known[] = JSON.parse(readFileSync(join(ROOT, 'fuzz/regressions/known-open.json'), 'utf8')).open;

function toolsMissing(): string | null {
  for (const tool of ['wasm2c', 'clang']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} not installed (Debian: wabt, clang)`;
  }
  if (!existsSync('/usr/include/openssl/evp.h')) return 'OpenSSL headers not installed (Debian: libssl-dev)';
  return null;
}

function inputs(t: string): string[] {
  return ['fuzz/corpus', 'fuzz/regressions'].flatMap((d) => {
    const dir = join(ROOT, d, t);
    return existsSync(dir) ? readdirSync(dir).filter((f) => !f.startsWith('.')).map((f) => join(dir, f)) : [];
  });
}

function runOne(t: string, file: string, env: Record<string, string> = {}) {
  return spawnSync(join(BUILD, `fuzz-${t}`), [file], { encoding: 'utf8', env: { ...process.env, ...env } });
}

describe('fuzz corpora (native build, V8, wasm3)', () => {
  let missing: string | null = null;
  before(() => {
    missing = toolsMissing();
    if (missing) return;
    const r = spawnSync(process.execPath, [join(ROOT, 'fuzz/build.mjs')], { encoding: 'utf8' });
    assert.equal(r.status, 0, `fuzz/build.mjs failed:\n${r.stderr}`);
  });

  for (const t of TARGETS) {
    it(`${t}: every corpus and regression input keeps its invariants (known open defects still fail as recorded)`, (ctx) => {
      if (missing) return skipOrFail(ctx, missing);
      const all = inputs(t);
      assert.ok(all.length > 0, `no inputs for ${t}`);
      const failures: string[] = [];
      // One process for every input expected to pass (a process per input costs ~80 ms of start-up
      // each); only when that fails, and for the known open defects, one process per input.
      const open = new Set(KNOWN.filter((k) => k.target === t).map((k) => join(ROOT, k.file)));
      const batch = spawnSync(join(BUILD, `fuzz-${t}`), ['-runs=1', ...all.filter((f) => !open.has(f))], { encoding: 'utf8' });
      for (const f of batch.status === 0 ? all.filter((f) => open.has(f)) : all) {
        const rel = f.slice(ROOT.length + 1);
        const known = KNOWN.find((k) => k.target === t && k.file === rel);
        const r = runOne(t, f);
        const line = r.stderr.match(/^INVARIANT: .*$/m)?.[0] ?? (r.status === 0 ? '' : `exit ${r.status}`);
        if (known) {
          if (r.status === 0) failures.push(`${rel}: known defect (${known.issue}) no longer reproduces — fixed? move it out of fuzz/regressions/known-open.json`);
          else if (!line.includes(known.message)) failures.push(`${rel}: fails differently than recorded: ${line}`);
        } else if (r.status !== 0) failures.push(`${rel}: ${line}\n  reproduce: node fuzz/run.mjs repro ${t} ${rel}`);
      }
      assert.deepEqual(failures, []);
    });

    for (const e of ENGINES) {
      it(`${t}: corpus replayed on ${e.name} gives byte-identical results`, async (ctx) => {
        if (missing) return skipOrFail(ctx, missing);
        const engine = e.create();
        if ('skip' in engine) return skipOrFail(ctx, engine.skip);
        const open = new Set(KNOWN.filter((k) => k.target === t).map((k) => join(ROOT, k.file)));
        // At most REPLAY_MAX inputs per target and engine, evenly spread over the sorted corpus (the
        // replay costs ~20 ms an input under load; FUZZ_REPLAY_ALL=1 replays every one).
        const every = inputs(t).filter((f) => !open.has(f)).sort();
        const ecdhe = every.filter((f) => readFileSync(f)[0] >= 0xc0);
        const spread = (list: string[], max: number) => {
          const step = process.env.FUZZ_REPLAY_ALL ? 1 : Math.max(1, Math.ceil(list.length / max));
          return list.filter((_, i) => i % step === 0);
        };
        const files = [...spread(every.filter((f) => !ecdhe.includes(f)), REPLAY_MAX - REPLAY_MAX_ECDHE), ...spread(ecdhe, REPLAY_MAX_ECDHE)];
        const dir = mkdtempSync(join(tmpdir(), 'fuzz-trace-'));
        try {
          const trace = join(dir, 'trace');
          const r = spawnSync(join(BUILD, `fuzz-${t}`), ['-runs=1', ...files], { encoding: 'utf8', env: { ...process.env, FUZZ_TRACE: trace } });
          assert.equal(r.status, 0, r.stderr.slice(-2000));
          const result = await replayTrace(readFileSync(trace, 'utf8'), engine, readFirmware());
          assert.equal(result.mismatch, null);
          // libFuzzer also runs one warm-up input of its own before the files.
          assert.ok(result.inputs >= files.length, `${result.inputs} inputs traced for ${files.length} files`);
          assert.ok(result.calls > files.length * 10, `only ${result.calls} calls replayed`);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });
    }

    it(`${t}: fuzzes ${FUZZ_SECONDS} s without a new crash`, { skip: FUZZ_SECONDS === 0 ? 'FUZZ_CI_SECONDS=0' : false }, (ctx) => {
      if (missing) return skipOrFail(ctx, missing);
      const work = mkdtempSync(join(tmpdir(), `fuzz-${t}-`));
      {
        // Known open defects are suppressed so the short run looks for new ones.
        const suppress = KNOWN.filter((k) => k.target === t).map((k) => k.message).join('|');
        const r = spawnSync(join(BUILD, `fuzz-${t}`), [`-max_total_time=${FUZZ_SECONDS}`, `-timeout=${TIMEOUT_S}`, `-artifact_prefix=${work}/`,
          `-dict=${join(ROOT, 'fuzz/harness/dtls.dict')}`, work, join(ROOT, 'fuzz/corpus', t)],
        { encoding: 'utf8', env: { ...process.env, FUZZ_SUPPRESS: suppress } });
        const crash = r.stderr.match(/^INVARIANT: .*$|^==\d+==ERROR: .*$/m)?.[0];
        assert.equal(r.status, 0, `new crash: ${crash ?? r.stderr.slice(-1500)}\nsaved under ${work} (kept)`);
        rmSync(work, { recursive: true, force: true });
      }
    });
  }

  it('seeds regenerate from a fresh capture of the conversation and keep every invariant', async (ctx) => {
    if (missing) return skipOrFail(ctx, missing);
    const dir = mkdtempSync(join(tmpdir(), 'fuzz-seeds-'));
    try {
      const n = await writeSeeds(dir);
      assert.ok(n > 100, `${n} seeds`);
      for (const t of TARGETS) {
        const files = readdirSync(join(dir, t)).map((f) => join(dir, t, f));
        // A seed may hit a known open defect (its input is in fuzz/regressions): suppressed here.
        const suppress = KNOWN.filter((k) => k.target === t).map((k) => k.message).join('|');
        const r = spawnSync(join(BUILD, `fuzz-${t}`), ['-runs=1', ...files], { encoding: 'utf8', env: { ...process.env, FUZZ_SUPPRESS: suppress } });
        assert.equal(r.status, 0, `${t}: ${r.stderr.match(/^INVARIANT: .*$/m)?.[0] ?? r.stderr.slice(-1000)}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a conversation with openssl s_server gives datagram seeds that keep every invariant', async (ctx) => {
    if (missing) return skipOrFail(ctx, missing);
    const noOpenssl = opensslAvailable();
    if (noOpenssl) return skipOrFail(ctx, noOpenssl);
    const { fromServer } = await opensslConversation();
    assert.ok(fromServer.length >= 2, 'HelloVerifyRequest and the server flights');
    const dir = mkdtempSync(join(tmpdir(), 'fuzz-openssl-'));
    try {
      fromServer.forEach((d, i) => {
        const len = Buffer.from([d.length & 0xff, d.length >> 8]);
        writeFileSync(join(dir, `s${i}`), Buffer.concat([Buffer.from([1, 0]), len, d])); // from 'client-hello'
      });
      const r = spawnSync(join(BUILD, 'fuzz-datagram'), ['-runs=1', ...fromServer.map((_, i) => join(dir, `s${i}`))], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr.match(/^INVARIANT: .*$/m)?.[0] ?? r.stderr.slice(-1000));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('fuzz corpus of the cloud (Jazzer.js target)', () => {
  it('every corpus input runs through the core without an exception, internal error or unbounded table', async () => {
    const dir = join(ROOT, 'fuzz/corpus/cloud');
    const files = readdirSync(dir);
    assert.ok(files.length > 0, 'files.length > 0');
    for (const f of files) await cloudFuzz(readFileSync(join(dir, f)));
  });

  it('datagrams of every length up to 40 bytes keep the invariants', async () => {
    for (let n = 0; n <= 40; n++) await cloudFuzz(Buffer.concat([Buffer.from([0, 0, n, 0]), Buffer.alloc(n, 0x16)]));
  });

  it(`fuzzes ${FUZZ_SECONDS} s under Jazzer.js without a crash`, { skip: FUZZ_SECONDS === 0 ? 'FUZZ_CI_SECONDS=0' : false }, () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'fuzz/cloud/run.mjs'), '--time', String(FUZZ_SECONDS)], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout.slice(-1500) + r.stderr.slice(-1500));
    assert.match(r.stderr + r.stdout, /Done \d+ runs/);
  });
});

