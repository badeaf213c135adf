/**
 * The MCU as an engine: every `load` boots the Cortex-M4 image in QEMU (mode=cmd) and every
 * call crosses its UART as a SLIP frame (a small command protocol, mcu/src/main.c), so the
 * conformance suite drives wasm3 on the M4 exactly as it drives V8 and wasm3-in-Node.
 *
 * The ModuleInstance interface is synchronous; the UART is a pair of FIFOs (QEMU's `pipe`
 * chardev) that this process reads with blocking reads. When QEMU exits, the read end sees EOF.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, promises as fsp, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Engine, type ModuleInstance, type WasmValue, WasmTrapError } from '../engines/engine.ts';
import { imageForModule, mcuUnavailable, spawnQemu, type McuBuild } from './qemu.ts';
import { SlipDecoder, slipEncode } from './slip.ts';

/** The module's linear memory on V8 and in Node: one 64 KiB page. */
const WASM_PAGE = 65536;
/** The image receives frames of up to 1100 bytes (mcu/src/main.c FRAME_CAP). */
const WRITE_CHUNK = 1024;

export interface McuStats {
  /** Instructions (virtual ns under -icount) from reset to the module instantiated and started. */
  loadInsns: number;
  heapHighWaterBytes: number;
  heapInUseBytes: number;
  stackHighWaterBytes: number;
  staticRamBytes: number;
  memoryBytes: number;
  /** Heap in use right after the module was instantiated and started (before any call). */
  heapAfterLoadBytes: number;
  /** How deep wasm3's value stack went (painted; 0 for wasm2c, whose values live on the C stack). */
  valueStackHighWaterBytes: number;
}

export interface McuInstance extends ModuleInstance {
  /** Every call with the instructions it took inside the image (meaningful with `icount`). */
  readonly calls: { name: string; insns: number }[];
  stats(): McuStats;
}

export class McuEngine implements Engine {
  readonly name: string;

  constructor(readonly build: McuBuild = 'wasm3', private readonly opts: { icount?: boolean } = {}) {
    this.name = `mcu-${build}`;
  }

