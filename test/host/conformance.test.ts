// Engine conformance: every scenario in test/host/conformance/scenarios.ts, for each of its
// seeds, runs on every engine in ENGINES; each run must pass the scenario's own checks, and all
// engines must produce byte-identical traces (every transmitted datagram, every received
// application record, every call result and state, the counters after every input, the crypto
// outputs, the whole linear memory at the end). CONFORMANCE_SEEDS=n runs seeds 1..n instead.
// The Cortex-M4 image joins: wasm3 for seeds 1 and 2, the wasm2c build for seed 1 (MCU_ENGINES).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { TEST_WASM, readFirmware } from '../../host/firmware.ts';
import { V8Engine } from '../../host/engines/v8.ts';
import { ENGINES, enginesForSeed, skipOrFail } from './engines.ts';
import { SCENARIOS } from './conformance/scenarios.ts';
import { runScenario, seedsOf } from './conformance/run.ts';
import { assertParity, type Trace } from './conformance/trace.ts';
import { OUTPUT_CHANNELS, undrainedPollExports } from './conformance/device.ts';

const ONE_PAGE = 65536;

describe('engine conformance', () => {
  it('every output the module offers (poll_* exports) is drained and compared', async () => {
    const m = await new V8Engine().load(readFirmware(TEST_WASM));
    const missing = undrainedPollExports(m.exportNames());
    assert.deepEqual(missing, [], `add an OUTPUT_CHANNELS entry in test/host/conformance/device.ts for: ${missing.join(', ')}`);
    for (const ch of OUTPUT_CHANNELS) assert.ok(m.exportNames().includes(ch.export), `channel ${ch.kind}: no export ${ch.export}`);
  });

  // Regression: an empty array passed to the wasm3 addon was left backed by an empty
  // ArrayBuffer with a null data pointer, which node:crypto's update() reads as "no input" (a CCM
  // seal of it failed: "tag not set"); reads of 0 bytes returned such arrays on both engines.
  for (const ec of ENGINES) {
    it(`${ec.name}: empty byte arrays written to or read from memory stay usable`, async (t) => {
      const engine = ec.create();
      if ('skip' in engine) return skipOrFail(t, engine.skip);
      const m = await engine.load(readFirmware(TEST_WASM));
      const io = Number(m.call('io_ptr'));
      const written = Buffer.alloc(0);
      m.writeMemory(io, written);
      const read = m.readMemory(io, 0);
      for (const empty of [written, read]) {
        const c = crypto.createCipheriv('aes-128-ccm', Buffer.alloc(16), Buffer.alloc(12), { authTagLength: 8 });
        c.setAAD(Buffer.alloc(13), { plaintextLength: 0 });
        assert.equal(Buffer.concat([c.update(empty), c.final(), c.getAuthTag()]).length, 8);
      }
      m.dispose();
    });
  }

  for (const scenario of SCENARIOS) {
    describe(`${scenario.name} (${scenario.covers})`, () => {
      for (const seed of seedsOf(scenario)) {
        it(`seed ${seed}: identical on every engine`, async (t) => {
          const traces: Trace[] = [];
          const unavailable: string[] = [];
          for (const ec of enginesForSeed(seed)) {
            const engine = ec.create();
            if ('skip' in engine) unavailable.push(`${ec.name}: ${engine.skip}`);
            else traces.push(await runScenario(engine, scenario, seed));
          }
          // Parity first: when one engine fails, where it parts from the others says the most.
          assertParity(traces);
          for (const tr of traces) {
            assert.equal(tr.error, undefined, `${tr.engine}: ${tr.error}`);
            for (const s of tr.steps) if (s.kind === 'memory') assert.equal(s.fields?.size, ONE_PAGE, `${tr.engine}: linear memory is not one page`);
          }
          const steps = traces[0]?.steps ?? [];
          const tx = steps.filter((s) => s.kind === 'tx').length;
          const bytes = steps.reduce((n, s) => n + (s.bytes?.length ?? 0), 0);
          t.diagnostic(`${traces.map((x) => x.engine).join(' = ')}: ${steps.length} steps, ${tx} datagrams sent, ${bytes} bytes compared`);
          if (unavailable.length > 0) skipOrFail(t, unavailable.join('; '));
        });
      }
    });
  }
});
