// The firmware on a microcontroller: one device on the Cortex-M4 image (wasm3, QEMU mps2-an386)
// against a real `sleepy-session cloud` process over UDP, through the bridge (`sleepy-session mcu`):
// handshake and publish, a resumed wake that costs one small record, then the 2019 incident — the
// cloud's session cache wiped (the process restarted on its memory store) — healed on the first
// wake by the reset token, with every event delivered to the webhook; every protected record the
// image sends is already reserved on its flash when it reaches the host.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FLASH_FILE_BYTES, runMcu, type McuRunOptions, type WakeReport } from '../../host/mcu/bridge.ts';
import { mcuUnavailable } from '../../host/mcu/qemu.ts';
import { Proc, until, webhookServer, writeDevicesFile } from './fixtures/cloud-tools.ts';
import { newestSlot } from './fixtures/persisted.ts';
import { REGION_BYTES } from '../../host/session-abi.ts';
import { skipOrFail } from './engines.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLOUD_CLI = fileURLToPath(new URL('../../host/cloud/cli.ts', import.meta.url));
const DEVICE = 'm4-dev';

async function startCloud(devices: string, port: number, webhook: string): Promise<{ proc: Proc; port: number }> {
  const proc = new Proc(spawn(process.execPath, ['--import', 'tsx', CLOUD_CLI, '--devices', devices, '--port', String(port), '--webhook', webhook], {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'],
  }));
  await proc.wait((p) => /cloud listening udp=\S+:(\d+)/.test(p.out.toString()), 20_000, 'the cloud to listen');
  return { proc, port: Number(/cloud listening udp=\S+:(\d+)/.exec(proc.out.toString())![1]) };
}

async function stopCloud(proc: Proc): Promise<void> {
  proc.kill('SIGTERM');
  await proc.exited;
}

const types = (r: WakeReport): string[] => r.events.map((e) => e.type);

