/**
 * A fleet worker: one engine, one firmware instance at a time, runs the partitions it is given
 * (run.ts) and posts their results back.
 */
import { parentPort } from 'node:worker_threads';
import { readFirmware } from '../../firmware.ts';
import type { Engine } from '../../engines/engine.ts';
import { V8Engine } from '../../engines/v8.ts';
import type { PartitionResult } from './outcome.ts';
import { PartitionRunner, type PartitionTask } from './partition.ts';
import { cloudSecretOf } from './run.ts';

export type ToWorker = { task: PartitionTask; engine: 'v8' | 'wasm3' } | { stop: true };
export type FromWorker = { ok: true; result: PartitionResult } | { ok: false; error: string } | { progress: number };

async function engineOf(name: 'v8' | 'wasm3'): Promise<Engine> {
  if (name === 'v8') return new V8Engine();
  const { Wasm3Engine } = await import('../../engines/wasm3/index.ts');
  return new Wasm3Engine();
}

const wasm = readFirmware();
parentPort!.on('message', async (m: ToWorker) => {
  if ('stop' in m) {
    parentPort!.close();
    return;
  }
  try {
    const engine = await engineOf(m.engine);
    const runner = new PartitionRunner(m.task, engine, wasm, cloudSecretOf(m.task.options.seed));
    runner.onProgress = (wakes) => parentPort!.postMessage({ progress: wakes } satisfies FromWorker);
    const result = await runner.run();
    parentPort!.postMessage({ ok: true, result } satisfies FromWorker);
  } catch (e) {
    parentPort!.postMessage({ ok: false, error: (e as Error).stack ?? String(e) } satisfies FromWorker);
  }
});
