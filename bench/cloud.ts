/**
 * Sustained cloud throughput over loopback UDP (`npm run bench:cloud`): each phase runs ≥ 60 s
 * (CLOUD_BENCH_SECONDS) against real `sleepy-session cloud` processes — one, or two sharing one
 * Redis — driven by a separate load process (bench/cloud-load.ts):
 *  - records/s: CoAP pings over established sessions (decrypt, atomic replay-window update and
 *    sequence reservation in the store, ACK sealed and sent);
 *  - handshakes/s: full PSK handshakes with cookie exchange, CID and reset token.
 * Operations are counted by the cloud (its /metrics), in 10 s windows, so the table shows the
 * first and the last 10 s (a cliff shows as a drop) and each process's RSS over time.
 * Then ACK → webhook latency of the Redis event log with the settings a user gets with no flag
 * (`--events redis://…` on a Redis with appendonly yes + appendfsync always, `--webhook`, no
 * `--event-reclaim-after`): 8 devices (CLOUD_BENCH_EVENT_DEVICES) publish events one after another for the phase; a local
 * receiver notes when each arrives; p50/p95/p99/max of (arrival − the device's 2.04).
 */
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { deviceHandle } from '../host/cloud/devices.ts';
import { parsePrometheus } from '../host/cloud/metrics.ts';
import type { LoadConfig, LoadMessage } from './cloud-load.ts';
import { fmt, table, wallMs } from './lib.ts';
import { RedisCluster, freeClusterPorts } from '../test/host/fixtures/redis-cluster.ts';

const LOAD = fileURLToPath(new URL('./cloud-load.ts', import.meta.url));
const CLI = fileURLToPath(new URL('../host/cloud/cli.ts', import.meta.url));
const DEVICES = 256;
const WINDOW_MS = 10_000;

export interface CloudBenchRow {
  measure: 'records/s' | 'handshakes/s';
  store: 'memory' | 'redis' | 'redis-cluster';
  frontEnds: number;
  seconds: number;
  /** Mean rate over the whole phase. */
  rate: number;
  first10s: number;
  last10s: number;
  /** Rate of every 10 s window. */
  windows: number[];
  /** Operations per second of cloud CPU in every window: what a cliff (a rising cost per operation) shows in, whatever else runs on the machine. */
  perCpuSecond: number[];
  /** RSS (MiB) of each front end at each sample, summed over front ends. */
  rssMiB: number[];
  cloudCpu: number;
  loadCpu: number;
  redisCpu: number | null;
  /** Redis commands per operation, from INFO commandstats on the master(s): total and by command. */
  redisCommandsPerOp: number | null;
  redisCommands: Record<string, number> | null;
}

/** What a phase needs of its Redis (one server or a cluster): URL, processes for CPU, command counts. */
interface RedisBackend {
  url: string;
  pids(): number[];
  /** Calls per command since start, summed over the masters. */
  commandStats(): Map<string, number>;
  flush(): Promise<void>;
}

function commandStatsOf(port: number): Map<string, number> {
  const out = spawnSync('redis-cli', ['-p', String(port), 'INFO', 'commandstats'], { encoding: 'utf8' }).stdout ?? '';
  const m = new Map<string, number>();
  for (const x of out.matchAll(/cmdstat_([^:]+):calls=(\d+)/g)) m.set(x[1]!, Number(x[2]));
  return m;
}

function singleBackend(redis: { proc: ChildProcess; url: string }): RedisBackend {
  const port = Number(new URL(redis.url).port);
  return { url: redis.url, pids: () => [redis.proc.pid!], commandStats: () => commandStatsOf(port), flush: () => flush(redis) };
}

function clusterBackend(c: RedisCluster, query = ''): RedisBackend {
  return {
    url: c.url + query,
    pids: () => [...c.procs.values()].map((p) => p.child.pid!),
    commandStats: () => c.commandStats(),
    flush: async () => c.flushAll(),
  };
}

/**
 * Commands a cloud process sends itself (one round trip each, pipelined or not); the rest in
 * INFO commandstats ran inside its scripts (Redis counts those too) or are replicas' REPLCONF.
 */
const TOP_LEVEL = new Set(['evalsha', 'eval', 'wait', 'xreadgroup', 'xautoclaim', 'xclaim', 'hget', 'script', 'xgroup', 'scan', 'xrange']);

