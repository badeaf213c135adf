// The `connect` host (host/udp-driver.ts) under the host contract: a client that has booted from
// persistent memory stores writes (the sequence reservation); the driver applies each of them
// before it sends the next datagram, which finds its sequence number reserved.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { PersistentMemory } from '../../host/board/board.ts';
import { startCloud } from '../../host/cloud/server.ts';
import { DeviceRegistry } from '../../host/cloud/devices.ts';
import { V8Engine } from '../../host/engines/v8.ts';
import { loadFirmware } from '../../host/firmware.ts';
import { FirmwareClient } from '../../host/session-abi.ts';
import { UdpDriver } from '../../host/udp-driver.ts';
import { parseDatagram } from './dtls-ref.ts';
import { SERVER_CID_BYTES } from '../../host/cloud/wire.ts';
import { newestSlot } from './fixtures/persisted.ts';

describe('UdpDriver and persistent memory', () => {
  it('applies every store before the next send; each record is reserved in memory when it leaves', async () => {
    const psk = crypto.randomBytes(16);
    const cloud = await startCloud({ port: 0, host: '127.0.0.1', devices: new DeviceRegistry([{ id: 'dev-drv', identity: 'dev-drv', psk }]) });
    const c = new FirmwareClient(await loadFirmware(new V8Engine()));
    const images: { sentBefore: number; image: Uint8Array }[] = [];
    let driver: UdpDriver | undefined;
    const memory = new PersistentMemory();
    const apply = memory.apply.bind(memory);
    memory.apply = (w) => {
      apply(w);
      images.push({ sentBefore: driver?.sentDatagrams.length ?? 0, image: memory.snapshot() });
    };
    c.provisionDevice('default', 'dev-drv', Buffer.from('dev-drv'), psk);
    for (let w = c.pollStore(); w; w = c.pollStore()) memory.apply(w);
    c.seed(crypto.randomBytes(48));
    c.boot(Date.now(), memory.snapshot());
    driver = new UdpDriver(c, { host: '127.0.0.1', port: cloud.port, memory });
    await driver.open();
    try {
      assert.equal(await driver.handshake(), 'connected', c.lastError);
      for (let i = 0; i < 70; i++) driver.send(Buffer.from([0x40, 0x00, 0x10, i])); // CoAP pings
      let judged = 0;
      driver.sentDatagrams.forEach((d, i) => {
        const before = images.filter((s) => s.sentBefore <= i).at(-1);
        const slot = before && newestSlot(before.image);
        // The server CID's length: the session's once it holds one, else the one the cloud issues.
        const records = parseDatagram(d, slot?.hasSession ? slot.peerCid.length : SERVER_CID_BYTES);
        if (records.some((r) => r.epoch === 0)) return; // the handshake's own flights
        for (const r of records) {
          judged++;
          assert.ok(slot?.hasSession && slot.writeReserved > r.seq, `datagram #${i}: seq ${r.seq} sent with ${slot?.writeReserved} reserved`);
        }
      });
      assert.ok(judged >= 70, `only ${judged} records judged`);
    } finally {
      driver.close();
      await cloud.close();
    }
  });
});
