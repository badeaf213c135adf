// The parity checker itself: it passes identical traces and, fed deliberately different ones,
// fails and names the first difference precisely (scenario, seed, step, engines, hex of both).
// Also: scenarios are deterministic per seed, so a parity failure is never noise.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Engine, ModuleInstance } from '../../host/engines/engine.ts';
import { V8Engine } from '../../host/engines/v8.ts';
import { Wasm3Engine, wasm3Available } from '../../host/engines/wasm3/index.ts';
import { skipOrFail } from './engines.ts';
import { SCENARIOS } from './conformance/scenarios.ts';
import { runScenario } from './conformance/run.ts';
import { ParityError, assertParity, checkParity, type Step, type Trace } from './conformance/trace.ts';

function trace(engine: string, steps: Step[], scenario = 'unit', seed = 7): Trace {
  return { scenario, seed, engine, steps };
}

const STEPS: Step[] = [
  { kind: 'call', what: 'connect(t=0)', fields: { result: null, state: 'wait-server-hello' } },
  { kind: 'tx', what: 'tx #1', bytes: Uint8Array.from({ length: 80 }, (_, i) => i) },
  { kind: 'counters', what: 'after connect(t=0)', fields: { txDatagrams: 1, dropShort: 0 } },
  { kind: 'tx', what: 'tx #2', bytes: Uint8Array.from({ length: 300 }, (_, i) => (i * 7) & 0xff) },
];

/** A deep copy with `edit` applied to it: the deliberately broken engine. */
function broken(steps: Step[], edit: (s: Step[]) => void): Step[] {
  const copy = steps.map((s) => ({ ...s, bytes: s.bytes && Uint8Array.from(s.bytes), fields: s.fields && { ...s.fields } }));
  edit(copy);
  return copy;
}

const scenario = (name: string) => SCENARIOS.find((s) => s.name === name)!;

