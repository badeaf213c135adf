#!/usr/bin/env node
// `npm run build:mcu`: the Cortex-M4 image (QEMU mps2-an386) with build/session.wasm in flash.
// Two builds of the same board code: wasm3 interpreting the module, and the module compiled ahead
// of time by wasm2c (the native baseline, at -Os and at -O2). Output in build/mcu/: <engine>.elf,
// <engine>.bin, <engine>.map and size.json (flash and static RAM per part). Those images carry the
// debug channel (semihosting) the host tools drive them through. build/mcu/release/ holds the
// production-shaped images (no semihosting: log on UART1, persistent memory in the board's
// file-backed PSRAM, exit by reset request), and wasm3-tight-heap.elf is the wasm3 image linked
// with too small a heap (HEAP_TIGHT_BYTES) for the test that it fails cleanly. wasm3's C sources come from the
// wasm3x-sys crate that the wasm3 addon already depends on (cargo fetch), never from this repo.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dataEnd, patchMemoryPageSize, wasmExports } from './wasm-sections.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'build/mcu');
const src = join(root, 'mcu/src');
const CC = 'arm-none-eabi-gcc';
const ARCH = ['-mcpu=cortex-m4', '-mthumb', '-mfloat-abi=soft'];
const COMMON = [...ARCH, '-Os', '-g', '-ffunction-sections', '-fdata-sections', '-Wall', '-Wno-unused-function'];
// wasm3 for an MCU: the settings wasm3 itself picks for ARDUINO/PARTICLE builds
// (m3_config_platforms.h: function stack height 128, 1 KiB code pages, terse errors, small
// constant table), 32-bit slots, no floating point (the module has none), no WASI. Two choices
// measured with npm run bench:mcu: cascaded opcodes on (record seal 12 % faster for 1 KiB of
// flash), and no validation pre-pass (the module is fixed in flash and V8 validates it in this
// build: 6 KiB less flash, 8 % fewer instructions per wake, all of it compile time).
const WASM3_DEFINES = [
  'd_m3HasWASI=0', 'd_m3LogOutput=0', 'd_m3Use32BitSlots=1', 'd_m3HasFloat=0',
  'd_m3MaxFunctionStackHeight=128', 'd_m3CodePageAlignSize=1024', 'd_m3VerboseErrorMessages=0',
  'd_m3CascadedOpcodes=1', 'd_m3MaxConstantTableSize=64', 'd_m3MaxNativeStack=0', 'd_m3EnableValidation=0',
].map((d) => `-D${d}`);
const WASM3_SKIP = /^m3_api_(wasi|uvwasi|libc|tracer|meta_wasi)\.c$/;

/** The heap of wasm3-tight-heap.elf: enough to load the module and boot, too little to finish a
 * wake (the heap after load is ~43 KiB, a resumed wake peaks near 70 KiB; bench:mcu). */
const HEAP_TIGHT_BYTES = 56 * 1024;

function fail(msg) {
  console.error(`build:mcu: ${msg}`);
  process.exit(1);
}

// CI as CI services set it (true, 1, yes, …), the same rule as test/host/engines.ts's inCi().
const ciValue = (process.env.CI ?? '').trim().toLowerCase();
const ci = ciValue !== '' && ciValue !== 'false' && ciValue !== '0';

/** A missing tool skips the MCU build with a notice, except under CI, where it fails. */
function need(tool, pkg) {
  const r = spawnSync(tool, ['--version'], { stdio: 'ignore' });
  if (!r.error && r.status === 0) return;
  const msg = `${tool} not found (Debian: apt-get install -y ${pkg})`;
  if (ci) fail(msg);
  console.log(`build:mcu: ${msg}; skipping the MCU image (its tests skip too)`);
  process.exit(0);
}

