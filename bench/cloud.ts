/**
 * Cloud throughput over loopback UDP, driven by a separate load process (bench/cloud-load.ts):
 * records/s (each record: decrypt, atomic replay-window update and sequence reservation in the
 * store, CoAP ACK sealed and sent) with the memory store and with Redis, and full handshakes/s.
 * CPU of the cloud, the load process and redis-server is sampled over each phase, which shows
 * what bounds the rate on this machine.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DeviceRegistry, deviceHandle } from '../host/cloud/devices.ts';
import { startCloud } from '../host/cloud/server.ts';
import type { LoadConfig, LoadMessage } from './cloud-load.ts';
import { fmt, table } from './lib.ts';

export interface CloudBenchRow {
  store: 'memory' | 'redis';
  measure: 'records/s' | 'handshakes/s';
  /** Completed operations per second, counted by the cloud. */
  rate: number;
  /** CPU use over the phase, in % of one core. */
  cloudCpu: number;
  loadCpu: number;
  redisCpu: number | null;
}

const LOAD = fileURLToPath(new URL('./cloud-load.ts', import.meta.url));
const DEVICES = 64;

/** CPU seconds (user + system) of a process, from /proc. */
function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return NaN;
  }
}

async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function startRedis(): Promise<{ proc: ChildProcess; url: string } | null> {
  const port = await freePort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const ready = await new Promise<boolean>((resolve) => {
    let out = '';
    proc.on('error', () => resolve(false));
    proc.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('Ready to accept connections')) resolve(true);
    });
    setTimeout(() => resolve(false), 5000);
  });
  if (!ready) {
    proc.kill('SIGKILL');
    return null;
  }
  return { proc, url: `redis://127.0.0.1:${port}` };
}

async function measure(storeKind: 'memory' | 'redis', redis: { proc: ChildProcess; url: string } | null): Promise<CloudBenchRow[]> {
  const devs = Array.from({ length: DEVICES }, (_, i) => ({ id: `bench-${i}`, identity: `bench-id-${i}`, psk: crypto.randomBytes(16) }));
  const cloud = await startCloud({
    port: 0,
    devices: new DeviceRegistry(devs),
    store: storeKind === 'memory' ? 'memory' : redis!.url,
    maxInflight: 8192,
  });
  const cfg: LoadConfig = {
    port: cloud.port,
    devices: devs.map((d) => ({ identity: d.identity, psk: d.psk.toString('hex'), handle: deviceHandle(d.id).toString('hex') })),
    handshakeSockets: 16,
    handshakeMs: 2000,
    recordMs: 3000,
    warmupMs: 500,
    window: Number(process.env.CLOUD_BENCH_WINDOW ?? 512),
  };
  const child = fork(LOAD, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const rows: CloudBenchRow[] = [];
  const redisPid = redis?.proc.pid;
  let mark = { t: 0, cloud: 0, load: 0, redis: 0, handshakes: 0, pings: 0 };
  const sample = () => {
    const c = cloud.counters();
    return {
      t: performance.now(),
      cloud: process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6,
      load: cpuSeconds(child.pid!),
      redis: redisPid ? cpuSeconds(redisPid) : 0,
      handshakes: c['handshakes|completed'] ?? 0,
      pings: c['coap|ping'] ?? 0,
    };
  };
  const row = (m: CloudBenchRow['measure'], count: (s: typeof mark) => number): CloudBenchRow => {
    const end = sample();
    const secs = (end.t - mark.t) / 1000;
    const pct = (a: number, b: number) => Math.round((100 * (a - b)) / secs);
    return {
      store: storeKind,
      measure: m,
      rate: (count(end) - count(mark)) / secs,
      cloudCpu: pct(end.cloud, mark.cloud),
      loadCpu: pct(end.load, mark.load),
      redisCpu: redisPid ? pct(end.redis, mark.redis) : null,
    };
  };
  await new Promise<void>((resolve, reject) => {
    child.on('message', (m: LoadMessage) => {
      if (m.phase === 'handshakes-start' || m.phase === 'records-start') mark = sample();
      else if (m.phase === 'handshakes-end') rows.push(row('handshakes/s', (s) => s.handshakes));
      else if (m.phase === 'records-end') rows.push(row('records/s', (s) => s.pings));
      else if (m.phase === 'error') reject(new Error(`cloud load process: ${m.message}`));
    });
    child.on('exit', () => resolve());
    child.send(cfg);
  });
  await cloud.close();
  return rows;
}

export async function benchCloud(): Promise<{ text: string; rows: CloudBenchRow[] }> {
  const rows = await measure('memory', null);
  const redis = await startRedis();
  let note = '';
  if (redis) {
    try {
      rows.push(...(await measure('redis', redis)));
    } finally {
      redis.proc.kill('SIGKILL');
    }
  } else note = '\n(redis-server not installed: Redis rows skipped; apt-get install redis-server)';
  const cpu = (n: number | null) => (n === null ? '–' : `${n}%`);
  const text =
    'Cloud over loopback UDP (load from a separate process; CPU in % of one core over the phase)\n' +
    table(
      ['measure', 'store', 'rate', 'cloud CPU', 'load CPU', 'redis CPU'],
      rows.map((r) => [r.measure, r.store, fmt(r.rate), cpu(r.cloudCpu), cpu(r.loadCpu), cpu(r.redisCpu)]),
    ) +
    note;
  return { text, rows };
}

// `node --import tsx bench/cloud.ts` runs this benchmark alone.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { text } = await benchCloud();
  console.log(text);
}