/** Of a per-op command breakdown: the commands sent by the cloud (round trips), summed. */
export function roundTrips(perOp: Record<string, number>): number {
  return Object.entries(perOp).reduce((a, [k, v]) => a + (TOP_LEVEL.has(k) ? v : 0), 0);
}

/** Per-command call deltas between two INFO commandstats snapshots (commands of the bench itself left out). */
function commandDelta(a: Map<string, number>, b: Map<string, number>): Record<string, number> {
  const d: Record<string, number> = {};
  for (const [k, v] of b) {
    if (/^(info|cluster|ping|flushall|command|client|hello|replconf)/.test(k)) continue;
    const n = v - (a.get(k) ?? 0);
    if (n > 0) d[k] = n;
  }
  return d;
}

function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return NaN;
  }
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function waitOutput(proc: ChildProcess, pattern: RegExp, what: string): Promise<RegExpExecArray> {
  let out = '';
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what}: not ready in 20 s`)), 20_000);
    proc.stdout!.on('data', (d) => {
      out += d;
      const m = pattern.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(m);
      }
    });
    proc.on('exit', (code) => reject(new Error(`${what} exited (${code})`)));
  });
}

/** A redis-server on a free port; `persistent`: append-only file, fsync on every write (what the event log requires). */
async function startRedis(persistent = false): Promise<{ proc: ChildProcess; url: string } | null> {
  const port = await freePort();
  const persistence = persistent ? ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', mkdtempSync(join(tmpdir(), 'cloud-bench-redis-'))] : ['--appendonly', 'no'];
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...persistence], { stdio: ['ignore', 'pipe', 'ignore'] });
  proc.on('error', () => undefined);
  try {
    await waitOutput(proc, /Ready to accept connections/, 'redis-server');
  } catch {
    proc.kill('SIGKILL');
    return null;
  }
  return { proc, url: `redis://127.0.0.1:${port}` };
}

interface FrontEnd {
  proc: ChildProcess;
  port: number;
  metricsPort: number;
}

async function startFrontEnd(devicesFile: string, store: string, extra: string[] = []): Promise<FrontEnd> {
  // Handshake log lines go to stderr as in production; here they are discarded.
  const proc = spawn(process.execPath, ['--import', 'tsx', CLI, '--devices', devicesFile, '--port', '0', '--metrics-port', '0', '--store', store, ...extra], { stdio: ['ignore', 'pipe', 'ignore'] });
  const m = await waitOutput(proc, /cloud listening udp=\S+:(\d+) metrics=(\d+)/, 'cloud');
  return { proc, port: Number(m[1]), metricsPort: Number(m[2]) };
}

async function count(fes: FrontEnd[], measure: CloudBenchRow['measure']): Promise<number> {
  let n = 0;
  for (const fe of fes) {
    const m = parsePrometheus(await (await fetch(`http://127.0.0.1:${fe.metricsPort}/metrics`)).text());
    if (measure === 'handshakes/s') n += m.get('sleepy_cloud_handshakes_total{result="completed"}') ?? 0;
    else n += (m.get('sleepy_cloud_coap_total{kind="ping"}') ?? 0) + (m.get('sleepy_cloud_coap_total{kind="duplicate"}') ?? 0);
  }
  return n;
}

/** A devices file for the bench's devices (random PSKs and cloud secret) and the load's view of them. */
function benchDevices(): { devicesFile: string; devices: LoadConfig['devices'] } {
  const devs = Array.from({ length: DEVICES }, (_, i) => ({ id: `bench-${i}`, identity: `bench-id-${i}`, psk: crypto.randomBytes(16) }));
  const dir = mkdtempSync(join(tmpdir(), 'cloud-bench-'));
  const devicesFile = join(dir, 'devices.json');
  writeFileSync(devicesFile, JSON.stringify({ cloudSecret: crypto.randomBytes(32).toString('hex'), devices: devs.map((d) => ({ id: d.id, identity: d.identity, psk: d.psk.toString('hex') })) }));
  return { devicesFile, devices: devs.map((d) => ({ id: d.id, identity: d.identity, psk: d.psk.toString('hex'), handle: deviceHandle(d.id).toString('hex') })) };
}

