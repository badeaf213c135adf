/**
 * The Cortex-M4 image (mcu/, `npm run build:mcu`) under QEMU's mps2-an386: where the build puts
 * it and how to start it. The UART goes to a host chardev (a pipe pair or a unix socket); the
 * image's semihosting gives it its command line, its log (stdout) and host files (flash).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The engine in the image: wasm3, or the module compiled by wasm2c at -Os or at -O2. */
export type McuBuild = 'wasm3' | 'wasm2c' | 'wasm2c-O2';
export const MCU_BUILDS: readonly McuBuild[] = ['wasm3', 'wasm2c', 'wasm2c-O2'];
/** debug: the image with semihosting (the host tools' channel); release: production-shaped, none. */
export type McuImageKind = 'debug' | 'release';
export const MCU_BUILD_DIR = fileURLToPath(new URL('../../build/mcu/', import.meta.url));

/** The image running the release module (build/session.wasm). */
export function imagePath(build: McuBuild, kind: McuImageKind = 'debug'): string {
  return kind === 'release' ? `${MCU_BUILD_DIR}release/${build}.elf` : `${MCU_BUILD_DIR}${build}.elf`;
}

/** The wasm3 image linked with too small a heap (mcu/build.mjs HEAP_TIGHT_BYTES), for tests. */
export const TIGHT_HEAP_IMAGE = `${MCU_BUILD_DIR}wasm3-tight-heap.elf`;

/** The release image's PSRAM (QEMU's machine RAM, file-backed): config at 0, flash at 4 KiB. */
export const PSRAM = { bytes: 16 << 20, configOffset: 0, configBytes: 256, flashOffset: 0x1000 } as const;

/**
 * The image whose module is exactly `wasm`: the release image, or the test image (build/mcu/test/,
 * build/session-test.wasm with the test-only exports). Null when no image holds that module.
 */
export function imageForModule(build: McuBuild, wasm: Uint8Array): string | null {
  const sha = createHash('sha256').update(wasm).digest('hex');
  const size = JSON.parse(readFileSync(`${MCU_BUILD_DIR}size.json`, 'utf8'));
  if (sha === size.moduleSha256) return imagePath(build);
  if (sha === size.test?.moduleSha256) return `${MCU_BUILD_DIR}test/${build}.elf`;
  return null;
}

/** Why the MCU image cannot run here, or null when it can. */
export function mcuUnavailable(build: McuBuild = 'wasm3'): string | null {
  const q = spawnSync('qemu-system-arm', ['--version'], { stdio: 'ignore' });
  if (q.error || q.status !== 0) return 'qemu-system-arm not installed (Debian: qemu-system-arm)';
  if (!existsSync(imagePath(build))) return `${imagePath(build)} not built (npm run build:mcu)`;
  return null;
}

export interface QemuArgs {
  /** The ELF to run. */
  image: string;
  /** QEMU -chardev backend options for the UART, e.g. `pipe,path=/tmp/x` or `socket,path=/tmp/s`. */
  uart: string;
  /** The image's command line (key=value words); the release image reads it from its PSRAM. */
  cmdline: string;
  /** Release image: the file backing its PSRAM (configuration and flash), and the QEMU chardev
   * for UART1, its log. No semihosting; the image's reset request ends QEMU (-no-reboot). */
  release?: { psramFile: string; log: string };
  /** Count instructions: the virtual clock advances 1 ns per instruction (-icount shift=0). */
  icount?: boolean;
}

export function qemuArgs(a: QemuArgs): string[] {
  return [
    '-M', 'mps2-an386', '-nodefaults', '-net', 'none', '-display', 'none', '-monitor', 'none',
    '-chardev', `${a.uart},id=uart`, '-serial', 'chardev:uart',
    ...(a.release
      ? ['-chardev', `${a.release.log},id=log`, '-serial', 'chardev:log', '-no-reboot',
        '-object', `memory-backend-file,id=psram,size=${PSRAM.bytes},mem-path=${a.release.psramFile},share=on`, '-machine', 'memory-backend=psram']
      : ['-semihosting-config', 'enable=on,target=native']),
    ...(a.icount ? ['-icount', 'shift=0'] : []),
    '-kernel', a.image, ...(a.release ? [] : ['-append', a.cmdline]),
  ];
}

/** QEMU processes still running; killed when this process exits, so a failed test leaves none
 * behind (with the pipe chardev QEMU never sees its host go away). */
const live = new Set<ChildProcess>();
let exitHook = false;

/**
 * util-linux's setpriv, to start QEMU with a parent-death signal: a host killed with SIGKILL runs
 * no exit hook, and its QEMU would go on writing the flash file the host's lock no longer
 * protects — beside the next host, which takes the dead holder's lock over.
 */
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => process.platform === 'linux' && existsSync(p));

export function spawnQemu(a: QemuArgs): ChildProcess {
  const [cmd, args] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'KILL', '--', 'qemu-system-arm', ...qemuArgs(a)]] : ['qemu-system-arm', qemuArgs(a)];
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  child.on('exit', () => live.delete(child));
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => live.forEach((c) => c.kill('SIGKILL')));
  }
  return child;
}
