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
import { fork, spawn, type ChildProcess } from 'node:child_process';
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

const LOAD = fileURLToPath(new URL('./cloud-load.ts', import.meta.url));
const CLI = fileURLToPath(new URL('../host/cloud/cli.ts', import.meta.url));
const DEVICES = 256;
const WINDOW_MS = 10_000;

export interface CloudBenchRow {
  measure: 'records/s' | 'handshakes/s';
  store: 'memory' | 'redis';
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

async function phase(measure: CloudBenchRow['measure'], store: 'memory' | 'redis', frontEnds: number, seconds: number, redis: { proc: ChildProcess; url: string } | null): Promise<CloudBenchRow> {
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
  const cpu = () => ({ cloud: fes.reduce((s, f) => s + cpuSeconds(f.proc.pid!), 0), load: cpuSeconds(child.pid!), redis: redis ? cpuSeconds(redis.proc.pid!) : 0 });
  const c0 = cpu();
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
  };
}

export interface EventLatencyRow {
  events: 'redis';
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
async function eventPhase(seconds: number, devices = 8, waitMs = 90_000): Promise<EventLatencyRow | null> {
  const redis = await startRedis(true);
  if (!redis) return null;
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
    const { exited } = await startLoad({ mode: 'events', ports: [fe.port], devices: devs, sockets: devices, durationMs: seconds * 1000, window: 1 });
    const done = await exited;
    if (!done || done.phase !== 'done' || !done.acks) throw new Error(`cloud load process ended without its ACK times (${done ? done.phase : 'no message'})`);
    const acks = done.acks;
    const until = Date.now() + waitMs;
    while (Date.now() < until && acks.some(([k]) => !arrived.has(k))) await new Promise((r) => setTimeout(r, 50));
    const lat = acks.filter(([k]) => arrived.has(k)).map(([k, t]) => arrived.get(k)! - t).sort((a, b) => a - b);
    const firstAck = Math.min(...acks.map(([, t]) => t));
    const lastArrival = Math.max(...arrived.values());
    return {
      events: 'redis',
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
    redis.proc.kill('SIGKILL');
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

export async function benchCloud(): Promise<{ text: string; rows: CloudBenchRow[]; events: EventLatencyRow | null }> {
  const seconds = Number(process.env.CLOUD_BENCH_SECONDS ?? 60);
  const rows: CloudBenchRow[] = [];
  const log = (r: CloudBenchRow) =>
    console.error(`  ${r.measure} ${r.store} ×${r.frontEnds}: ${fmt(r.rate)} (10 s windows: ${r.windows.map((w) => fmt(w)).join(', ')}; per cloud CPU-second: ${r.perCpuSecond.map((w) => fmt(w)).join(', ')}; RSS MiB ${r.rssMiB.join(' → ')})`);
  // CLOUD_BENCH_ONLY="handshakes/s:redis:1" runs one phase (for looking into one); "events:redis:1" the event latency alone.
  const only = process.env.CLOUD_BENCH_ONLY;
  const wanted = (m: string, st: string, fe: number) => !only || only === `${m}:${st}:${fe}`;
  for (const measure of ['records/s', 'handshakes/s'] as const) {
    if (!wanted(measure, 'memory', 1)) continue;
    rows.push(await phase(measure, 'memory', 1, seconds, null));
    log(rows.at(-1)!);
  }
  const redis = await startRedis();
  let note = '';
  if (redis) {
    try {
      for (const measure of ['records/s', 'handshakes/s'] as const) {
        for (const fe of [1, 2]) {
          if (!wanted(measure, 'redis', fe)) continue;
          await flush(redis);
          rows.push(await phase(measure, 'redis', fe, seconds, redis));
          log(rows.at(-1)!);
        }
      }
    } finally {
      redis.proc.kill('SIGKILL');
    }
  } else note = '\n(redis-server not installed: Redis rows skipped; apt-get install redis-server)';
  let events: EventLatencyRow | null = null;
  if (wanted('events', 'redis', 1)) {
    events = await eventPhase(seconds, Number(process.env.CLOUD_BENCH_EVENT_DEVICES ?? 8));
    if (events) console.error(`  events redis ×1: p50 ${events.p50.toFixed(1)} ms, p99 ${events.p99.toFixed(1)} ms, max ${events.max.toFixed(1)} ms, ${events.undelivered} undelivered`);
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
    (events ? `\n\n${eventLatencyText(events)}` : '');
  return { text, rows, events };
}

// `npm run bench:cloud` runs this benchmark alone.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const maps = await benchBoundedMap();
  console.log(maps.text + '\n');
  const { text, rows, events } = await benchCloud();
  console.log(text);
  const { mkdirSync } = await import('node:fs');
  mkdirSync('reports', { recursive: true });
  writeFileSync('reports/bench-cloud.json', JSON.stringify({ date: new Date().toISOString(), node: process.version, boundedMap: { oldMs: maps.oldMs, boundedMs: maps.boundedMs }, rows, eventLatency: events }, null, 2));
  console.log('written: reports/bench-cloud.json');
}
