/**
 * What a full handshake costs the cloud, by suite (`npm run bench:cloud-ecdhe`): the sans-IO core
 * (no sockets, memory store) handshakes with the test client (fixtures/cloud-client.ts) for
 * CLOUD_ECDHE_SECONDS (default 10) per suite; only the time inside `core.handleDatagram` is
 * counted, so the client's own P-256 work is left out. ECDHE-ECDSA adds, per handshake, an
 * ephemeral key pair and an ECDSA signature (ClientHello), an ECDH (ClientKeyExchange) and an
 * ECDSA verification (CertificateVerify) — all node:crypto / OpenSSL. Also the bytes on the wire
 * of one handshake (DTLS payload, cookie exchange included) for each suite.
 */
import crypto from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { CloudCore } from '../host/cloud/core.ts';
import { DeviceRegistry, deviceHandle } from '../host/cloud/devices.ts';
import { ServerKey } from '../host/cloud/p256.ts';
import { MemoryStore } from '../host/cloud/store.ts';
import { TestDtlsClient, type ClientOptions } from '../test/host/fixtures/cloud-client.ts';
import { fmt, table } from './lib.ts';

const SECONDS = Number(process.env.CLOUD_ECDHE_SECONDS ?? 10);
const PSK = crypto.randomBytes(16);
const device = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const serverKey = ServerKey.generate();

function makeCore(): CloudCore {
  const jwk = device.publicKey.export({ format: 'jwk' });
  const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
  const devices = new DeviceRegistry([{ id: 'psk-dev', identity: 'psk-dev', psk: PSK }]);
  devices.addPublicKeyDevice('ec-dev', point);
  return new CloudCore({ devices, store: new MemoryStore(), cloudSecret: crypto.randomBytes(32), serverKey });
}

interface Run {
  handshakes: number;
  cloudMs: number;
  up: number;
  down: number;
}

/** One handshake through the core; returns the core's time and the bytes each way. */
async function handshake(core: CloudCore, opts: ClientOptions, from: string, nowMs: number): Promise<Run> {
  const client = new TestDtlsClient(opts);
  let up = [client.start()];
  const run: Run = { handshakes: 0, cloudMs: 0, up: 0, down: 0 };
  for (let round = 0; round < 6 && client.state !== 'connected'; round++) {
    const next: Buffer[] = [];
    for (const d of up) {
      run.up += d.length;
      const t0 = performance.now();
      const out = await core.handleDatagram(d, from, nowMs);
      run.cloudMs += performance.now() - t0;
      for (const t of out.transmits) {
        run.down += t.data.length;
        next.push(...client.receive(t.data).send);
      }
    }
    up = next;
  }
  if (client.state !== 'connected') throw new Error('handshake did not complete');
  run.handshakes = 1;
  return run;
}

async function measure(name: string, opts: ClientOptions): Promise<string[]> {
  const core = makeCore();
  const total: Run = { handshakes: 0, cloudMs: 0, up: 0, down: 0 };
  const end = performance.now() + SECONDS * 1000;
  let one: Run | null = null;
  for (let i = 0; performance.now() < end; i++) {
    const r = await handshake(core, opts, `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:5684`, 1_000_000 + i);
    one ??= r;
    total.handshakes++;
    total.cloudMs += r.cloudMs;
  }
  return [name, fmt(total.handshakes), (total.cloudMs / total.handshakes).toFixed(3), fmt(Math.round((1000 * total.handshakes) / total.cloudMs)), `${one!.up} / ${one!.down}`];
}

const rows = [
  await measure('PSK (0xC0A8)', { identity: 'psk-dev', psk: PSK, offerCid: deviceHandle('psk-dev') }),
  await measure('ECDHE-ECDSA (0xC0AE), raw keys', { ecdhe: { ...device, pinned: serverKey.publicPoint }, offerCid: deviceHandle('ec-dev') }),
];
console.log(table(['suite', 'handshakes', 'ms in the core / handshake', 'handshakes / s of core time', 'bytes up / down (one handshake)'], rows));
