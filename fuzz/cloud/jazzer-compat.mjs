// Jazzer.js 4.0.0 ships its libFuzzer addon built against glibc 2.38 / libstdc++ 13; Debian 12
// has 2.36 / 12. It needs only three newer symbols: __isoc23_strtol and __isoc23_strtoul (C23
// aliases of strtol/strtoul) and std::ios_base_library_init (a no-op hook in libstdc++ 13). When
// the addon does not load, this marks those two version requirements weak in the addon (so the
// loader accepts it) and preloads a 3-function shim that defines the symbols. Remove once the
// machines have glibc >= 2.38.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const ADDON = join(ROOT, 'node_modules/@jazzer.js/fuzzer/prebuilds/fuzzer-linux-x64.node');
const NEWER = new Set(['GLIBC_2.38', 'GLIBCXX_3.4.32']);
const SHIM = `#include <stdlib.h>
long __isoc23_strtol(const char *s, char **e, int b) { return strtol(s, e, b); }
unsigned long __isoc23_strtoul(const char *s, char **e, int b) { return strtoul(s, e, b); }
void _ZSt21ios_base_library_initv(void) {}
`;

function loads(env) {
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(ADDON)})`], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { ok: r.status === 0, why: r.stderr };
}

/** Marks the ELF version requirements in NEWER weak (VER_FLG_WEAK); returns how many. */
function weakenVersions(b) {
  const shoff = Number(b.readBigUInt64LE(0x28)), shentsize = b.readUInt16LE(0x3a), shnum = b.readUInt16LE(0x3c);
  const sh = (i) => {
    const o = shoff + i * shentsize;
    return { type: b.readUInt32LE(o + 4), offset: Number(b.readBigUInt64LE(o + 0x18)), link: b.readUInt32LE(o + 0x28), info: b.readUInt32LE(o + 0x2c) };
  };
  let n = 0;
  for (let i = 0; i < shnum; i++) {
    const s = sh(i);
    if (s.type !== 0x6ffffffe) continue; // SHT_GNU_verneed
    const strtab = sh(s.link).offset;
    for (let k = 0, vn = s.offset; k < s.info; k++) {
      let va = vn + b.readUInt32LE(vn + 8);
      for (let a = 0; a < b.readUInt16LE(vn + 2); a++) {
        const at = strtab + b.readUInt32LE(va + 8);
        if (NEWER.has(b.toString('latin1', at, b.indexOf(0, at)))) {
          b.writeUInt16LE(b.readUInt16LE(va + 4) | 2, va + 4);
          n++;
        }
        va += b.readUInt32LE(va + 12);
      }
      vn += b.readUInt32LE(vn + 12);
    }
  }
  return n;
}

/** Environment under which Jazzer's addon loads on this machine (patching it once if needed). */
export function jazzerEnv(buildDir) {
  if (!existsSync(ADDON)) throw new Error(`${ADDON} missing: run npm ci (@jazzer.js/core is a devDependency)`);
  // A patched addon (the .orig copy exists) loads without the shim but needs it at call time.
  if (!existsSync(ADDON + '.orig') && loads({}).ok) return {};
  mkdirSync(buildDir, { recursive: true });
  const shim = join(buildDir, 'jazzer-glibc-shim.so');
  if (!existsSync(shim)) {
    writeFileSync(join(buildDir, 'jazzer-glibc-shim.c'), SHIM);
    // The symbols carry the versions the addon asks for: the loader matches them by version name.
    writeFileSync(join(buildDir, 'jazzer-glibc-shim.map'),
      'GLIBC_2.38 { global: __isoc23_strtol; __isoc23_strtoul; local: *; };\nGLIBCXX_3.4.32 { global: _ZSt21ios_base_library_initv; };\n');
    execFileSync('clang', ['-shared', '-fPIC', '-O2', `-Wl,--version-script=${join(buildDir, 'jazzer-glibc-shim.map')}`, '-o', shim, join(buildDir, 'jazzer-glibc-shim.c')]);
  }
  const env = { LD_PRELOAD: shim };
  const first = loads(env);
  if (first.ok && existsSync(ADDON + '.orig')) return env;
  if (first.ok) return env;
  if (!/GLIBC_2\.38|GLIBCXX_3\.4\.32/.test(first.why)) throw new Error(`Jazzer's addon does not load: ${first.why.split('\n').find((l) => l.includes('Error')) ?? first.why}`);
  const b = readFileSync(ADDON);
  if (!existsSync(ADDON + '.orig')) copyFileSync(ADDON, ADDON + '.orig');
  if (weakenVersions(b) === 0) throw new Error('Jazzer addon: no glibc 2.38 / libstdc++ 13 version requirement found to relax');
  writeFileSync(ADDON, b);
  const again = loads(env);
  if (!again.ok) throw new Error(`Jazzer's addon still does not load: ${again.why.split('\n').find((l) => l.includes('Error')) ?? again.why}`);
  return env;
}

