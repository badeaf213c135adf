// The cloud beyond one machine (issue 18), with real processes: two 6-node Redis Clusters (3
// masters + 3 replicas each: the session cache, and the event log with appendfsync always), three
// `sleepy-session cloud` front ends behind an L4 UDP load balancer (nftables DNAT in a network
// namespace, test/host/fixtures/nft-lb.ts; why not IPVS: docs/scaling.md), a webhook receiver and
// a few hundred devices over real UDP, each from its own source address (its own /24, so the
// per-prefix handshake quotas see real clients). Devices change source port now and then (a NAT
// rebinding), so their datagrams land on any front end: the session follows the CID through the
// cluster. Faults under traffic: kill -9 of a master of each cluster (its replica takes over; the
// killed node comes back as a replica) and of a front end (the balancer's health check takes it
// out); then FLUSHALL on every master of the cache cluster (the 2019 incident at cluster scale).
// Verdicts: every device continues or heals, every ACKed event reaches the webhook, and every
// delivery carries a key a device sent (a duplicate is always recognisable). No timing verdicts:
// conditions are awaited with generous deadlines.
//
// The balancer needs root (network namespace, nftables, conntrack): this file runs itself again
// inside a namespace it creates (the outer test), so nothing touches the host's own rules.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { deviceHandle } from '../../host/cloud/devices.ts';
import { UdpCloudClient, coapHeader } from './fixtures/cloud-client.ts';
import { metric, scrape, startCloudProcess, toolMissing, until, webhookServer, writeDevicesFile, type CloudProc } from './fixtures/cloud-tools.ts';
import { RedisCluster } from './fixtures/redis-cluster.ts';
import { NftLoadBalancer } from './fixtures/nft-lb.ts';
import { skipOrFail } from './engines.ts';

const NETNS_ENV = 'SLEEPY_CLUSTER_NETNS';
const THIS_FILE = fileURLToPath(import.meta.url);
const DEVICES = Number(process.env.SLEEPY_CLUSTER_DEVICES ?? 200);
const VIP = '127.0.0.1';
const VIP_PORT = 5684;

/** Why the test cannot run here (null: it can). */
function prerequisites(): string | null {
  for (const [cmd, args] of [['redis-server', ['--version']], ['redis-cli', ['--version']], ['nft', ['--version']], ['conntrack', ['--version']], ['ip', ['-V']]] as const) {
    const why = toolMissing(cmd, [...args]);
    if (why) return `${why} (Debian: redis-server nftables conntrack iproute2)`;
  }
  if (process.getuid?.() !== 0) return 'needs root (network namespace, nftables, conntrack)';
  return null;
}

