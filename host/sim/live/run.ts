/**
 * The fleet replay over real parts (`sleepy-session start --live`): the same devices, timeline and
 * accounting as the in-process replay (host/sim/fleet), but every datagram crosses a real UDP
 * socket on 127.0.0.1 to a `sleepy-session cloud` process, sessions live in a real redis-server
 * that is killed with SIGKILL and restarted empty at the crash moment, and events reach a real
 * HTTP webhook receiver. Time is accelerated (virtual ms = speed × wall ms).
 *
 * The layout: one cache Redis (no persistence; the one that crashes), one event-log Redis (never
 * killed: the durable log the front ends share), and one cloud front end per profile, all three
 * fleets at once. Front ends are stateless (sessions are in Redis), so a profile's fleet and its
 * own front end give per-profile metrics (heals sent, internal errors) while one Redis crash hits
 * every fleet at the same instant, as in 2019. At the rollout the front ends restart with the
 * malformed heal on (the per-device ramp becomes one step: a cloud flag covers all its devices).
 * The virtual clock stops while processes are killed and restarted, so both are instants of the
 * timeline, as in the in-process replay.
 *
 * Each device has its own UDP socket (its own source port) for the whole run; each wake boots a
 * fresh firmware instance from the device's 1,280-byte image, as partition.ts does.
 */
import { Buffer } from 'node:buffer';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SeededEntropy } from '../../board/board.ts';
import { parsePrometheus } from '../../cloud/metrics.ts';
import { publicPointOf } from '../../cloud/p256.ts';
import type { Engine } from '../../engines/engine.ts';
import { V8Engine } from '../../engines/v8.ts';
import { readFirmware } from '../../firmware.ts';
import { FirmwareClient, OutboxFullError, REGION_BYTES, type Profile } from '../../session-abi.ts';
import { Ledger, type DeviceBook, type WakeBook } from '../fleet/ledger.ts';
import type { CapturedDatagram, PartitionResult } from '../fleet/outcome.ts';
import { isMalformedHeal } from '../fleet/partition.ts';
import { cloudSecretOf } from '../fleet/run.ts';
import { cloudOf, deviceSpec, endMs, fleetServerKey, type DeviceSpec, type FleetOptions } from '../fleet/spec.ts';
import { summarizeFleet, type FleetResult } from '../fleet/summary.ts';
import { VirtualClock, type ClockTimer } from './clock.ts';
import { freeTcpPort, freeUdpPort } from '../../free-port.ts';
import { CloudProcess, RedisServer, startWebhookReceiver } from './processes.ts';
import { LIVE_MAX_DEVICES } from './options.ts';

/** A wake never lasts longer than this (virtual; the firmware's own waits are far shorter). */
const MAX_WAKE_MS = 10 * 60_000;
/** Metrics are read this often (wall ms): the undecryptable-records counters feed the alert inputs. */
const SCRAPE_EVERY_WALL_MS = 250;
/** After a Redis restart, the cloud's client reconnects within 500 ms (redis-client.ts): wait that out with the clock stopped. */
const REDIS_RECONNECT_WALL_MS = 700;
/** At the end, how long (wall) to wait for the webhook to deliver every event the cloud ACKed. */
const DRAIN_TIMEOUT_WALL_MS = 30_000;
/** A live run longer than this (wall) is refused: the timeline is not a live one (LIVE_FLEET's is an hour at ×60). */
export const LIVE_MAX_WALL_MS = 30 * 60_000;
/** Lag of a wake behind its virtual time above which the run says the machine did not keep up with the speed. */
const LAG_WARNING_MS = 10_000;
/**
 * Pacing by the cloud processes: a reply the cloud takes W wall ms to send is W × speed virtual ms
 * late for the device. Every PACE_EVERY_WALL_MS the runner lowers the clock's speed so that the
 * slowest reply of the last window stays within PACE_REPLY_VIRTUAL_MS (and raises it back towards
 * the requested speed when replies are quick): on a loaded machine the run takes longer in wall
 * time instead of the devices meeting a slower cloud.
 */
const PACE_EVERY_WALL_MS = 200;
const PROGRESS_EVERY_WALL_MS = 10_000;
export const PACE_REPLY_VIRTUAL_MS = 1000;
const MIN_PACED_SPEED = 1;
/**
 * A datagram from the cloud this soon (wall) after the device's last one to it counts as its reply;
 * below the cloud's own retransmission timers (1 s and more, wall), which are not replies.
 */
