/**
 * The fleet replay: every profile's fleet split into one partition per worker thread, the
 * partitions run in a pool (each worker one firmware instance at a time), merged and summarized.
 */
import crypto from 'node:crypto';
import { Worker } from 'node:worker_threads';
import type { Profile } from '../../session-abi.ts';
import { mergePartitions, type CapturedDatagram, type DeviceOutcome, type PartitionResult } from './outcome.ts';
import type { PartitionTask } from './partition.ts';
import type { FleetOptions } from './spec.ts';
import { summarizeFleet, type FleetResult } from './summary.ts';
import type { FromWorker, ToWorker } from './worker-main.ts';

const WORKER = new URL('./worker.mjs', import.meta.url);

/** The cloud secret every worker's cloud shares (cookies and reset tokens derive from it). */
export function cloudSecretOf(seed: string): Buffer {
  return crypto.createHash('sha256').update(`fleet/${seed}/cloud-secret`).digest();
}

export interface FleetRunExtras {
  /** Index of the device whose wakes are recorded (`--trace`). */
  traceIndex?: number | null;
  /** Datagrams of devices with an index below this are captured (`--pcap-devices`). */
  captureBelow?: number;
  /** Called with the wakes done, every 500 wakes of each worker (benchmarks). */
  onWakes?: (wakes: number) => void;
}

export interface FleetRun {
  result: FleetResult;
  /** Per profile, the captured datagrams in time order. */
  captures: Map<Profile, CapturedDatagram[]>;
  /** Per profile, every device's outcome (index order). */
  devices: Map<Profile, DeviceOutcome[]>;
}

export async function runFleet(o: FleetOptions, extras: FleetRunExtras = {}): Promise<FleetRun> {
  const t0 = performance.now();
  const { workers: workerCount, ...options } = o;
  const parts = Math.max(1, workerCount);
  const tasks: PartitionTask[] = [];
  for (const profile of o.profiles) {
    for (let k = 0; k < parts; k++) {
      const indices: number[] = [];
      for (let i = k; i < o.devices; i += parts) indices.push(i);
      if (indices.length === 0) continue;
      tasks.push({ options, profile, indices, traceIndex: extras.traceIndex ?? null, captureBelow: extras.captureBelow ?? 0 });
    }
  }
  const results = await runPool(tasks, parts, o.engine, extras.onWakes);
  const byProfile = new Map<Profile, PartitionResult>();
  const captures = new Map<Profile, CapturedDatagram[]>();
  const devices = new Map<Profile, DeviceOutcome[]>();
  for (const profile of o.profiles) {
    const merged = mergePartitions(results.filter((r) => r.profile === profile));
    captures.set(profile, merged.capture);
    devices.set(profile, merged.devices);
    merged.capture = [];
    byProfile.set(profile, merged);
  }
  const wallMs = performance.now() - t0;
  const traceDevice = extras.traceIndex !== null && extras.traceIndex !== undefined ? `dev-${String(extras.traceIndex).padStart(6, '0')}` : null;
  return { result: summarizeFleet(byProfile, o, o.engine, wallMs, traceDevice), captures, devices };
}

/** Runs the tasks on `n` worker threads, one task per worker at a time. */
async function runPool(tasks: PartitionTask[], n: number, engine: 'v8' | 'wasm3', onWakes?: (wakes: number) => void): Promise<PartitionResult[]> {
  const results: PartitionResult[] = new Array(tasks.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(n, tasks.length) }, () => new Worker(WORKER));
  try {
    await Promise.all(workers.map((w) => new Promise<void>((resolve, reject) => {
      let current = -1;
      const give = (): void => {
        if (next >= tasks.length) {
          current = -1;
          w.postMessage({ stop: true } satisfies ToWorker);
          resolve();
          return;
        }
        current = next++;
        w.postMessage({ task: tasks[current], engine } satisfies ToWorker);
      };
      w.on('message', (m: FromWorker) => {
        if ('progress' in m) {
          onWakes?.(m.progress);
        } else if (!m.ok) {
          reject(new Error(`fleet worker failed: ${m.error}`));
        } else {
          results[current] = m.result;
          give();
        }
      });
      w.once('error', reject);
      w.once('exit', (code) => {
        if (current >= 0) reject(new Error(`fleet worker exited (code ${code}) in the middle of a partition`));
      });
      give();
    })));
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return results;
}
