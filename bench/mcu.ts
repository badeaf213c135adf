// `npm run bench:mcu`: the firmware on the Cortex-M4 image (QEMU mps2-an386), wasm3 against the
// wasm2c build (the native baseline), side by side: flash per part (linker map), peak RAM (heap
// high-water from the allocator, stack high-water by painting, static data), and instructions
// (QEMU -icount shift=0: one virtual nanosecond per instruction, counted inside the image around
// each call) for a full-handshake wake, a resumed wake and one record seal/open. Writes
// reports/bench-mcu.json; BENCHMARKS.md records a run.
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Device } from '../host/device.ts';
import { TEST_WASM, readFirmware } from '../host/firmware.ts';
import { startCloud } from '../host/cloud/server.ts';
import { DeviceRegistry } from '../host/cloud/devices.ts';
import type { Engine } from '../host/engines/engine.ts';
import { McuEngine, type McuInstance, type McuStats } from '../host/mcu/engine.ts';
import { MCU_BUILD_DIR, mcuUnavailable, type McuBuild } from '../host/mcu/qemu.ts';
import { table } from './lib.ts';

const CPU_HZ = 64e6;
const KIB = 1024;
const BUDGET = { ramBytes: 96 * KIB, ramAimBytes: 64 * KIB, flashBytes: 160 * KIB, resumedRatio: 5 };

interface WakeFigures {
  /** Reset → module instantiated and started. */
  loadInsns: number;
  /** Every ABI call of the wake (the host contract's drains included). */
  callInsns: number;
  totalInsns: number;
  stats: McuStats;
  perCall: Record<string, number>;
}

interface BuildFigures {
  build: McuBuild;
  flashBytes: number;
  flashByPart: Record<string, number>;
  handshake: WakeFigures;
  resumed: WakeFigures;
  /** A resumed wake on the instance of the previous wake: every function already compiled, as if
   * the runtime's RAM were retained through sleep (what wasm3 spends compiling is the difference). */
  resumedWarm: WakeFigures;
  seal: { insns: number; what: string };
  open: { insns: number; what: string };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(pred: () => boolean, what: string, device: Device, timeoutMs = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`bench:mcu: timed out waiting for ${what}`);
    device.tick(Date.now());
    await sleep(2);
  }
}

/**
 * Hands out one image for every load and ignores dispose: the next wake runs on a module whose
 * functions are compiled already (no reset: its load costs nothing).
 */
class RetainedEngine implements Engine {
  readonly name: string;
  private inst: McuInstance | null = null;
  constructor(private readonly inner: McuEngine) {
    this.name = `${inner.name}-retained`;
  }
  async load(wasm: Uint8Array): Promise<McuInstance> {
    if (!this.inst) {
      const m = await this.inner.load(wasm);
      this.inst = Object.assign(Object.create(m) as McuInstance, { dispose: () => {} });
    }
    this.inst.calls.length = 0;
    return this.inst;
  }
  close(): void {
    Object.getPrototypeOf(this.inst).dispose();
  }
}

/** One wake: boot, publish, wait for the ACK, prepare_sleep until 0; instructions summed. */
async function wake(device: Device, name: string, warm = false): Promise<WakeFigures> {
  const before = device.events.length;
  await device.wake(Date.now());
  const m = device.firmware.m as McuInstance;
  const seq = device.publish(Date.now(), 'reading', Buffer.from(name));
  await until(() => device.events.slice(before).some((e) => e.event.type === 'event-acked' && e.event.seq === seq), `the ACK of ${name}`, device);
  for (let w = device.prepareSleep(Date.now()); w > 0; w = device.prepareSleep(Date.now())) await sleep(Math.min(w, 50));
  const stats = m.stats();
  const perCall: Record<string, number> = {};
  for (const c of m.calls) perCall[c.name] = (perCall[c.name] ?? 0) + c.insns;
  const callInsns = m.calls.reduce((n, c) => n + c.insns, 0);
  device.sleep();
  const loadInsns = warm ? 0 : stats.loadInsns;
  return { loadInsns, callInsns, totalInsns: loadInsns + callInsns, stats, perCall };
}

/** One CCM-8 record (64 bytes of data, DTLS nonce and AAD sizes) sealed and opened. */
async function sealOpen(engine: McuEngine, wasm: Uint8Array): Promise<{ seal: number; open: number } | null> {
  const m = (await engine.load(wasm)) as McuInstance;
  try {
    if (!m.exportNames().includes('crypto_ccm_seal')) return null;
    const io = Number(m.call('io_ptr'));
    m.writeMemory(io, crypto.randomBytes(16));
    m.call('crypto_aes_set_key');
    const input = Buffer.concat([crypto.randomBytes(12), crypto.randomBytes(13), crypto.randomBytes(64)]);
    m.writeMemory(io, input);
    if (Number(m.call('crypto_ccm_seal', 12, 13, 64, 8)) !== 72) throw new Error('bench:mcu: seal failed');
    const seal = m.calls.at(-1)!.insns;
    if (Number(m.call('crypto_ccm_open', 12, 13, 72, 8)) !== 64) throw new Error('bench:mcu: open failed');
    return { seal, open: m.calls.at(-1)!.insns };
  } finally {
    m.dispose();
  }
}

