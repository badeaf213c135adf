/** The engines every conformance test runs on. Each later engine registers itself here. */
import type { Engine } from '../../host/engines/engine.ts';
import { V8Engine } from '../../host/engines/v8.ts';
import { Wasm3Engine, wasm3Available } from '../../host/engines/wasm3/index.ts';
import { McuEngine } from '../../host/mcu/engine.ts';
import { mcuUnavailable, type McuBuild } from '../../host/mcu/qemu.ts';
import { ModuleCrypto } from '../../host/crypto-abi.ts';
import { TEST_WASM, readFirmware } from '../../host/firmware.ts';

export interface EngineCase {
  name: string;
  /** Creates the engine, or returns a reason why it cannot run on this machine. */
  create(): Engine | { skip: string };
  /** Runs only seeds up to this one (an emulated engine is slow: a few seeds are enough). */
  maxSeed?: number;
}

export const ENGINES: EngineCase[] = [
  { name: 'v8', create: () => new V8Engine() },
  {
    name: 'wasm3',
    create: () => (wasm3Available() ? new Wasm3Engine() : { skip: 'build/wasm3.node not built (npm run build:wasm3; needs cargo)' }),
  },
];

/** The Cortex-M4 image in QEMU (mcu/, host/mcu/engine.ts), with wasm3 and with the wasm2c
 * baseline: every call crosses an emulated UART, so only the conformance suites run them, on
 * their first seeds. */
function mcuEngine(build: McuBuild, maxSeed: number): EngineCase {
  return {
    name: `mcu-${build}`,
    create: () => {
      const why = mcuUnavailable(build);
      return why ? { skip: why } : new McuEngine(build);
    },
    maxSeed,
  };
}
export const MCU_ENGINES: EngineCase[] = [mcuEngine('wasm3', 2), mcuEngine('wasm2c', 1)];

/** The engines a conformance run with `seed` compares. */
export function enginesForSeed(seed: number): EngineCase[] {
  return [...ENGINES, ...MCU_ENGINES].filter((e) => e.maxSeed === undefined || seed <= e.maxSeed);
}

/** CI is set the way CI services set it (true, 1, yes, …); unset, empty, "false" or "0" is a developer's machine. */
export function inCi(): boolean {
  const v = (process.env.CI ?? '').trim().toLowerCase();
  return v !== '' && v !== 'false' && v !== '0';
}

/** Outside CI a missing tool skips with a reason; in CI it fails the test. */
export function skipOrFail(t: { skip(msg: string): void }, reason: string): void {
  if (inCi()) throw new Error(`required in CI but unavailable: ${reason}`);
  t.skip(reason);
}

/** The test build (crypto_* exports) on this engine, or undefined after skipping (failing in CI) when it cannot run. */
export async function loadTestCrypto(engineCase: EngineCase, t: { skip(msg: string): void }): Promise<ModuleCrypto | undefined> {
  const engine = engineCase.create();
  if ('skip' in engine) {
    skipOrFail(t, engine.skip);
    return undefined;
  }
  return new ModuleCrypto(await engine.load(readFirmware(TEST_WASM)));
}