/** Forks the load process and resolves once its load runs; `exited` resolves with its last message. */
async function startLoad(cfg: LoadConfig): Promise<{ child: ChildProcess; exited: Promise<LoadMessage | null> }> {
  const child = fork(LOAD, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let finish: (m: LoadMessage | null) => void = () => undefined;
  const finished = new Promise<LoadMessage | null>((r) => (finish = r));
  const running = new Promise<void>((resolve, reject) => {
    child.on('message', (m: LoadMessage) => {
      if (m.phase === 'running') resolve();
      else finish(m);
      if (m.phase === 'error') reject(new Error(`cloud load process: ${m.message}`));
    });
  });
  // The last message, once the process exited (a process that died without one: null after 1 s).
  const exited = once(child, 'exit').then(() => Promise.race([finished, new Promise<null>((r) => setTimeout(() => r(null), 1000).unref())]));
  child.send(cfg);
  await running;
  return { child, exited };
}

async function phase(measure: CloudBenchRow['measure'], store: CloudBenchRow['store'], frontEnds: number, seconds: number, redis: RedisBackend | null): Promise<CloudBenchRow> {
  const { devicesFile, devices } = benchDevices();
  const fes = await Promise.all(Array.from({ length: frontEnds }, () => startFrontEnd(devicesFile, store === 'memory' ? 'memory' : redis!.url)));
  const { child, exited } = await startLoad({
    mode: measure === 'records/s' ? 'records' : 'handshakes',
    ports: fes.map((f) => f.port),
    devices,
    sockets: 16,
    durationMs: seconds * 1000 + 3000,
    window: Number(process.env.CLOUD_BENCH_WINDOW ?? 512),
  });
  await new Promise((r) => setTimeout(r, 2000)); // warm-up
  const cpu = () => ({ cloud: fes.reduce((s, f) => s + cpuSeconds(f.proc.pid!), 0), load: cpuSeconds(child.pid!), redis: redis ? redis.pids().reduce((s, pid) => s + cpuSeconds(pid), 0) : 0 });
  const c0 = cpu();
  const cmd0 = redis?.commandStats() ?? null;
  const t0 = performance.now();
  let last = await count(fes, measure);
  const first = last;
  const windows: number[] = [];
  const perCpuSecond: number[] = [];
  const rss: number[] = [fes.reduce((s, f) => s + rssMiB(f.proc.pid!), 0)];
  let tPrev = t0;
  let cpuPrev = c0.cloud;
  for (let w = 0; w < seconds * 1000 / WINDOW_MS; w++) {
    await new Promise((r) => setTimeout(r, t0 + (w + 1) * WINDOW_MS - performance.now()));
    const now = performance.now();
    const n = await count(fes, measure);
    windows.push((n - last) / ((now - tPrev) / 1000));
    const cpuNow = cpu().cloud;
    perCpuSecond.push((n - last) / Math.max(0.01, cpuNow - cpuPrev));
    cpuPrev = cpuNow;
    rss.push(fes.reduce((s, f) => s + rssMiB(f.proc.pid!), 0));
    last = n;
    tPrev = now;
  }
  const secs = (tPrev - t0) / 1000;
  const c1 = cpu();
  const cmds = redis && cmd0 ? commandDelta(cmd0, redis.commandStats()) : null;
  const ops = last - first;
  if (process.env.CLOUD_BENCH_DEBUG) {
    for (const fe of fes) {
      const text = await (await fetch(`http://127.0.0.1:${fe.metricsPort}/metrics`)).text();
      console.error(text.split('\n').filter((l) => /^sleepy_cloud_(drops|handshake|store_errors|store_latency_seconds_(sum|count)|hello|internal|nodejs_heap_size_used|nodejs_external|process_resident|nodejs_gc_duration_seconds_sum|table_entries)/.test(l)).join('\n'));
    }
  }
  await exited;
  for (const f of fes) f.proc.kill('SIGKILL');
  await Promise.all(fes.map((f) => once(f.proc, 'exit')));
  const pct = (a: number, b: number) => Math.round((100 * (a - b)) / secs);
  return {
    measure,
    store,
    frontEnds,
    seconds: Math.round(secs),
    rate: (last - first) / secs,
    first10s: windows[0],
    last10s: windows[windows.length - 1],
    windows,
    perCpuSecond,
    rssMiB: rss.map((r) => Math.round(r)),
    cloudCpu: pct(c1.cloud, c0.cloud),
    loadCpu: pct(c1.load, c0.load),
    redisCpu: redis ? pct(c1.redis, c0.redis) : null,
    redisCommandsPerOp: cmds ? Object.values(cmds).reduce((a, b) => a + b, 0) / Math.max(1, ops) : null,
    redisCommands: cmds ? Object.fromEntries(Object.entries(cmds).map(([k, v]) => [k, Math.round((100 * v) / Math.max(1, ops)) / 100])) : null,
  };
}

export interface EventLatencyRow {
  /** 'redis', or 'redis-cluster' with its URL options (e.g. 'redis-cluster ?wait=0'). */
  events: string;
  frontEnds: number;
  devices: number;
  seconds: number;
  /** Events ACKed (2.04) during the phase. */
  acked: number;
  ackedPerSecond: number;
  /** ACK → webhook arrival, ms (nearest rank). */
  p50: number;
  p95: number;
  p99: number;
  max: number;
  /** Events delivered per second, from the first ACK to the last arrival (below ACKed/s: delivery falls behind, latency is queueing). */
  deliveredPerSecond: number;
  /** ACKed events that had not reached the receiver when the bench stopped waiting. */
  undelivered: number;
  /** Events sent again after 1 s without a 2.04. */
  retransmits: number;
  /** Mean time from an event's send to its 2.04 (each device sends the next once ACKed: devices ÷ ACKed/s). */
  ackRoundTripMs: number;
  /** ACKed events per second of the front end's CPU (appending, ACKing and delivering by webhook). */
  perCloudCpuSecond: number;
  /** ACKed events per second of Redis CPU (every node: masters, and replicas applying the stream). */
  perRedisCpuSecond: number;
  /** Redis commands per ACKed event (append, WAIT, delivery: read, ACK), summed over the masters. */
  redisCommandsPerEvent: number | null;
  redisCommands: Record<string, number> | null;
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/**
 * ACK → webhook latency with the Redis event log as a user runs it with no flag but --events and
 * --webhook (default reclaim timer 60 s, default concurrency): `devices` devices publish events
 * one after another for `seconds`; then the bench waits for the rest (at most `waitMs`).
 */
async function eventPhase(seconds: number, devices = 8, waitMs = 90_000, on?: { label: string; backend: RedisBackend }): Promise<EventLatencyRow | null> {
  const single = on ? null : await startRedis(true);
  if (!on && !single) return null;
  const backend = on?.backend ?? singleBackend(single!);
  const redis = { url: backend.url };
  const arrived = new Map<string, number>();
  const hook = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const id = String((JSON.parse(body) as { id: string }).id);
      if (!arrived.has(id)) arrived.set(id, wallMs());
      res.writeHead(200).end();
    });
  });
  hook.listen(0, '127.0.0.1');
  await once(hook, 'listening');
  const hookUrl = `http://127.0.0.1:${(hook.address() as net.AddressInfo).port}/hook`;
  const { devicesFile, devices: devs } = benchDevices();
  const fe = await startFrontEnd(devicesFile, 'memory', ['--events', redis.url, '--webhook', hookUrl]);
  try {
    const cmd0 = backend.commandStats();
    const redisCpu = () => backend.pids().reduce((a, pid) => a + cpuSeconds(pid), 0);
    const cpu0 = { fe: cpuSeconds(fe.proc.pid!), redis: redisCpu() };
    const { exited } = await startLoad({ mode: 'events', ports: [fe.port], devices: devs, sockets: devices, durationMs: seconds * 1000, window: 1 });
    const done = await exited;
    if (!done || done.phase !== 'done' || !done.acks) throw new Error(`cloud load process ended without its ACK times (${done ? done.phase : 'no message'})`);
    const acks = done.acks;
    const until = Date.now() + waitMs;
    while (Date.now() < until && acks.some(([k]) => !arrived.has(k))) await new Promise((r) => setTimeout(r, 50));
    const lat = acks.filter(([k]) => arrived.has(k)).map(([k, t]) => arrived.get(k)! - t).sort((a, b) => a - b);
    const firstAck = Math.min(...acks.map(([, t]) => t));
    const lastArrival = Math.max(...arrived.values());
    const cmds = commandDelta(cmd0, backend.commandStats());
    const cpu1 = { fe: cpuSeconds(fe.proc.pid!), redis: redisCpu() };
    return {
      perCloudCpuSecond: acks.length / Math.max(0.01, cpu1.fe - cpu0.fe),
      perRedisCpuSecond: acks.length / Math.max(0.01, cpu1.redis - cpu0.redis),
      events: on?.label ?? 'redis',
      ackRoundTripMs: (1000 * devices) / (acks.length / seconds),
      redisCommandsPerEvent: Object.values(cmds).reduce((a, b) => a + b, 0) / Math.max(1, acks.length),
      redisCommands: Object.fromEntries(Object.entries(cmds).map(([k, v]) => [k, Math.round((100 * v) / Math.max(1, acks.length)) / 100])),
      frontEnds: 1,
      devices,
      seconds,
      acked: acks.length,
      ackedPerSecond: acks.length / seconds,
      deliveredPerSecond: lat.length / ((lastArrival - firstAck) / 1000),
      p50: percentile(lat, 50),
      p95: percentile(lat, 95),
      p99: percentile(lat, 99),
      max: lat.at(-1) ?? NaN,
      undelivered: acks.length - lat.length,
      retransmits: done.stalls,
    };
  } finally {
    fe.proc.kill('SIGKILL');
    single?.proc.kill('SIGKILL');
    hook.closeAllConnections();
    hook.close();
    await once(fe.proc, 'exit');
  }
}

