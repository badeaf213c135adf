// No ACKed event is lost (issue 10), with real processes: two `sleepy-session cloud` processes
// share a non-persistent cache Redis (--store) and a persistent event Redis (--events, appendonly
// yes, appendfsync always), and deliver to a webhook receiver that fails on purpose. Devices send
// events and count one as ACKed only when the cloud answered 2.04. Faults: kill -9 of a cloud
// process with a webhook backlog; the receiver down for 10 minutes (accelerated: back-off capped
// at 300 ms instead of 30 s, down for 6 s); kill -9 of the cache Redis and an empty restart under
// traffic (the 2019 incident); kill -9 of the event Redis under traffic; a device erased and
// provisioned again. After each: every ACKed event was delivered, and every delivery carries a
// key that was sent (so a duplicate can always be recognised). Devices move between the two
// front ends by CID with no new handshake.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { deviceHandle } from '../../host/cloud/devices.ts';
import { UdpCloudClient, coapHeader } from './fixtures/cloud-client.ts';
import { Redis, freeTcpPort, metric, scrape, startCloudProcess, toolMissing, until, webhookServer, writeDevicesFile, type CloudProc } from './fixtures/cloud-tools.ts';
import { skipOrFail } from './engines.ts';

const missing = toolMissing('redis-server', ['--version']);
const DEVICES = 4;
const PSKS = Array.from({ length: DEVICES }, () => crypto.randomBytes(16));
const SECRET = crypto.randomBytes(32);
const id = (i: number) => `dur-${i}`;

/** A device that publishes events in order and remembers which ones the cloud ACKed. */
class EventDevice {
  readonly acked = new Set<string>();
  readonly sent = new Set<string>();
  seq = 0;
  handshakes = 0;
  #c: UdpCloudClient | null = null;
  #turn = 0;
  constructor(
    readonly index: number,
    public incarnation: Buffer | null,
    readonly ports: () => number[],
  ) {}

  key(seq: number): string {
    return this.incarnation ? `${id(this.index)}:${this.incarnation.toString('hex')}:${seq}` : `${id(this.index)}:${seq}`;
  }

  #port(): number {
    const ports = this.ports();
    return ports[this.#turn++ % ports.length];
  }