async function measure(build: McuBuild): Promise<BuildFigures> {
  const psk = crypto.randomBytes(16);
  const id = `bench-${build}`;
  const cloud = await startCloud({ port: 0, host: '127.0.0.1', devices: new DeviceRegistry([{ id, identity: id, psk }]) });
  const udp = dgram.createSocket('udp4');
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
  const engine = new McuEngine(build, { icount: true });
  const retained = new RetainedEngine(engine);
  let device = new Device({ id, identity: id, psk, profile: 'default', engine, send: (d) => udp.send(d, cloud.port, '127.0.0.1') });
  udp.on('message', (msg) => device.receive(Date.now(), msg));
  try {
    await device.provision();
    const handshake = await wake(device, 'wake 1');
    if (!device.events.some((e) => e.event.type === 'connected')) throw new Error('bench:mcu: wake 1 did not handshake');
    const resumed = await wake(device, 'wake 2');
    const w2 = device.events.filter((e) => e.event.type === 'resumed');
    if (w2.length !== 1) throw new Error('bench:mcu: wake 2 did not resume the stored session');
    // Wakes 3 and 4 on one retained image: wake 3 compiles, wake 4 is measured warm.
    const board = device.board;
    device = new Device({ id, identity: id, psk, profile: 'default', engine: retained, board, send: (d) => udp.send(d, cloud.port, '127.0.0.1') });
    await wake(device, 'wake 3', true);
    const resumedWarm = await wake(device, 'wake 4', true);
    retained.close();
    if (device.events.filter((e) => e.event.type === 'resumed').length !== 2) throw new Error('bench:mcu: wakes 3-4 did not resume');
    const size = JSON.parse(readFileSync(`${MCU_BUILD_DIR}size.json`, 'utf8'))[build];
    // The crypto_* exports live in the test module: its image (build/mcu/test/) has the same engine and board.
    const direct = await sealOpen(engine, readFirmware(TEST_WASM));
    const seal = direct
      ? { insns: direct.seal, what: 'crypto_ccm_seal, 64 B, test image' }
      : { insns: (resumed.perCall.publish ?? 0) + (resumed.perCall.poll_transmit ?? 0), what: 'publish + poll_transmit (CoAP + one sealed record)' };
    const open = direct
      ? { insns: direct.open, what: 'crypto_ccm_open, 64 B, test image' }
      : { insns: resumed.perCall.handle_datagram ?? 0, what: 'handle_datagram of the ACK (one record opened + CoAP)' };
    return { build, flashBytes: size.flashBytes, flashByPart: size.flashByPart, handshake, resumed, resumedWarm, seal, open };
  } finally {
    if (device.awake) device.sleep();
    udp.close();
    await cloud.close();
  }
}

const why = mcuUnavailable('wasm3') ?? mcuUnavailable('wasm2c');
if (why) {
  console.error(`bench:mcu: ${why}`);
  process.exit(1);
}
const w3 = await measure('wasm3');
const w2c = await measure('wasm2c');

