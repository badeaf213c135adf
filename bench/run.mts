// `npm run bench`: every benchmark in one run, printed as tables and written to
// reports/bench.json. BENCHMARKS.md records a run of this command.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { V8Engine } from '../host/engines/v8.ts';
import { benchCrypto } from './crypto.ts';
import { benchHandshakeWire } from './handshake.ts';
import { benchCloud } from './cloud.ts';
import { benchEngines } from './engines.ts';

const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  node: process.version,
  cpu: os.cpus()[0]?.model,
};
console.log(`sleepy-session benchmarks — node ${process.version}, ${os.cpus()[0]?.model}, ${os.cpus().length} cores\n`);
const crypto = await benchCrypto(new V8Engine());
console.log(crypto.text + '\n');
results.crypto = crypto.rows;
const wire = await benchHandshakeWire();
console.log(wire.text + '\n');
results.handshakeWire = wire.rows;
const engines = await benchEngines();
console.log(engines.text + '\n');
results.engines = engines.rows;
const cloud = await benchCloud();
console.log(cloud.text + '\n');
results.cloud = cloud.rows;
results.cloudEventLatency = cloud.events;

mkdirSync('reports', { recursive: true });
writeFileSync('reports/bench.json', JSON.stringify(results, null, 2));
console.log('written: reports/bench.json');
