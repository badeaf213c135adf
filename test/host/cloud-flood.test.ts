// No lockout, over real UDP: one host (127.0.0.1 — loopback only) completes the cookie exchange
// from 2,500 source ports and then goes silent, more than twice its per-address quota of
// half-open handshakes; a real device on that same host handshakes in the middle of the flood and
// is served. (The sans-IO test in cloud-protocol.test.ts does the same with 12,000 ports and a
// device on another address.) Before issue 10 the table filled and every device was refused.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { DeviceRegistry, deviceHandle } from '../../host/cloud/devices.ts';
import { startCloud } from '../../host/cloud/server.ts';
import { TestDtlsClient, UdpCloudClient } from './fixtures/cloud-client.ts';

const PSK = Buffer.from('5a5b5c5d5e5f60616263646566676869', 'hex');
const PORTS = 2500;
const QUOTA = 1024;

/** One half-open handshake: ClientHello, HelloVerifyRequest, ClientHello with cookie, then silence. */
async function halfOpen(cloudPort: number): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  const c = new TestDtlsClient({ identity: 'flood', psk: Buffer.alloc(16) });
  const flight = new Promise<void>((resolve) => {
    s.on('message', (m) => {
      if (m[13] === 3) for (const d of c.receive(m).send) s.send(d, cloudPort, '127.0.0.1'); // answer the HelloVerifyRequest only
      if (m[13] === 2) resolve(); // the server flight: a handshake entry exists for this port; stay silent
    });
  });
  s.send(c.start(), cloudPort, '127.0.0.1');
  await Promise.race([flight, new Promise((r) => setTimeout(r, 3000))]);
  return s;
}

describe('half-open handshake flood over UDP', () => {
  it(`${PORTS} half-open handshakes from one host; a device on that host completes its handshake during the flood`, async () => {
    const cloud = await startCloud({ port: 0, devices: new DeviceRegistry([{ id: 'real-dev', identity: 'real-id', psk: PSK }]), config: { maxPendingPerAddress: QUOTA } });
    const sockets: dgram.Socket[] = [];
    let device: UdpCloudClient | null = null;
    try {
      const flood = async (n: number) => {
        for (let i = 0; i < n; i += 100) sockets.push(...(await Promise.all(Array.from({ length: Math.min(100, n - i) }, () => halfOpen(cloud.port)))));
      };
      await flood(1500);
      assert.equal(cloud.core.tableSizes().pending, QUOTA, 'the host holds its quota of half-open handshakes');
      // The device handshakes while the flood goes on.
      device = await UdpCloudClient.open(cloud.port, { identity: 'real-id', psk: PSK, offerCid: deviceHandle('real-dev') });
      const rest = flood(PORTS - 1500);
      await device.connect(10_000);
      await rest;
      await device.ping();
      const c = cloud.counters();
      assert.ok(c['handshakes|started'] >= PORTS, `${c['handshakes|started']} handshakes started`);
      assert.ok(c['handshakes|evicted'] >= PORTS - QUOTA, 'the host pushed out only its own oldest half-open handshakes');
      assert.equal(c['handshakes|completed'], 1);
      assert.equal(c['drops|pending_handshakes_full'] ?? 0, 0);
      assert.equal(c['internal_errors'] ?? 0, 0);
      assert.ok(cloud.core.tableSizes().pending <= QUOTA, 'cloud.core.tableSizes().pending <= QUOTA');
    } finally {
      device?.close();
      for (const s of sockets) s.close();
      await cloud.close();
    }
  });
});