/** The wasm3 sources of the wasm3x-sys crate in cargo's registry (fetched first). */
function wasm3Sources() {
  const crate = join(root, 'host/engines/wasm3/native');
  const fetch = spawnSync('cargo', ['fetch', '--locked'], { cwd: crate, stdio: ['ignore', 'inherit', 'inherit'] });
  if (fetch.error || fetch.status !== 0) fail('cargo fetch failed (needs cargo; the wasm3 sources come from the wasm3x-sys crate)');
  const meta = spawnSync('cargo', ['metadata', '--format-version', '1', '--locked'], { cwd: crate, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (meta.status !== 0) fail(`cargo metadata failed: ${meta.stderr}`);
  const pkg = JSON.parse(meta.stdout).packages.find((p) => p.name === 'wasm3x-sys');
  if (!pkg) fail('wasm3x-sys is not in the wasm3 addon\'s dependency graph');
  const dir = join(dirname(pkg.manifest_path), 'wasm3/source');
  if (!existsSync(join(dir, 'wasm3.h'))) fail(`no wasm3 sources in ${dir}`);
  return { dir, version: pkg.version };
}

/** wasm2c's runtime from the Debian wabt package. */
function wasm2cRuntime() {
  const r = spawnSync('dpkg', ['-L', 'wabt'], { encoding: 'utf8' });
  const files = (r.stdout ?? '').split('\n');
  // A directory holding the runtime and its header together: never -I/usr/include (host headers).
  const impl = files.find((f) => f.endsWith('/wasm-rt-impl.c') && existsSync(join(dirname(f), 'wasm-rt.h')));
  if (!impl) fail('wasm2c runtime (wasm-rt-impl.c with wasm-rt.h) not found (Debian: apt-get install -y wabt)');
  return { implDir: dirname(impl) };
}

function cArray(name, bytes) {
  const rows = [];
  for (let i = 0; i < bytes.length; i += 16) rows.push('  ' + Array.from(bytes.subarray(i, i + 16), (b) => `0x${b.toString(16).padStart(2, '0')}`).join(', ') + ',');
  return `#include <stdint.h>\n/* Generated by mcu/build.mjs: in flash (const), never copied to RAM. */\n` +
    `const uint8_t ${name}[${bytes.length}] __attribute__((aligned(4))) = {\n${rows.join('\n')}\n};\n` +
    `const uint32_t ${name}_len = ${bytes.length};\n`;
}

let running = 0;
const queue = [];
const JOBS = 2;
function run(cmd, args) {
  return new Promise((resolvePromise, reject) => {
    const start = () => {
      running++;
      const p = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'pipe'] });
      let err = '';
      p.stderr.on('data', (d) => (err += d));
      p.on('close', (code) => {
        running--;
        queue.shift()?.();
        if (code === 0) resolvePromise(err);
        else reject(new Error(`${cmd} ${args.filter((a) => a.endsWith('.c')).join(' ')} failed:\n${err}`));
      });
    };
    if (running < JOBS) start();
    else queue.push(start);
  });
}

async function compile(files, objDir, flags) {
  mkdirSync(objDir, { recursive: true });
  return Promise.all(files.map(async (f) => {
    const obj = join(objDir, basename(f).replace(/\.c$/, '.o'));
    await run(CC, [...COMMON, ...flags, '-c', f, '-o', obj]);
    return obj;
  }));
}

/** Flash and RAM per part, from the linker map (after --gc-sections): allocated sections only
 * (.ARM.attributes and the debug sections are in the ELF but never loaded). */
