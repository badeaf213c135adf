// Interop with a peer nobody here wrote: OpenSSL's s_client (DTLS 1.2, PSK-AES128-CCM8, EMS)
// completes a handshake with the cloud, sends CoAP inside application data (a ping and an event)
// and gets the answers; a close_notify ends the session. Also: the identity-hint variant (with a
// ServerKeyExchange) and a wrong PSK (refused, counted).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { DeviceRegistry } from '../../host/cloud/devices.ts';
import { startCloud, type RunningCloud } from '../../host/cloud/server.ts';
import type { CloudEvent } from '../../host/cloud/core.ts';
import { eventMessage } from './fixtures/cloud-client.ts';
import { Proc, toolMissing, until } from './fixtures/cloud-tools.ts';
import { skipOrFail } from './engines.ts';

const PSK = Buffer.from('8f3c5a7e1d2b4c6a9e0f1a2b3c4d5e6f', 'hex');
const missing = toolMissing('openssl', ['version']);

function sClient(port: number, psk: Buffer, identity: string): Proc {
  return Proc.spawn('openssl', [
    's_client', '-dtls1_2', '-psk', psk.toString('hex'), '-psk_identity', identity,
    '-cipher', 'PSK-AES128-CCM8', '-connect', `127.0.0.1:${port}`,
  ]);
}

function contains(hay: Buffer, needle: Buffer): boolean {
  return hay.indexOf(needle) >= 0;
}

describe('cloud with OpenSSL s_client as the device', () => {
  let cloud: RunningCloud;
  const events: CloudEvent[] = [];

  before(async () => {
    if (missing) return;
    cloud = await startCloud({
      port: 0,
      devices: new DeviceRegistry([{ id: 'ossl-1', identity: 'ossl-identity', psk: PSK }]),
      onEvent: (e) => events.push(e),
    });
  });
  after(async () => cloud?.close());

  it('handshake, CoAP ping and event over application data, close_notify', async (t) => {
    if (missing) return skipOrFail(t, missing);
    const p = sClient(cloud.port, PSK, 'ossl-identity');
    try {
      await until(() => events.some((e) => e.kind === 'handshake'), 10_000, 'the handshake');
      await p.wait((x) => x.out.toString('latin1').includes('Cipher is PSK-AES128-CCM8'), 5000, 's_client session summary');
      const summary = p.out.toString('latin1');
      assert.match(summary, /Extended master secret: yes/);
      // CoAP ping (empty CON, MID 0x1234) → empty ACK with the same MID.
      p.child.stdin!.write(Buffer.from([0x40, 0x00, 0x12, 0x34]));
      await p.wait((x) => contains(x.out, Buffer.from([0x60, 0x00, 0x12, 0x34])), 5000, 'the ACK of the ping');
      // POST /e/temp, event seq 5 → 2.04 Changed piggybacked, and the event reaches the application.
      p.child.stdin!.write(eventMessage('temp', 5, Buffer.from('19.5'), 0x2222));
      await p.wait((x) => contains(x.out, Buffer.from([0x62, 0x44, 0x22, 0x22, 0x01, 0x02])), 5000, 'the 2.04 answer');
      await until(() => events.some((e) => e.kind === 'event'), 2000, 'the event');
      const ev = events.find((e) => e.kind === 'event');
      assert.ok(ev && ev.kind === 'event', "ev && ev.kind === 'event'");
      assert.deepEqual([ev.deviceId, ev.name, ev.seq, ev.data.toString()], ['ossl-1', 'temp', 5, '19.5']);
      p.child.stdin!.end(); // EOF: s_client sends close_notify and exits
      await until(() => events.some((e) => e.kind === 'closed'), 5000, 'close_notify');
      assert.equal(await p.exited, 0);
      const c = cloud.counters();
      assert.equal(c['handshakes|completed'], 1);
      assert.equal(c['sessions_closed|close_notify'], 1);
      assert.equal(c['internal_errors'] ?? 0, 0);
    } finally {
      p.kill();
    }
  });

  it('a wrong PSK never completes; the bad Finished is counted', async (t) => {
    if (missing) return skipOrFail(t, missing);
    const before = cloud.counters()['drops|bad_mac_finished'] ?? 0;
    const p = sClient(cloud.port, Buffer.alloc(16, 0x55), 'ossl-identity');
    try {
      await until(() => (cloud.counters()['drops|bad_mac_finished'] ?? 0) > before, 10_000, 'the refused Finished');
    } finally {
      p.kill();
      await p.exited;
    }
    assert.equal(events.filter((e) => e.kind === 'handshake').length, 1, 'no second handshake completed');
  });
});

describe('cloud with an identity hint (ServerKeyExchange) and s_client', () => {
  it('completes the handshake and answers a ping', async (t) => {
    if (missing) return skipOrFail(t, missing);
    const cloud = await startCloud({
      port: 0,
      devices: new DeviceRegistry([{ id: 'ossl-2', identity: 'id-2', psk: PSK }]),
      config: { identityHint: 'sleepy-cloud' },
    });
    const p = sClient(cloud.port, PSK, 'id-2');
    try {
      await p.wait((x) => x.out.toString('latin1').includes('Cipher is PSK-AES128-CCM8'), 10_000, 'the handshake');
      p.child.stdin!.write(Buffer.from([0x40, 0x00, 0x00, 0x07]));
      await p.wait((x) => contains(x.out, Buffer.from([0x60, 0x00, 0x00, 0x07])), 5000, 'the ACK of the ping');
      assert.match(p.out.toString('latin1'), /PSK identity hint: sleepy-cloud/);
    } finally {
      p.kill();
      await p.exited;
      await cloud.close();
    }
  });
});
