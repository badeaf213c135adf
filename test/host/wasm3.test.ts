// The wasm3 engine (build/wasm3.node, our napi-rs addon) against V8: same results on the same
// inputs, traps surfacing as WasmTrapError with wasm3's own message, recovery after a trap, and
// memory access. Outside CI a missing addon skips; under CI=true it fails.
import { describe, it, before, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { type ModuleInstance, type WasmValue, WasmTrapError } from '../../host/engines/engine.ts';
import { V8Engine } from '../../host/engines/v8.ts';
import { DEFAULT_WASM3_STACK_BYTES, WASM3_ADDON_PATH, Wasm3Engine, wasm3Available } from '../../host/engines/wasm3/index.ts';
import { cryptoWorkload } from '../../host/engines/wasm3/workload.ts';
import { skipOrFail } from './engines.ts';
import { ABORT, START_MARK, numericModule } from './fixtures/numeric-module.ts';

const SESSION_WASM = new URL('../../build/session-test.wasm', import.meta.url);

/** Expect `fn` to throw a WasmTrapError from wasm3 whose message contains every fragment. */
function expectTrap(fn: () => unknown, ...fragments: string[]): WasmTrapError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof WasmTrapError, `expected a WasmTrapError, got ${String(caught)}`);
  assert.equal(caught.engine, 'wasm3');
  for (const f of fragments) assert.ok(caught.message.includes(f), `"${caught.message}" lacks "${f}"`);
  return caught;
}

/** Outcome of a call as comparable data: the value (with its type) or the error class. */
function outcome(inst: ModuleInstance, name: string, args: WasmValue[]): string {
  try {
    const r = inst.call(name, ...args);
    return `${typeof r}:${Object.is(r, -0) ? '-0' : String(r)}`;
  } catch (e) {
    return e instanceof WasmTrapError ? 'trap' : (e as Error).name;
  }
}