describe('the Cortex-M4 image against the cloud', () => {
  it('handshakes, publishes, resumes with one small record, heals a cache wipe on the first wake, loses no event', async (t) => {
    const why = mcuUnavailable('wasm3');
    if (why) return skipOrFail(t, why);
    const psk = crypto.randomBytes(16);
    // A shared cloud secret: reset tokens stay verifiable by the restarted cloud process.
    const devices = writeDevicesFile({ cloudSecret: crypto.randomBytes(32).toString('hex'), devices: [{ id: DEVICE, identity: DEVICE, psk: psk.toString('hex') }] });
    const hook = await webhookServer();
    const dir = mkdtempSync(join(tmpdir(), 'sleepy-mcu-test-'));
    let cloud = await startCloud(devices, 0, hook.url);
    const log: string[] = [];
    const opts = (wakes: number): McuRunOptions => ({
      cloud: { host: '127.0.0.1', port: cloud.port }, id: DEVICE, credentials: { suite: 'psk', identity: DEVICE, psk }, profile: 'default', wakes,
      wakeEveryMs: 100, appAwakeMs: 300, flashPath: join(dir, 'flash.bin'), build: 'wasm3', publish: true, log: (l) => log.push(l),
      onUplink: (frame) => checkReserved(frame),
    });
    // Write before send, seen from outside: when a protected record reaches the host, the flash
    // file already reserves its sequence number (docs/abi.md, host contract).
    let recordsChecked = 0;
    const unreserved: string[] = [];
    const checkReserved = (frame: Buffer): void => {
      if ((frame[0] !== 23 && frame[0] !== 25) || frame.readUInt16BE(3) !== 1) return; // epoch-1 records only
      const seq = frame.readUIntBE(5, 6);
      const slot = newestSlot(readFileSync(join(dir, 'flash.bin')).subarray(0, REGION_BYTES));
      if (!slot || BigInt(seq) >= slot.writeReserved) unreserved.push(`record ${seq} (flash reserves below ${slot?.writeReserved ?? 'nothing'})`);
      recordsChecked++;
    };
    // Each wake publishes "reading" with "wake <n>" (n counts the wakes of one runMcu call).
    const delivered = (seq: number, wake?: number) => hook.accepted().some((r) => r.body.device === DEVICE && r.body.seq === seq &&
      r.body.event === 'reading' && (wake === undefined || Buffer.from(String(r.body.data), 'base64').toString() === `wake ${wake}`));
    try {
      const [first, second] = await runMcu(opts(2));
      t.diagnostic(log.join('\n'));
      assert.equal(readFileSync(join(dir, 'flash.bin')).length, FLASH_FILE_BYTES);

      // Wake 1: a full handshake, the event published and acknowledged before sleep.
      assert.ok(types(first).includes('connected'), `wake 1 events: ${types(first)}`);
      assert.deepEqual(first.events.filter((e) => e.type === 'event-acked'), [{ type: 'event-acked', seq: first.publishedSeq }]);
      assert.ok(first.uplink.length >= 4, `a handshake takes at least 4 datagrams up (got ${first.uplink.length})`);

      // Wake 2: the stored session resumed; the event is the only datagram, one small record.
      assert.equal(second.bootState, 'resumed');
      assert.ok(!types(second).includes('handshake-started'), `wake 2 events: ${types(second)}`);
      assert.equal(second.uplink.length, 1, 'a resumed wake sends exactly one datagram');
      assert.ok(second.uplink[0].length <= 80, `one small record (${second.uplink[0].length} bytes)`);
      assert.ok(types(second).includes('confirmed'), "types(second).includes('confirmed')");
      assert.deepEqual(second.events.filter((e) => e.type === 'event-acked'), [{ type: 'event-acked', seq: second.publishedSeq }]);
      // The image's RAM report reached the host (figures in BENCHMARKS.md).
      assert.ok(second.heapHighWaterBytes! > 0 && second.stackHighWaterBytes! > 0, 'second.heapHighWaterBytes! > 0 && second.stackHighWaterBytes! > 0');

      // Events in a cloud process that stops are lost by design (docs/protocol.md): wait for delivery first.
      await until(() => delivered(first.publishedSeq!, 1) && delivered(second.publishedSeq!, 2), 10_000, 'webhook delivery of the first two events');
      // The 2019 incident: the session cache is gone (the process restarts on its memory store).
      await stopCloud(cloud.proc);
      cloud = await startCloud(devices, cloud.port, hook.url);

      const [third] = await runMcu(opts(1));
      t.diagnostic(log.slice(-12).join('\n'));
      assert.equal(third.bootState, 'resumed', 'the device does not know yet');
      assert.ok(third.events.some((e) => e.type === 'handshake-started' && e.reason === 'reset-token'), `healed by the reset token on the first wake: ${JSON.stringify(third.events)}`);
      assert.ok(types(third).includes('connected'), "types(third).includes('connected')");
      assert.ok(third.events.some((e) => e.type === 'event-acked' && e.seq === third.publishedSeq), 'the event published into the dead session is delivered after the heal');
      assert.ok(!types(third).includes('event-dropped'), "!types(third).includes('event-dropped')");

      await until(() => delivered(third.publishedSeq!, 1), 10_000, 'webhook delivery of the event published across the wipe');
      assert.ok(recordsChecked >= 4, `records checked against the flash reservation: ${recordsChecked}`);
      assert.deepEqual(unreserved, [], 'sent before their sequence numbers were reserved on flash');
      const seqs = [first, second, third].map((r) => r.publishedSeq);
      assert.deepEqual(seqs, [seqs[0], seqs[0]! + 1, seqs[0]! + 2], 'consecutive event sequence numbers');
    } finally {
      await stopCloud(cloud.proc);
      await hook.close();
      rmSync(dir, { recursive: true, force: true });
      rmSync(devices, { force: true });
    }
  });
});
