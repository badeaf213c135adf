/**
 * Runs conformance scenarios on an engine and returns their traces. A scenario is a seeded,
 * deterministic script over the module; it checks its own expectations (against node:crypto and
 * the scripted peer) and records every output, so that `checkParity` can compare engines.
 */
import type { Engine, ModuleInstance } from '../../../host/engines/engine.ts';
import { TEST_WASM, readFirmware } from '../../../host/firmware.ts';
import { SeededRandom } from './random.ts';
import { TraceRecorder, type Trace } from './trace.ts';
import { TracedClient, recordMemory } from './device.ts';

export interface ScenarioContext {
  readonly scenario: string;
  readonly seed: number;
  /** Randomness for this scenario and seed; fork it for independent streams (peer, payloads, ...). */
  readonly rng: SeededRandom;
  readonly trace: TraceRecorder;
  /** Loads the firmware on the engine under test (disposed when the scenario ends). */
  load(): Promise<ModuleInstance>;
  /**
   * A fresh module with a traced client, provisioned with `identity`/`psk` and seeded with 32
   * bytes of entropy from the seed (the firmware's only randomness).
   */
  client(identity: Uint8Array, psk: Uint8Array): Promise<TracedClient>;
}

export interface Scenario {
  name: string;
  /** What the scenario covers, one line. */
  covers: string;
  /** The seeds the conformance test runs (CONFORMANCE_SEEDS=n runs seeds 1..n instead). */
  seeds: readonly number[];
  run(ctx: ScenarioContext): Promise<void>;
}

/** The seeds to run a scenario with: its own list, or 1..CONFORMANCE_SEEDS when that is set. */
export function seedsOf(s: Scenario, env: string | undefined = process.env.CONFORMANCE_SEEDS): number[] {
  const n = Number(env);
  return env && Number.isInteger(n) && n > 0 ? Array.from({ length: n }, (_, i) => i + 1) : [...s.seeds];
}

let firmware: Uint8Array | undefined;

/** Runs one scenario with one seed on `engine`. Never throws: a failure ends the trace with an 'error' step. */
export async function runScenario(engine: Engine, scenario: Scenario, seed: number, wasm?: Uint8Array): Promise<Trace> {
  const bytes = wasm ?? (firmware ??= readFirmware(TEST_WASM));
  const trace = new TraceRecorder();
  const rng = SeededRandom.for(scenario.name, seed);
  const loaded: ModuleInstance[] = [];
  const load = async (): Promise<ModuleInstance> => {
    const m = await engine.load(bytes);
    loaded.push(m);
    return m;
  };
  const entropy = rng.fork('firmware-entropy');
  const ctx: ScenarioContext = {
    scenario: scenario.name,
    seed,
    rng,
    trace,
    load,
    client: async (identity, psk) => {
      const m = await load();
      const c = new TracedClient(m, trace);
      c.provision(identity, psk);
      c.seed(entropy.bytes(32));
      return c;
    },
  };
  let error: string | undefined;
  try {
    await scenario.run(ctx);
    // The end state of every module the scenario used: all 64 KiB, byte for byte.
    loaded.forEach((m, i) => recordMemory(trace, m, loaded.length > 1 ? `linear memory of module ${i + 1} at the end` : undefined));
  } catch (e) {
    error = e instanceof Error ? e.message : String(e);
    trace.record('error', 'scenario stopped', { fields: { message: error } });
  } finally {
    for (const m of loaded) m.dispose();
  }
  return { scenario: scenario.name, seed, engine: engine.name, steps: trace.steps, error };
}
