import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Engine, ModuleInstance } from './engines/engine.ts';
import { V8Engine } from './engines/v8.ts';

/**
 * Where `npm run build` puts the release module. SLEEPY_FIRMWARE points every host and test at
 * another build of it (the mutation check runs the tests against planted bugs this way).
 */
export const RELEASE_WASM = process.env.SLEEPY_FIRMWARE ?? fileURLToPath(new URL('../build/session.wasm', import.meta.url));
/** The same firmware plus test-only exports (crypto_*, selftest_trap): tests and benchmarks only. */
export const TEST_WASM = process.env.SLEEPY_TEST_FIRMWARE ?? fileURLToPath(new URL('../build/session-test.wasm', import.meta.url));

export function readFirmware(path = RELEASE_WASM): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new Error(`cannot read ${path}: run 'npm run build' first (${(e as Error).message})`);
  }
}

export async function loadFirmware(engine: Engine = new V8Engine(), path = RELEASE_WASM): Promise<ModuleInstance> {
  return engine.load(readFirmware(path));
}
