// Lifecycle conformance: the incident replay (cloud wipe, heals, three profiles) run on every
// engine with the same seed must give byte-identical datagrams, persisted writes and events
// (the Cortex-M4 image in QEMU included: MCU_ENGINES in engines.ts).
import { describe, it } from 'node:test';
import { DEFAULT_INCIDENT } from '../../host/sim/incident.ts';
import { World } from '../../host/sim/world.ts';
import { startWakeCycle } from '../../host/sim/wake-cycle.ts';
import { PROFILES } from '../../host/session-abi.ts';
import type { Engine } from '../../host/engines/engine.ts';
import { enginesForSeed, skipOrFail } from './engines.ts';
import { assertParity, type Step, type Trace } from './conformance/trace.ts';

const MIN = 60_000;

async function lifecycleTrace(seed: number, engineName: string, engine: () => Engine): Promise<Trace> {
  const steps: Step[] = [];
  const world = new World({ seed: `conformance-${seed}` });
  const devices = await world.addDevices(PROFILES.map((p) => ({ id: `dev-${p}`, identity: `id-${p}`, profile: p, engine: engine() })));
  devices.forEach((d, i) => {
    const apply = d.board.memory.apply.bind(d.board.memory);
    d.board.memory.apply = (w) => {
      steps.push({ kind: 'store', what: `${d.opts.id} store @${w.offset}`, bytes: Uint8Array.from(w.bytes) });
      apply(w);
    };
    d.opts.onEvent = (e, atMs) => steps.push({ kind: 'event', what: `${d.opts.id} t=${atMs} ${JSON.stringify(e)}` });
    startWakeCycle(world, d, { wakeEveryMs: 15 * MIN, appAwakeMs: DEFAULT_INCIDENT.appAwakeMs, publishEveryWake: true }, i * 1000);
  });
  await world.runUntil(40 * MIN);
  await world.store.wipe();
  await world.runUntil(100 * MIN);
  world.cloud.heal.malformed = true;
  await world.runUntil(140 * MIN);
  for (const u of world.uplink) steps.push({ kind: 'tx', what: `${u.from} t=${u.atMs}`, bytes: u.data });
  return { scenario: 'lifecycle-incident', seed, engine: engineName, steps };
}

describe('lifecycle conformance on every engine', () => {
  for (const seed of [1, 2]) {
    it(`incident replay, seed ${seed}: identical datagrams, persisted writes and events`, async (t) => {
      const traces: Trace[] = [];
      for (const e of enginesForSeed(seed)) {
        const probe = e.create();
        if ('skip' in probe) return skipOrFail(t, probe.skip);
        traces.push(await lifecycleTrace(seed, e.name, () => e.create() as Engine));
      }
      for (const tr of traces) {
        for (const kind of ['store', 'event', 'tx'] as const) {
          if (!tr.steps.some((x) => x.kind === kind)) throw new Error(`${tr.engine}: no ${kind} steps recorded`);
        }
      }
      assertParity(traces);
    });
  }
});