const kib = (n: number) => `${(n / KIB).toFixed(1)} KiB`;
const mi = (n: number) => `${(n / 1e6).toFixed(2)} M`;
const ms = (n: number) => `${((n / CPU_HZ) * 1000).toFixed(1)} ms`;
const ratio = (a: number, b: number) => `${(a / b).toFixed(1)}×`;
const peakRam = (w: WakeFigures) => w.stats.heapHighWaterBytes + w.stats.stackHighWaterBytes + w.stats.staticRamBytes;
const ramOf = (f: BuildFigures) => Math.max(peakRam(f.handshake), peakRam(f.resumed));
const parts = (f: BuildFigures) => Object.entries(f.flashByPart).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${kib(v)}`).join(', ');

const rows: (string | number)[][] = [
  ['flash (text + rodata + data image)', kib(w3.flashBytes), kib(w2c.flashBytes), ratio(w3.flashBytes, w2c.flashBytes), `≤ ${kib(BUDGET.flashBytes)}: ${w3.flashBytes <= BUDGET.flashBytes ? 'met' : 'NOT met'}`],
  ['peak RAM, handshake wake (heap + stack + static)', kib(peakRam(w3.handshake)), kib(peakRam(w2c.handshake)), ratio(peakRam(w3.handshake), peakRam(w2c.handshake)), `≤ ${kib(BUDGET.ramBytes)}: ${peakRam(w3.handshake) <= BUDGET.ramBytes ? 'met' : 'NOT met'}`],
  ['peak RAM, resumed wake', kib(peakRam(w3.resumed)), kib(peakRam(w2c.resumed)), ratio(peakRam(w3.resumed), peakRam(w2c.resumed)), `≤ ${kib(BUDGET.ramBytes)}: ${peakRam(w3.resumed) <= BUDGET.ramBytes ? 'met' : 'NOT met'}`],
  ['  heap high-water (handshake wake)', kib(w3.handshake.stats.heapHighWaterBytes), kib(w2c.handshake.stats.heapHighWaterBytes), '', ''],
  ['  stack high-water (handshake wake)', kib(w3.handshake.stats.stackHighWaterBytes), kib(w2c.handshake.stats.stackHighWaterBytes), '', ''],
  ['  static (.data + .bss)', kib(w3.handshake.stats.staticRamBytes), kib(w2c.handshake.stats.staticRamBytes), '', ''],
  ['  of the heap: linear memory', kib(w3.handshake.stats.memoryBytes), kib(w2c.handshake.stats.memoryBytes), '', ''],
  ['  of the heap: engine after load (wasm3: module structures + 5 KiB value stack)', kib(w3.handshake.stats.heapAfterLoadBytes - w3.handshake.stats.memoryBytes), kib(w2c.handshake.stats.heapAfterLoadBytes - w2c.handshake.stats.memoryBytes), '', ''],
  ['  of the engine: wasm3 value stack high-water (of 5 KiB)', kib(w3.handshake.stats.valueStackHighWaterBytes), '–', '', ''],
  ['  of the heap: growth during the wake (wasm3: compiled code; both: allocator slack)', kib(w3.handshake.stats.heapHighWaterBytes - w3.handshake.stats.heapAfterLoadBytes), kib(w2c.handshake.stats.heapHighWaterBytes - w2c.handshake.stats.heapAfterLoadBytes), '', ''],
  ['instructions: reset → module started', mi(w3.resumed.loadInsns), mi(w2c.resumed.loadInsns), ratio(w3.resumed.loadInsns, w2c.resumed.loadInsns), ''],
  ['instructions: full-handshake wake', mi(w3.handshake.totalInsns), mi(w2c.handshake.totalInsns), ratio(w3.handshake.totalInsns, w2c.handshake.totalInsns), ''],
  ['instructions: resumed wake (boot → event ACKed → prepare_sleep)', mi(w3.resumed.totalInsns), mi(w2c.resumed.totalInsns), ratio(w3.resumed.totalInsns, w2c.resumed.totalInsns), `≤ ${BUDGET.resumedRatio}×: ${w3.resumed.totalInsns <= BUDGET.resumedRatio * w2c.resumed.totalInsns ? 'met' : 'NOT met'}`],
  ['instructions: resumed wake, functions already compiled (RAM retained)', mi(w3.resumedWarm.totalInsns), mi(w2c.resumedWarm.totalInsns), ratio(w3.resumedWarm.totalInsns, w2c.resumedWarm.totalInsns), ''],
  [`instructions: record seal (${w3.seal.what})`, mi(w3.seal.insns), mi(w2c.seal.insns), ratio(w3.seal.insns, w2c.seal.insns), ''],
  [`instructions: record open (${w3.open.what})`, mi(w3.open.insns), mi(w2c.open.insns), ratio(w3.open.insns, w2c.open.insns), ''],
  ['time at 64 MHz (1 instruction/cycle): handshake wake', ms(w3.handshake.totalInsns), ms(w2c.handshake.totalInsns), '', ''],
  ['time at 64 MHz: resumed wake', ms(w3.resumed.totalInsns), ms(w2c.resumed.totalInsns), '', ''],
];
console.log(`The firmware on a Cortex-M4 (QEMU ${'mps2-an386'}, -icount shift=0), wasm3 vs wasm2c\n`);
console.log(table(['', 'wasm3', 'wasm2c', 'wasm3 / wasm2c', 'budget'], rows));
console.log(`\nflash by part — wasm3: ${parts(w3)}; wasm2c: ${parts(w2c)}`);
const top = (w: WakeFigures) => Object.entries(w.perCall).sort((a, b) => b[1] - a[1]).slice(0, 4).map(([k, v]) => `${k} ${mi(v)}`).join(', ');
console.log(`heaviest calls, handshake wake — wasm3: ${top(w3.handshake)}; wasm2c: ${top(w2c.handshake)}`);
console.log(`heaviest calls, resumed wake — wasm3: ${top(w3.resumed)}; wasm2c: ${top(w2c.resumed)}`);
console.log(`peak RAM of the wasm3 image: ${kib(ramOf(w3))} (budget ${kib(BUDGET.ramBytes)}, aim ${kib(BUDGET.ramAimBytes)})`);
mkdirSync('reports', { recursive: true });
writeFileSync('reports/bench-mcu.json', JSON.stringify({ date: new Date().toISOString(), budget: BUDGET, wasm3: w3, wasm2c: w2c }, null, 2));
console.log('written: reports/bench-mcu.json');
