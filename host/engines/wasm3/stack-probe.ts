// Finds the smallest wasm3 value stack on which build/session.wasm runs the whole crypto workload
// exactly as V8 does. Usage: node --import tsx host/engines/wasm3/stack-probe.ts [path.wasm]
import { readFileSync } from 'node:fs';
import { V8Engine } from '../v8.ts';
import { cryptoWorkload } from './workload.ts';
import { Wasm3Engine } from './index.ts';

async function main(): Promise<void> {
  const wasm = readFileSync(process.argv[2] ?? 'build/session.wasm');
  const v8 = await new V8Engine().load(wasm);
  const expected = cryptoWorkload(v8).join('\n');

  const passes = async (bytes: number): Promise<string | true> => {
    let inst;
    try {
      inst = await new Wasm3Engine({ stackSizeBytes: bytes }).load(wasm);
      return cryptoWorkload(inst).join('\n') === expected ? true : 'results differ from V8';
    } catch (e) {
      return (e as Error).message;
    } finally {
      inst?.dispose();
    }
  };

  for (const kib of [1, 2, 4, 8, 16, 32, 64]) {
    const r = await passes(kib * 1024);
    console.log(`${String(kib).padStart(2)} KiB: ${r === true ? 'ok' : r}`);
  }
  // Exact threshold, at 8-byte (one slot) granularity.
  let lo = 256;
  let hi = 64 * 1024;
  if ((await passes(hi)) !== true) throw new Error('fails even with 64 KiB');
  while (hi - lo > 8) {
    const mid = (lo + hi) >> 4 << 3;
    if ((await passes(mid)) === true) hi = mid;
    else lo = mid;
  }
  console.log(`smallest working stack: ${hi} bytes`);
}

await main();