if (!process.env[NETNS_ENV]) {
  describe('cloud on Redis Cluster behind a UDP load balancer', () => {
    it('runs in a network namespace of its own (the cluster scenario below)', { timeout: 600_000 }, async (t) => {
      const why = prerequisites();
      if (why) return skipOrFail(t, why);
      const ns = `sleepy-cl-${process.pid}`;
      const add = spawnSync('ip', ['netns', 'add', ns], { encoding: 'utf8' });
      if (add.status !== 0) return skipOrFail(t, `cannot create a network namespace: ${add.stderr.trim()}`);
      try {
        spawnSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
        // Run as a plain script (node:test runs its tests and sets the exit code), not under this
        // test runner's protocol, which a nested run would otherwise speak.
        const env: NodeJS.ProcessEnv = { ...process.env, [NETNS_ENV]: ns };
        delete env.NODE_TEST_CONTEXT;
        const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', '--test-reporter', 'spec', THIS_FILE], { env, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr.on('data', (d: Buffer) => (out += d.toString()));
        const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
        for (const line of out.trim().split('\n')) t.diagnostic(line);
        assert.equal(code, 0, `the scenario in the namespace failed:\n${out.slice(-6000)}`);
      } finally {
        spawnSync('ip', ['netns', 'del', ns]);
      }
    });
  });
} else {
  const PSKS = Array.from({ length: DEVICES }, () => crypto.randomBytes(16));
  const SECRET = crypto.randomBytes(32);
  const id = (i: number) => `cl-${i}`;
  /** Device i's own source address, in a /24 of its own (127.0.0.0/8 is all on lo). */
  const address = (i: number) => `127.${1 + Math.floor(i / 250)}.${i % 250}.1`;

  /** A device publishing events in order through the balancer, counting what was ACKed. */
  class ClusterDevice {
    readonly acked = new Set<string>();
    readonly sent = new Set<string>();
    readonly incarnation = crypto.randomBytes(4);
    seq = 0;
    handshakes = 0;
    #c: UdpCloudClient | null = null;
    constructor(readonly index: number) {}

    key(seq: number): string {
      return `${id(this.index)}:${this.incarnation.toString('hex')}:${seq}`;
    }

    /**
     * Publishes until `count` are ACKed; a new source port every `rebindEvery` events; handshakes
     * again when the session is gone: the cloud said so (a reset), or — with `giveUpOnSilence`,
     * under faults — five requests in a row went unanswered. Without it a slow machine never makes
     * a device drop a session the cloud still has.
     */
    async publish(count: number, rebindEvery: number, giveUpOnSilence = true, deadlineMs = 240_000): Promise<void> {
      const end = Date.now() + deadlineMs;
      let failures = 0;
      let sinceRebind = 0;
      while (this.acked.size < count) {
        if (Date.now() > end) throw new Error(`${id(this.index)}: only ${this.acked.size}/${count} ACKed in time`);
        if (!this.#c) {
          const c = await UdpCloudClient.open(VIP_PORT, { identity: id(this.index), psk: PSKS[this.index]!, offerCid: deviceHandle(id(this.index)) }, address(this.index), VIP);
          try {
            await c.connect(3000);
            this.#c = c;
            this.handshakes++;
            failures = 0;
          } catch {
            c.close();
            await new Promise((r) => setTimeout(r, 200 + Math.random() * 300));
          }
          continue;
        }
        const c = this.#c;
        if (sinceRebind >= rebindEvery) {
          await c.rebind();
          sinceRebind = 0;
        }
        const seq = this.seq;
        this.sent.add(this.key(seq));
        try {
          const answer = await c.request((mid) => c.client.event('t', seq, Buffer.from(`v${seq}`), { mid, incarnation: this.incarnation }), 2000);
          if (coapHeader(answer).code === 0x44) {
            this.acked.add(this.key(seq));
            this.seq++;
            sinceRebind++;
            failures = 0;
          }
        } catch {
          // No ACK (a dead front end, a failover, a replica not yet back): the same event again.
          // After a reset or several silent tries the session counts as lost: handshake again.
          if (c.events.some((e) => e.kind === 'reset') || (giveUpOnSilence && ++failures >= 5)) {
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

  describe(`cloud on Redis Cluster: 3 front ends behind nftables, ${DEVICES} devices (in netns ${process.env[NETNS_ENV]})`, () => {
    const cache = new RedisCluster([7100, 7101, 7102, 7103, 7104, 7105]);
    const events = new RedisCluster([7200, 7201, 7202, 7203, 7204, 7205], true);
    let hook: Awaited<ReturnType<typeof webhookServer>>;
    let devicesFile: string;
    const fronts: CloudProc[] = [];
    let lb: NftLoadBalancer;
    const devices = Array.from({ length: DEVICES }, (_, i) => new ClusterDevice(i));
    const totalAcked = () => devices.reduce((n, d) => n + d.acked.size, 0);

    const startFront = () =>
      startCloudProcess([
        '--devices', devicesFile, '--port', '0', '--metrics-port', '0', '--store', cache.url, '--events', events.url, '--webhook', hook.url,
        // The default (60 s) is tested with one Redis (cloud-event-latency); here it would make the
        // front-end kill cost a minute of CI time before its events in hand are taken over.
        '--event-reclaim-after', '3s',
      ]);
    const delivered = () => new Set(hook.accepted().map((r) => r.id));
    /** Every ACKed event delivered; every delivery a key some device sent. */
    const checkDelivery = async (t: { diagnostic(m: string): void }, what: string) => {
      const acked = devices.flatMap((d) => [...d.acked]);
      await until(() => acked.every((k) => delivered().has(k)), 120_000, `every ACKed event delivered (${what}); missing: ${acked.filter((k) => !delivered().has(k)).slice(0, 5).join(', ')}`, 200);
      const sent = new Set(devices.flatMap((d) => [...d.sent]));
      for (const r of hook.accepted()) assert.ok(sent.has(r.id), `delivery ${r.id} carries a key that was sent`);
      const accepted = hook.accepted().length;
      t.diagnostic(`${what}: ${acked.length} ACKed, all delivered; ${accepted} deliveries, ${accepted - delivered().size} duplicates (same key)`);
    };

    before(async () => {
      await Promise.all([cache.start(), events.start()]);
      hook = await webhookServer(() => 200);
      devicesFile = writeDevicesFile({ cloudSecret: SECRET.toString('hex'), devices: PSKS.map((psk, i) => ({ id: id(i), psk: psk.toString('hex') })) });
      fronts.push(...(await Promise.all([startFront(), startFront(), startFront()])));
      lb = new NftLoadBalancer(VIP, VIP_PORT, fronts.map((f) => ({ udpPort: f.port, metricsPort: f.metricsPort })));
      lb.start();
    });
    after(async () => {
      for (const d of devices) d.close();
      lb?.stop();
      for (const f of fronts) f.proc.kill('SIGKILL');
      await Promise.all(fronts.map((f) => f.proc.exited));
      await Promise.all([cache.stop(), events.stop()]);
      await hook?.close();
    });

    it('sessions follow their CID across front ends: one handshake per device, every front end serves, the client address arrives', async (t) => {
      await Promise.all(devices.map((d) => d.publish(6, 2, false)));
      assert.equal(devices.reduce((n, d) => n + d.handshakes, 0), DEVICES, 'one handshake per device although each changed source port twice');
      const accepted = await Promise.all(fronts.map(async (f) => metric(await scrape(f.metricsPort), 'sleepy_cloud_events_total{result="accepted"}')));
      t.diagnostic(`events accepted per front end: ${accepted.join(', ')}`);
      for (const [i, n] of accepted.entries()) assert.ok(n > 0, `front end ${i} accepted events`);
      // At most once each: a retransmission through another front end is a duplicate (one that
      // follows a refused WAIT counts as a duplicate too, so the sum may be lower on a slow machine).
      assert.ok(accepted.reduce((x, y) => x + y, 0) <= 6 * DEVICES, 'no event accepted twice, cluster-wide');
      // The balancer rewrote only the destination: the front ends saw each device's own address.
      const logs = fronts.map((f) => f.proc.err).join('\n');
      for (const i of [0, DEVICES - 1]) assert.match(logs, new RegExp(`handshake device=${id(i)} \\S+ from=${address(i).replaceAll('.', '\\.')}:`), `device ${i}'s handshake came from its own address`);
      await checkDelivery(t, 'no fault');
    });

    it('kill -9 of a master of each cluster and of a front end under traffic: every device continues or heals, nothing ACKed is lost', async (t) => {
      const target = devices.map((d) => d.acked.size + 12);
      const started = totalAcked();
      const traffic = Promise.all(devices.map((d, i) => d.publish(target[i]!, 3)));
      await until(() => totalAcked() >= started + DEVICES, 120_000, 'traffic to flow', 100);
      const eventMaster = events.masterPorts()[0]!;
      const cacheMaster = cache.masterPorts()[1]!;
      const victim = fronts[0]!;
      victim.proc.kill('SIGKILL');
      await Promise.all([events.failMaster(eventMaster, 60_000), cache.failMaster(cacheMaster, 60_000)]);
      t.diagnostic(`killed event master ${eventMaster}, cache master ${cacheMaster}, front end udp ${victim.port}; replicas took over`);
      // The killed nodes come back (as a supervisor restarts them) and rejoin as replicas: until
      // then the promoted masters have no replica, and the cloud ACKs nothing WAIT cannot confirm.
      await Promise.all([events.startNode(eventMaster), cache.startNode(cacheMaster)]);
      await Promise.all([events.healthy(120_000), cache.healthy(120_000)]);
      await traffic;
      assert.ok(lb.removed.includes(victim.port), 'the balancer took the dead front end out');
      // Gossip may take a moment to tell every node; the verdict is the role, not how fast it spreads.
      const roleOf = (c: RedisCluster, port: number) => c.nodes().find((n) => n.port === port)?.role;
      await until(() => roleOf(events, eventMaster) === 'slave' && roleOf(cache, cacheMaster) === 'slave', 60_000, `the killed masters to be replicas: ${JSON.stringify([events.nodes(), cache.nodes()])}`, 200);
      await checkDelivery(t, 'master and front-end kills');
    });

    it('FLUSHALL on every master of the cache cluster under traffic (the 2019 incident): devices heal, nothing ACKed is lost', async (t) => {
      const target = devices.map((d) => d.acked.size + 8);
      const started = totalAcked();
      const handshakesBefore = devices.map((d) => d.handshakes);
      const traffic = Promise.all(devices.map((d, i) => d.publish(target[i]!, 3)));
      await until(() => totalAcked() >= started + DEVICES, 120_000, 'traffic to flow', 100);
      cache.flushAll();
      await traffic;
      // Every device sends again after the wipe: its session is gone, so it must handshake again.
      await Promise.all(devices.map((d) => d.publish(d.acked.size + 2, 3)));
      for (const [i, d] of devices.entries()) assert.ok(d.handshakes > handshakesBefore[i]!, `${id(i)} handshook again after the wipe`);
      await checkDelivery(t, 'cache cluster wiped');
    });
  });
}