export function eventLatencyText(r: EventLatencyRow): string {
  const ms = (n: number) => (n >= 1000 ? `${(n / 1000).toFixed(1)} s` : `${n.toFixed(1)} ms`);
  return (
    `Redis event log, default settings (appendfsync always, reclaim 60 s): ACK (2.04) → webhook, ${r.devices} devices publishing one event after another for ${r.seconds} s\n` +
    table(
      ['events', 'front ends', 'ACKed', 'ACKed/s', 'delivered/s', 'p50', 'p95', 'p99', 'max', 'undelivered', 'retransmits'],
      [[r.events, String(r.frontEnds), String(r.acked), fmt(r.ackedPerSecond), fmt(r.deliveredPerSecond), ms(r.p50), ms(r.p95), ms(r.p99), ms(r.max), String(r.undelivered), String(r.retransmits)]],
    )
  );
}

async function flush(redis: { url: string }): Promise<void> {
  const { connectRedis } = await import('../host/cloud/redis-client.ts');
  const conn = await connectRedis({ url: redis.url });
  await conn.command(['FLUSHALL']);
  await conn.close();
}

/**
 * The cliff behind issue 10, in isolation: 100k inserts into a table held at a 100k bound, with
 * the old eviction (`map.delete(map.keys().next().value)`) and with BoundedMap. Median of 3.
 */
