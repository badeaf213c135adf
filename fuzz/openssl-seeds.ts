/**
 * Seeds from a real conversation with `openssl s_server` (DTLS 1.2 PSK, HelloVerifyRequest): the
 * firmware's raw DTLS client handshakes with it over loopback UDP, and every datagram the server
 * sent becomes a `datagram` seed from the handshake states (its flights are formatted the way
 * OpenSSL formats them, unlike the cloud's), plus a `cloud` seed with the firmware's datagrams.
 * Needs openssl; run by hand after a firmware change: node --import tsx fuzz/openssl-seeds.ts
 */
import crypto from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { V8Engine } from '../host/engines/v8.ts';
import { loadFirmware } from '../host/firmware.ts';
import { FirmwareClient } from '../host/session-abi.ts';
import { UdpDriver } from '../host/udp-driver.ts';
import { opensslAvailable, startSServer } from '../test/host/openssl.ts';
import { MARKS } from './ops.ts';

const u16 = (n: number) => Buffer.from([n & 0xff, n >> 8]);

export async function opensslConversation(): Promise<{ fromServer: Buffer[]; fromFirmware: Buffer[] }> {
  const missing = opensslAvailable();
  if (missing) throw new Error(`openssl-seeds: ${missing}`);
  const psk = crypto.randomBytes(16);
  const server = await startSServer({ pskHex: psk.toString('hex'), identity: 'fuzz-identity' });
  const c = new FirmwareClient(await loadFirmware(new V8Engine()));
  c.provision(Buffer.from('fuzz-identity'), psk);
  c.seed(crypto.randomBytes(48));
  c.config('handshakeInitialTimeoutMs', 250);
  const driver = new UdpDriver(c, { host: '127.0.0.1', port: server.port, onData: () => {} });
  await driver.open();
  try {
    const state = await driver.handshake();
    if (state !== 'connected') throw new Error(`openssl-seeds: handshake ended ${state}: ${server.stderr()}`);
    return { fromServer: driver.receivedDatagrams.map((d) => Buffer.from(d)), fromFirmware: driver.sentDatagrams.map((d) => Buffer.from(d)) };
  } finally {
    driver.close();
    server.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = process.argv[2] ?? 'fuzz/corpus';
  const { fromServer, fromFirmware } = await opensslConversation();
  let n = 0;
  const write = (target: string, name: string, data: Buffer) => {
    mkdirSync(join(dir, target), { recursive: true });
    writeFileSync(join(dir, target, `seed-openssl-${name}`), data);
    n++;
  };
  for (const mark of ['client-hello', 'hello-verify', 'wait-server-hello-done', 'wait-finished'] as const) {
    fromServer.forEach((d, i) => write('datagram', `${mark}-server${i}`, Buffer.concat([Buffer.from([MARKS.indexOf(mark), 0]), u16(d.length), d])));
  }
  fromFirmware.forEach((d, i) => write('cloud', `firmware${i}`, Buffer.concat([Buffer.from([0, 0]), u16(d.length), d])));
  console.log(`openssl-seeds: ${n} files in ${dir} (${fromServer.length} server datagrams)`);
}