function sizeReport(mapPath, elfPath) {
  const parts = { wasm3: 0, wasm2c: 0, module: 0, board: 0, libc: 0 };
  const ram = { data: 0, bss: 0 };
  const lines = readFileSync(mapPath, 'utf8').split('\n');
  let inMap = false;
  let pending = null;
  for (const line of lines) {
    if (line.startsWith('Linker script and memory map')) inMap = true;
    if (!inMap) continue;
    let m = line.match(/^ (\.[\w.$-]+)\s*$/);
    if (m) { pending = m[1]; continue; }
    m = line.match(/^ (\.[\w.$-]+)?\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S+)$/);
    const section = m ? (m[1] ?? pending) : null;
    pending = null;
    if (!m || !section) continue;
    const size = parseInt(m[3], 16);
    if (size === 0) continue;
    const file = m[4];
    const kind = /^\.(text|rodata|vectors|ARM\.exidx|ARM\.extab|init_array|init|fini)/.test(section) ? 'flash'
      : /^\.data/.test(section) ? 'data' : /^\.bss|^COMMON|^\.noinit/.test(section) ? 'bss' : null;
    if (!kind) continue;
    if (kind !== 'flash') ram[kind] += size;
    if (kind === 'bss') continue; // .bss takes no flash
    const part = file.includes('/obj/wasm3/') ? 'wasm3' : /\/obj\/wasm2c/.test(file) ? (file.endsWith('session.o') ? 'module' : 'wasm2c')
      : file.endsWith('session_wasm.o') ? 'module' : file.includes('/obj/board') ? 'board' : 'libc';
    parts[part] += size;
  }
  // The total from the ELF itself: every allocated section that has bytes in flash (PROGBITS with
  // the A flag: .vectors, .text, .ARM.exidx, .init_array and .data's load image), alignment included.
  const re = spawnSync('arm-none-eabi-readelf', ['-S', '-W', elfPath], { encoding: 'utf8' });
  if (re.status !== 0) fail(`readelf ${elfPath} failed`);
  let flash = 0;
  for (const line of re.stdout.split('\n')) {
    const m = line.match(/^\s*\[\s*\d+\]\s+(\S+)\s+(\S+)\s+[0-9a-f]+\s+[0-9a-f]+\s+([0-9a-f]+)\s+\S+\s+(\S*)/);
    if (m && m[2] === 'PROGBITS' && m[4].includes('A')) flash += parseInt(m[3], 16);
  }
  parts.padding = flash - Object.values(parts).reduce((a, b) => a + b, 0);
  return { flashBytes: flash, flashByPart: parts, staticRamBytes: ram.data + ram.bss, ram };
}

/** Links an image: `release` without semihosting (nosys: no rdimon), `ldFlags` e.g. a heap bound. */
async function link(dir, name, objs, { release = false, ldFlags = [] } = {}) {
  mkdirSync(dir, { recursive: true });
  const elf = join(dir, `${name}.elf`);
  const map = join(dir, `${name}.map`);
  // --wrap=_sbrk: malloc grows the heap through the board's own bounded _sbrk (board_mps2.c).
  await run(CC, [...ARCH, '--specs=nano.specs', release ? '--specs=nosys.specs' : '--specs=rdimon.specs', '-nostartfiles', '-T', join(root, 'mcu/mps2-an386.ld'),
    '-Wl,--gc-sections', '-Wl,--no-enum-size-warning', '-Wl,--wrap=_sbrk', ...ldFlags, `-Wl,-Map=${map}`, '-o', elf, ...objs]);
  const bin = join(dir, `${name}.bin`);
  const cp = spawnSync('arm-none-eabi-objcopy', ['-O', 'binary', elf, bin]);
  if (cp.status !== 0) fail(`objcopy ${elf} failed`);
  return { elf: relative(root, elf), bin: relative(root, bin), binBytes: readFileSync(bin).length, ...sizeReport(map, elf) };
}

const started = Date.now();
need(CC, 'gcc-arm-none-eabi libnewlib-arm-none-eabi');
need('wasm2c', 'wabt');
need('cargo', 'cargo (the wasm3 sources come from the wasm3x-sys crate)');
// Two modules, two images each: the release build/session.wasm (the product, the bridge, the
// figures) in build/mcu/, and build/session-test.wasm (plus the test-only crypto_* exports the
// conformance suite compares) in build/mcu/test/. The MCU engine picks the image by the module's hash.
const MODULES = [
  { wasmPath: join(root, 'build/session.wasm'), dir: out },
  { wasmPath: join(root, 'build/session-test.wasm'), dir: join(out, 'test') },
];
for (const m of MODULES) if (!existsSync(m.wasmPath)) fail(`${relative(root, m.wasmPath)} missing: run npm run build first`);

