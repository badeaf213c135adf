// The device's own CID must be the handle the cloud derives from the device id (docs/protocol.md),
// or stateless resets cannot find it; checked for every id length the credentials allow.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { V8Engine } from '../../host/engines/v8.ts';
import { Device } from '../../host/device.ts';
import { deviceHandle } from '../../host/cloud/devices.ts';

describe('device handle', () => {
  it('the ClientHello offers SHA-256("sleepy-session handle" || id)[:4] for ids of 1..48 bytes', async () => {
    for (let len = 1; len <= 48; len++) {
      const id = 'd'.repeat(len - 1) + String(len % 10);
      const sent: Uint8Array[] = [];
      const d = new Device({ id, identity: 'x', psk: crypto.randomBytes(16), profile: 'default', engine: new V8Engine(), send: (x) => sent.push(x) });
      await d.provision();
      await d.wake(0);
      const hello = Buffer.from(sent[0]);
      const ext = hello.indexOf(Buffer.from([0x00, 0x36, 0x00, 0x05, 0x04]));
      assert.ok(ext > 0, 'connection_id extension with a 4-byte CID');
      assert.deepEqual(hello.subarray(ext + 5, ext + 9), deviceHandle(id), `id of ${len} bytes`);
      d.sleep();
    }
  });
});
