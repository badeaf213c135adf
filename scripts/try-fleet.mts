import { PartitionRunner } from '../host/sim/fleet/partition.ts';
import { DEFAULT_FLEET } from '../host/sim/fleet/spec.ts';
import { V8Engine } from '../host/engines/v8.ts';
import { readFirmware } from '../host/firmware.ts';
const n = Number(process.argv[2] ?? 40);
const profile = (process.argv[3] ?? 'legacy') as any;
const days = Number(process.argv[4] ?? 14);
const t = performance.now();
const r = new PartitionRunner({ options: { ...DEFAULT_FLEET, days }, profile, indices: Array.from({length:n},(_, i)=>i), traceIndex: null, captureBelow: 0 }, new V8Engine(), readFirmware(), Buffer.alloc(32, 7));
const res = await r.run();
const ms = performance.now() - t;
console.log(profile, 'wakes', res.wakes, 'ms', ms.toFixed(0), 'wakes/s', (res.wakes / ms * 1000).toFixed(0), 'ie', res.cloudInternalErrors, 'stuckAlertMin', res.deviceStuckAlertMinute);
let stuck = 0;
for (const d of res.devices) { if (d.stuckWakes>0) stuck++; }
console.log('stuck', stuck, 'of', res.devices.length);
for (const d of res.devices.slice(0, 12)) console.log(JSON.stringify(d));