export async function benchBoundedMap(): Promise<{ text: string; oldMs: number; boundedMs: number }> {
  const { BoundedMap } = await import('../host/cloud/bounded.ts');
  const N = 100_000;
  const old = (m: Map<string, number>, k: string, v: number) => {
    m.delete(k);
    m.set(k, v);
    while (m.size > N) m.delete(m.keys().next().value as string);
  };
  const olds: number[] = [];
  const bounded: number[] = [];
  for (let round = 0; round < 3; round++) {
    const m = new Map<string, number>();
    let i = 0;
    for (; i < N; i++) old(m, `k${i}`, i);
    let t = performance.now();
    for (let j = 0; j < N; j++, i++) old(m, `k${i}`, i);
    olds.push(performance.now() - t);
    const b = new BoundedMap<string, number>(N);
    let x = 0;
    for (; x < N; x++) b.set(`k${x}`, x);
    t = performance.now();
    for (let j = 0; j < N; j++, x++) b.set(`k${x}`, x);
    bounded.push(performance.now() - t);
  }
  const med = (a: number[]) => [...a].sort((p, q) => p - q)[1];
  const oldMs = med(olds);
  const boundedMs = med(bounded);
  const text = `100k inserts into a table at its 100k bound (median of 3)\n${table(['eviction', 'time', 'ratio'], [['Map + keys().next() (before)', `${fmt(oldMs)} ms`, `${fmt(oldMs / boundedMs)}×`], ['BoundedMap (linked list)', `${fmt(boundedMs)} ms`, '1×']])}`;
  return { text, oldMs, boundedMs };
}

/**
 * What an ECDHE-ECDSA P-256 handshake (issue 19) costs the server in node:crypto, per operation,
 * one core: an ephemeral key pair, the shared secret from the device's public key, an ECDSA
 * signature (ServerKeyExchange) and a verification (the device's CertificateVerify; a device
 * certificate checked against its issuer is a second one). The fastest of 5 runs of `n` each:
 * on a shared machine the other runs measure the neighbours too (CPU cost, not a rate).
 */