  async load(wasm: Uint8Array): Promise<McuInstance> {
    const why = mcuUnavailable(this.build);
    if (why) throw new Error(`${this.name}: ${why}`);
    const image = imageForModule(this.build, wasm);
    if (!image) throw new Error(`${this.name}: no MCU image holds this build of the module (run npm run build:mcu after npm run build)`);
    const dir = mkdtempSync(join(tmpdir(), 'sleepy-mcu-'));
    let qemu: ChildProcess | undefined;
    try {
      return await this.boot(image, dir, (q) => (qemu = q));
    } catch (e) {
      qemu?.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  private async boot(image: string, dir: string, started: (q: ChildProcess) => void): Promise<McuInstance> {
    const mk = spawnSync('mkfifo', [join(dir, 'uart.in'), join(dir, 'uart.out')]);
    if (mk.status !== 0) throw new Error(`${this.name}: mkfifo failed`);
    const qemu = spawnQemu({ image, uart: `pipe,path=${join(dir, 'uart')}`, cmdline: 'mode=cmd', icount: this.opts.icount });
    started(qemu);
    let log = '';
    qemu.stdout!.on('data', (d) => (log += d));
    qemu.stderr!.on('data', (d) => (log += d));
    const exited = new Promise<void>((r) => qemu.on('exit', () => r()));
    // Opened in the thread pool: each open waits until QEMU has the other end.
    const [rx, tx] = await Promise.race([
      Promise.all([fsp.open(join(dir, 'uart.out'), 'r'), fsp.open(join(dir, 'uart.in'), 'w')]),
      exited.then(() => { throw new Error(`${this.name}: QEMU exited at start: ${log.trim()}`); }),
    ]);
    const link = new UartLink(rx, tx, () => log);
    let ready: Buffer;
    try {
      ready = link.receive();
    } catch {
      // The output handlers only run once this returns to the event loop: wait for QEMU's last words.
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
      link.close();
      throw new Error(`${this.name}: the image stopped before it was ready (exit ${qemu.exitCode ?? qemu.signalCode}): ${log.trim() || 'no output'}`);
    }
    if (ready[0] !== 0x52 /* R */ || ready[1] !== 0) {
      link.close();
      throw new Error(`${this.name}: the image could not load the module: ${ready.subarray(2).toString()}`);
    }
    return new Instance(this.name, link, qemu, dir);
  }
}

/** Blocking SLIP frames over the FIFO pair. */
class UartLink {
  private decoder = new SlipDecoder();
  private frames: Buffer[] = [];
  private buf = Buffer.alloc(65536);

  constructor(private readonly rx: fsp.FileHandle, private readonly tx: fsp.FileHandle, private readonly log: () => string) {}

  send(frame: Uint8Array): void {
    writeSync(this.tx.fd, slipEncode(frame));
  }

  receive(): Buffer {
    while (this.frames.length === 0) {
      const n = readSync(this.rx.fd, this.buf, 0, this.buf.length, null);
      if (n === 0) throw new Error(`the MCU image stopped: ${this.log().trim() || 'no output'}`);
      this.frames.push(...this.decoder.push(this.buf.subarray(0, n)));
    }
    return this.frames.shift()!;
  }

  request(frame: Uint8Array, expect: string): Buffer {
    this.send(frame);
    const r = this.receive();
    if (r[0] !== expect.charCodeAt(0)) throw new Error(`MCU protocol: expected '${expect}', got 0x${r[0]?.toString(16)}`);
    return r;
  }

  close(): void {
    void this.rx.close();
    void this.tx.close();
  }
}

class Instance implements McuInstance {
  readonly calls: { name: string; insns: number }[] = [];
  private names: string[] | null = null;
  private memBytes: number;

  constructor(private readonly engine: string, private readonly link: UartLink, private readonly qemu: ChildProcess, private readonly dir: string) {
    this.memBytes = this.stats().memoryBytes;
  }

  call(name: string, ...args: WasmValue[]): WasmValue {
    const n = Buffer.from(name, 'latin1');
    const f = Buffer.alloc(3 + n.length + 8 * args.length);
    f[0] = 0x63; // c
    f[1] = n.length;
    n.copy(f, 2);
    f[2 + n.length] = args.length;
    args.forEach((a, i) => f.writeBigUInt64LE(BigInt.asUintN(64, BigInt(a)), 3 + n.length + 8 * i));
    const r = this.link.request(f, 'r');
    this.calls.push({ name, insns: Number(r.readBigUInt64LE(11)) });
    if (r[1] !== 0) {
      const why = r.subarray(19).toString();
      if (why === 'function lookup failed') throw new Error(`${this.engine}: module has no export named '${name}'`);
      throw new WasmTrapError(`${this.engine}: trap in ${name}: ${why}`, this.engine, parseAbort(why));
    }
    const v = r.readBigUInt64LE(3);
    return r[2] === 2 ? BigInt.asIntN(64, v) : r[2] === 1 ? Number(BigInt.asIntN(32, v)) : (undefined as unknown as WasmValue);
  }

  exportNames(): string[] {
    if (!this.names) {
      this.link.send(Buffer.from('e'));
      const names: string[] = [];
      for (let r = this.link.receive(); r.length > 1; r = this.link.receive()) names.push(r.subarray(1).toString('latin1'));
      this.names = names;
    }
    return this.names.slice();
  }

  /** All 64 KiB as on the other engines: the image declares only the bytes the firmware uses
   * (1-byte pages), and the firmware never touches the rest (zero on every engine). */
  memory(): Uint8Array {
    const out = new Uint8Array(WASM_PAGE);
    out.set(this.readMemory(0, this.memBytes));
    return out;
  }

  writeMemory(ptr: number, bytes: Uint8Array): void {
    checkRange(this.memBytes, ptr, bytes.length);
    for (let off = 0; off < bytes.length; off += WRITE_CHUNK) {
      const part = bytes.subarray(off, off + WRITE_CHUNK);
      const f = Buffer.alloc(5 + part.length);
      f[0] = 0x77; // w
      f.writeUInt32LE(ptr + off, 1);
      f.set(part, 5);
      this.link.request(f, 'k');
    }
  }

  readMemory(ptr: number, length: number): Uint8Array {
    checkRange(WASM_PAGE, ptr, length);
    const out = new Uint8Array(length);
    const inImage = Math.max(0, Math.min(length, this.memBytes - ptr));
    if (inImage > 0) {
      const f = Buffer.alloc(9);
      f[0] = 0x6d; // m
      f.writeUInt32LE(ptr, 1);
      f.writeUInt32LE(inImage, 5);
      out.set(this.link.request(f, 'd').subarray(1));
    }
    return out;
  }

  stats(): McuStats {
    const r = this.link.request(Buffer.from('s'), 'S');
    return {
      loadInsns: Number(r.readBigUInt64LE(1)),
      heapHighWaterBytes: r.readUInt32LE(9),
      heapInUseBytes: r.readUInt32LE(13),
      stackHighWaterBytes: r.readUInt32LE(17),
      staticRamBytes: r.readUInt32LE(21),
      memoryBytes: r.readUInt32LE(25),
      heapAfterLoadBytes: r.readUInt32LE(29),
      valueStackHighWaterBytes: r.readUInt32LE(33),
    };
  }

  dispose(): void {
    try {
      this.link.send(Buffer.from('q'));
    } catch {
      // already gone
    }
    this.link.close();
    if (this.qemu.exitCode === null) setTimeout(() => this.qemu.exitCode === null && this.qemu.kill(), 2000).unref();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The image reports "abort: <message>[ at <file>:<line>:<column>]" (mcu/src/fw_common.c). */
function parseAbort(why: string): WasmTrapError['abort'] {
  const m = why.match(/^abort: (.*?)(?: at (.*):(\d+):(\d+))?$/s);
  return m ? { message: m[1], file: m[2] ?? '', line: Number(m[3] ?? 0), column: Number(m[4] ?? 0) } : undefined;
}

function checkRange(size: number, ptr: number, length: number): void {
  if (!Number.isInteger(ptr) || !Number.isInteger(length) || ptr < 0 || length < 0 || ptr + length > size) {
    throw new RangeError(`memory access ${ptr}+${length} outside the image's linear memory of ${size} bytes`);
  }
}
