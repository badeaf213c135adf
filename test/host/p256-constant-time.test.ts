// Constant time, shown on the compiled module: the test build is instrumented with Binaryen
// (the optimizer AssemblyScript itself uses) so that every executed local.get/local.set, every
// load and store (with its address), every function entry and every loop iteration calls the
// host; the host hashes the sequence of (instruction site, address). Public-key derivation, ECDH
// and ECDSA signing must give the same trace for every private key, nonce and hash — so no
// branch, loop count or memory address depends on a secret. Verification, which is allowed to
// depend on its (public) inputs, must give different traces: that shows the tracer sees
// data-dependent control flow at all.
//
// What this does not see: the time of one instruction (e.g. i64.mul on an engine or core whose
// multiplier exits early — the Cortex-M4's UMULL does not; the M3's does). Values are not traced.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import binaryen from 'binaryen';
import { TEST_WASM, readFirmware } from '../../host/firmware.ts';

const N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const scalar = (v: bigint): Buffer => Buffer.from(v.toString(16).padStart(64, '0'), 'hex');
const randomScalar = (): Buffer => scalar((BigInt('0x' + crypto.randomBytes(32).toString('hex')) % (N - 1n)) + 1n);

type Exports = Record<string, (...args: number[]) => number> & { memory: WebAssembly.Memory };

function tracedModule(): { x: Exports; trace: (fn: () => void) => string } {
  const mod = binaryen.readBinary(readFirmware(TEST_WASM));
  mod.setFeatures(binaryen.Features.All);
  mod.runPasses(['instrument-locals', 'instrument-memory', 'log-execution']);
  const bin = mod.emitBinary();
  mod.dispose();
  let h1 = 0, h2 = 0, events = 0;
  const mix = (site: number, address: number): void => {
    h1 = (Math.imul(h1 ^ site, 0x9e3779b1) + address) | 0;
    h2 = Math.imul(h2 + address, 0x85ebca6b) ^ site;
    events++;
  };
  const passValue = (_site: number, value: unknown): unknown => value;
  const local = (site: number, _index: number, value: unknown): unknown => {
    mix(site | 0x10000000, 0);
    return value;
  };
  const hooks: Record<string, unknown> = {
    trap() {
      throw new Error('firmware trap');
    },
    load_ptr(site: number, _bytes: number, offset: number, ptr: number) {
      mix(site, ptr + offset);
      return ptr;
    },
    store_ptr(site: number, _bytes: number, offset: number, ptr: number) {
      mix(site | 0x40000000, ptr + offset);
      return ptr;
    },
    log_execution(site: number) {
      mix(site | 0x20000000, 0);
    },
  };
  // every other hook (get_i32, set_i64, load_val_i32, …) exists only to pass a value through
  const env = new Proxy(hooks, { get: (t, k: string) => t[k] ?? (/^(get|set)_/.test(k) ? local : passValue) });
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bin as Uint8Array<ArrayBuffer>), { env } as WebAssembly.Imports);
  const x = instance.exports as unknown as Exports;
  x._start();
  return {
    x,
    trace(fn) {
      h1 = h2 = events = 0;
      fn();
      return `${(h1 >>> 0).toString(16)}:${(h2 >>> 0).toString(16)}/${events} events`;
    },
  };
}

describe('P-256 constant time: one instruction and address trace for every secret', () => {
  it('public key, ECDH and signing trace identically for scalars 1, 2, 2^255, n − 1 and random ones; verify does not', () => {
    const { x, trace } = tracedModule();
    const io = x.io_ptr();
    const put = (at: number, bytes: Uint8Array): void => new Uint8Array(x.memory.buffer).set(bytes, io + at);
    const scalars = [scalar(1n), scalar(2n), scalar(1n << 255n), scalar(N - 1n), randomScalar(), randomScalar()];
    const peers = scalars.map(() => {
      const e = crypto.createECDH('prime256v1');
      e.generateKeys();
      return e.getPublicKey();
    });
    const traces = { public: new Set<string>(), ecdh: new Set<string>(), sign: new Set<string>(), verify: new Set<string>() };
    scalars.forEach((k, i) => {
      traces.public.add(trace(() => { put(0, k); assert.equal(x.crypto_p256_public(), 65); }));
      // the peer key is public, but decoding it is constant time too: vary it as well
      traces.ecdh.add(trace(() => { put(0, k); put(32, peers[i]); assert.equal(x.crypto_p256_ecdh(65), 32); }));
      traces.sign.add(trace(() => { put(0, k); put(32, crypto.randomBytes(32)); assert.equal(x.crypto_p256_sign(), 64); }));
      traces.verify.add(trace(() => { put(0, peers[i]); put(65, crypto.randomBytes(96)); x.crypto_p256_verify(65); }));
    });
    assert.equal(traces.public.size, 1, `public key: ${[...traces.public].join(', ')}`);
    assert.equal(traces.ecdh.size, 1, `ECDH: ${[...traces.ecdh].join(', ')}`);
    assert.equal(traces.sign.size, 1, `sign: ${[...traces.sign].join(', ')}`);
    assert.ok(traces.verify.size > 1, 'the tracer saw no difference between verifications of different inputs');
  });
});
