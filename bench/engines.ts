// The same build/session.wasm under wasm3 (our napi-rs addon, interpreter) and under V8 (JIT):
// record protection rate, one handshake's CPU time inside the module, and two rows that explain
// the gap (a call that does nothing, and bulk work that never leaves the module).
import crypto from 'node:crypto';
import type { Engine, ModuleInstance } from '../host/engines/engine.ts';
import { V8Engine } from '../host/engines/v8.ts';
import { Wasm3Engine, wasm3Available } from '../host/engines/wasm3/index.ts';
import { ModuleCrypto } from '../host/crypto-abi.ts';
import { TEST_WASM, readFirmware } from '../host/firmware.ts';
import { FirmwareClient } from '../host/session-abi.ts';
import { TestPeer, pump } from '../test/host/dtls-peer.ts';
import { p256PrivateFrom, p256Public } from '../test/host/p256-ref.ts';
import { compare, fmt, median, table } from './lib.ts';

const TAG = 8;

/** A ModuleInstance that adds up the wall time spent inside it (calls and memory copies). */
function timed(m: ModuleInstance): { m: ModuleInstance; ns: () => bigint; calls: () => number } {
  let ns = 0n;
  let calls = 0;
  const time = <T>(fn: () => T): T => {
    const t0 = process.hrtime.bigint();
    try {
      return fn();
    } finally {
      ns += process.hrtime.bigint() - t0;
    }
  };
  return {
    m: {
      ...m,
      call: (name, ...args) => {
        calls++;
        return time(() => m.call(name, ...args));
      },
      readMemory: (ptr, length) => time(() => m.readMemory(ptr, length)),
      writeMemory: (ptr, bytes) => time(() => m.writeMemory(ptr, bytes)),
    },
    ns: () => ns,
    calls: () => calls,
  };
}

/**
 * One full handshake (cookie exchange, EMS; PSK with an identity hint, or ECDHE-ECDSA with raw
 * public keys and the device key asked for) against the in-process TestPeer in virtual time.
 * Returns the time spent inside the module only, from connect() to connected: the peer's
 * node:crypto work, loading and provisioning are not counted.
 */
async function handshakeModuleTime(engine: Engine, wasm: Uint8Array, suite: 'psk' | 'ecdhe'): Promise<{ ms: number; calls: number }> {
  const raw = await engine.load(wasm);
  const t = timed(raw);
  const c = new FirmwareClient(t.m);
  const psk = crypto.randomBytes(16);
  c.provision(Buffer.from('device-0001'), psk);
  c.seed(crypto.randomBytes(32));
  const serverPrivateKey = p256PrivateFrom(crypto.randomBytes(32));
  if (suite === 'ecdhe') c.provisionEcdhe(p256Public(serverPrivateKey), p256PrivateFrom(crypto.randomBytes(32)));
  const peer = new TestPeer({ psk, helloVerify: true, identityHint: 'cloud', ecdhe: suite === 'ecdhe' ? { serverPrivateKey } : undefined });
  const [ns0, calls0] = [t.ns(), t.calls()];
  c.connect(0);
  pump(c, peer);
  if (c.state !== 'connected') throw new Error(`bench: ${engine.name} handshake ended in ${c.state}`);
  const out = { ms: Number(t.ns() - ns0) / 1e6, calls: t.calls() - calls0 };
  raw.dispose();
  return out;
}

export async function benchEngines(): Promise<{ text: string; rows: (string | number)[][] }> {
  const header = ['same module: V8 and wasm3', 'v8', 'wasm3', 'V8 faster by'];
  if (!wasm3Available()) {
    return { text: table(header, [['wasm3 addon not built (npm run build:wasm3)', '-', '-', '-']]), rows: [] };
  }
  const wasm = readFirmware(TEST_WASM);
  const v8 = new ModuleCrypto(await new V8Engine().load(wasm));
  const w3 = new ModuleCrypto(await new Wasm3Engine().load(wasm));
  const key = crypto.randomBytes(16), nonce = crypto.randomBytes(12), aad = crypto.randomBytes(13);
  const pt = crypto.randomBytes(64);
  v8.setKey(key);
  w3.setKey(key);
  const sealed = v8.ccmSeal(nonce, aad, pt, TAG) as Uint8Array;
  const rows: (string | number)[][] = [];
  const speed = (what: string, a: number, b: number): void => {
    rows.push([what, fmt(a), fmt(b), `${(a / b).toFixed(1)}×`]);
  };

  const r = compare({
    v8Seal: () => v8.ccmSeal(nonce, aad, pt, TAG),
    w3Seal: () => w3.ccmSeal(nonce, aad, pt, TAG),
    v8Open: () => v8.ccmOpen(nonce, aad, sealed, TAG),
    w3Open: () => w3.ccmOpen(nonce, aad, sealed, TAG),
  });
  speed('seal 64 B, records/s', r.v8Seal, r.w3Seal);
  speed('open 64 B, records/s', r.v8Open, r.w3Open);

  // One handshake of each suite: the median of alternating runs, module time only. The ECDHE
  // handshake's extra is its public-key work: verify, key pair, ECDH, the device key, sign.
  for (const [suite, runs] of [['psk', 15], ['ecdhe', 7]] as const) {
    const hs: Record<'v8' | 'wasm3', number[]> = { v8: [], wasm3: [] };
    let calls = 0;
    for (let i = 0; i < runs; i++) {
      hs.v8.push((await handshakeModuleTime(new V8Engine(), wasm, suite)).ms);
      const w = await handshakeModuleTime(new Wasm3Engine(), wasm, suite);
      hs.wasm3.push(w.ms);
      calls = w.calls;
    }
    const [hv8, hw3] = [median(hs.v8.slice(2)), median(hs.wasm3.slice(2))]; // first runs warm the JIT
    const name = suite === 'psk' ? 'one PSK handshake' : 'one ECDHE-ECDSA handshake';
    rows.push([`${name}, ms in the module (${calls} calls)`, hv8.toFixed(3), hw3.toFixed(3), `${(hw3 / hv8).toFixed(1)}×`]);
  }

  // Why: the cost of crossing into each engine, and work that stays inside the module.
  const e = compare({ v8: () => v8.m.call('io_capacity'), w3: () => w3.m.call('io_capacity') });
  speed('empty call (io_capacity), calls/s', e.v8, e.w3);
  const block = crypto.randomBytes(16);
  const aes = compare({
    v8: () => { v8.m.writeMemory(v8.io, block); v8.m.call('crypto_aes_encrypt_blocks', 1000); },
    w3: () => { w3.m.writeMemory(w3.io, block); w3.m.call('crypto_aes_encrypt_blocks', 1000); },
  }, 5, 200);
  speed('AES-128, 1,000 blocks per call, MB/s', (aes.v8 * 16000) / 1e6, (aes.w3 * 16000) / 1e6);
  const data = crypto.randomBytes(v8.ioCapacity - 32);
  const sha = compare({ v8: () => v8.sha256(data), w3: () => w3.sha256(data) }, 5, 200);
  speed(`SHA-256 of ${data.length} B, MB/s`, (sha.v8 * data.length) / 1e6, (sha.w3 * data.length) / 1e6);

  v8.m.dispose();
  w3.m.dispose();
  return { text: table(header, rows), rows };
}
