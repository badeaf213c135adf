// ACK → webhook latency of the Redis event log with the settings a user gets with no flag (issue:
// XREADGROUP's RESP3 reply was read as an empty array, so every event waited in the consumer's
// pending list for the 60 s reclaim timer). A real `sleepy-session cloud` process with
// `--events redis://…` and `--webhook` but no `--event-reclaim-after`, one device over real UDP
// sending 50 events one after another; each event's ACK time (the 2.04) against the time the
// receiver got it. The bound (every event within 10 s) holds at any machine speed, and the broken
// path cannot meet it: it takes at least the 60 s reclaim timer. The wait is bounded at 15 s.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { deviceHandle } from '../../host/cloud/devices.ts';
import { UdpCloudClient, coapHeader } from './fixtures/cloud-client.ts';
import { Redis, freeTcpPort, startCloudProcess, toolMissing, until, webhookServer, writeDevicesFile, type CloudProc } from './fixtures/cloud-tools.ts';
import { skipOrFail } from './engines.ts';

const missing = toolMissing('redis-server', ['--version']);
const EVENTS = 50;
const MAX_LATENCY_MS = 10_000;

describe('Redis event log, default settings: ACK → webhook latency', () => {
  let redis: Redis;
  let cloud: CloudProc | null = null;
  let hook: Awaited<ReturnType<typeof webhookServer>>;
  const arrived = new Map<string, number>();
  before(async () => {
    if (missing) return;
    redis = new Redis(await freeTcpPort(), true);
    await redis.start();
    hook = await webhookServer((id) => {
      if (!arrived.has(id)) arrived.set(id, Date.now());
      return 200;
    });
  });
  after(async () => {
    cloud?.proc.kill('SIGKILL');
    await cloud?.proc.exited;
    await redis?.kill9();
    await hook?.close();
  });

  it(`${EVENTS} events, each delivered well before the 60 s reclaim timer (< ${MAX_LATENCY_MS / 1000} s after its ACK)`, async (t) => {
    if (missing) return skipOrFail(t, missing);
    const psk = crypto.randomBytes(16);
    const devicesFile = writeDevicesFile({ cloudSecret: crypto.randomBytes(32).toString('hex'), devices: [{ id: 'lat-1', psk: psk.toString('hex') }] });
    cloud = await startCloudProcess(['--devices', devicesFile, '--port', '0', '--metrics-port', '0', '--events', redis.url, '--webhook', hook.url]);
    const c = await UdpCloudClient.open(cloud.port, { identity: 'lat-1', psk, offerCid: deviceHandle('lat-1') });
    try {
      await c.connect(5000);
      const incarnation = crypto.randomBytes(4);
      const acked = new Map<string, number>();
      for (let seq = 0; seq < EVENTS; seq++) {
        const answer = await c.request((mid) => c.client.event('t', seq, Buffer.from(`v${seq}`), { mid, incarnation }), 3000);
        assert.equal(coapHeader(answer).code, 0x44, `event ${seq} answered 2.04`);
        acked.set(`lat-1:${incarnation.toString('hex')}:${seq}`, Date.now());
      }
      const lastAck = Date.now();
      await until(() => [...acked.keys()].every((k) => arrived.has(k)), 15_000, 'every ACKed event at the webhook within 15 s of the last ACK (the reclaim timer is 60 s)').catch((e: Error) => {
        throw new Error(`${e.message}; ${arrived.size} of ${EVENTS} arrived ${Date.now() - lastAck} ms after the last ACK`);
      });
      const latencies = [...acked].map(([k, at]) => arrived.get(k)! - at).sort((a, b) => a - b);
      t.diagnostic(`ACK → webhook: p50 ${latencies[Math.floor(latencies.length / 2)]} ms, max ${latencies[latencies.length - 1]} ms`);
      assert.ok(latencies[latencies.length - 1] < MAX_LATENCY_MS, `max latency ${latencies[latencies.length - 1]} ms`);
    } finally {
      c.close();
    }
  });
});
