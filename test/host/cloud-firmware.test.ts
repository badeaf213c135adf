// The firmware's DTLS client against the product's cloud over real UDP on loopback: PSK, and
// ECDHE-ECDSA with raw public keys (the device pins the cloud's key; the cloud knows the device by its public key).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startCloud } from '../../host/cloud/server.ts';
import { DeviceRegistry, deviceHandle } from '../../host/cloud/devices.ts';
import { V8Engine } from '../../host/engines/v8.ts';
import { loadFirmware } from '../../host/firmware.ts';
import { FirmwareClient } from '../../host/session-abi.ts';
import { UdpDriver } from '../../host/udp-driver.ts';
import type { CloudEvent } from '../../host/cloud/core.ts';
import { p256KeyPair } from './gnutls.ts';

/** A V8 firmware client with its credentials (`provision`), CID = the device's handle, on a UDP driver to the cloud. */
async function firmwareOverUdp(cloudPort: number, deviceId: string, provision: (c: FirmwareClient) => void) {
  const c = new FirmwareClient(await loadFirmware(new V8Engine()));
  provision(c);
  c.setConnectionId(deviceHandle(deviceId));
  c.seed(crypto.randomBytes(32));
  c.config('handshakeInitialTimeoutMs', 500);
  const received: Buffer[] = [];
  const driver = new UdpDriver(c, { host: '127.0.0.1', port: cloudPort, onData: (d) => received.push(Buffer.from(d)) });
  await driver.open();
  return { c, driver, received };
}

describe('firmware client vs the cloud over UDP', () => {
  it('handshakes with a connection ID, gets its CoAP ping answered and receives the reset token', async () => {
    const psk = crypto.randomBytes(16);
    const events: string[] = [];
    const cloud = await startCloud({
      port: 0, host: '127.0.0.1',
      devices: new DeviceRegistry([{ id: 'dev-udp', identity: 'id-udp', psk }]),
      onEvent: (e) => events.push(e.kind),
    });
    const { c, driver, received } = await firmwareOverUdp(cloud.port, 'dev-udp', (fw) => fw.provision(Buffer.from('id-udp'), psk));
    try {
      assert.equal(await driver.handshake(), 'connected', c.lastError);
      // The cloud's reset-token message (CoAP CON POST /rt) rides with its Finished.
      const t0 = Date.now();
      while (received.length === 0 && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 10));
      const rt = received[0];
      assert.ok(rt, 'nothing received after the handshake');
      assert.equal(rt[0] >> 4, 0x4, 'CoAP version 1, confirmable');
      assert.equal(rt[1], 0x02, 'POST');
      assert.equal(rt.subarray(rt.length - 17)[0], 0xff, 'payload marker then the 16-byte token');
      // Records to the cloud carry its CID (handle || random); a CoAP ping gets an empty ACK.
      driver.send(Buffer.from([0x40, 0x00, 0x12, 0x34]));
      while (received.length < 2 && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(received[1], Buffer.from([0x60, 0x00, 0x12, 0x34]));
      const sent = driver.sentDatagrams.at(-1)!;
      assert.equal(sent[0], 25, 'tls12_cid record');
      assert.deepEqual(Buffer.from(sent.subarray(11, 15)), deviceHandle('dev-udp'));
      assert.ok(events.includes('handshake'), "events.includes('handshake')");
      assert.equal(c.counters().dropAuthFailed, 0);
    } finally {
      driver.close();
      await cloud.close();
    }
  });
});

describe('firmware client vs the cloud over UDP: ECDHE-ECDSA with raw public keys (issue 19)', () => {
  it('handshakes on 0xC0AE with the pinned server key, gets the reset token and its ping answered', async () => {
    const device = p256KeyPair('fw-device');
    const devices = new DeviceRegistry([]);
    devices.addPublicKeyDevice('dev-ec', device.publicKey);
    const events: CloudEvent[] = [];
    const cloud = await startCloud({ port: 0, host: '127.0.0.1', devices, onEvent: (e) => events.push(e) });
    const { c, driver, received } = await firmwareOverUdp(cloud.port, 'dev-ec', (fw) => fw.provisionEcdhe(cloud.serverPublicKey!, device.privateKey));
    try {
      assert.equal(await driver.handshake(), 'connected', c.lastError);
      const hs = events.find((e) => e.kind === 'handshake');
      assert.ok(hs && hs.kind === 'handshake' && hs.deviceId === 'dev-ec' && hs.tokenIssued, JSON.stringify(events));
      assert.equal(cloud.counters()['handshakes|completed'], 1);
      const t0 = Date.now();
      while (received.length === 0 && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 10));
      assert.equal(received[0]?.[1], 0x02, 'the reset-token POST');
      driver.send(Buffer.from([0x40, 0x00, 0x12, 0x35]));
      while (received.length < 2 && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(received[1], Buffer.from([0x60, 0x00, 0x12, 0x35]));
      assert.equal(cloud.counters()['internal_errors'] ?? 0, 0);
    } finally {
      driver.close();
      await cloud.close();
    }
  });
});
