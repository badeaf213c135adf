/**
 * `sleepy-session mcu`: one device on the Cortex-M4 image against a cloud. The host plays the
 * modem and the power supply: each wake boots the image in QEMU (mode=wake), relays the SLIP
 * frames on its UART to and from UDP, and the image exits when the firmware lets it sleep
 * (deep sleep: RAM lost; the flash file and the RTC passed on the command line persist).
 */
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import { closeSync, existsSync, ftruncateSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { V8Engine } from '../engines/v8.ts';
import { readFirmware } from '../firmware.ts';
import { describeEvent, devicesFileEntry, storedEntry } from '../device-cli.ts';
import { FirmwareClient, REGION_BYTES, decodeEvent, type Credentials, type Profile, type SessionEvent, type SessionState, SESSION_STATES } from '../session-abi.ts';
import { PSRAM, imagePath, spawnQemu, type McuBuild, type McuImageKind } from './qemu.ts';
import { SlipDecoder, slipEncode } from './slip.ts';
import { FileLockedError, lockFile, type FileLock } from '../board/file-lock.ts';

/** The board block after the firmware's region (mcu/src/main.c): "BRD1", boot counter, seed[32]. */
const BOARD_BLOCK_BYTES = 40;
export const FLASH_FILE_BYTES = REGION_BYTES + BOARD_BLOCK_BYTES;

export interface McuRunOptions {
  cloud: { host: string; port: number };
  id: string;
  /** What the flash is provisioned with when it is missing: a PSK (and its identity), or the
   * cloud's public key for ECDHE-ECDSA (the device's key pair generated then, by the firmware). */
  credentials: Credentials;
  profile: Profile;
  wakes: number;
  wakeEveryMs: number;
  /** How long the application keeps the device awake after boot before asking to sleep. */
  appAwakeMs: number;
  /** The flash image (region + board block); provisioned at the first run when missing. */
  flashPath: string;
  build: McuBuild;
  /** debug (default): the image with semihosting; release: the production-shaped image (no
   * semihosting, log on UART1, flash in its file-backed PSRAM, copied to and from `flashPath`). */
  image?: McuImageKind;
  /** Another ELF of the same kind instead (tests: the tight-heap image). */
  imageFile?: string;
  /** reset (default): deep sleep, each wake a new power-on of the image (RAM lost). retained:
   * System ON idle, one power-on for all the wakes: RAM and the compiled module kept, the session
   * slots in retained RAM and only the credentials on flash (mcu/src/main.c). */
  sleep?: 'reset' | 'retained';
  /** Publish a reading ("wake N") at every wake. */
  publish: boolean;
  log: (line: string) => void;
  /** Called with each datagram the MCU sends, as it reaches the host (before it goes out). */
  onUplink?: (frame: Buffer) => void;
}

export interface WakeReport {
  wake: number;
  bootState: SessionState;
  events: SessionEvent[];
  publishedSeq: number | null;
  /** Datagrams the MCU sent / received during this wake. */
  uplink: Buffer[];
  downlink: Buffer[];
  /** The image's own RAM report at sleep ("sleep ..." / "ram ..." lines). */
  heapHighWaterBytes: number | null;
  stackHighWaterBytes: number | null;
  /** The image ended this wake early with a counted error ("wake-error ..."; exit code 3): a trap
   * or a refused allocation. Nothing after the failed call reached the flash. */
  error: string | null;
}

/** Exit code of a wake that ended with a counted error (mcu/src/main.c wake_error). */
const WAKE_ERROR_EXIT = 3;

/**
 * Factory provisioning, as a production station would write the flash: the credentials block
 * (computed by the firmware itself, here on V8) and the board block with a fresh entropy seed.
 * With ECDHE-ECDSA the firmware generates the device's key pair from that seed's DRBG (or takes
 * `devicePrivateKey`); the public key is returned, for the cloud's devices file. PSK: null.
 */
export async function provisionFlash(path: string, o: Pick<McuRunOptions, 'id' | 'credentials' | 'profile'>): Promise<Uint8Array | null> {
  const flash = Buffer.alloc(FLASH_FILE_BYTES, 0xff);
  const fw = new FirmwareClient(await new V8Engine().load(readFirmware()));
  fw.seed(crypto.randomBytes(48)); // the station's entropy: the key pair is drawn from it
  const publicKey = fw.provisionCredentials(o.profile, o.id, o.credentials);
  for (let w = fw.pollStore(); w; w = fw.pollStore()) flash.set(w.bytes, w.offset);
  fw.m.dispose();
  const block = flash.subarray(REGION_BYTES);
  block.write('BRD1', 0, 'latin1');
  block.writeUInt32LE(0, 4);
  crypto.randomFillSync(block, 8, 32);
  writeFileSync(path, flash, { mode: 0o600 });
  flash.fill(0);
  return publicKey;
}

/**
 * `mcu --flash FILE --print-public-key`: the cloud's devices-file entry for the device in FILE (read
 * by booting its region on V8). A missing FILE is provisioned first, with `id` and ECDHE-ECDSA
 * credentials (the key pair generated by the firmware then).
 */
export async function mcuPublicKeyEntry(o: { flashPath: string; id?: string; credentials?: Credentials; profile: Profile; log: (line: string) => void }): Promise<string> {
  if (!existsSync(o.flashPath)) {
    if (o.id === undefined || o.credentials?.suite !== 'ecdhe') {
      throw new Error(`--flash ${o.flashPath}: no such file; --id ID and --server-key HEX|FILE provision it (the key pair is generated on the device now)`);
    }
    const publicKey = await provisionFlash(o.flashPath, { id: o.id, credentials: o.credentials, profile: o.profile });
    o.log(`provisioned ${o.flashPath} (profile ${o.profile}): the device generated its key pair; the private key stays in the file`);
    return devicesFileEntry(o.id, publicKey!);
  }
  const image = readFileSync(o.flashPath);
  if (image.length !== FLASH_FILE_BYTES) throw new Error(`--flash ${o.flashPath}: expected ${FLASH_FILE_BYTES} bytes (region + board block), found ${image.length}`);
  try {
    return await storedEntry(new V8Engine(), image.subarray(0, REGION_BYTES), o.flashPath);
  } finally {
    image.fill(0);
  }
}

export async function runMcu(o: McuRunOptions): Promise<WakeReport[]> {
  // The path travels on the image's command line: words split at spaces, 255 bytes in all.
  if (/\s/.test(o.flashPath) || Buffer.byteLength(o.flashPath) > 160) {
    throw new Error(`--flash ${o.flashPath}: the path must have no spaces and at most 160 bytes (the image's command line)`);
  }
  // One process per flash file: two would resume the same session and reuse nonces (docs/persistence.md).
  let lock: FileLock;
  try {
    lock = lockFile(o.flashPath);
  } catch (e) {
    if (e instanceof FileLockedError) throw new Error(`--flash ${o.flashPath}: ${e.message}; one process per flash file`);
    throw e;
  }
  try {
    return await runMcuLocked(o);
  } finally {
    lock.release();
  }
}

async function runMcuLocked(o: McuRunOptions): Promise<WakeReport[]> {
  if (!existsSync(o.flashPath)) {
    const publicKey = await provisionFlash(o.flashPath, o);
    if (publicKey) o.log(`provisioned ${o.flashPath}: the device generated its key pair; register its public key with the cloud (devices file entry): ${devicesFileEntry(o.id, publicKey)}`);
  } else if (readFileSync(o.flashPath).length !== FLASH_FILE_BYTES) {
    throw new Error(`--flash ${o.flashPath}: expected ${FLASH_FILE_BYTES} bytes (region + board block), found ${readFileSync(o.flashPath).length}`);
  }
  const udp = dgram.createSocket('udp4');
  await new Promise<void>((r) => udp.bind(0, o.cloud.host.startsWith('127.') ? '127.0.0.1' : '0.0.0.0', r));
  let uart: net.Socket | null = null;
  let current: WakeReport | null = null;
  udp.on('message', (msg) => {
    // Radio off while the MCU sleeps: datagrams then are lost, as on a real device.
    if (!uart || !current) return;
    current.downlink.push(msg);
    uart.write(slipEncode(msg));
  });
  const reports: WakeReport[] = [];
  const newReport = (wake: number): WakeReport => {
    current = { wake, bootState: 'off', events: [], publishedSeq: null, uplink: [], downlink: [], heapHighWaterBytes: null, stackHighWaterBytes: null, error: null };
    reports.push(current);
    return current;
  };
  const slept = (r: WakeReport): void => {
    current = null; // radio off
    if (r.error) o.log(`${o.id} wake ${r.wake}: ended with an error: ${r.error}`);
    o.log(`${o.id} wake ${r.wake}: sleeping ${o.wakeEveryMs / 1000}s (sent ${r.uplink.length}, received ${r.downlink.length} datagrams)`);
  };
  const send = (frame: Buffer): void => {
    current?.uplink.push(frame);
    o.onUplink?.(frame);
    udp.send(frame, o.cloud.port, o.cloud.host);
  };
  try {
    if (o.sleep === 'retained') {
      // One power-on: the image runs every wake itself and idles between them.
      const first = newReport(1);
      await runWake(o, first, (s) => (uart = s), send, { wakes: o.wakes, next: (prev) => newReport(prev.wake + 1), slept });
      uart = null;
      current = null;
      return reports;
    }
    for (let wake = 1; wake <= o.wakes; wake++) {
      const r = newReport(wake);
      await runWake(o, r, (s) => (uart = s), send);
      uart = null;
      slept(r);
      if (wake < o.wakes) await new Promise((r) => setTimeout(r, o.wakeEveryMs));
    }
  } finally {
    udp.close();
  }
  return reports;
}

/** Retained sleep: the wakes of one power-on, reported one by one as the image logs them. */
interface RetainedRun {
  wakes: number;
  /** The image booted again: the report of the next wake. */
  next: (prev: WakeReport) => WakeReport;
  /** A wake ended (its last line, the RAM report): the radio is off until the next boot. */
  slept: (r: WakeReport) => void;
}

/** One power-on of the image: QEMU runs it until it exits (deep sleep, or the last retained wake). */
async function runWake(o: McuRunOptions, first: WakeReport, onUart: (s: net.Socket | null) => void, send: (frame: Buffer) => void, retained?: RetainedRun): Promise<void> {
  let report = first;
  const words = ['mode=wake', `flash=${o.flashPath}`, `rtc=${Date.now()}`, `awake=${o.appAwakeMs}`];
  if (retained) words.push('sleep=retained', `wakes=${retained.wakes}`, `every=${o.wakeEveryMs}`);
  // Retained: the image names each reading after its wake ("wake N") itself.
  if (o.publish) words.push('event=reading', ...(retained ? [] : [`data=${Buffer.from(`wake ${report.wake}`).toString('hex')}`]));
  // The image reads at most 255 bytes of command line (mcu/src/main.c); cut short it would lose words.
  const cmdlineBytes = Buffer.byteLength(words.join(' '));
  if (cmdlineBytes > 255) throw new Error(`--flash ${o.flashPath}: the image's command line would be ${cmdlineBytes} bytes (at most 255); use a shorter path`);
  const dir = mkdtempSync(join(tmpdir(), 'sleepy-mcu-'));
  const sock = join(dir, 'uart.sock');
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(sock, r));
  const connected = new Promise<net.Socket>((r) => server.once('connection', r));
  const release = o.image === 'release';
  const psramFile = join(dir, 'psram');
  if (release) writePsram(psramFile, words.join(' '), readFileSync(o.flashPath));
  const qemu = spawnQemu({
    image: o.imageFile ?? imagePath(o.build, o.image), uart: `socket,path=${sock}`, cmdline: words.join(' '),
    release: release ? { psramFile, log: 'stdio' } : undefined,
  });
  let exitLine: number | null = null;
  let stderr = '';
  let pending = '';
  qemu.stderr!.on('data', (d) => (stderr += d));
  qemu.stdout!.on('data', (d) => {
    pending += d;
    for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
      const line = pending.slice(0, nl);
      const exit = /^exit (\d+)\s*$/.exec(line);
      if (exit && release) exitLine = Number(exit[1]);
      else {
        if (retained && /^boot /.test(line) && report.bootState !== 'off') report = retained.next(report);
        onLine(o, report, line);
        if (retained && /^ram /.test(line)) retained.slept(report);
      }
      pending = pending.slice(nl + 1);
    }
  });
  const exited = new Promise<number | null>((r) => qemu.on('exit', (code) => r(code)));
  try {
    const s = await Promise.race([connected, exited.then(() => null)]);
    if (s) {
      onUart(s);
      const decoder = new SlipDecoder();
      s.on('data', (chunk) => decoder.push(chunk).forEach(send));
      s.on('error', () => {});
    }
    const qemuCode = await exited;
    onUart(null);
    // The release image has no semihosting exit: it logs "exit N" on UART1, then resets (QEMU exits 0).
    const code = release && qemuCode === 0 ? exitLine : qemuCode;
    if (code === WAKE_ERROR_EXIT && report.error) return;
    if (code !== 0) throw new Error(`${o.id} wake ${report.wake}: the MCU image stopped with exit code ${code}: ${stderr.trim()}`);
  } finally {
    server.close();
    // The chip's flash outlives the wake (and a power cut during it): back to the flash file.
    if (release) writeFileSync(o.flashPath, readPsramFlash(psramFile));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The release image's PSRAM as the board powers up: configuration block and flash contents. */
function writePsram(path: string, config: string, flash: Buffer): void {
  if (Buffer.byteLength(config) >= PSRAM.configBytes) throw new Error(`the image's configuration is over ${PSRAM.configBytes - 1} bytes`);
  const fd = openSync(path, 'w', 0o600);
  try {
    ftruncateSync(fd, PSRAM.bytes); // sparse
    writeSync(fd, Buffer.from(config + '\0'), 0, undefined, PSRAM.configOffset);
    writeSync(fd, flash, 0, undefined, PSRAM.flashOffset);
  } finally {
    closeSync(fd);
  }
}

function readPsramFlash(path: string): Buffer {
  const out = Buffer.alloc(FLASH_FILE_BYTES);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, out, 0, out.length, PSRAM.flashOffset);
  } finally {
    closeSync(fd);
  }
  return out;
}

