// Interop: the firmware's DTLS 1.2 PSK client against `openssl s_server`, a peer no one here wrote.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { V8Engine } from '../../host/engines/v8.ts';
import { loadFirmware } from '../../host/firmware.ts';
import { FirmwareClient } from '../../host/session-abi.ts';
import { UdpDriver } from '../../host/udp-driver.ts';
import { contains, keyBlock, openRecord, parseRecords, prf, pskPremaster } from './dtls-ref.ts';
import { skipOrFail } from './engines.ts';
import { noEmsConfig, opensslAvailable, startSServer, type SServer } from './openssl.ts';

const IDENTITY = 'device-0001';
const servers: SServer[] = [];
after(() => servers.forEach((s) => s.stop()));

async function client(psk: Buffer): Promise<FirmwareClient> {
  const c = new FirmwareClient(await loadFirmware(new V8Engine()));
  c.provision(Buffer.from(IDENTITY), psk);
  c.seed(crypto.randomBytes(48));
  c.config('handshakeInitialTimeoutMs', 250); // s_server may still be starting
  c.config('handshakeMaxTimeoutMs', 1000);
  return c;
}

async function exchange(t: { skip(m: string): void }, opensslConf?: string): Promise<void> {
  const missing = opensslAvailable();
  if (missing) return skipOrFail(t, missing);
  const psk = crypto.randomBytes(16);
  const server = await startSServer({ pskHex: psk.toString('hex'), identity: IDENTITY, opensslConf });
  servers.push(server);
  const c = await client(psk);
  const received: Buffer[] = [];
  const driver = new UdpDriver(c, { host: '127.0.0.1', port: server.port, onData: (d) => received.push(Buffer.from(d)) });
  await driver.open();
  try {
    const state = await driver.handshake();
    assert.equal(state, 'connected', `handshake ended ${state} (${c.lastError}); s_server: ${server.stderr()}`);
    driver.send(Buffer.from('hello from the firmware\n'));
    await server.waitForStdout('hello from the firmware');
    server.proc.stdin.write('hello from openssl\n');
    const t0 = Date.now();
    while (!received.some((r) => r.toString().includes('hello from openssl')) && Date.now() - t0 < 5000) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(received.some((r) => r.toString().includes('hello from openssl')), 'no data from s_server');
    const k = c.counters();
    assert.equal(k.handshakesCompleted, 1);
    assert.equal(k.dropAuthFailed, 0);
    // The handshake flight went out with the server's cookie (s_server does HelloVerifyRequest).
    const hellos = driver.sentDatagrams.filter((d) => d[0] === 22 && d[13] === 1);
    assert.ok(hellos.length >= 2, 'expected a ClientHello before and after the cookie');
  } finally {
    driver.close();
    server.stop();
  }
}

describe('DTLS 1.2 PSK client vs openssl s_server', () => {
  it('completes a handshake with extended master secret and exchanges a line each way', (t) => exchange(t));

  it('completes a handshake without extended master secret (OpenSSL config -ExtendedMasterSecret)', (t) =>
    exchange(t, noEmsConfig()));

  it('with a wrong PSK the handshake fails cleanly, says why, and leaves no key in memory', async (t) => {
    const missing = opensslAvailable();
    if (missing) return skipOrFail(t, missing);
    const serverPsk = crypto.randomBytes(16), clientPsk = crypto.randomBytes(16);
    // Without EMS the master secret is computable from the randoms on the wire, so the test can
    // look for every derived secret in the module's memory afterwards.
    const server = await startSServer({ pskHex: serverPsk.toString('hex'), identity: IDENTITY, opensslConf: noEmsConfig() });
    servers.push(server);
    const c = await client(clientPsk);
    c.config('handshakeInitialTimeoutMs', 100);
    c.config('handshakeMaxTimeoutMs', 200);
    c.config('handshakeMaxTransmissions', 3);
    const driver = new UdpDriver(c, { host: '127.0.0.1', port: server.port });
    await driver.open();
    try {
      const state = await driver.handshake();
      assert.equal(state, 'failed');
      assert.ok(['handshake-timeout', 'alert-received'].includes(c.lastError), `reason: ${c.lastError}`);
      // Recover the randoms from the wire and derive what the client derived.
      const ch = parseRecords(driver.sentDatagrams.filter((d) => d[0] === 22 && d[13] === 1).at(-1)!)[0].body;
      const clientRandom = ch.subarray(12 + 2, 12 + 34);
      const sh = driver.receivedDatagrams.flatMap((d) => parseRecords(d)).find((r) => r.type === 22 && r.body[0] === 2)!;
      assert.ok(sh, 'no ServerHello seen');
      const serverRandom = sh.body.subarray(12 + 2, 12 + 34);
      const master = prf(pskPremaster(clientPsk), 'master secret', Buffer.concat([clientRandom, serverRandom]), 48);
      const keys = keyBlock(master, clientRandom, serverRandom);
      const mem = c.m.memory();
      for (const [name, secret] of Object.entries({ master, ...keys, premaster: pskPremaster(clientPsk) })) {
        if (secret.length >= 16) assert.ok(!contains(mem, secret), `${name} left in memory`);
      }
      // The client's Finished opens with the key computed here: these are the keys it held.
      const finished = driver.sentDatagrams.flatMap((d) => parseRecords(d)).find((r) => r.epoch === 1);
      assert.ok(finished, 'no epoch-1 record sent');
      assert.equal(openRecord(finished, keys.clientKey, keys.clientIv)?.content[0], 20, 'Finished did not open');
      assert.equal(c.counters().handshakesFailed, 1);
    } finally {
      driver.close();
      server.stop();
    }
  });
});
