/**
 * Fleet replay throughput (`npm run bench:fleet`): wakes simulated per second with 1 and 2 worker
 * threads on the same fleet (same seed, same wakes), each phase long enough for steady state
 * (≥ 60 s with 2 workers at this machine's rate), reported per 10 s window so a trend shows; then
 * the `--devices 100000` fleet (one profile, half a day: the crash at 10:00 and what follows; ~0.9 M wakes, a handshake each before and after the crash) to show a large fleet runs in
 * bounded memory. FLEET_BENCH_DEVICES, FLEET_BENCH_BIG_DEVICES and FLEET_BENCH_BIG_DAYS override.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { runFleet } from '../host/sim/fleet/run.ts';
import { DEFAULT_FLEET, type FleetOptions } from '../host/sim/fleet/spec.ts';
import { fmt, table } from './lib.ts';

const WINDOW_MS = 10_000;

interface Phase {
  name: string;
  workers: number;
  devices: number;
  days: number;
  profiles: string;
  wakes: number;
  seconds: number;
  wakesPerSecond: number;
  windows: number[];
  peakRssMiB: number;
}

async function phase(name: string, o: FleetOptions): Promise<Phase> {
  const windows: number[] = [];
  let inWindow = 0;
  let windowStart = performance.now();
  let peakRss = process.memoryUsage().rss;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    const now = performance.now();
    if (now - windowStart >= WINDOW_MS) {
      windows.push((inWindow * 1000) / (now - windowStart));
      inWindow = 0;
      windowStart = now;
    }
  }, 250);
  const { result } = await runFleet(o, { onWakes: (n) => (inWindow += n) });
  clearInterval(sampler);
  const p: Phase = {
    name, workers: o.workers, devices: o.devices, days: o.days, profiles: o.profiles.join(','), wakes: result.wakes,
    seconds: result.wallMs / 1000, wakesPerSecond: result.wakesPerSecond, windows, peakRssMiB: peakRss / 2 ** 20,
  };
  console.log(`  ${name}: ${fmt(p.wakesPerSecond)} wakes/s over ${p.seconds.toFixed(1)} s (10 s windows: ${windows.map((w) => fmt(w)).join(', ')}); peak RSS ${p.peakRssMiB.toFixed(0)} MiB (main thread + workers)`);
  return p;
}

const devices = Number(process.env.FLEET_BENCH_DEVICES ?? 500);
const bigDevices = Number(process.env.FLEET_BENCH_BIG_DEVICES ?? 100_000);
const bigDays = Number(process.env.FLEET_BENCH_BIG_DAYS ?? 0.5);
const base: FleetOptions = { ...DEFAULT_FLEET, devices, seed: 'bench-fleet' };
const phases: Phase[] = [];
phases.push(await phase('1 worker', { ...base, workers: 1 }));
phases.push(await phase('2 workers', { ...base, workers: 2 }));
if (bigDevices > 0) phases.push(await phase(`${bigDevices} devices`, { ...base, devices: bigDevices, days: bigDays, profiles: ['default'], workers: 2 }));

const one = phases[0].wakesPerSecond;
console.log('\nFleet replay: wakes simulated per second (same fleet and seed for the first two rows)');
console.log(table(
  ['phase', 'devices', 'days', 'profiles', 'wakes', 'seconds', 'wakes/s', 'vs 1 worker', 'first → last 10 s', 'peak RSS'],
  phases.map((p) => [p.name, p.devices.toLocaleString('en-US'), String(p.days), p.profiles, fmt(p.wakes), p.seconds.toFixed(1), fmt(p.wakesPerSecond),
    `${(p.wakesPerSecond / one).toFixed(2)}×`, p.windows.length >= 2 ? `${fmt(p.windows[0])} → ${fmt(p.windows.at(-1)!)}` : '–', `${p.peakRssMiB.toFixed(0)} MiB`]),
));
mkdirSync('reports', { recursive: true });
writeFileSync('reports/bench-fleet.json', JSON.stringify(phases, null, 2));
console.log('written: reports/bench-fleet.json');