export function benchEcdheCost(n = 2000): { text: string; us: Record<string, number> } {
  const device = crypto.createECDH('prime256v1');
  device.generateKeys();
  const devicePub = device.getPublicKey();
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const msg = crypto.randomBytes(64 + 32 + 32 + 69); // randoms + ServerECDHParams, as signed in TLS 1.2
  const sig = crypto.sign('sha256', msg, privateKey);
  const ops: Record<string, () => void> = {
    'ECDH key pair (ephemeral)': () => crypto.createECDH('prime256v1').generateKeys(),
    'ECDH shared secret': () => {
      const e = crypto.createECDH('prime256v1');
      e.generateKeys();
      e.computeSecret(devicePub);
    },
    'ECDSA sign (SHA-256)': () => crypto.sign('sha256', msg, privateKey),
    'ECDSA verify (SHA-256)': () => crypto.verify('sha256', msg, publicKey, sig),
  };
  const us: Record<string, number> = {};
  for (const [name, op] of Object.entries(ops)) {
    const runs: number[] = [];
    for (let r = 0; r < 5; r++) {
      const t = performance.now();
      for (let i = 0; i < n; i++) op();
      runs.push(((performance.now() - t) * 1000) / n);
    }
    us[name] = Math.min(...runs);
  }
  // The secret op includes its own key pair: the key pair alone is subtracted to get the derivation.
  const derive = us['ECDH shared secret']! - us['ECDH key pair (ephemeral)']!;
  const perHandshake = us['ECDH key pair (ephemeral)']! + derive + us['ECDSA sign (SHA-256)']! + us['ECDSA verify (SHA-256)']!;
  us['per handshake (key pair + derive + sign + 1 verify)'] = perHandshake;
  us['per handshake with a device certificate (+1 verify)'] = perHandshake + us['ECDSA verify (SHA-256)']!;
  const text =
    `ECDHE-ECDSA P-256 on the server, node:crypto (OpenSSL ${process.versions.openssl}), one core, fastest of 5 × ${n}\n` +
    table(['operation', 'µs', 'per core-second'], Object.entries(us).map(([k, v]) => [k, v.toFixed(1), fmt(1e6 / v)]));
  return { text, us };
}

/**
 * What WAIT costs one append, without UDP and front end: `n` appends one after the other (each
 * a new event of one of 64 devices) through RedisEventLog on the cluster, with WAIT 1 and without.
 */
export async function benchWaitCost(c: RedisCluster, n = 2000): Promise<{ text: string; ms: Record<string, { p50: number; p99: number; mean: number }> }> {
  const { RedisEventLog } = await import('../host/cloud/redis-events.ts');
  const ms: Record<string, { p50: number; p99: number; mean: number }> = {};
  for (const query of ['?wait=0', '']) {
    const log = await RedisEventLog.connect({ url: c.url + query, maxClaimsPerDevice: 0 });
    const lat: number[] = [];
    try {
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        await log.append({ deviceId: `wait-${i % 64}`, incarnation: query === '' ? 'aaaaaaaa' : 'bbbbbbbb', seq: i, name: 'reading', data: Buffer.from('{"t":21.5}'), receivedMs: 0 }, 60_000, 0);
        lat.push(performance.now() - t);
      }
    } finally {
      await log.close();
    }
    lat.sort((a, b) => a - b);
    ms[query === '' ? 'WAIT 1 (default)' : 'no WAIT (?wait=0)'] = { p50: percentile(lat, 50), p99: percentile(lat, 99), mean: lat.reduce((a, b) => a + b, 0) / lat.length };
  }
  const text =
    `One event append (claim + XADD script, appendfsync always) on the Redis Cluster, ${n} one after the other\n` +
    table(['append', 'p50', 'p99', 'mean'], Object.entries(ms).map(([k, v]) => [k, `${v.p50.toFixed(2)} ms`, `${v.p99.toFixed(2)} ms`, `${v.mean.toFixed(2)} ms`]));
  return { text, ms };
}

function needRedisMissing(): boolean {
  return spawnSync('redis-server', ['--version']).error !== undefined || spawnSync('redis-cli', ['--version']).error !== undefined;
}

