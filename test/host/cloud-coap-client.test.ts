// Interop with libcoap's coap-client (Debian package libcoap3-bin), over both of its DTLS backends
// (OpenSSL and GnuTLS): `coap-client -u ID -k KEY coaps://127.0.0.1:PORT/...` completes a PSK
// handshake with TLS_PSK_WITH_AES_128_CCM_8, POSTs a device event (2.04, delivered to the
// webhook) and GETs an unknown path (4.04).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeviceRegistry } from '../../host/cloud/devices.ts';
import { startCloud, type RunningCloud } from '../../host/cloud/server.ts';
import { Proc, toolMissing, until, webhookServer } from './fixtures/cloud-tools.ts';
import { skipOrFail } from './engines.ts';

// coap-client takes the key as a string, so this PSK is printable.
const KEY = 'coap-psk-0123456';
const BACKENDS = ['openssl', 'gnutls'] as const;

describe('cloud with libcoap coap-client', () => {
  let cloud: RunningCloud;
  let hook: Awaited<ReturnType<typeof webhookServer>>;
  const dir = mkdtempSync(join(tmpdir(), 'sleepy-coap-'));

  before(async () => {
    hook = await webhookServer();
    cloud = await startCloud({
      port: 0,
      devices: new DeviceRegistry(BACKENDS.map((b) => ({ id: `coap-${b}`, identity: `libcoap-${b}`, psk: Buffer.from(KEY) }))),
      webhook: { url: hook.url, baseDelayMs: 20 },
    });
  });
  after(async () => {
    await cloud?.close();
    await hook?.close();
  });

  for (const backend of BACKENDS) {
    const tool = `coap-client-${backend}`;
    it(`${tool}: POST /e/<name> (2.04, one webhook delivery) and GET of an unknown path (4.04)`, async (t) => {
      const missing = toolMissing(tool, ['-h']);
      if (missing) return skipOrFail(t, `${missing} (Debian: libcoap3-bin)`);
      const payload = join(dir, `${backend}.bin`);
      writeFileSync(payload, Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.from(`hello from ${backend}`)]));
      const base = ['-u', `libcoap-${backend}`, '-k', KEY, '-B', '5'];
      // Asynchronous spawns: the cloud runs in this process and must keep answering.
      const post = Proc.spawn(tool, [...base, '-m', 'post', '-f', payload, `coaps://127.0.0.1:${cloud.port}/e/greeting`]);
      post.child.stdin!.end();
      assert.equal(await post.exited, 0, `${tool} failed: ${post.err}`);
      await until(() => hook.accepted().some((r) => r.body.device === `coap-${backend}`), 5000, 'the webhook delivery');
      const got = hook.accepted().filter((r) => r.body.device === `coap-${backend}`);
      assert.equal(got.length, 1);
      assert.equal(got[0].body.event, 'greeting');
      assert.equal(got[0].body.seq, 3);
      assert.equal(Buffer.from(String(got[0].body.data), 'base64').toString(), `hello from ${backend}`);
      const get = Proc.spawn(tool, [...base, `coaps://127.0.0.1:${cloud.port}/nothing/here`]);
      get.child.stdin!.end();
      await get.exited;
      assert.match(get.out.toString() + get.err, /4\.04/);
    });
  }

  it('both backends negotiated the suite with the cloud (handshakes counted, nothing dropped as an error)', (t) => {
    if (BACKENDS.some((b) => toolMissing(`coap-client-${b}`, ['-h']))) return skipOrFail(t, 'coap-client backends missing (libcoap3-bin)');
    const c = cloud.counters();
    assert.equal(c['handshakes|completed'], 4);
    assert.equal(c['internal_errors'] ?? 0, 0);
    assert.equal(c['handshakes|failed'] ?? 0, 0);
  });
});