const w3 = wasm3Sources();
const w3Files = readdirSync(w3.dir).filter((f) => /^m3_.*\.c$/.test(f) && !WASM3_SKIP.test(f)).map((f) => join(w3.dir, f));
const boardFiles = ['startup.c', 'board_mps2.c', 'slip.c', 'main.c', 'fw_common.c'].map((f) => join(src, f));
const inc = [`-I${src}`];
const rt = wasm2cRuntime();
const [boardObjs, releaseBoardObjs, w3Objs] = await Promise.all([
  compile(boardFiles, join(out, 'obj/board'), inc),
  compile(boardFiles, join(out, 'obj/board-release'), [...inc, '-DBOARD_SEMIHOSTING=0']),
  compile([...w3Files, join(src, 'engine_wasm3.c')], join(out, 'obj/wasm3'), [...inc, `-I${w3.dir}`, ...WASM3_DEFINES, '-Wno-unused-variable', '-Wno-unused-but-set-variable']),
]);

/** The images of one module: wasm3 with the module in flash, and the module through wasm2c. */
async function buildModule({ wasmPath, dir }) {
  const wasm = readFileSync(wasmPath);
  mkdirSync(dir, { recursive: true });
  // The MCU copy of the module declares 1-byte pages and only the bytes the firmware uses (custom
  // page sizes, which this wasm3 parses): same code, memory sized to the static data. V8 compiling
  // it here is also the validation the image's wasm3 skips.
  const { instance } = await WebAssembly.instantiate(wasm, { env: { trap() {} } });
  instance.exports._start();
  const memoryBytes = Math.ceil(Math.max(Number(instance.exports.heap_offset()), dataEnd(wasm)) / 16) * 16;
  const patched = patchMemoryPageSize(wasm, memoryBytes);
  writeFileSync(join(dir, 'session.mcu.wasm'), patched);
  writeFileSync(join(dir, 'session_wasm.c'), cArray('session_wasm', patched));
  // wasm2c: the original module (wasm2c 1.0.32 knows no custom page sizes) and Debian's runtime.
  const w2c = spawnSync('wasm2c', [wasmPath, '-n', 'session', '-o', join(dir, 'session.c')], { encoding: 'utf8' });
  if (w2c.status !== 0) fail(`wasm2c ${wasmPath} failed: ${w2c.stderr}`);
  writeFileSync(join(dir, 'wasm2c_exports.c'), wasm2cDispatch(wasmExports(wasm)));
  const w2cFiles = [join(dir, 'session.c'), join(rt.implDir, 'wasm-rt-impl.c'), join(src, 'engine_wasm2c.c'), join(dir, 'wasm2c_exports.c')];
  const w2cFlags = [...inc, `-I${join(src, 'wasm2c-shim')}`, `-I${rt.implDir}`, `-I${dir}`, '-Wno-unused-variable', '-Wno-unused-but-set-variable',
    // The runtime reads its wasm_rt_type_t enum with va_arg: with arm-none-eabi's default short
    // enums that is undefined and GCC emits a trap (udf) there.
    '-fno-short-enums'];
  const [moduleObj, w2cObjs, w2cO2Objs] = await Promise.all([
    compile([join(dir, 'session_wasm.c')], join(dir, 'obj/module'), []),
    compile(w2cFiles, join(dir, 'obj/wasm2c'), w2cFlags),
    // The same at -O2 (the later flag wins over COMMON's -Os): the honest native baseline for speed.
    compile(w2cFiles, join(dir, 'obj/wasm2c-O2'), [...w2cFlags, '-O2']),
  ]);
  const images = {
    module: relative(root, wasmPath),
    moduleSha256: createHash('sha256').update(wasm).digest('hex'),
    moduleBytes: wasm.length,
    mcuMemoryBytes: memoryBytes,
    wasm3: await link(dir, 'wasm3', [...boardObjs, ...w3Objs, ...moduleObj]),
    wasm2c: await link(dir, 'wasm2c', [...boardObjs, ...w2cObjs]),
    'wasm2c-O2': await link(dir, 'wasm2c-O2', [...boardObjs, ...w2cO2Objs]),
  };
  if (dir !== out) return images;
  return {
    ...images,
    release: {
      wasm3: await link(join(dir, 'release'), 'wasm3', [...releaseBoardObjs, ...w3Objs, ...moduleObj], { release: true }),
      wasm2c: await link(join(dir, 'release'), 'wasm2c', [...releaseBoardObjs, ...w2cObjs], { release: true }),
    },
    tightHeap: { heapBytes: HEAP_TIGHT_BYTES, ...await link(dir, 'wasm3-tight-heap', [...boardObjs, ...w3Objs, ...moduleObj], { ldFlags: [`-Wl,--defsym=HEAP_BYTES=${HEAP_TIGHT_BYTES}`] }) },
  };
}

