// What fuzz/build.mjs and fuzz/coverage.mjs share: the named twin of the shipped module, and the
// hooks the native targets put into wasm2c's translation.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Builds the module with its name section (asc --target release --debug) and proves that, names
 * stripped, it is byte-identical to `shipped`: the translation then has the firmware's function
 * names (w2c_assembly_dtls_record_parseRecord, …) and is still the shipped code.
 * Returns the named module's path, or null when `shipped` is not what this source builds.
 */
export function namedTwin(root, out, shipped) {
  const named = join(out, 'session.named.wasm');
  const stripped = join(out, 'session.stripped.wasm');
  const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  const same = () => {
    run('wasm-strip', [named, '-o', stripped]);
    return readFileSync(stripped).equals(readFileSync(shipped));
  };
  // A twin from an earlier build serves as long as it still strips to the shipped bytes.
  if (existsSync(named) && same()) return named;
  run(join(root, 'node_modules/.bin/asc'), ['assembly/index.ts', '--target', 'release', '--debug', '-o', named]);
  return same() ? named : null;
}

/** One textual edit of the translation; fails loudly when wasm2c's output changed shape. */
function edit(c, pattern, replacement, count) {
  const found = c.match(new RegExp(pattern.source, 'g'))?.length ?? 0;
  if (found !== count) throw new Error(`fuzz/wasm2c-patch.mjs: expected ${count} × ${pattern} in wasm2c's output, found ${found} (wabt version changed?)`);
  return c.replace(new RegExp(pattern.source, 'g'), replacement);
}

/**
 * Hooks into wasm2c 1.0.32's translation (no-ops unless the file is compiled with
 * `-include fuzz/harness/hooks.h`):
 *   FUZZ_ON_LOAD(addr, n)   every load, and the source of memory.copy
 *   FUZZ_ON_STORE(addr, n)  every store, and the destination of memory.copy / memory.fill
 *   FUZZ_ON_ENTER(name)     every function entry (after the call-depth count): a stack of names
 *   FUZZ_ON_TRAP()          just before any trap: the harness copies that stack
 */
export function patchTranslation(c) {
  c = edit(c, /#include "session.h"\n/, '#include "session.h"\n' +
    '#ifndef FUZZ_ON_LOAD\n#define FUZZ_ON_LOAD(a, n) ((void)0)\n#define FUZZ_ON_STORE(a, n) ((void)0)\n' +
    '#define FUZZ_ON_ENTER(name) ((void)0)\n#define FUZZ_ON_TRAP() ((void)0)\n#endif\n', 1);
  c = edit(c, /#define TRAP\(x\) \(wasm_rt_trap\(WASM_RT_TRAP_##x\), 0\)/, '#define TRAP(x) (FUZZ_ON_TRAP(), wasm_rt_trap(WASM_RT_TRAP_##x), 0)', 1);
  c = edit(c, /    TRAP\(EXHAUSTION\);\n/, '    TRAP(EXHAUSTION);                                            \\\n  FUZZ_ON_ENTER(__func__);\n', 1);
  c = edit(c, /(#define DEFINE_LOAD\(name, t1, t2, t3\)[^\n]*\n[^\n]*\n\s*MEMCHECK\(mem, addr, t1\);)/, '$1 FUZZ_ON_LOAD(addr, sizeof(t1));', 2);
  c = edit(c, /(#define DEFINE_STORE\(name, t1, t2\)[^\n]*\n[^\n]*\n\s*MEMCHECK\(mem, addr, t1\);)/, '$1 FUZZ_ON_STORE(addr, sizeof(t1));', 2);
  c = edit(c, /(memory_fill\(wasm_rt_memory_t\* mem, u32 d, u32 val, u32 n\) \{\n\s*RANGE_CHECK\(mem, d, n\);)/, '$1\n  FUZZ_ON_STORE(d, n);', 1);
  c = edit(c, /(RANGE_CHECK\(src, src_addr, n\);)/, '$1\n  FUZZ_ON_LOAD(src_addr, n);\n  FUZZ_ON_STORE(dest_addr, n);', 1);
  return c;
}