const REPLY_WINDOW_WALL_MS = 900;

export interface LiveOptions {
  /** Virtual ms per wall ms (LIVE_SPEED: one virtual hour a minute). */
  speed: number;
  /** Progress lines (crash, rollout, end); default none. */
  log?: (line: string) => void;
  /** Datagrams of devices with an index below this are captured (`--pcap-devices`). */
  captureBelow?: number;
  /** The redis-server binary (default: from PATH). */
  redisServer?: string;
}

/** What only the live run can tell: the real parts agree with the devices. */
export interface LiveProfileFacts {
  /** Events the cloud ACKed to the devices (event-acked from the firmware). */
  acked: number;
  /** Of those, never delivered to the webhook receiver (must be 0). */
  ackedNotDelivered: number;
  /** POSTs the receiver got, distinct idempotency keys among them, and keys seen more than once. */
  webhookPosts: number;
  webhookKeys: number;
  webhookRepeatedKeys: number;
  /** Heal datagrams the front end counted (heals_sent_total, both kinds). */
  healsSent: number;
  undecryptableRecords: number;
}

export interface LiveFacts {
  speed: number;
  /** Wall ms the clock was stopped for the crash and for the rollout restart. */
  crashPauseWallMs: number;
  rolloutPauseWallMs: number;
  /** Pids of the cache Redis before and after the crash (different: a new, empty process). */
  cacheRedisPids: [number, number];
  profiles: Partial<Record<Profile, LiveProfileFacts>>;
  /** POSTs the receiver refused (no idempotency key, device or seq): 0 when the cloud keeps docs/protocol.md §8. */
  webhookRejected: number;
  /** How late (virtual ms) the latest callback ran behind its time: the machine keeping up with `speed`. */
  maxLagMs: number;
  /** Wall ms the clock held for the runner to catch up with its callbacks (VirtualClock pacing). */
  heldWallMs: number;
  /** The lowest speed the pacing set (the requested `speed` when the cloud always answered quickly). */
  minSpeed: number;
  /** Replies from the cloud (the first datagram to a device within 0.9 s wall of its last one to the cloud): how many, and the slowest in virtual ms (wall × the speed at the time). */
  replies: number;
  maxReplyVirtualMs: number;
  /** Replies slower than PACE_REPLY_VIRTUAL_MS virtual (before the pacing caught up). */
  slowReplies: number;
}

export interface LiveRun {
  result: FleetResult;
  captures: Map<Profile, CapturedDatagram[]>;
  live: LiveFacts;
}

interface LiveDevice {
  spec: DeviceSpec;
  /** The id this profile's fleet gives the device (profiles share one Redis, so ids carry the profile). */
  id: string;
  profile: Profile;
  book: DeviceBook;
  ledger: Ledger;
  image: Uint8Array;
  board: SeededEntropy;
  socket: dgram.Socket;
  address: string;
  fw: FirmwareClient | null;
  wake: WakeBook | null;
  wakeStartMs: number;
  timer: ClockTimer | null;
  acked: Set<number>;
  deliveredSeqs: Set<number>;
  /** Wall time of its last datagram to the cloud not yet answered (reply latency, pacing). */
  sentWallMs: number | null;
}

interface FleetOfProfile {
  profile: Profile;
  ledger: Ledger;
  devices: LiveDevice[];
  cloud: CloudProcess;
  udpPort: number;
  metricsPort: number;
  capture: CapturedDatagram[];
  /** Counter values of the front end's previous processes (a restart starts its counters at 0). */
  base: Map<string, number>;
  last: Map<string, number>;
  keys: Map<string, number>;
  posts: number;
}

const UNDECRYPTABLE = 'sleepy_cloud_undecryptable_records_total{device="';
const HEALS = ['sleepy_cloud_heals_sent_total{kind="malformed"}', 'sleepy_cloud_heals_sent_total{kind="reset-token"}'];
const INTERNAL_ERRORS = 'sleepy_cloud_internal_errors_total';