if (!wasm3Available()) {
  test('wasm3 engine', (t) => skipOrFail(t, 'build/wasm3.node not built (run: node scripts/build-wasm3.mjs)'));
} else {
  describe('wasm3 engine: numeric fixture (i32, i64, f64, traps)', () => {
    const wasm = numericModule();
    let w: ModuleInstance;
    let v: ModuleInstance;
    before(async () => {
      w = await new Wasm3Engine().load(wasm);
      v = await new V8Engine().load(wasm);
    });

    it('runs _start on load', () => {
      assert.deepEqual([...w.readMemory(START_MARK, 4)], [42, 0, 0, 0]);
    });

    it('lists the function exports in module order', () => {
      assert.deepEqual(w.exportNames(), ['add_i32', 'add_i64', 'mul_f64', 'div_s_i64', 'boom', 'depth', '_start']);
    });

    it('gives the same results and coercions as V8', () => {
      const cases: [string, WasmValue[]][] = [
        ['add_i32', [2, 3]],
        ['add_i32', [0x7fffffff, 1]],
        ['add_i32', [-1, -1]],
        ['add_i32', [2 ** 32 + 5, 0.9]], // ToInt32 wraps and truncates
        ['add_i32', [0xffffffff, 0]],
        ['add_i32', [NaN, Infinity]],
        ['add_i32', ['7' as unknown as number, true as unknown as number]],
        ['add_i32', [1]], // a missing argument is undefined → 0
        ['add_i32', [1n, 2]], // TypeError
        ['add_i64', [1n, 2n]],
        ['add_i64', [2n ** 63n - 1n, 1n]], // wraps to -2^63
        ['add_i64', [-(2n ** 63n), -1n]],
        ['add_i64', [2n ** 64n - 1n, 0n]], // ToBigInt64 wraps to -1
        ['add_i64', [2n ** 70n + 3n, 0n]],
        ['add_i64', [1, 2n]], // TypeError: numbers are not i64
        ['mul_f64', [1.5, -2]],
        ['mul_f64', [-0, 1]],
        ['mul_f64', [Number.MAX_VALUE, 2]],
        ['mul_f64', [NaN, 1]],
        ['mul_f64', [0.1, 3]],
        ['mul_f64', [undefined as unknown as number, 1]], // NaN
        ['div_s_i64', [7n, -2n]],
        ['div_s_i64', [1n, 0n]], // trap
        ['depth', [100]],
      ];
      for (const [name, args] of cases) {
        assert.equal(outcome(w, name, args), outcome(v, name, args), `${name}(${args.map(String).join(', ')})`);
      }
    });

    it('reports an out-of-bounds load with wasm3\'s trap message, and stays usable', () => {
      const e = expectTrap(() => w.call('boom', 1), 'trap in boom', '[trap] out of bounds memory access');
      assert.equal(e.abort, undefined);
      assert.equal(w.call('add_i32', 40, 2), 42);
    });

    it('reports a firmware abort with its message, position and wasm3\'s trap', () => {
      const e = expectTrap(() => w.call('boom', 2), 'abort: fixture abort at fixture.ts:7:3', '[trap] unreachable executed');
      assert.deepEqual(e.abort, ABORT);
      assert.equal(w.call('add_i64', 40n, 2n), 42n);
      // The abort is not remembered into the next trap.
      assert.equal(expectTrap(() => w.call('boom', 1)).abort, undefined);
    });

    it('reports integer division by zero', () => {
      expectTrap(() => w.call('div_s_i64', 1n, 0n), '[trap] integer divide by zero');
      expectTrap(() => w.call('div_s_i64', -(2n ** 63n), -1n), '[trap] integer overflow');
    });

    it('traps on stack exhaustion instead of crashing, and recovers', () => {
      expectTrap(() => w.call('depth', 1_000_000), '[trap] stack overflow');
      assert.equal(w.call('depth', 50), 50);
    });

    it('loads afresh after a trap', async () => {
      const again = await new Wasm3Engine().load(wasm);
      assert.equal(again.call('add_i32', 1, 2), 3);
      again.dispose();
    });

    it('rejects unknown exports, bad arguments and use after dispose', async () => {
      assert.throws(() => w.call('nope'), /no export named 'nope'/);
      assert.throws(() => new Wasm3Engine({ stackSizeBytes: 10 }), RangeError);
      const inst = await new Wasm3Engine().load(wasm);
      inst.dispose();
      inst.dispose();
      assert.throws(() => inst.call('add_i32', 1, 2), /disposed/);
      assert.throws(() => inst.memory(), /disposed/);
    });

    it('refuses a module that is not wasm', async () => {
      await assert.rejects(new Wasm3Engine().load(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])), /wasm3/);
    });

    it('refuses at load a module whose function body does not validate', async () => {
      // (func (export "f") (result i32) i64.const 1)
      const bad = new Uint8Array([
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, 0x03, 0x02, 0x01,
        0x00, 0x07, 0x05, 0x01, 0x01, 0x66, 0x00, 0x00, 0x0a, 0x06, 0x01, 0x04, 0x00, 0x42, 0x01, 0x0b,
      ]);
      await assert.rejects(WebAssembly.compile(bad));
      await assert.rejects(new Wasm3Engine().load(bad), /wasm3: instantiate failed/);
    });
  });

  describe('wasm3 engine: build/session-test.wasm against V8', () => {
    let wasm: Uint8Array;
    let w: ModuleInstance;
    let v: ModuleInstance;
    before(async () => {
      if (!existsSync(SESSION_WASM)) return;
      wasm = readFileSync(SESSION_WASM);
      w = await new Wasm3Engine().load(wasm);
      v = await new V8Engine().load(wasm);
    });
    const needsModule = (t: { skip(msg: string): void }): boolean => {
      if (wasm) return true;
      skipOrFail(t, 'build/session-test.wasm not built (run: npm run build)');
      return false;
    };

    it('exports the firmware ABI, in V8\'s order', (t) => {
      if (!needsModule(t)) return;
      const names = w.exportNames();
      for (const n of ['io_ptr', 'io_capacity', 'heap_offset', 'selftest_trap', 'crypto_ccm_seal', 'crypto_ccm_open', 'crypto_sha256']) {
        assert.ok(names.includes(n), `missing export ${n}`);
      }
      // V8's list also has @assemblyscript/loader's helpers; the module's own exports agree.
      assert.deepEqual(v.exportNames().filter((n) => names.includes(n)), names);
    });

    it('answers the layout exports like V8', (t) => {
      if (!needsModule(t)) return;
      for (const n of ['io_ptr', 'io_capacity', 'heap_offset']) assert.equal(w.call(n), v.call(n), n);
      assert.equal(w.call('io_capacity'), 2048);
      assert.equal(w.memory().length, 65536);
    });

    it('runs the crypto workload exactly like V8 (default stack)', (t) => {
      if (!needsModule(t)) return;
      assert.deepEqual(cryptoWorkload(w), cryptoWorkload(v));
      assert.equal(w.memory().length, 65536, 'memory stays one page');
    });

    it('hashes and seals like node:crypto', (t) => {
      if (!needsModule(t)) return;
      const io = w.call('io_ptr') as number;
      w.writeMemory(io, Buffer.from('abc'));
      assert.equal(w.call('crypto_sha256', 3), 32);
      assert.equal(Buffer.from(w.readMemory(io + 3, 32)).toString('hex'), crypto.createHash('sha256').update('abc').digest('hex'));

      const key = crypto.randomBytes(16);
      const nonce = crypto.randomBytes(12);
      const aad = crypto.randomBytes(13);
      const pt = crypto.randomBytes(300);
      w.writeMemory(io, key);
      w.call('crypto_aes_set_key');
      w.writeMemory(io, Buffer.concat([nonce, aad, pt]));
      assert.equal(w.call('crypto_ccm_seal', nonce.length, aad.length, pt.length, 8), pt.length + 8);
      const sealed = w.readMemory(io + 25, pt.length + 8);
      const c = crypto.createCipheriv('aes-128-ccm', key, nonce, { authTagLength: 8 });
      c.setAAD(aad, { plaintextLength: pt.length });
      assert.deepEqual(Buffer.from(sealed), Buffer.concat([c.update(pt), c.final(), c.getAuthTag()]));
      assert.equal(w.call('crypto_ccm_open', nonce.length, aad.length, pt.length + 8, 8), pt.length);
      assert.deepEqual(Buffer.from(w.readMemory(io + 25, pt.length)), pt);
    });

    it('surfaces selftest traps with wasm3\'s message, keeps answering, and reloads', async (t) => {
      if (!needsModule(t)) return;
      const before = w.call('heap_offset');
      expectTrap(() => w.call('selftest_trap', 1), 'trap in selftest_trap', '[trap] out of bounds memory access');
      const e = expectTrap(() => w.call('selftest_trap', 2), 'abort: selftest: firmware abort requested', '[trap] unreachable executed');
      assert.equal(e.abort?.message, 'selftest: firmware abort requested');
      // Same instance after the traps.
      assert.equal(w.call('selftest_trap', 0), 0);
      assert.equal(w.call('io_capacity'), 2048);
      assert.equal(w.call('heap_offset'), before);
      // And a fresh one.
      const fresh = await new Wasm3Engine().load(wasm);
      assert.equal(fresh.call('heap_offset'), v.call('heap_offset'));
      assert.deepEqual(cryptoWorkload(fresh), cryptoWorkload(v));
      fresh.dispose();
    });

    it('round-trips memory through writeMemory, readMemory and memory()', (t) => {
      if (!needsModule(t)) return;
      const io = w.call('io_ptr') as number;
      const data = crypto.randomBytes(2048);
      w.writeMemory(io, data);
      assert.deepEqual(w.readMemory(io, 2048), new Uint8Array(data));
      assert.deepEqual(w.memory().subarray(io, io + 2048), new Uint8Array(data));
      w.writeMemory(65536 - 4, new Uint8Array([1, 2, 3, 4]));
      assert.deepEqual([...w.readMemory(65532, 4)], [1, 2, 3, 4]);
      w.writeMemory(0, new Uint8Array(0));
      for (const [ptr, len] of [[65533, 4], [-1, 1], [0, 65537], [1.5, 1]]) {
        assert.throws(() => w.readMemory(ptr, len), RangeError);
        assert.throws(() => v.readMemory(ptr, len), RangeError);
        assert.throws(() => w.writeMemory(ptr, new Uint8Array(len < 0 ? 0 : Math.min(len, 70000))), RangeError);
      }
    });

    it('honours stackSizeBytes: 1 KiB is too small for the crypto core', async (t) => {
      if (!needsModule(t)) return;
      assert.equal(new Wasm3Engine().stackSizeBytes, DEFAULT_WASM3_STACK_BYTES);
      const small = await new Wasm3Engine({ stackSizeBytes: 1024 }).load(wasm);
      expectTrap(() => cryptoWorkload(small), '[trap] stack overflow');
      small.dispose();
    });
  });
}
