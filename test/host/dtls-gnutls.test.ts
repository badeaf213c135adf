// Interop: the firmware's DTLS 1.2 ECDHE-ECDSA client (P-256, raw public keys, AES-128-CCM-8)
// against `gnutls-serv`, a peer no one here wrote.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { V8Engine } from '../../host/engines/v8.ts';
import { loadFirmware } from '../../host/firmware.ts';
import { FirmwareClient } from '../../host/session-abi.ts';
import { UdpDriver } from '../../host/udp-driver.ts';
import { parseRecords } from './dtls-ref.ts';
import { skipOrFail } from './engines.ts';
import { gnutlsAvailable, p256KeyPair, startGnutlsServ, type GnutlsServ, type P256KeyPair } from './gnutls.ts';

const servers: GnutlsServ[] = [];
after(() => servers.forEach((s) => s.stop()));

async function client(serverPublicKey: Buffer, devicePrivateKey: Buffer): Promise<FirmwareClient> {
  const c = new FirmwareClient(await loadFirmware(new V8Engine()));
  c.provisionEcdhe(serverPublicKey, devicePrivateKey);
  c.seed(crypto.randomBytes(48));
  c.config('handshakeInitialTimeoutMs', 500); // the public-key work of either side may be slow on a loaded machine
  c.config('handshakeMaxTimeoutMs', 4000);
  return c;
}

/** Handshake bodies of the plaintext (epoch 0) records in the datagrams, as [type, body]. */
function handshakeMessages(datagrams: Uint8Array[]): [number, Buffer][] {
  const out: [number, Buffer][] = [];
  for (const d of datagrams) {
    for (const r of parseRecords(Buffer.from(d))) {
      if (r.type !== 22 || r.epoch !== 0) continue;
      for (let at = 0; at + 12 <= r.body.length;) {
        const len = r.body.readUIntBE(at + 9, 3); // fragment length: the firmware sends whole messages
        out.push([r.body[at], r.body.subarray(at + 12, at + 12 + len)]);
        at += 12 + len;
      }
    }
  }
  return out;
}

/**
 * Starts gnutls-serv with `serverKey`, a firmware client pinning `pinned` and a UDP driver between
 * them, runs `body`, and stops both (skips, or fails in CI, without gnutls-serv).
 */
async function withGnutlsServ(
  t: { skip(m: string): void },
  keys: { serverKey: P256KeyPair; pinned: Buffer; deviceKey: P256KeyPair },
  opts: { requireClientKey?: boolean },
  body: (c: FirmwareClient, driver: UdpDriver, server: GnutlsServ, received: Buffer[]) => Promise<void>,
): Promise<void> {
  const missing = gnutlsAvailable('gnutls-serv');
  if (missing) return skipOrFail(t, missing);
  const server = await startGnutlsServ(keys.serverKey, opts);
  servers.push(server);
  const c = await client(keys.pinned, keys.deviceKey.privateKey);
  const received: Buffer[] = [];
  const driver = new UdpDriver(c, { host: '127.0.0.1', port: server.port, onData: (d) => received.push(Buffer.from(d)) });
  await driver.open();
  try {
    await body(c, driver, server, received);
  } finally {
    driver.close();
    server.stop();
  }
}

describe('DTLS 1.2 ECDHE-ECDSA client vs gnutls-serv (raw public keys, CCM-8)', () => {
  it('completes a handshake with both raw keys and exchanges data both ways', async (t) => {
    const serverKey = p256KeyPair('server'), deviceKey = p256KeyPair('device');
    await withGnutlsServ(t, { serverKey, pinned: serverKey.publicKey, deviceKey }, {}, async (c, driver, server, received) => {
      const state = await driver.handshake();
      assert.equal(state, 'connected', `handshake ended ${state} (${c.lastError}); gnutls-serv: ${server.output()}`);
      driver.send(Buffer.from('hello from the firmware\n'));
      const t0 = Date.now();
      while (!received.some((r) => r.toString() === 'hello from the firmware\n') && Date.now() - t0 < 20_000) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(received.some((r) => r.toString() === 'hello from the firmware\n'), `no echo from gnutls-serv: ${server.output()}`);
      const k = c.counters();
      assert.equal(k.handshakesCompleted, 1);
      assert.equal(k.dropAuthFailed, 0);
      // What went on the wire: the ECDHE suite alone offered; our raw key, never the private key.
      const sent = handshakeMessages(driver.sentDatagrams);
      const hello = sent.filter(([type]) => type === 1).at(-1)![1];
      const suitesAt = 2 + 32 + 1 + hello[34] + 1 + hello[35 + hello[34]];
      assert.deepEqual([...hello.subarray(suitesAt, suitesAt + 6)], [0, 4, 0xc0, 0xae, 0x00, 0xff]);
      const cert = sent.find(([type]) => type === 11);
      assert.ok(cert, 'the client sent its Certificate (the server asked for it)');
      assert.ok(cert[1].subarray(-65).equals(deviceKey.publicKey), 'the Certificate carries the device raw public key');
      assert.ok(sent.some(([type]) => type === 15), 'the client sent CertificateVerify');
      for (const d of driver.sentDatagrams) assert.ok(!Buffer.from(d).includes(deviceKey.privateKey), 'the private key went on the wire');
    });
  });

  it('refuses a server whose raw key is not the pinned one: fails with server-key-rejected before sending a flight of its own', async (t) => {
    const serverKey = p256KeyPair('server'), impostor = p256KeyPair('impostor'), deviceKey = p256KeyPair('device');
    await withGnutlsServ(t, { serverKey: impostor, pinned: serverKey.publicKey, deviceKey }, {}, async (c, driver) => {
      const state = await driver.handshake();
      assert.equal(state, 'failed');
      assert.equal(c.lastError, 'server-key-rejected');
      assert.equal(c.counters().handshakesCompleted, 0);
      // The client never got as far as its own flight: no Certificate, no key exchange sent.
      assert.ok(!handshakeMessages(driver.sentDatagrams).some(([type]) => type === 11 || type === 16), '!handshakeMessages(driver.sentDatagrams).some(([type]) => type === 11 || type === 16)');
    });
  });

  it('completes a handshake when the server does not require the client key (gnutls-serv without -r)', async (t) => {
    const serverKey = p256KeyPair('server'), deviceKey = p256KeyPair('device');
    await withGnutlsServ(t, { serverKey, pinned: serverKey.publicKey, deviceKey }, { requireClientKey: false }, async (c, driver, server) => {
      const state = await driver.handshake();
      assert.equal(state, 'connected', `handshake ended ${state} (${c.lastError}); gnutls-serv: ${server.output()}`);
    });
  });
});