/** The image's log lines (mcu/src/main.c `say`). */
function onLine(o: McuRunOptions, r: WakeReport, line: string): void {
  const f = line.trim().split(/\s+/);
  if (f[0] === 'event') {
    const e = decodeEvent(Number(f[1]), Number(f[2]));
    r.events.push(e);
    o.log(`${o.id} ${describeEvent(e)}`);
  } else if (f[0] === 'boot') {
    r.bootState = SESSION_STATES[Number(f[1])] ?? 'off';
    o.log(`${o.id} wake ${r.wake}: ${r.bootState} (${f[2]})`);
  } else if (f[0] === 'publish-refused') {
    o.log(`${o.id} publish refused (-${f[1]}${f[1] === '3' ? ': the outbox is full, 6 unconfirmed events' : ''})`);
  } else if (f[0] === 'published') {
    r.publishedSeq = Number(f[1]);
    o.log(`${o.id} published event #${f[1]}`);
  } else if (f[0] === 'wake-error') {
    r.error = line.trim();
  } else if (f[0] === 'sleep') {
    r.heapHighWaterBytes = Number(/heap=(\d+)/.exec(line)?.[1] ?? NaN);
  } else if (f[0] === 'ram') {
    r.stackHighWaterBytes = Number(/stack=(\d+)/.exec(line)?.[1] ?? NaN);
    o.log(`${o.id} RAM at sleep: heap high-water ${r.heapHighWaterBytes} B, stack ${r.stackHighWaterBytes} B`);
  } else if (line.trim()) {
    o.log(`${o.id} mcu: ${line.trim()}`);
  }
}