describe('parity checker', () => {
  it('passes identical traces', () => {
    assert.equal(checkParity([trace('v8', STEPS), trace('wasm3', broken(STEPS, () => {}))]), null);
    assert.doesNotThrow(() => assertParity([trace('v8', STEPS), trace('wasm3', STEPS), trace('third', STEPS)]));
    assert.equal(checkParity([trace('v8', STEPS)]), null, 'one engine: nothing to compare');
  });

  it('fails on one flipped byte in a transmitted datagram and reports where, with the hex of both', () => {
    const other = broken(STEPS, (s) => (s[1].bytes![37] ^= 0x10));
    const d = checkParity([trace('v8', STEPS), trace('wasm3', other)]);
    assert.ok(d, 'a difference must be found');
    assert.equal(d.scenario, 'unit');
    assert.equal(d.seed, 7);
    assert.equal(d.step, 1);
    assert.equal(d.aspect, 'bytes');
    assert.equal(d.offset, 37);
    assert.equal(d.reference.engine, 'v8');
    assert.equal(d.other.engine, 'wasm3');
    assert.match(d.message, /scenario unit, seed 7: step 1 differs \(bytes\) between v8 and wasm3/);
    assert.match(d.message, /v8   : tx #1, 80 B/);
    assert.match(d.message, /first differing byte at offset 37/);
    // 80 bytes are shown whole: both hex strings appear, differing at byte 37 (0x25 vs 0x35).
    assert.ok(d.message.includes(Buffer.from(STEPS[1].bytes!).toString('hex')), "d.message.includes(Buffer.from(STEPS[1].bytes!).toString('hex'))");
    assert.ok(d.message.includes(Buffer.from(other[1].bytes!).toString('hex')), "d.message.includes(Buffer.from(other[1].bytes!).toString('hex'))");
    assert.throws(() => assertParity([trace('v8', STEPS), trace('wasm3', other)]), (e: unknown) => e instanceof ParityError && e.difference.offset === 37);
  });

  it('shows a window around the difference in a long datagram', () => {
    const other = broken(STEPS, (s) => (s[3].bytes![250] ^= 1));
    const d = checkParity([trace('v8', STEPS), trace('wasm3', other)])!;
    assert.equal(d.step, 3);
    assert.equal(d.offset, 250);
    assert.match(d.message, /\[234\.\.266\) …/);
    const window = (b: Uint8Array) => Buffer.from(b.subarray(234, 266)).toString('hex');
    assert.ok(d.message.includes(window(STEPS[3].bytes!)) && d.message.includes(window(other[3].bytes!)), 'd.message.includes(window(STEPS[3].bytes!)) && d.message.includes(window(other[3].bytes!))');
  });

  it('fails on a datagram of another length, a differing counter, a missing or an extra step', () => {
    const shorter = broken(STEPS, (s) => (s[1].bytes = s[1].bytes!.subarray(0, 79)));
    assert.deepEqual(pick(checkParity([trace('v8', STEPS), trace('wasm3', shorter)])), { step: 1, aspect: 'bytes', offset: 79 });

    const counter = broken(STEPS, (s) => (s[2].fields!.dropShort = 1));
    const d = checkParity([trace('v8', STEPS), trace('wasm3', counter)])!;
    assert.deepEqual(pick(d), { step: 2, aspect: 'field dropShort', offset: undefined });
    assert.match(d.message, /v8   : dropShort = 0\n.*wasm3: dropShort = 1/);

    const missing = checkParity([trace('v8', STEPS), trace('wasm3', STEPS.slice(0, 3))])!;
    assert.deepEqual(pick(missing), { step: 3, aspect: 'length', offset: undefined });
    assert.match(missing.message, /wasm3: \(trace ended\)/);
    assert.match(missing.message, /wasm3 ended after 3 steps, v8 has 4/);

    const extra = checkParity([trace('v8', STEPS), trace('wasm3', [...STEPS, STEPS[1]])])!;
    assert.deepEqual(pick(extra), { step: 4, aspect: 'length', offset: undefined });

    const reordered = checkParity([trace('v8', STEPS), trace('wasm3', [STEPS[0], STEPS[2], STEPS[1], STEPS[3]])])!;
    assert.deepEqual(pick(reordered), { step: 1, aspect: 'kind', offset: undefined });
  });

  it('names the odd engine out of three, and reports an engine that stopped', () => {
    const stopped = [...STEPS.slice(0, 2), { kind: 'error' as const, what: 'scenario stopped', fields: { message: 'wasm3: trap in handle_datagram: [trap] stack overflow' } }];
    const d = checkParity([trace('v8', STEPS), trace('wasm2c', STEPS), trace('wasm3', stopped)])!;
    assert.equal(d.other.engine, 'wasm3');
    assert.equal(d.step, 2);
    assert.match(d.message, /wasm3 stopped: wasm3: trap in handle_datagram: \[trap\] stack overflow/);
  });

  it('refuses to compare traces of different scenarios or seeds', () => {
    assert.throws(() => checkParity([trace('v8', STEPS), trace('wasm3', STEPS, 'unit', 8)]), /different runs/);
  });
});

describe('parity checker on real traces', () => {
  it('scenarios are deterministic: the same seed twice gives identical traces', async () => {
    for (const name of ['crypto-seeded', 'dtls-cid', 'dtls-loss', 'dtls-hostile']) {
      const a = await runScenario(new V8Engine(), scenario(name), 3);
      const b = await runScenario(new V8Engine(), scenario(name), 3);
      assert.equal(a.error, undefined);
      assert.equal(checkParity([a, b]), null, name);
    }
  });

  it('a deliberately broken engine fails parity at its first wrong byte', async () => {
    // V8 with one bit flipped in the second datagram the module transmits (its record sequence
    // number, which the peer does not check): everything before it is identical.
    const s = scenario('dtls-cookie-hint');
    const good = await runScenario(new V8Engine(), s, 1);
    const bad = await runScenario(new CorruptingEngine(2, 10), s, 1);
    const d = checkParity([good, bad])!;
    assert.ok(d, 'the corrupted datagram must be found');
    assert.equal(d.aspect, 'bytes');
    assert.equal(d.offset, 10);
    assert.equal(d.reference.step?.what, 'tx #2');
    assert.equal(good.steps.findIndex((x) => x.what === 'tx #2'), d.step, 'the first difference is the corrupted datagram');
    assert.match(d.message, /scenario dtls-cookie-hint, seed 1: step \d+ differs \(bytes\) between v8 and v8-corrupted/);
    const hexOf = (t: Trace) => Buffer.from(t.steps[d.step].bytes!).toString('hex');
    assert.ok(d.message.includes(`v8          : ${hexOf(good)}`) && d.message.includes(`v8-corrupted: ${hexOf(bad)}`), d.message);
  });

  it('a relabelled run of another seed does not pass as the same run', async () => {
    const a = await runScenario(new V8Engine(), scenario('dtls-psk'), 1);
    const b = { ...(await runScenario(new V8Engine(), scenario('dtls-psk'), 2)), seed: 1, engine: 'v8-seed-2' };
    const d = checkParity([a, b])!;
    // The identity, PSK and entropy come from the seed: the very first call differs.
    assert.equal(d.step, 0);
    assert.match(d.message, /between v8 and v8-seed-2/);
  });

  it('a wasm3 engine with too small a stack fails parity, naming the trap', async (t) => {
    if (!wasm3Available()) return skipOrFail(t, 'build/wasm3.node not built (npm run build:wasm3; needs cargo)');
    const s = scenario('dtls-fragments');
    const v8 = await runScenario(new V8Engine(), s, 1);
    const small = await runScenario(new Wasm3Engine({ stackSizeBytes: 1024 }), s, 1);
    const d = checkParity([v8, small])!;
    assert.ok(d, 'a 1 KiB stack must not pass');
    assert.equal(d.other.step?.kind, 'error');
    assert.match(d.message, /wasm3 stopped: .*\[trap\] stack overflow/);
  });
});

/** V8, except that the `nth` datagram the module transmits has one bit flipped at `offset`. */
class CorruptingEngine implements Engine {
  readonly name = 'v8-corrupted';
  constructor(
    private readonly nth: number,
    private readonly offset: number,
  ) {}

  async load(wasm: Uint8Array): Promise<ModuleInstance> {
    const m = await new V8Engine().load(wasm);
    let transmitted = 0;
    return {
      ...m,
      call: (name, ...args) => {
        const r = m.call(name, ...args);
        if (name === 'poll_transmit' && Number(r) > this.offset && ++transmitted === this.nth) {
          const at = Number(m.call('io_ptr')) + this.offset;
          m.writeMemory(at, Uint8Array.of(m.readMemory(at, 1)[0] ^ 0x01));
        }
        return r;
      },
    };
  }
}

function pick(d: ReturnType<typeof checkParity>): { step?: number; aspect?: string; offset?: number } {
  return { step: d?.step, aspect: d?.aspect, offset: d?.offset };
}