/** Throws a RangeError naming the option and the allowed values. */
export function checkLiveOptions(o: FleetOptions, live: LiveOptions): void {
  if (!(live.speed > 0 && Number.isFinite(live.speed))) throw new RangeError(`live: speed must be a positive number (got ${live.speed})`);
  if (!Number.isInteger(o.devices) || o.devices < 1 || o.devices > LIVE_MAX_DEVICES) {
    throw new RangeError(`live: devices must be 1..${LIVE_MAX_DEVICES} per profile (one UDP socket each; got ${o.devices})`);
  }
  const wallMs = endMs(o) / live.speed;
  if (wallMs > LIVE_MAX_WALL_MS) {
    throw new RangeError(`live: ${(endMs(o) / 3_600_000).toFixed(1)} virtual hours at speed ×${live.speed} would take ${(wallMs / 60_000).toFixed(0)} min of wall time (at most ${LIVE_MAX_WALL_MS / 60_000}); use the live timeline (LIVE_FLEET: 1 h) or a higher speed`);
  }
}

export async function runLiveFleet(o: FleetOptions, live: LiveOptions): Promise<LiveRun> {
  checkLiveOptions(o, live);
  const t0Wall = performance.now();
  const log = live.log ?? (() => {});
  const end = endMs(o);
  const timeline = o.timeline;
  // One step: the heal turns on for every device when the rollout reaches all of them.
  const healOn = timeline.rollout.find((s) => s.share >= 1) ?? timeline.rollout[timeline.rollout.length - 1];
  const engine: Engine = o.engine === 'v8' ? new V8Engine() : new (await import('../../engines/wasm3/index.ts')).Wasm3Engine();
  const wasm = readFirmware();
  const clock = new VirtualClock(live.speed);
  const now = (): number => Math.floor(clock.now());
  const dir = mkdtempSync(join(tmpdir(), 'sleepy-live-'));
  const cache = new RedisServer(await freeTcpPort(), live.redisServer);
  const eventLog = new RedisServer(await freeTcpPort(), live.redisServer);
  const fleets: FleetOfProfile[] = [];
  const byId = new Map<string, LiveDevice>();
  const sockets: dgram.Socket[] = [];
  let webhook: { url: string; rejected(): number; close(): Promise<void> } | null = null;
  let scraper: NodeJS.Timeout | null = null;
  let maxLagMs = 0;
  let pacer: NodeJS.Timeout | null = null;
  let replyWindowMaxWallMs = 0;
  const facts: LiveFacts = {
    speed: live.speed, crashPauseWallMs: 0, rolloutPauseWallMs: 0, cacheRedisPids: [0, 0], profiles: {}, webhookRejected: 0, maxLagMs: 0,
    heldWallMs: 0, minSpeed: live.speed, replies: 0, maxReplyVirtualMs: 0, slowReplies: 0,
  };
  try {
    await Promise.all([cache.start(), eventLog.start()]);
    webhook = await startWebhookReceiver((d) => {
      const dev = byId.get(d.deviceId);
      if (!dev) return;
      const f = fleets.find((x) => x.profile === dev.profile)!;
      f.posts++;
      f.keys.set(d.key, (f.keys.get(d.key) ?? 0) + 1);
      dev.deliveredSeqs.add(d.seq);
      dev.ledger.delivered(dev.book, d.seq, now());
    });
    const secret = cloudSecretOf(o.seed);
    // ECDHE: every cloud process has the replay's key pair (from the seed); devices pin its public key.
    const ecdhe = (o.suite ?? 'ecdhe') === 'ecdhe';
    const serverKey = fleetServerKey(o.seed);
    const keyFile = join(dir, 'cloud-key.pem');
    if (ecdhe) writeFileSync(keyFile, serverKey.toPem(), { mode: 0o600 });
    for (const profile of o.profiles) {
      const ledger = new Ledger(profile, end, false);
      const devices: LiveDevice[] = [];
      const registry: ({ id: string; identity: string; psk: string } | { id: string; publicKey: string })[] = [];
      for (let i = 0; i < o.devices; i++) {
        const spec = deviceSpec(o, i);
        const id = `${profile}-${spec.id}`;
        const socket = dgram.createSocket('udp4');
        sockets.push(socket);
        socket.bind(0, '127.0.0.1');
        await once(socket, 'listening');
        const d: LiveDevice = {
          spec, id, profile, book: ledger.device(spec), ledger, image: new Uint8Array(REGION_BYTES).fill(0xff),
          board: new SeededEntropy(`fleet/${o.seed}/board/${spec.index}`), socket, address: `127.0.0.1:${socket.address().port}`,
          fw: null, wake: null, wakeStartMs: 0, timer: null, acked: new Set(), deliveredSeqs: new Set(), sentWallMs: null,
        };
        devices.push(d);
        byId.set(id, d);
        registry.push(ecdhe ? { id, publicKey: publicPointOf(spec.devicePrivateKey).toString('hex') } : { id, identity: id, psk: spec.psk.toString('hex') });
      }
      const devicesFile = join(dir, `devices-${profile}.json`);
      writeFileSync(devicesFile, JSON.stringify({ cloudSecret: secret.toString('hex'), devices: registry }), { mode: 0o600 });
      const udpPort = await freeUdpPort();
      const metricsPort = await freeTcpPort();
      const cloud = new CloudProcess(profile, [
        '--devices', devicesFile, '--port', String(udpPort), '--metrics-port', String(metricsPort),
        '--store', cache.url, '--events', eventLog.url, '--webhook', webhook.url,
        '--webhook-max-delay', '1s', '--event-reclaim-after', '10s',
        ...(ecdhe ? ['--key', keyFile] : []),
      ]);
      fleets.push({ profile, ledger, devices, cloud, udpPort, metricsPort, capture: [], base: new Map(), last: new Map(), keys: new Map(), posts: 0 });
    }
    // The 2019 cloud (legacy, fixed) sends no reset token and gets the malformed heal at the rollout;
    // ours (default) sends reset tokens throughout (cloudOf, spec.ts).
    const heal = (profile: Profile, on: boolean): string[] => ['--heal', cloudOf(profile) === 'ours' ? 'reset-token' : on ? 'malformed' : 'none'];
    await Promise.all(fleets.map((f) => f.cloud.start(heal(f.profile, false))));
    log(`live: cache redis :${cache.port}, event-log redis :${eventLog.port}, ${fleets.length} cloud front ends, ${o.devices} devices each, speed ×${live.speed}`);

    // Provisioning: each device's image gets its credentials and profile (the factory step).
    for (const f of fleets) {
      for (const d of f.devices) {
        const fw = new FirmwareClient(await engine.load(wasm));
        fw.provisionCredentials(f.profile, d.id, ecdhe
          ? { suite: 'ecdhe', serverPublicKey: serverKey.publicPoint, devicePrivateKey: d.spec.devicePrivateKey }
          : { suite: 'psk', identity: d.id, psk: d.spec.psk });
        for (let w = fw.pollStore(); w; w = fw.pollStore()) d.image.set(w.bytes, w.offset);
        fw.m.dispose();
      }
    }

    const scrapeOnce = async (f: FleetOfProfile): Promise<void> => {
      const res = await fetch(`http://127.0.0.1:${f.metricsPort}/metrics`);
      const m = parsePrometheus(await res.text());
      const at = now();
      for (const [k, v] of m) {
        if (!k.startsWith(UNDECRYPTABLE) && !HEALS.includes(k) && k !== INTERNAL_ERRORS) continue;
        const prev = f.last.get(k) ?? 0;
        f.last.set(k, v);
        const total = (f.base.get(k) ?? 0) + v;
        if (k.startsWith(UNDECRYPTABLE)) {
          const dev = byId.get(k.slice(UNDECRYPTABLE.length, -2));
          if (dev) f.ledger.undecryptableTotal(dev.book, at, total);
        } else if (HEALS.includes(k) && v > prev) f.ledger.healsSent(at, v - prev);
      }
    };
    // One scrape at a time, so readings are taken and applied in order.
    let scrapes = Promise.resolve();
    let scraping = false;
    const scrapeAll = (): Promise<void> => {
      scrapes = scrapes.then(() => Promise.all(fleets.filter((f) => f.cloud.alive).map((f) => scrapeOnce(f).catch(() => undefined)))).then(() => undefined);
      return scrapes;
    };
    scraper = setInterval(() => {
      if (scraping || clock.paused) return;
      scraping = true;
      void scrapeAll().finally(() => (scraping = false));
    }, SCRAPE_EVERY_WALL_MS);

    const transmit = (d: LiveDevice, f: FleetOfProfile, data: Buffer): void => {
      const at = now();
      d.wake?.onAir(at, data.length, 'up');
      if (d.spec.index < (live.captureBelow ?? 0)) f.capture.push({ atMs: at, src: d.address, dst: `127.0.0.1:${f.udpPort}`, data });
      clock.at(at + o.latencyMs, () => {
        f.ledger.datagramIn(now());
        d.sentWallMs = performance.now();
        d.socket.send(data, f.udpPort, '127.0.0.1');
      });
    };
    const flush = (d: LiveDevice, f: FleetOfProfile): void => {
      const fw = d.fw;
      if (!fw) return;
      // Persistent writes first, then datagrams (the ABI's rule; the image is the flash).
      for (let w = fw.pollStore(); w; w = fw.pollStore()) d.image.set(w.bytes, w.offset);
      for (let e = fw.pollEvent(); e; e = fw.pollEvent()) {
        d.wake!.event(e, now());
        if (e.type === 'event-acked') d.acked.add(e.seq);
      }
      for (const dg of fw.drainTransmit()) transmit(d, f, Buffer.from(dg));
      if (d.timer) d.timer.cancelled = true;
      const next = fw.nextTimeout();
      d.timer = next === null ? null : clock.at(next, () => {
        if (!d.fw) return;
        d.fw.handleTimeout(now());
        flush(d, f);
      });
    };
    const toDevice = (d: LiveDevice, f: FleetOfProfile, bytes: Buffer): void => {
      if (!d.fw) return; // asleep: the radio is off
      const at = now();
      d.wake!.onAir(at, bytes.length, 'down');
      d.fw.handleDatagram(at, bytes);
      flush(d, f);
    };
    const trySleep = (d: LiveDevice, f: FleetOfProfile): void => {
      const fw = d.fw;
      if (!fw) return;
      const at = now();
      const waitMs = at - d.wakeStartMs >= MAX_WAKE_MS ? 0 : fw.prepareSleep(at);
      flush(d, f);
      if (waitMs > 0) {
        clock.at(at + waitMs, () => trySleep(d, f));
        return;
      }
      if (d.timer) d.timer.cancelled = true;
      d.timer = null;
      fw.m.dispose();
      d.fw = null;
      d.wake!.end();
      d.wake = null;
      const next = at + d.spec.wakeEveryMs;
      if (next < end) clock.at(next, () => wakeUp(d, f, next));
      else awake.delete(d);
    };
    const awake = new Set<LiveDevice>();
    const wakeUp = async (d: LiveDevice, f: FleetOfProfile, scheduledMs: number): Promise<void> => {
      maxLagMs = Math.max(maxLagMs, clock.now() - scheduledMs);
      awake.add(d);
      const fw = new FirmwareClient(await engine.load(wasm));
      const t0 = now();
      d.fw = fw;
      d.wakeStartMs = t0;
      d.wake = f.ledger.beginWake(d.book, t0, timeline.crashAtMs);
      fw.seed(d.board.bytes(48));
      fw.boot(t0, d.image);
      flush(d, f);
      try {
        d.wake.published(fw.publish(t0, 'reading', Buffer.from(`wake ${d.book.out.wakes}`)));
      } catch (e) {
        if (!(e instanceof OutboxFullError)) throw e;
        d.wake.published(null);
      }
      flush(d, f);
      clock.at(t0 + d.spec.awakeMs, () => trySleep(d, f));
    };

    for (const f of fleets) {
      for (const d of f.devices) {
        d.socket.on('message', (msg: Buffer) => {
          const at = now();
          if (d.sentWallMs !== null) {
            const wallMs = performance.now() - d.sentWallMs;
            d.sentWallMs = null;
            if (wallMs <= REPLY_WINDOW_WALL_MS) replyWindowMaxWallMs = Math.max(replyWindowMaxWallMs, wallMs);
            if (wallMs <= REPLY_WINDOW_WALL_MS && !clock.paused) {
              const virtualMs = wallMs * clock.speed;
              facts.replies++;
              facts.maxReplyVirtualMs = Math.max(facts.maxReplyVirtualMs, virtualMs);
              if (virtualMs > PACE_REPLY_VIRTUAL_MS) facts.slowReplies++;
            }
          }
          // Until the May 15 change the heal left the cloud healDelayMs after the record (the slower path).
          const delayMs = o.latencyMs + (isMalformedHeal(msg) && at < timeline.inlineHealAtMs ? timeline.healDelayMs : 0);
          if (d.spec.index < (live.captureBelow ?? 0)) f.capture.push({ atMs: at + delayMs, src: `127.0.0.1:${f.udpPort}`, dst: d.address, data: msg });
          clock.at(at + delayMs, () => toDevice(d, f, msg));
        });
        if (d.spec.firstWakeMs < end) {
          awake.add(d); // counts as pending until its last wake ends
          clock.at(d.spec.firstWakeMs, () => wakeUp(d, f, d.spec.firstWakeMs));
        }
      }
    }

    const crashed = new Promise<void>((resolve, reject) => {
      clock.at(timeline.crashAtMs, async () => {
        clock.pause();
        const t = performance.now();
        try {
          facts.cacheRedisPids[0] = cache.pid ?? 0;
          await cache.crash();
          facts.cacheRedisPids[1] = cache.pid ?? 0;
          await new Promise((r) => setTimeout(r, REDIS_RECONNECT_WALL_MS));
          facts.crashPauseWallMs = performance.now() - t;
          log(`live: ${timeline.crashAtMs / 60_000} min: cache redis killed (SIGKILL, pid ${facts.cacheRedisPids[0]}) and restarted empty (pid ${facts.cacheRedisPids[1]})`);
          resolve();
        } catch (e) {
          reject(e);
        } finally {
          clock.resume();
        }
      });
    });
    const rolledOut = healOn && healOn.atMs < end
      ? new Promise<void>((resolve, reject) => {
          clock.at(healOn.atMs, async () => {
            clock.pause();
            const t = performance.now();
            try {
              await scrapeAll();
              for (const f of fleets) {
                for (const [k, v] of f.last) f.base.set(k, (f.base.get(k) ?? 0) + v);
                f.last.clear();
              }
              await Promise.all(fleets.map(async (f) => {
                await f.cloud.stop();
                await f.cloud.start(heal(f.profile, true));
              }));
              facts.rolloutPauseWallMs = performance.now() - t;
              log(`live: ${healOn.atMs / 60_000} min: cloud front ends restarted: 2019 cloud with --heal malformed, ours with --heal reset-token`);
              resolve();
            } catch (e) {
              reject(e);
            } finally {
              clock.resume();
            }
          });
        })
      : Promise.resolve();

    // Pacing by the cloud: the slowest reply of the last window sets the speed of the next.
    pacer = setInterval(() => {
      if (clock.paused) return;
      const worst = replyWindowMaxWallMs;
      replyWindowMaxWallMs = 0;
      const fits = worst > 0 ? PACE_REPLY_VIRTUAL_MS / worst : Infinity;
      const next = Math.max(MIN_PACED_SPEED, Math.min(live.speed, fits, clock.speed * 1.25));
      if (next !== clock.speed) clock.setSpeed(next);
      facts.minSpeed = Math.min(facts.minSpeed, clock.speed);
      // Progress: a line every PROGRESS_EVERY_WALL_MS, so a slow (paced) run is not silent.
      const t = performance.now();
      if (t - lastProgressWallMs >= PROGRESS_EVERY_WALL_MS) {
        lastProgressWallMs = t;
        log(`live: ${(clock.now() / 60_000).toFixed(1)} of ${(end / 60_000).toFixed(0)} virtual min, speed ×${clock.speed.toFixed(1)}, clock held ${(clock.heldWallMs / 1000).toFixed(1)} s wall so far`);
      }
    }, PACE_EVERY_WALL_MS);
    let lastProgressWallMs = performance.now();
    clock.resume();
    // Until every device's last wake is over (wakes starting before the end run to their end).
    while (awake.size > 0) {
      if (clock.error) throw clock.error;
      await new Promise((r) => setTimeout(r, 50));
    }
    await Promise.all([crashed, rolledOut]);
    if (clock.error) throw clock.error;
    clock.pause();
    clearInterval(pacer);
    pacer = null;
    log(`live: every device asleep at ${(clock.now() / 60_000).toFixed(1)} min; waiting for the webhook`);
    // Every event the cloud ACKed reaches the webhook receiver (the event log is durable; delivery is asynchronous).
    const drainEnd = performance.now() + DRAIN_TIMEOUT_WALL_MS;
    const undelivered = (): number => fleets.reduce((n, f) => n + f.devices.reduce((m, d) => m + [...d.acked].filter((s) => !d.deliveredSeqs.has(s)).length, 0), 0);
    while (undelivered() > 0 && performance.now() < drainEnd) await new Promise((r) => setTimeout(r, 100));
    clearInterval(scraper);
    scraper = null;
    await scrapeAll();

    const parts = new Map<Profile, PartitionResult>();
    const captures = new Map<Profile, CapturedDatagram[]>();
    for (const f of fleets) {
      const total = (k: string): number => (f.base.get(k) ?? 0) + (f.last.get(k) ?? 0);
      parts.set(f.profile, f.ledger.finish(total(INTERNAL_ERRORS)));
      captures.set(f.profile, f.capture.sort((a, b) => a.atMs - b.atMs));
      let undecryptable = 0;
      for (const k of new Set([...f.base.keys(), ...f.last.keys()])) if (k.startsWith(UNDECRYPTABLE)) undecryptable += total(k);
      facts.profiles[f.profile] = {
        acked: f.devices.reduce((n, d) => n + d.acked.size, 0),
        ackedNotDelivered: f.devices.reduce((n, d) => n + [...d.acked].filter((s) => !d.deliveredSeqs.has(s)).length, 0),
        webhookPosts: f.posts,
        webhookKeys: f.keys.size,
        webhookRepeatedKeys: [...f.keys.values()].filter((n) => n > 1).length,
        healsSent: HEALS.reduce((n, k) => n + total(k), 0),
        undecryptableRecords: undecryptable,
      };
    }
    facts.maxLagMs = maxLagMs;
    facts.heldWallMs = clock.heldWallMs;
    if (maxLagMs > LAG_WARNING_MS) log(`live: wakes started up to ${(maxLagMs / 1000).toFixed(0)} virtual s late: the machine did not keep up with speed ×${live.speed} (a lower speed gives timings closer to the in-process replay)`);
    facts.webhookRejected = webhook.rejected();
    const wallMs = performance.now() - t0Wall;
    const result = summarizeFleet(parts, o, `${o.engine} (live ×${live.speed})`, wallMs, null);
    return { result, captures, live: facts };
  } finally {
    if (scraper) clearInterval(scraper);
    if (pacer) clearInterval(pacer);
    clock.pause();
    await Promise.all(fleets.map((f) => f.cloud.stop().catch(() => undefined)));
    await Promise.all([cache.stop(), eventLog.stop()]);
    await webhook?.close();
    for (const s of sockets) s.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What the real parts said, for the text report under the fleet table (`start --live`). */
export function formatLiveFacts(f: LiveFacts): string {
  const lines = [
    `Live: speed ×${f.speed}; cache redis pid ${f.cacheRedisPids[0]} killed (SIGKILL) and restarted empty as pid ${f.cacheRedisPids[1]} (clock stopped ${(f.crashPauseWallMs / 1000).toFixed(1)} s); front ends restarted with the malformed heal (clock stopped ${(f.rolloutPauseWallMs / 1000).toFixed(1)} s); wakes up to ${(f.maxLagMs / 1000).toFixed(1)} virtual s late`,
    `  pacing: clock held ${(f.heldWallMs / 1000).toFixed(1)} s wall for the runner; speed down to ×${f.minSpeed.toFixed(1)} while the cloud answered slowly; ${f.replies} cloud replies, slowest ${(f.maxReplyVirtualMs / 1000).toFixed(1)} virtual s, ${f.slowReplies} over ${PACE_REPLY_VIRTUAL_MS / 1000} s`,
  ];
  for (const [profile, p] of Object.entries(f.profiles)) {
    lines.push(`  ${profile.padEnd(8)}ACKed ${p.acked}, of those not at the webhook ${p.ackedNotDelivered}; webhook ${p.webhookPosts} POSTs, ${p.webhookKeys} distinct idempotency keys, ${p.webhookRepeatedKeys} repeated; cloud: ${p.healsSent} heals sent, ${p.undecryptableRecords} undecryptable records`);
  }
  if (f.webhookRejected > 0) lines.push(`  webhook POSTs refused (no idempotency key, device or seq): ${f.webhookRejected}`);
  return lines.join('\n');
}