const [release, test] = await Promise.all(MODULES.map(buildModule));
const report = { wasm3Version: w3.version, ...release, test };
writeFileSync(join(out, 'size.json'), JSON.stringify(report, null, 2) + '\n');
const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
for (const [e, r] of [['wasm3', report.wasm3], ['wasm2c', report.wasm2c], ['wasm2c-O2', report['wasm2c-O2']], ['release wasm3', report.release.wasm3]]) {
  const parts = Object.entries(r.flashByPart).filter(([, v]) => v >= 64).map(([k, v]) => `${k} ${kib(v)}`).join(', ');
  console.log(`build:mcu ${r.elf}: flash ${kib(r.flashBytes)} (${parts}); static RAM ${kib(r.staticRamBytes)}; ${r.bin} ${r.binBytes} bytes`);
}
console.log(`build:mcu: module memory on the MCU ${release.mcuMemoryBytes} bytes (1-byte pages); test images in build/mcu/test/; wasm3 ${w3.version} from cargo; ${((Date.now() - started) / 1000).toFixed(1)} s`);

/** A name → function table for the wasm2c build, so the command protocol can call any export. */
function wasm2cDispatch(exports) {
  const mangle = (name) => 'Z_sessionZ_' + name.replace(/[^A-Za-z0-9_]/g, (c) => `Z${c.charCodeAt(0).toString(16).toUpperCase()}`).replace(/Z(?![0-9A-F]{2})/g, 'ZZ');
  const ctype = (t) => (t === 'i64' ? 'u64' : 'u32');
  const lines = ['#include <string.h>', '#include "session.h"', '#include "fw.h"', '',
    '/* Generated by mcu/build.mjs from the module\'s export section. */',
    'const char *fw_wasm2c_call(Z_session_instance_t *inst, const char *name, int argc, const uint64_t *a, uint64_t *result, int *has_result) {'];
  for (const e of exports) {
    const args = e.params.map((t, i) => `(${ctype(t)})a[${i}]`);
    const callExpr = `${mangle(e.name)}(${['inst', ...args].join(', ')})`;
    lines.push(`  if (strcmp(name, "${e.name}") == 0) {`);
    lines.push(`    if (argc != ${e.params.length}) return "wrong number of arguments";`);
    if (e.results.length === 0) lines.push(`    ${callExpr};`, '    *has_result = 0;');
    else if (e.results[0] === 'i64') lines.push(`    *result = ${callExpr};`, '    *has_result = 2;');
    else lines.push(`    *result = (uint64_t)(int64_t)(int32_t)${callExpr};`, '    *has_result = 1;');
    lines.push('    return NULL;', '  }');
  }
  lines.push('  return "no such export";', '}', '', 'const char *fw_export_name(int index) {',
    `  static const char *const names[] = { ${exports.map((e) => `"${e.name}"`).join(', ')} };`,
    `  return index >= 0 && index < ${exports.length} ? names[index] : NULL;`, '}', '');
  return lines.join('\n');
}
