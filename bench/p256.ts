// P-256 cost in the module (test build, crypto_p256_*) under V8 and wasm3, next to node:crypto
// (OpenSSL) on the same machine; and what P-256 adds to the test build's size and static RAM.
//
//   npm run build && npm run build:wasm3 && node --import tsx bench/p256.ts
//
// Time per operation includes writing the inputs into and reading the result out of linear memory
// (a few hundred bytes: negligible against a scalar multiplication).
import crypto from 'node:crypto';
import type { Engine } from '../host/engines/engine.ts';
import { V8Engine } from '../host/engines/v8.ts';
import { Wasm3Engine, wasm3Available } from '../host/engines/wasm3/index.ts';
import { ModuleCrypto } from '../host/crypto-abi.ts';
import { TEST_WASM, readFirmware } from '../host/firmware.ts';
import { median, table } from './lib.ts';

/** Median milliseconds per call of `fn` over `rounds` rounds of `perRound` calls (after one warm-up round). */
function msPerOp(fn: () => unknown, rounds: number, perRound: number): number {
  const samples: number[] = [];
  for (let r = 0; r <= rounds; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < perRound; i++) fn();
    if (r > 0) samples.push(Number(process.hrtime.bigint() - t0) / 1e6 / perRound);
  }
  return median(samples);
}

const priv = crypto.createECDH('prime256v1');
priv.generateKeys();
const peer = crypto.createECDH('prime256v1');
peer.generateKeys();
const msg = crypto.randomBytes(100);
const hash = crypto.createHash('sha256').update(msg).digest();

async function benchEngine(engine: Engine, rounds: number, perRound: number): Promise<number[]> {
  const mc = new ModuleCrypto(await engine.load(readFirmware(TEST_WASM)));
  const d = priv.getPrivateKey(), pub = priv.getPublicKey();
  const sig = mc.p256Sign(d, hash) as Uint8Array;
  mc.drbgInstantiate(crypto.randomBytes(32), crypto.randomBytes(16), new Uint8Array(0));
  const row = [
    msPerOp(() => mc.p256Keygen(), rounds, perRound),
    msPerOp(() => mc.p256Ecdh(d, peer.getPublicKey()), rounds, perRound),
    msPerOp(() => mc.p256Sign(d, hash), rounds, perRound),
    msPerOp(() => mc.p256Verify(pub, hash, sig), rounds, perRound),
  ];
  mc.m.dispose();
  return row;
}

function benchNode(rounds: number, perRound: number): number[] {
  const jwk = { kty: 'EC', crv: 'P-256', x: priv.getPublicKey().subarray(1, 33).toString('base64url'), y: priv.getPublicKey().subarray(33).toString('base64url') };
  const privateKey = crypto.createPrivateKey({ key: { ...jwk, d: priv.getPrivateKey().toString('base64url') }, format: 'jwk' });
  const publicKey = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  const sig = crypto.sign('sha256', msg, privateKey);
  return [
    msPerOp(() => crypto.createECDH('prime256v1').generateKeys(), rounds, perRound),
    msPerOp(() => priv.computeSecret(peer.getPublicKey()), rounds, perRound),
    msPerOp(() => crypto.sign('sha256', msg, privateKey), rounds, perRound),
    msPerOp(() => crypto.verify('sha256', msg, publicKey, sig), rounds, perRound),
  ];
}

function staticEnd(path: string): { bytes: number; staticEnd: number } {
  const bytes = readFirmware(path);
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>), { env: { trap() {} } });
  (instance.exports._start as () => void)();
  return { bytes: bytes.length, staticEnd: (instance.exports.heap_offset as () => number)() };
}

const ops = ['key pair (keygen)', 'ECDH (shared secret)', 'ECDSA sign (RFC 6979)', 'ECDSA verify'];
const columns: Record<string, number[]> = { 'module on V8': await benchEngine(new V8Engine(), 7, 20) };
if (wasm3Available()) columns['module on wasm3'] = await benchEngine(new Wasm3Engine(), 5, 3);
else console.log('(wasm3 addon not built: npm run build:wasm3)');
columns['node:crypto (OpenSSL)'] = benchNode(7, 200);
const names = Object.keys(columns);
console.log(table(['P-256, ms per operation', ...names], ops.map((op, i) => [op, ...names.map((n) => columns[n][i].toFixed(3))])));

const base = process.env.P256_BASE_TEST_WASM; // the test build without P-256, to measure growth
const now = staticEnd(TEST_WASM);
console.log(`\n${TEST_WASM}: ${now.bytes} bytes, static data ends at ${now.staticEnd}`);
if (base) {
  const was = staticEnd(base);
  console.log(`without P-256 (${base}): ${was.bytes} bytes, static end ${was.staticEnd}: ` +
    `+${now.bytes - was.bytes} bytes of wasm, +${now.staticEnd - was.staticEnd} bytes of static RAM`);
}
