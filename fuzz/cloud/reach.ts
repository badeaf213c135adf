/**
 * How many inputs of a cloud corpus make the cloud send a ServerHello (get past the stateless
 * cookie): node --import tsx fuzz/cloud/reach.ts [DIR…] (default fuzz/corpus/cloud).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fuzz, reached } from './target.ts';

const dirs = process.argv.slice(2);
for (const dir of dirs.length ? dirs : ['fuzz/corpus/cloud']) {
  const files = readdirSync(dir).filter((f) => !f.startsWith('.'));
  let hits = 0;
  for (const f of files) {
    await fuzz(readFileSync(join(dir, f)));
    if (reached.serverHello) hits++;
  }
  console.log(`${dir}: ${hits} of ${files.length} inputs reach a ServerHello`);
}
