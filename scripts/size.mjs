// Printed at the end of every build: flash (the .wasm) and the fixed RAM the module asks for.
import { readFileSync, statSync } from 'node:fs';

const path = 'build/session.wasm';
const bytes = readFileSync(path);
const mod = new WebAssembly.Module(bytes);
const imports = WebAssembly.Module.imports(mod).map((i) => `${i.module}.${i.name}`);
const exportedFns = WebAssembly.Module.exports(mod).filter((e) => e.kind === 'function').length;
console.log(`${path}: ${statSync(path).size} bytes, ${exportedFns} exported functions, imports: ${imports.join(', ') || 'none'}`);
const { instance } = await WebAssembly.instantiate(bytes, { env: { trap() {} } });
instance.exports._start();
const staticEnd = instance.exports.heap_offset();
console.log(`linear memory: 1 page (65536 bytes), static data and buffers end at ${staticEnd} (${(staticEnd / 1024).toFixed(1)} KiB), no heap use after start`);