export function clusterEventText(rows: EventLatencyRow[]): string {
  return (
    `Event log on a Redis Cluster (3 masters + 3 replicas, appendfsync always): ${rows[0]!.devices} devices publishing one event after another; WAIT 1 before each 2.04 unless ?wait=0\n` +
    table(
      ['events', 'ACKed/s', 'per cloud CPU-s', 'per Redis CPU-s', 'ACK round trip', 'p50 ACK→webhook', 'p99', 'undelivered', 'round trips/event', 'commands/event', 'by command'],
      rows.map((r) => [r.events, fmt(r.ackedPerSecond), fmt(r.perCloudCpuSecond), fmt(r.perRedisCpuSecond), `${r.ackRoundTripMs.toFixed(2)} ms`, `${r.p50.toFixed(1)} ms`, `${r.p99.toFixed(1)} ms`, String(r.undelivered), fmt(roundTrips(r.redisCommands ?? {})), fmt(r.redisCommandsPerEvent ?? NaN), Object.entries(r.redisCommands ?? {}).map(([k, v]) => `${k} ${v}`).join(', ')]),
    )
  );
}

export async function benchCloud(): Promise<{ text: string; rows: CloudBenchRow[]; events: EventLatencyRow | null; clusterEvents: EventLatencyRow[]; waitMs: Record<string, { p50: number; p99: number; mean: number }> | null }> {
  const seconds = Number(process.env.CLOUD_BENCH_SECONDS ?? 60);
  const rows: CloudBenchRow[] = [];
  const log = (r: CloudBenchRow) =>
    console.error(`  ${r.measure} ${r.store} ×${r.frontEnds}: ${fmt(r.rate)} (10 s windows: ${r.windows.map((w) => fmt(w)).join(', ')}; per cloud CPU-second: ${r.perCpuSecond.map((w) => fmt(w)).join(', ')}; RSS MiB ${r.rssMiB.join(' → ')})`);
  // CLOUD_BENCH_ONLY="handshakes/s:redis:1" runs one phase (for looking into one); "events:redis:1" the event latency alone;
  // a comma-separated list runs several ("records/s:redis-cluster:1,records/s:redis-cluster:3").
  const only = process.env.CLOUD_BENCH_ONLY?.split(',');
  const wanted = (m: string, st: string, fe: number) => !only || only.includes(`${m}:${st}:${fe}`);
  for (const measure of ['records/s', 'handshakes/s'] as const) {
    if (!wanted(measure, 'memory', 1)) continue;
    rows.push(await phase(measure, 'memory', 1, seconds, null));
    log(rows.at(-1)!);
  }
  const needRedis = ['records/s', 'handshakes/s'].some((m) => [1, 2].some((fe) => wanted(m, 'redis', fe)));
  const redis = needRedis ? await startRedis() : null;
  let note = '';
  if (redis) {
    try {
      for (const measure of ['records/s', 'handshakes/s'] as const) {
        for (const fe of [1, 2]) {
          if (!wanted(measure, 'redis', fe)) continue;
          await flush(redis);
          rows.push(await phase(measure, 'redis', fe, seconds, singleBackend(redis)));
          log(rows.at(-1)!);
        }
      }
    } finally {
      redis.proc.kill('SIGKILL');
    }
  } else if (needRedis) note = '\n(redis-server not installed: Redis rows skipped; apt-get install redis-server)';
  let events: EventLatencyRow | null = null;
  if (wanted('events', 'redis', 1)) {
    events = await eventPhase(seconds, Number(process.env.CLOUD_BENCH_EVENT_DEVICES ?? 8));
    if (events) console.error(`  events redis ×1: p50 ${events.p50.toFixed(1)} ms, p99 ${events.p99.toFixed(1)} ms, max ${events.max.toFixed(1)} ms, ${events.undelivered} undelivered`);
  }
  // Redis Cluster (3 masters + 3 replicas, local): the session cache for 1 and 3 front ends, then
  // the event log with and without WAIT (what the replica confirmation costs per ACK).
  const clusterEvents: EventLatencyRow[] = [];
  let waitCost: Awaited<ReturnType<typeof benchWaitCost>> | null = null;
  const clusterWanted = ['records/s', 'handshakes/s', 'events'].some((m) => [1, 3].some((fe) => wanted(m, 'redis-cluster', fe)));
  if (clusterWanted && !needRedisMissing()) {
    const cluster = new RedisCluster(await freeClusterPorts(6));
    await cluster.start();
    try {
      for (const measure of ['records/s', 'handshakes/s'] as const) {
        for (const fe of [1, 3]) {
          if (!wanted(measure, 'redis-cluster', fe)) continue;
          await cluster.flushAll();
          rows.push(await phase(measure, 'redis-cluster', fe, seconds, clusterBackend(cluster)));
          log(rows.at(-1)!);
        }
      }
    } finally {
      await cluster.stop();
    }
    if (wanted('events', 'redis-cluster', 1)) {
      for (const query of ['', '?wait=0']) {
        // A fresh persistent cluster per run (appendfsync always, as the event log requires).
        const ev = new RedisCluster(await freeClusterPorts(6), true);
        await ev.start();
        try {
          if (query === '') {
            waitCost = await benchWaitCost(ev);
            console.error(`  ${waitCost.text.replaceAll('\n', '\n  ')}`);
            // Its events are in the log: the phase's front end would deliver them on top of its own.
            ev.flushAll();
          }
          const r = await eventPhase(seconds, Number(process.env.CLOUD_BENCH_EVENT_DEVICES ?? 8), 90_000, { label: `redis-cluster${query}`, backend: clusterBackend(ev, query) });
          if (r) {
            clusterEvents.push(r);
            console.error(`  events ${r.events}: ${fmt(r.ackedPerSecond)} ACKed/s, ${fmt(r.perCloudCpuSecond)} per cloud CPU-s, ${fmt(r.perRedisCpuSecond)} per Redis CPU-s, ACK round trip ${r.ackRoundTripMs.toFixed(2)} ms, p50 ${r.p50.toFixed(1)} ms, ${fmt(r.redisCommandsPerEvent ?? NaN)} Redis commands/event ${JSON.stringify(r.redisCommands)}`);
          }
        } finally {
          await ev.stop();
        }
      }
    }
  }
  const cpu = (n: number | null) => (n === null ? '–' : `${n}%`);
  const text =
    `Cloud over loopback UDP, sustained: ${seconds} s per phase after 2 s warm-up; load from a separate process; CPU in % of one core (summed over front ends); RSS summed over front ends\n` +
    table(
      ['measure', 'store', 'front ends', 'mean rate', 'first 10 s', 'last 10 s', 'per CPU-s first → last', 'last/first per CPU-s', 'RSS start → end', 'cloud CPU', 'load CPU', 'redis CPU'],
      rows.map((r) => [
        r.measure,
        r.store,
        String(r.frontEnds),
        fmt(r.rate),
        fmt(r.first10s),
        fmt(r.last10s),
        `${fmt(r.perCpuSecond[0])} → ${fmt(r.perCpuSecond.at(-1)!)}`,
        `${Math.round((100 * r.perCpuSecond.at(-1)!) / r.perCpuSecond[0])}%`,
        `${r.rssMiB[0]} → ${r.rssMiB.at(-1)} MiB`,
        cpu(r.cloudCpu),
        cpu(r.loadCpu),
        cpu(r.redisCpu),
      ]),
    ) +
    note +
    (rows.some((r) => r.redisCommands) ? `\n\nRedis commands per operation (INFO commandstats on the masters, commands run inside scripts included; round trips: the commands the cloud sends)\n${table(['measure', 'store', 'front ends', 'round trips/op', 'commands/op', 'by command'], rows.filter((r) => r.redisCommands).map((r) => [r.measure, r.store, String(r.frontEnds), fmt(roundTrips(r.redisCommands!)), fmt(r.redisCommandsPerOp!), Object.entries(r.redisCommands!).map(([k, v]) => `${k} ${v}`).join(', ')]))}` : '') +
    (events ? `\n\n${eventLatencyText(events)}` : '') +
    (clusterEvents.length > 0 ? `\n\n${clusterEventText(clusterEvents)}` : '') +
    (waitCost ? `\n\n${waitCost.text}` : '');
  return { text, rows, events, clusterEvents, waitMs: waitCost?.ms ?? null };
}

// `npm run bench:cloud` runs this benchmark alone.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const maps = await benchBoundedMap();
  console.log(maps.text + '\n');
  const ecdhe = benchEcdheCost();
  console.log(ecdhe.text + '\n');
  const { text, rows, events, clusterEvents, waitMs } = await benchCloud();
  console.log(text);
  const { mkdirSync } = await import('node:fs');
  mkdirSync('reports', { recursive: true });
  writeFileSync('reports/bench-cloud.json', JSON.stringify({ date: new Date().toISOString(), node: process.version, boundedMap: { oldMs: maps.oldMs, boundedMs: maps.boundedMs }, ecdheMicroseconds: ecdhe.us, rows, eventLatency: events, clusterEventLatency: clusterEvents, clusterAppendMs: waitMs }, null, 2));
  console.log('written: reports/bench-cloud.json');
}
