// Finds the smallest wasm3 value stack on which build/session.wasm runs the whole conformance
// suite (every scenario and seed of test/host/conformance/, crypto and DTLS) plus the crypto
// workload exactly as V8 does, per scenario and overall, at 8-byte (one slot) granularity.
//
//   node --import tsx host/engines/wasm3/stack-probe.ts [path.wasm] [--addon path/to/wasm3.node]
//
// A development tool: it reuses the conformance scenarios (and their scripted DTLS peer) from
// test/, which product code never imports.
import { readFileSync } from 'node:fs';
import { V8Engine } from '../v8.ts';
import { cryptoWorkload } from './workload.ts';
import { DEFAULT_WASM3_STACK_BYTES, MEASURED_MIN_WASM3_STACK_BYTES, Wasm3Engine } from './index.ts';
import { SCENARIOS } from '../../../test/host/conformance/scenarios.ts';
import { runScenario, seedsOf } from '../../../test/host/conformance/run.ts';
import { checkParity, type Trace } from '../../../test/host/conformance/trace.ts';

const MIN_BYTES = 256;
const MAX_BYTES = 64 * 1024;

interface Probe {
  name: string;
  /** true when wasm3 with this stack matches V8 exactly, else why not. */
  passes(stackBytes: number): Promise<true | string>;
}

async function probes(wasm: Uint8Array, addonPath?: string): Promise<Probe[]> {
  const engine = (stackSizeBytes: number) => new Wasm3Engine({ stackSizeBytes, addonPath });
  const v8 = await new V8Engine().load(wasm);
  const expected = cryptoWorkload(v8).join('\n');
  v8.dispose();
  const out: Probe[] = [
    {
      name: 'crypto-workload (largest inputs)',
      async passes(bytes) {
        let inst;
        try {
          inst = await engine(bytes).load(wasm);
          return cryptoWorkload(inst).join('\n') === expected ? true : 'results differ from V8';
        } catch (e) {
          return (e as Error).message;
        } finally {
          inst?.dispose();
        }
      },
    },
  ];
  for (const scenario of SCENARIOS) {
    const seeds = seedsOf(scenario);
    const reference = new Map<number, Trace>();
    for (const seed of seeds) {
      const t = await runScenario(new V8Engine(), scenario, seed, wasm);
      if (t.error) throw new Error(`${scenario.name} seed ${seed} fails on V8 already: ${t.error}`);
      reference.set(seed, t);
    }
    out.push({
      name: `${scenario.name} (${seeds.length} seeds)`,
      async passes(bytes) {
        for (const seed of seeds) {
          const d = checkParity([reference.get(seed)!, await runScenario(engine(bytes), scenario, seed, wasm)]);
          if (d) return `seed ${seed}: ${d.other.step?.kind === 'error' ? String(d.other.step.fields?.message) : d.message.split('\n')[0]}`;
        }
        return true;
      },
    });
  }
  return out;
}

/** Smallest passing size by bisection (failure is monotonic in the stack size). */
async function smallest(p: Probe): Promise<{ bytes: number; failureBelow: string }> {
  let lo = MIN_BYTES;
  let hi = MAX_BYTES;
  const top = await p.passes(hi);
  if (top !== true) throw new Error(`${p.name}: fails even with ${hi} bytes: ${top}`);
  let failureBelow = String(await p.passes(lo));
  if (failureBelow === 'true') return { bytes: lo, failureBelow: '(passes at the minimum probed)' };
  while (hi - lo > 8) {
    const mid = ((lo + hi) >> 4) << 3;
    const r = await p.passes(mid);
    if (r === true) hi = mid;
    else [lo, failureBelow] = [mid, r];
  }
  return { bytes: hi, failureBelow };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const addonAt = args.indexOf('--addon');
  const addonPath = addonAt >= 0 ? args.splice(addonAt, 2)[1] : undefined;
  const wasm = readFileSync(args[0] ?? 'build/session-test.wasm');
  const all = await probes(wasm, addonPath);

  const whole = async (bytes: number): Promise<true | string> => {
    for (const p of all) {
      const r = await p.passes(bytes);
      if (r !== true) return `${p.name}: ${r}`;
    }
    return true;
  };
  console.log('whole suite on wasm3, by stack size:');
  for (const kib of [1, 2, 4, 6, 8, 16]) {
    const r = await whole(kib * 1024);
    console.log(`  ${String(kib).padStart(2)} KiB: ${r === true ? 'ok' : r}`);
  }
  console.log('\nsmallest wasm3 stack per scenario (bytes; what fails one slot below):');
  let max = 0;
  for (const p of all) {
    const { bytes, failureBelow } = await smallest(p);
    max = Math.max(max, bytes);
    console.log(`  ${String(bytes).padStart(6)}  ${p.name.padEnd(40)} ${failureBelow}`);
  }
  const check = await whole(max);
  if (check !== true) throw new Error(`the per-scenario maximum ${max} does not pass the whole suite: ${check}`);
  console.log(`\nsmallest stack that passes the whole suite: ${max} bytes (${(max / 1024).toFixed(2)} KiB)`);
  console.log(`recorded in host/engines/wasm3/index.ts: MEASURED_MIN_WASM3_STACK_BYTES = ${MEASURED_MIN_WASM3_STACK_BYTES}, DEFAULT_WASM3_STACK_BYTES = ${DEFAULT_WASM3_STACK_BYTES}`);
  if (!addonPath && max !== MEASURED_MIN_WASM3_STACK_BYTES) console.log('the firmware\'s stack need changed: update both constants and docs/engines.md');
  if (max > DEFAULT_WASM3_STACK_BYTES) process.exitCode = 1;
}

await main();