  /** Publishes events until `count` are ACKed (or `deadline`); reconnects through any front end when the session is gone. */
  async publish(count: number, deadlineMs = 60_000): Promise<void> {
    const end = Date.now() + deadlineMs;
    let failures = 0;
    while (this.acked.size < count) {
      if (Date.now() > end) throw new Error(`${id(this.index)}: only ${this.acked.size}/${count} ACKed in time`);
      if (!this.#c) {
        const c = await UdpCloudClient.open(this.#port(), { identity: id(this.index), psk: PSKS[this.index], offerCid: deviceHandle(id(this.index)) });
        try {
          await c.connect(1500);
          this.#c = c;
          this.handshakes++;
          failures = 0;
        } catch {
          c.close();
          await new Promise((r) => setTimeout(r, 100));
        }
        continue;
      }
      const c = this.#c;
      c.retarget(this.#port()); // front ends take turns: the session follows the CID
      const seq = this.seq;
      this.sent.add(this.key(seq));
      try {
        const answer = await c.request((mid) => c.client.event('t', seq, Buffer.from(`v${seq}`), { mid, incarnation: this.incarnation ?? undefined }), 400);
        if (coapHeader(answer).code === 0x44) {
          this.acked.add(this.key(seq));
          this.seq++;
          failures = 0;
        }
      } catch {
        // No ACK: the same event again (possibly through the other front end); after a reset or
        // a few silent tries the session is treated as lost and the device handshakes again.
        if (c.events.some((e) => e.kind === 'reset') || ++failures >= 4) {
          c.close();
          this.#c = null;
        }
      }
    }
  }

  close(): void {
    this.#c?.close();
    this.#c = null;
  }
}

describe('durable events across process and Redis crashes (real processes)', () => {
  let cache: Redis;
  let events: Redis;
  let hookMode: 'up' | 'down' = 'up';
  const refuse = new Set<string>();
  let hook: Awaited<ReturnType<typeof webhookServer>>;
  let devicesFile: string;
  const clouds: (CloudProc | null)[] = [null, null];
  let devices: EventDevice[];
  const live = () => clouds.filter((c): c is CloudProc => c !== null && c.proc.alive);

  const startCloud = async (slot: number) => {
    clouds[slot] = await startCloudProcess([
      '--devices', devicesFile, '--port', '0', '--metrics-port', '0', '--store', cache.url, '--events', events.url,
      '--webhook', hook.url, '--webhook-max-delay', '300ms', '--event-reclaim-after', '1s',
    ]);
  };
  const delivered = () => new Set(hook.accepted().map((r) => r.id));
  /** Every ACKed event delivered; every delivery a key some device sent. */
  const checkDelivery = async (what: string) => {
    const acked = devices.flatMap((d) => [...d.acked]);
    await until(() => acked.every((k) => delivered().has(k)), 30_000, `every ACKed event delivered (${what}); missing: ${acked.filter((k) => !delivered().has(k)).slice(0, 5).join(', ')}`);
    const sent = new Set(devices.flatMap((d) => [...d.sent]));
    for (const r of hook.accepted()) assert.ok(sent.has(r.id), `delivery ${r.id} carries a key that was sent`);
    for (const r of hook.accepted()) assert.equal(r.body.id, r.id);
  };

  before(async () => {
    if (missing) return;
    cache = new Redis(await freeTcpPort());
    events = new Redis(await freeTcpPort(), true);
    await Promise.all([cache.start(), events.start()]);
    hook = await webhookServer((key) => (refuse.has(key) ? 422 : hookMode === 'up' ? 200 : 503));
    devicesFile = writeDevicesFile({ cloudSecret: SECRET.toString('hex'), devices: PSKS.map((psk, i) => ({ id: id(i), psk: psk.toString('hex') })) });
    await Promise.all([startCloud(0), startCloud(1)]);
    devices = Array.from({ length: DEVICES }, (_, i) => new EventDevice(i, crypto.randomBytes(4), () => live().map((c) => c.port)));
  });
  after(async () => {
    for (const d of devices ?? []) d.close();
    for (const c of clouds) c?.proc.kill('SIGKILL');
    await Promise.all(clouds.map((c) => c?.proc.exited));
    await cache?.kill9();
    await events?.kill9();
    await hook?.close();
  });

  it('kill -9 of a cloud process with a webhook backlog: the other takes its events over', async (t) => {
    if (missing) return skipOrFail(t, missing);
    hookMode = 'down';
    await Promise.all(devices.map((d) => d.publish(d.acked.size + 15)));
    // Kill the process holding the most undelivered events (each holds what it is retrying).
    let inHand: number[] = [];
    await until(async () => {
      inHand = await Promise.all(clouds.map(async (c) => metric(await scrape(c!.metricsPort), 'sleepy_cloud_table_entries{table="webhookInHand"}')));
      return Math.max(...inHand) > 0;
    }, 10_000, 'a process to hold undelivered events');
    const victim = inHand[0] >= inHand[1] ? 0 : 1;
    assert.ok(metric(await scrape(clouds[victim]!.metricsPort), 'sleepy_cloud_event_log_backlog') >= 15, 'a backlog in the event log');
    clouds[victim]!.proc.kill('SIGKILL');
    await clouds[victim]!.proc.exited;
    hookMode = 'up';
    await checkDelivery('after kill -9 of the cloud process holding them');
    await startCloud(victim);
  });

  it('the receiver down for "10 minutes" (accelerated 100×): retried past any attempt limit, then all delivered', async (t) => {
    if (missing) return skipOrFail(t, missing);
    hookMode = 'down';
    const before = hook.requests.length;
    await Promise.all(devices.map((d) => d.publish(d.acked.size + 5)));
    const downSince = Date.now();
    const fresh = devices.map((d) => d.key(d.seq - 1));
    const attempts = () => {
      const n = new Map<string, number>();
      for (const r of hook.requests.slice(before)) n.set(r.id, (n.get(r.id) ?? 0) + 1);
      return n;
    };
    // Down for at least 6 s (10 min at 100×) and until each newest event was refused more than
    // 10 times (where the old sender gave up); the machine is shared, so the count is awaited.
    await until(() => Date.now() - downSince >= 6000 && fresh.every((k) => (attempts().get(k) ?? 0) > 10), 60_000, 'more than 10 refusals of each newest event');
    for (const c of live()) assert.equal(metric(await scrape(c.metricsPort), 'sleepy_cloud_webhook_dead_letters_total'), 0, 'a 503 is never a dead letter');
    hookMode = 'up';
    await checkDelivery('after the receiver came back');
    for (const c of live()) assert.equal(metric(await scrape(c.metricsPort), 'sleepy_cloud_event_log_dead_letters'), 0);
  });

  it('kill -9 of the cache Redis and an empty restart under traffic (the incident): devices heal, nothing ACKed is lost', async (t) => {
    if (missing) return skipOrFail(t, missing);
    const target = devices.map((d) => d.acked.size + 40);
    const traffic = Promise.all(devices.map((d, i) => d.publish(target[i])));
    await until(() => devices.every((d, i) => d.acked.size >= target[i] - 30), 20_000, 'traffic to flow');
    const handshakesBefore = devices.reduce((n, d) => n + d.handshakes, 0);
    await cache.kill9();
    await new Promise((r) => setTimeout(r, 300));
    await cache.start(); // same port, empty
    await traffic;
    assert.ok(devices.reduce((n, d) => n + d.handshakes, 0) > handshakesBefore, 'devices handshook again after the wipe');
    await checkDelivery('after the cache wipe');
    const dupesByKey = hook.accepted().length - delivered().size;
    assert.ok(dupesByKey >= 0, 'dupesByKey >= 0');
  });

  it('kill -9 of the persistent event Redis under traffic, restart from its append-only file: nothing ACKed is lost', async (t) => {
    if (missing) return skipOrFail(t, missing);
    const target = devices.map((d) => d.acked.size + 40);
    hookMode = 'down'; // so events sit in the log when it dies
    const traffic = Promise.all(devices.map((d, i) => d.publish(target[i])));
    await until(() => devices.every((d, i) => d.acked.size >= target[i] - 30), 20_000, 'traffic to flow');
    await events.kill9();
    await new Promise((r) => setTimeout(r, 500));
    await events.start();
    hookMode = 'up';
    await traffic;
    await checkDelivery('after kill -9 of the event Redis');
    for (const c of live()) assert.equal(metric(await scrape(c.metricsPort), 'sleepy_cloud_internal_errors_total'), 0);
  });

  it('a device erased and provisioned again (new incarnation, sequence from 0): its new events are delivered, not taken for duplicates', async (t) => {
    if (missing) return skipOrFail(t, missing);
    const d = devices[0];
    const oldKeys = [...d.acked];
    d.close();
    const again = new EventDevice(0, crypto.randomBytes(4), () => live().map((c) => c.port));
    devices.push(again);
    await again.publish(10);
    assert.ok(oldKeys.length > 10, 'the old incarnation had used these sequence numbers');
    await checkDelivery('after re-provisioning');
    for (let s = 0; s < 10; s++) assert.ok(delivered().has(again.key(s)), 'delivered().has(again.key(s))');
  });

  it('a permanent refusal goes to the dead-letter stream; `sleepy-session events` lists it and --retry delivers it', async (t) => {
    if (missing) return skipOrFail(t, missing);
    const d = devices[1];
    refuse.add(d.key(d.seq));
    await d.publish(d.acked.size + 1);
    await until(async () => metric(await scrape(live()[0].metricsPort), 'sleepy_cloud_event_log_dead_letters') === 1, 10_000, 'the dead letter');
    const cli = (...args: string[]) => spawnSync(process.execPath, ['bin/sleepy-session.mjs', 'events', '--events', events.url, ...args], { encoding: 'utf8' });
    const list = cli();
    assert.equal(list.status, 0, list.stderr);
    const rows = list.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(rows.map((r) => [r.device, r.seq, r.reason]), [[id(1), d.seq - 1, 'http_422']]);
    assert.match(list.stderr, /^1 dead letter\(s\)/);
    refuse.clear();
    const retry = cli('--retry', 'all');
    assert.equal(retry.status, 0, retry.stderr);
    assert.match(retry.stdout, /moved 1 dead letter/);
    await checkDelivery('after the dead letter was retried');
    assert.ok(delivered().has(d.key(d.seq - 1)), 'delivered().has(d.key(d.seq - 1))');
  });

  it('two front ends served one fleet: sessions moved between them by CID without a handshake', async (t) => {
    if (missing) return skipOrFail(t, missing);
    const ms = await Promise.all(live().map((c) => scrape(c.metricsPort)));
    const pings = ms.map((m) => metric(m, 'sleepy_cloud_coap_total{kind="event"}'));
    assert.ok(pings.every((n) => n > 0), `both front ends handled events: ${pings.join(', ')}`);
    const handshakes = devices.reduce((n, d) => n + d.handshakes, 0);
    const events = devices.reduce((n, d) => n + d.acked.size, 0);
    assert.ok(handshakes * 10 < events, `${handshakes} handshakes for ${events} events alternating between front ends`);
  });
});
