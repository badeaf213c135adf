/**
 * What a fleet partition holds after a replay (`npm run bench:fleet-memory`): one partition of
 * FLEET_MEM_DEVICES devices (default 2,000, PSK, legacy) run in this thread for 3, 7 and 14 days
 * (FLEET_MEM_DAYS), heap used after a full GC, per device. Side by side so the growth with days
 * shows; the cloud's event claims live 7 days.
 */
import { PartitionRunner } from '../host/sim/fleet/partition.ts';
import { cloudSecretOf } from '../host/sim/fleet/run.ts';
import { DEFAULT_FLEET } from '../host/sim/fleet/spec.ts';
import { V8Engine } from '../host/engines/v8.ts';
import { readFirmware } from '../host/firmware.ts';
import { fmt, table } from './lib.ts';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc (npm run bench:fleet-memory does)');
const devices = Number(process.env.FLEET_MEM_DEVICES ?? 2000);
const daysList = (process.env.FLEET_MEM_DAYS ?? '3,7,14').split(',').map(Number);
const wasm = readFirmware();

/** The partition being measured (a module variable, so no optimisation can drop it before the GC). */
let measured: PartitionRunner | null = null;

/** Runs one partition; returns what it holds once run (measured while it is still reachable). */
async function measure(days: number): Promise<{ wakes: number; seconds: number; heldBytes: number }> {
  const { workers: _workers, ...options } = { ...DEFAULT_FLEET, devices, days, suite: 'psk' as const, seed: 'bench-fleet-memory' };
  gc!();
  const before = process.memoryUsage().heapUsed;
  const started = performance.now();
  const runner = new PartitionRunner({ options, profile: 'legacy', indices: Array.from({ length: devices }, (_, i) => i), traceIndex: null, captureBelow: 0 }, new V8Engine(), wasm, cloudSecretOf(options.seed));
  const result = await runner.run();
  const seconds = (performance.now() - started) / 1000;
  measured = runner; // reachable through the GC below: its heap is what is measured
  gc!();
  const heldBytes = process.memoryUsage().heapUsed - before;
  measured = null;
  return { wakes: result.wakes, seconds, heldBytes };
}

// A warm-up first (not reported): compiled code and the modules' one-time state are not the partition's.
await measure(0.5);
const rows: (string | number)[][] = [];
let first = 0;
for (const days of daysList) {
  const m = await measure(days);
  if (!first) first = m.heldBytes;
  console.log(`  ${days} d: ${fmt(m.wakes)} wakes in ${m.seconds.toFixed(1)} s, ${(m.heldBytes / 2 ** 20).toFixed(1)} MiB held`);
  rows.push([String(days), fmt(m.wakes), m.seconds.toFixed(1), `${(m.heldBytes / 2 ** 20).toFixed(1)} MiB`, `${fmt(m.heldBytes / devices / 1024)} KiB`, `${(m.heldBytes / first).toFixed(2)}×`]);
}
console.log(`\nOne fleet partition (${devices.toLocaleString('en-US')} devices, legacy, PSK): heap held after the replay (full GC)`);
console.log(table(['days', 'wakes', 'seconds', 'heap held', 'per device', `vs ${daysList[0]} days`], rows));
