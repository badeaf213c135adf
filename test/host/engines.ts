/** The engines every conformance test runs on. Each later engine registers itself here. */
import type { Engine } from '../../host/engines/engine.ts';
import { V8Engine } from '../../host/engines/v8.ts';
import { Wasm3Engine, wasm3Available } from '../../host/engines/wasm3/index.ts';

export interface EngineCase {
  name: string;
  /** Creates the engine, or returns a reason why it cannot run on this machine. */
  create(): Engine | { skip: string };
}

export const ENGINES: EngineCase[] = [
  { name: 'v8', create: () => new V8Engine() },
  {
    name: 'wasm3',
    create: () => (wasm3Available() ? new Wasm3Engine() : { skip: 'build/wasm3.node not built (npm run build:wasm3; needs cargo)' }),
  },
];

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
