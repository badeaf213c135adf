// V8Engine's reset(): one instance returned to its just-started state instead of a new instance per
// wake (the fleet replay's biggest cost). A reset instance must be indistinguishable from a new one:
// the same bytes of memory and globals, the same outputs over many wakes, no key material left.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import type { Engine, LoadOptions, ModuleInstance } from '../../host/engines/engine.ts';
import { GLOBAL_EXPORT_PREFIX, exportMutableGlobals } from '../../host/engines/global-exports.ts';
import { V8Engine } from '../../host/engines/v8.ts';
import { readFirmware } from '../../host/firmware.ts';
import type { PartitionResult } from '../../host/sim/fleet/outcome.ts';
import { PartitionRunner } from '../../host/sim/fleet/partition.ts';
import { cloudSecretOf } from '../../host/sim/fleet/run.ts';
import { DEFAULT_FLEET, deviceSpec } from '../../host/sim/fleet/spec.ts';
import { PROFILES, type Profile } from '../../host/session-abi.ts';

const wasm = readFirmware();

/** V8 as an engine without reset: every load a new instance (what the runner did before). */
class FreshEngine implements Engine {
  readonly name = 'v8-fresh';
  loads = 0;
  async load(bytes: Uint8Array): Promise<ModuleInstance> {
    this.loads++;
    const { reset: _r, state: _s, ...plain } = await new V8Engine().load(bytes);
    return plain;
  }
}

/** V8 with reset, keeping every instance it handed out. */
class KeepingEngine implements Engine {
  readonly name = 'v8-keeping';
  readonly instances: ModuleInstance[] = [];
  async load(bytes: Uint8Array, options?: LoadOptions): Promise<ModuleInstance> {
    const m = await new V8Engine().load(bytes, options);
    this.instances.push(m);
    return m;
  }
}

const options = (() => {
  const { workers: _w, ...o } = { ...DEFAULT_FLEET, devices: 12, days: 4, seed: 'engine-reset' };
  return o;
})();
const indices = Array.from({ length: options.devices }, (_, i) => i);

async function replay(profile: Profile, engine: Engine): Promise<PartitionResult> {
  const task = { options, profile, indices, traceIndex: 1, captureBelow: options.devices };
  return new PartitionRunner(task, engine, wasm, cloudSecretOf(options.seed)).run();
}

function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(hay.buffer, hay.byteOffset, hay.byteLength).indexOf(needle) >= 0;
}

describe('engine reset (V8)', () => {
  it('the transform only adds exports: the same functions, imports and memory; one export per mutable global', () => {
    const { wasm: patched, globals } = exportMutableGlobals(wasm);
    const a = new WebAssembly.Module(wasm as Uint8Array<ArrayBuffer>);
    const b = new WebAssembly.Module(patched as Uint8Array<ArrayBuffer>);
    assert.deepEqual(WebAssembly.Module.imports(b), WebAssembly.Module.imports(a));
    const added = WebAssembly.Module.exports(b).filter((e) => e.name.startsWith(GLOBAL_EXPORT_PREFIX));
    assert.deepEqual(WebAssembly.Module.exports(b).filter((e) => !e.name.startsWith(GLOBAL_EXPORT_PREFIX)), WebAssembly.Module.exports(a));
    assert.ok(globals.length > 50, `the firmware keeps its state in many globals (found ${globals.length})`);
    assert.deepEqual(added.map((e) => e.kind), globals.map(() => 'global'));
  });

  for (const profile of PROFILES) {
    it(`${profile}: a replay with one reset instance gives the same result, byte for byte, as a new instance per wake`, async () => {
      const fresh = new FreshEngine();
      const keeping = new KeepingEngine();
      const a = await replay(profile, fresh);
      const b = await replay(profile, keeping);
      assert.ok(a.wakes > 100 && fresh.loads > a.wakes, `a multi-wake scenario (${a.wakes} wakes, ${fresh.loads} instances)`);
      assert.equal(keeping.instances.length, 1, 'the reset run used one instance');
      assert.ok(a.trace && a.trace.length > 3 && a.capture.length > 100, 'trace and datagrams recorded');
      // Everything: per-device outcomes, series, every datagram's bytes and time, the traced wakes.
      assert.deepEqual(b, a);
    });
  }

  it('after reset the instance equals a new one (memory and every global) and no key material is left', async () => {
    const keeping = new KeepingEngine();
    await replay('default', keeping);
    const [m] = keeping.instances;
    const fresh = (await new V8Engine().load(wasm, { resettable: true })).state!();
    const before = m.state!();
    // The fleet's devices hold ECDHE-ECDSA keys: the last wake left its device's private key (and
    // session keys) in memory.
    const secrets = indices.map((i) => deviceSpec(options, i).devicePrivateKey);
    assert.ok(secrets.some((k) => contains(before.memory, k)), 'a device private key is in RAM after its wake');
    assert.notDeepEqual(before.globals, fresh.globals, 'the wake changed globals');
    m.reset!();
    const after = m.state!();
    assert.equal(Buffer.compare(after.memory, fresh.memory), 0, 'linear memory equals a new instance\'s, byte for byte');
    assert.deepEqual(after.globals, fresh.globals);
    assert.ok(!secrets.some((k) => contains(after.memory, k)), 'no private key survives the reset');
  });

  it('an instance loaded without { resettable: true } has no reset, and other exports are unchanged', async () => {
    const plain = await new V8Engine().load(wasm);
    const resettable = await new V8Engine().load(wasm, { resettable: true });
    assert.equal(plain.reset, undefined);
    assert.deepEqual(resettable.exportNames(), plain.exportNames());
  });
});
