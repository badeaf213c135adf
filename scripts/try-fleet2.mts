import { runFleet } from '../host/sim/fleet/run.ts';
import { DEFAULT_FLEET } from '../host/sim/fleet/spec.ts';
const n = Number(process.argv[2] ?? 60); const w = Number(process.argv[3] ?? 2);
const { result } = await runFleet({ ...DEFAULT_FLEET, devices: n, workers: w });
for (const p of result.profiles) console.log(p.profile, p.verdict, JSON.stringify(p.events), JSON.stringify(p.alarms), JSON.stringify(p.bytes), p.wakes);
console.log('wall', result.wallMs.toFixed(0), 'wakes/s', result.wakesPerSecond.toFixed(0));
import { createHash } from 'node:crypto';
const { wallMs, wakesPerSecond, options, ...rest } = result as any;
console.log('digest', createHash('sha256').update(JSON.stringify(rest)).digest('hex').slice(0, 16));
