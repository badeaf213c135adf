// `npm run bench:mcu`: the firmware on the Cortex-M4 image (QEMU mps2-an386), wasm3 against the
// wasm2c build (the native baseline, at -Os and at -O2), in every wake kind and both sleep modes:
//   reset-per-wake  deep sleep loses RAM (nRF52840 System OFF, STM32 standby): every wake boots a
//                   fresh image, so wasm3 parses and compiles the module again;
//   retained        System ON idle with RAM kept: one image stays alive between wakes (the QEMU
//                   process is kept), the compiled module with it; each wake still boots the
//                   firmware from its persisted record (the ABI's wake contract).
// Figures: flash (allocated sections of the ELF), peak RAM (heap high-water from the allocator,
// stack high-water by painting, static data; in retained mode the high-water of the image's whole
// life so far) and instructions (QEMU -icount shift=0: one virtual nanosecond per instruction,
// counted inside the image around each call, plus reset → module started where a wake pays it).
// Writes reports/bench-mcu.json; BENCHMARKS.md records a run.
//
// A wake kind is one entry of WAKE_KINDS: how to put device and cloud in the state that makes the
// next wake that kind, and how to tell from its events that it was. The ECDHE-ECDSA handshake
// (issue 19) becomes one more entry once the firmware has it: `before` forgets the session and
// selects the suite (a `config` setting or a provisioning profile, whichever the firmware takes),
// `check` looks for `connected`; every table row and budget verdict follows from the list.
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Device } from '../host/device.ts';
import { Board } from '../host/board/board.ts';
import { TEST_WASM, readFirmware } from '../host/firmware.ts';
import { startCloud } from '../host/cloud/server.ts';
import { DeviceRegistry } from '../host/cloud/devices.ts';
import { MemoryStore } from '../host/cloud/store.ts';
import { ModuleCrypto } from '../host/crypto-abi.ts';
import type { Engine, WasmValue } from '../host/engines/engine.ts';
import { McuEngine, type McuInstance, type McuStats } from '../host/mcu/engine.ts';
import { FirmwareClient, type Credentials, type SessionEvent } from '../host/session-abi.ts';
import { TestPeer } from '../test/host/dtls-peer.ts';
import { p256PrivateFrom, p256Public } from '../test/host/p256-ref.ts';
import { MCU_BUILDS, MCU_BUILD_DIR, mcuUnavailable, type McuBuild } from '../host/mcu/qemu.ts';
import { table } from './lib.ts';

const CPU_HZ = 64e6;
const KIB = 1024;
const BUDGET = { ramBytes: 96 * KIB, ramAimBytes: 64 * KIB, flashBytes: 160 * KIB, resumedRatio: 5 };
/** The ratio budget is against this build: wasm2c at -O2, the honest native baseline. */
const BASELINE: McuBuild = 'wasm2c-O2';
const SLEEP_MODES = ['reset-per-wake', 'retained'] as const;
type SleepMode = (typeof SLEEP_MODES)[number];

/** What a wake kind may do to the world before the wake. */
interface WakeContext {
  device: Device;
  /** The record as provisioning left it: credentials, no session (a wake from it handshakes). */
  forgetSession(): void;
  /** The cloud loses every session (the 2019 cache wipe): the next resumed record gets a reset token. */
  wipeCloudSessions(): Promise<void>;
}

/** The credentials a wake kind's device is provisioned with (the cloud speaks both). */
type WakeSuite = Credentials['suite'];

interface WakeKind {
  name: string;
  /** psk (default) or ecdhe: which of the bench's two devices runs this kind. */
  suite?: WakeSuite;
  before(c: WakeContext): void | Promise<void>;
  /** Null when the events show this kind of wake, else what was wrong. */
  check(events: SessionEvent[]): string | null;
}

const has = (ev: SessionEvent[], type: SessionEvent['type']) => ev.some((e) => e.type === type);

export const WAKE_KINDS: WakeKind[] = [
  {
    name: 'handshake',
    before: (c) => c.forgetSession(),
    check: (ev) => (has(ev, 'connected') && !has(ev, 'resumed') ? null : 'no fresh handshake'),
  },
  {
    name: 'resumed',
    before: () => {},
    check: (ev) => (has(ev, 'resumed') && !has(ev, 'handshake-started') ? null : 'did not resume without a handshake'),
  },
  {
    name: 'ECDHE-ECDSA handshake',
    suite: 'ecdhe',
    before: (c) => c.forgetSession(),
    check: (ev) => (has(ev, 'connected') && !has(ev, 'resumed') ? null : 'no fresh handshake'),
  },
  {
    name: 'heal (resume → reset token → handshake)',
    before: (c) => c.wipeCloudSessions(),
    check: (ev) => (has(ev, 'resumed') && ev.some((e) => e.type === 'session-discarded' && e.reason === 'reset-token') && has(ev, 'connected')
      ? null : 'no reset-token heal'),
  },
];

interface WakeFigures {
  kind: string;
  /** Reset → module instantiated and started (0 on a retained image that was loaded before). */
  loadInsns: number;
  /** Every ABI call of the wake (the host contract's drains included). */
  callInsns: number;
  totalInsns: number;
  /** heap + stack + static high-water (retained mode: over the image's life so far). */
  peakRamBytes: number;
  /** Persisted writes of the wake (slot blocks) and their bytes: what a flash-only board erases for. */
  persistedWrites: number;
  persistedBytes: number;
  stats: McuStats;
  perCall: Record<string, number>;
}

interface ModeFigures {
  mode: SleepMode;
  wakes: WakeFigures[];
  /** Retained mode: the first wake after power-on (load + handshake), not a steady-state wake kind. */
  powerOn?: WakeFigures;
}

interface BuildFigures {
  build: McuBuild;
  flashBytes: number;
  flashByPart: Record<string, number>;
  modes: ModeFigures[];
  seal: { insns: number; what: string } | null;
  open: { insns: number; what: string } | null;
  /** The same seal and open again, compiled already. */
  sealWarm: number;
  openWarm: number;
  /** HMAC-DRBG generate of 32 bytes, compiled already (0 when the module lacks the export). */
  drbgWarm: number;
  /** P-256 primitives (test image, crypto_p256_*): instructions per operation. */
  p256: Record<string, number> | null;
  /** wasm3's value stack high-water after the P-256 operations (the ECDHE handshake's deepest code). */
  p256ValueStackBytes: number;
  /** One handshake against the in-process test peer, per suite: on a fresh image and again on it. */
  peer: Record<Suite, PeerHandshake>;
}

/** The suites of the firmware (docs/abi.md): PSK and, since issue 19, ECDHE-ECDSA with raw public keys. */
const SUITES = ['PSK', 'ECDHE-ECDSA'] as const;
type Suite = (typeof SUITES)[number];

interface PeerHandshake {
  /** connect → connected on a fresh image: reset → module started plus every call. */
  coldInsns: number;
  /** The same again on that image, everything compiled (retained sleep). */
  warmInsns: number;
  peakRamBytes: number;
  valueStackBytes: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Set when a datagram reached the firmware: its next timeout may have moved. */
let timersMoved = true;

/**
 * Waits for `pred`, running the firmware's timers when due. Like the image's own wake loop
 * (mcu/src/main.c) it asks next_timeout once after each event, not on every poll of this host
 * loop: the calls are counted, and polling every 2 ms would bill host wall time to the wake.
 */
async function until(pred: () => boolean, what: string, device: Device, timeoutMs = 30_000): Promise<void> {
  const t0 = Date.now();
  let due: number | null = null;
  while (!pred()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`bench:mcu: timed out waiting for ${what}`);
    if (timersMoved) {
      timersMoved = false;
      due = device.nextTimeout();
    }
    if (due !== null && Date.now() >= due) {
      device.tick(Date.now());
      timersMoved = true;
    }
    await sleep(2);
  }
}

/**
 * Retained-RAM sleep: hands out one image for every load and ignores dispose, so the next wake
 * runs on the module as the last one left it, compiled functions included (no reset, no load).
 * As in the image's own retained sleep (mcu/src/main.c), a warm wake does not reseed: the DRBG's
 * state is retained with the RAM (seeded at power-on), so seed_entropy is not called again.
 */
class RetainedEngine implements Engine {
  readonly name: string;
  private inst: McuInstance | null = null;
  /** Whether the last load started the image (the wake pays reset → module started). */
  coldLoad = false;
  constructor(private readonly inner: McuEngine) {
    this.name = `${inner.name}-retained`;
  }
  async load(wasm: Uint8Array): Promise<McuInstance> {
    this.coldLoad = !this.inst;
    if (!this.inst) {
      const m = await this.inner.load(wasm);
      const call = m.call.bind(m);
      this.inst = Object.assign(Object.create(m) as McuInstance, {
        dispose: () => {},
        call: (name: string, ...args: WasmValue[]) => (name === 'seed_entropy' && !this.coldLoad ? 0 : call(name, ...args)),
      });
    }
    this.inst.calls.length = 0;
    return this.inst;
  }
  close(): void {
    if (this.inst) Object.getPrototypeOf(this.inst).dispose();
    this.inst = null;
  }
}

/** One wake: boot, publish, wait for the ACK, prepare_sleep until 0; instructions summed. */
async function wake(device: Device, kind: string, label: string, cold: () => boolean): Promise<WakeFigures> {
  const before = device.events.length;
  const writesBefore = device.board.memory.log.length;
  await device.wake(Date.now());
  timersMoved = true;
  const m = device.firmware.m as McuInstance;
  const seq = device.publish(Date.now(), 'reading', Buffer.from(label));
  await until(() => device.events.slice(before).some((e) => e.event.type === 'event-acked' && e.event.seq === seq), `the ACK of ${label}`, device);
  for (let w = device.prepareSleep(Date.now()); w > 0; w = device.prepareSleep(Date.now())) await sleep(Math.min(w, 50));
  const stats = m.stats();
  const perCall: Record<string, number> = {};
  for (const c of m.calls) perCall[c.name] = (perCall[c.name] ?? 0) + c.insns;
  const callInsns = m.calls.reduce((n, c) => n + c.insns, 0);
  device.sleep();
  const loadInsns = cold() ? stats.loadInsns : 0;
  const peakRamBytes = stats.heapHighWaterBytes + stats.stackHighWaterBytes + stats.staticRamBytes;
  const writes = device.board.memory.log.slice(writesBefore);
  return {
    kind, loadInsns, callInsns, totalInsns: loadInsns + callInsns, peakRamBytes, stats, perCall,
    persistedWrites: writes.length, persistedBytes: writes.reduce((n, w) => n + w.bytes.length, 0),
  };
}

function eventsSince(device: Device, n: number): SessionEvent[] {
  return device.events.slice(n).map((e) => e.event);
}

/** One CCM-8 record (64 bytes of data, DTLS nonce and AAD sizes) sealed and opened, and the
 * P-256 primitives, on the test image (the only module that exports crypto_*). */
async function primitives(engine: McuEngine): Promise<Pick<BuildFigures, 'seal' | 'open' | 'sealWarm' | 'openWarm' | 'drbgWarm' | 'p256' | 'p256ValueStackBytes'>> {
  const m = (await engine.load(readFirmware(TEST_WASM))) as McuInstance;
  const last = () => m.calls.at(-1)!.insns;
  try {
    const names = m.exportNames();
    const mc = new ModuleCrypto(m);
    let seal = null, open = null, sealWarm = 0, openWarm = 0, drbgWarm = 0, p256: Record<string, number> | null = null, p256ValueStackBytes = 0;
    if (names.includes('crypto_ccm_seal')) {
      mc.setKey(crypto.randomBytes(16));
      const nonce = crypto.randomBytes(12), aad = crypto.randomBytes(13);
      const sealed = mc.ccmSeal(nonce, aad, crypto.randomBytes(64));
      if (typeof sealed === 'number') throw new Error('bench:mcu: seal failed');
      seal = { insns: last(), what: 'crypto_ccm_seal, 64 B, test image, first call' };
      if (typeof mc.ccmOpen(nonce, aad, sealed) === 'number') throw new Error('bench:mcu: open failed');
      open = { insns: last(), what: 'crypto_ccm_open, 64 B, test image' };
      // Again, compiled: what a record costs a retained image (the crypto share of a warm wake).
      mc.ccmSeal(nonce, aad, crypto.randomBytes(64));
      sealWarm = last();
      mc.ccmOpen(nonce, aad, sealed);
      openWarm = last();
    }
    if (names.includes('crypto_drbg_generate')) {
      // The DRBG every random value comes from (HMAC-SHA-256): 32 bytes drawn, compiled already.
      mc.drbgInstantiate(crypto.randomBytes(32), crypto.randomBytes(16), new Uint8Array(0));
      mc.drbgGenerate(32);
      mc.drbgGenerate(32);
      drbgWarm = last();
    }
    if (names.includes('crypto_p256_ecdh')) {
      // Each measured twice: the first call of a function under wasm3 includes compiling it.
      // 32 bytes always (node's getPrivateKey drops leading zero bytes).
      const d = crypto.randomBytes(32), peer = crypto.createECDH('prime256v1');
      peer.generateKeys();
      const hash = crypto.randomBytes(32);
      const twice = (f: () => unknown) => { f(); f(); return last(); };
      const pub = mc.p256Public(d);
      if (typeof pub === 'number') throw new Error('bench:mcu: a random scalar ≥ n (try again)');
      const sig = mc.p256Sign(d, hash) as Uint8Array;
      p256 = {
        'public key (fixed-base scalar multiplication)': twice(() => mc.p256Public(d)),
        'ECDH (variable-base scalar multiplication)': twice(() => mc.p256Ecdh(d, peer.getPublicKey())),
        'ECDSA sign': twice(() => mc.p256Sign(d, hash)),
        'ECDSA verify': twice(() => { if (mc.p256Verify(pub, hash, sig) !== 0) throw new Error('bench:mcu: verify failed'); }),
      };
      p256ValueStackBytes = m.stats().valueStackHighWaterBytes;
    }
    return { seal, open, sealWarm, openWarm, drbgWarm, p256, p256ValueStackBytes };
  } finally {
    m.dispose();
  }
}

/**
 * One DTLS handshake (connect → connected) against the in-process test peer (cookie, EMS, CID; for
 * ECDHE the server asks for the device's key, so the device signs too), with nothing of the session
 * layer around it: the cloud speaks PSK only so far, so this is where the ECDHE handshake is
 * measured beside PSK on the image. Provisioning happens first and is not counted.
 */
async function peerHandshake(engine: McuEngine, suite: Suite): Promise<PeerHandshake> {
  const m = (await engine.load(readFirmware())) as McuInstance;
  try {
    const c = new FirmwareClient(m);
    const psk = crypto.randomBytes(16);
    const serverPrivateKey = p256PrivateFrom(crypto.randomBytes(32));
    c.provision(Buffer.from('device-0001'), psk);
    c.seed(crypto.randomBytes(48));
    if (suite === 'ECDHE-ECDSA') c.provisionEcdhe(p256Public(serverPrivateKey), p256PrivateFrom(crypto.randomBytes(32)));
    const once = (): number => {
      const peer = new TestPeer({ psk, helloVerify: true, cid: crypto.randomBytes(8), ...(suite === 'ECDHE-ECDSA' ? { ecdhe: { serverPrivateKey } } : {}) });
      m.calls.length = 0;
      c.connect(0);
      for (let round = 0; round < 5 && c.state !== 'connected'; round++) {
        for (const d of c.drainTransmit()) for (const r of peer.handle(d)) c.handleDatagram(0, r);
      }
      if (c.state !== 'connected') throw new Error(`bench:mcu: ${suite} handshake with the test peer ended in ${c.state}`);
      return m.calls.reduce((n, x) => n + x.insns, 0);
    };
    const cold = once() + m.stats().loadInsns;
    const warm = once();
    const st = m.stats();
    return { coldInsns: cold, warmInsns: warm, peakRamBytes: st.heapHighWaterBytes + st.stackHighWaterBytes + st.staticRamBytes, valueStackBytes: st.valueStackHighWaterBytes };
  } finally {
    m.dispose();
  }
}

async function measure(build: McuBuild): Promise<BuildFigures> {
  const psk = crypto.randomBytes(16);
  const id = `bench-${build}`;
  const store = new MemoryStore();
  const registry = new DeviceRegistry([{ id, identity: id, psk }]);
  const cloud = await startCloud({ port: 0, host: '127.0.0.1', store, devices: registry });
  const udp = dgram.createSocket('udp4');
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
  const engine = new McuEngine(build, { icount: true });
  let device: Device | null = null;
  udp.on('message', (msg) => {
    device?.receive(Date.now(), msg);
    timersMoved = true;
  });
  const modes: ModeFigures[] = [];
  let n = 0;
  try {
    for (const mode of SLEEP_MODES) {
      const figures: ModeFigures = { mode, wakes: [] };
      // One device per suite the kinds use, each on its own image in retained mode.
      const devices = new Map<WakeSuite, { d: Device; ctx: WakeContext; retained: RetainedEngine | null }>();
      const deviceFor = async (suite: WakeSuite) => {
        const had = devices.get(suite);
        if (had) return had;
        const retained = mode === 'retained' ? new RetainedEngine(engine) : null;
        const sid = suite === 'psk' ? id : `${id}-${mode}-ecdhe`;
        const credentials: Credentials = suite === 'psk' ? { suite, identity: id, psk }
          : { suite, serverPublicKey: cloud.serverPublicKey!, devicePrivateKey: p256PrivateFrom(crypto.randomBytes(32)) };
        const d = new Device({ id: sid, credentials, profile: 'default', engine: retained ?? engine, board: new Board(`bench/${build}/${mode}/${suite}`), send: (x) => udp.send(x, cloud.port, '127.0.0.1') });
        // Provisioning loads its own image (reset mode) or is done before the retained image starts.
        const publicKey = await new Device({ ...d.opts, engine, board: d.board }).provision();
        if (publicKey) registry.addPublicKeyDevice(sid, publicKey);
        const provisioned = d.board.memory.snapshot();
        const ctx: WakeContext = { device: d, forgetSession: () => d.board.memory.bytes.set(provisioned), wipeCloudSessions: () => store.wipe() };
        const dv = { d, ctx, retained };
        devices.set(suite, dv);
        if (retained) {
          // Power-on: the first wake loads and compiles; a resumed wake compiles the resume path.
          device = d;
          const first = await wake(d, 'power-on (load + handshake)', `wake ${++n}`, () => retained.coldLoad);
          if (suite === 'psk') figures.powerOn = first;
          await wake(d, 'resumed (warm-up)', `wake ${++n}`, () => retained.coldLoad);
        }
        return dv;
      };
      try {
        for (const kind of WAKE_KINDS) {
          const { d, ctx, retained } = await deviceFor(kind.suite ?? 'psk');
          device = d;
          const from = d.events.length;
          await kind.before(ctx);
          const w = await wake(d, kind.name, `wake ${++n}`, () => (retained ? retained.coldLoad : true));
          const wrong = kind.check(eventsSince(d, from));
          if (wrong) throw new Error(`bench:mcu: ${build} ${mode} ${kind.name} wake: ${wrong}: ${JSON.stringify(eventsSince(d, from))}`);
          figures.wakes.push(w);
        }
      } finally {
        for (const { d, retained } of devices.values()) {
          if (d.awake) d.sleep();
          retained?.close();
        }
      }
      modes.push(figures);
    }
    const size = JSON.parse(readFileSync(`${MCU_BUILD_DIR}size.json`, 'utf8'))[build];
    const peer = {} as Record<Suite, PeerHandshake>;
    for (const suite of SUITES) peer[suite] = await peerHandshake(engine, suite);
    return { build, flashBytes: size.flashBytes, flashByPart: size.flashByPart, modes, peer, ...(await primitives(engine)) };
  } finally {
    udp.close();
    await cloud.close();
  }
}

const why = MCU_BUILDS.map((b) => mcuUnavailable(b)).find((w) => w);
if (why) {
  console.error(`bench:mcu: ${why}`);
  process.exit(1);
}
const results: BuildFigures[] = [];
for (const b of MCU_BUILDS) results.push(await measure(b));
const [w3, base] = [results.find((r) => r.build === 'wasm3')!, results.find((r) => r.build === BASELINE)!];

const kib = (n: number) => `${(n / KIB).toFixed(1)} KiB`;
const mi = (n: number) => `${(n / 1e6).toFixed(2)} M`;
const ms = (n: number) => `${((n / CPU_HZ) * 1000).toFixed(1)} ms`;
const ratio = (a: number, b: number) => `${(a / b).toFixed(1)}×`;
const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
const wakeOf = (f: BuildFigures, mode: SleepMode, kind: string) => f.modes.find((m) => m.mode === mode)!.wakes.find((w) => w.kind === kind)!;
const row = (label: string, value: (f: BuildFigures) => number, fmt: (n: number) => string, budget = ''): (string | number)[] =>
  [label, ...results.map((f) => fmt(value(f))), ratio(value(w3), value(base)), budget];

const rows: (string | number)[][] = [
  row('flash (allocated sections: text + rodata + exidx + data image)', (f) => f.flashBytes, kib, `≤ ${kib(BUDGET.flashBytes)}: ${verdict(w3.flashBytes <= BUDGET.flashBytes)}`),
];
for (const mode of SLEEP_MODES) {
  for (const k of WAKE_KINDS) {
    const insns = (f: BuildFigures) => wakeOf(f, mode, k.name).totalInsns;
    const budget = k.name === 'resumed' ? `≤ ${BUDGET.resumedRatio}× ${BASELINE}: ${verdict(insns(w3) <= BUDGET.resumedRatio * insns(base))}` : '';
    rows.push(row(`${mode}: instructions, ${k.name} wake`, insns, mi, budget));
  }
  for (const k of WAKE_KINDS) {
    const ram = (f: BuildFigures) => wakeOf(f, mode, k.name).peakRamBytes;
    rows.push(row(`${mode}: peak RAM, ${k.name} wake (heap + stack + static)`, ram, kib,
      `≤ ${kib(BUDGET.ramBytes)}: ${verdict(ram(w3) <= BUDGET.ramBytes)}${ram(w3) <= BUDGET.ramAimBytes ? ' (aim met)' : ''}`));
  }
}
for (const k of WAKE_KINDS) {
  const w = wakeOf(w3, 'reset-per-wake', k.name);
  rows.push([`persisted writes, ${k.name} wake (blocks / bytes; same for every build)`, ...results.map(() => `${w.persistedWrites} / ${w.persistedBytes} B`), '', '']);
}
const power = (f: BuildFigures) => f.modes.find((m) => m.mode === 'retained')!.powerOn!;
rows.push(row('retained: instructions, first wake after power-on (load + handshake)', (f) => power(f).totalInsns, mi));
const hs = (f: BuildFigures) => wakeOf(f, 'reset-per-wake', 'handshake').stats;
rows.push(
  row('  reset-per-wake handshake: heap high-water', (f) => hs(f).heapHighWaterBytes, kib),
  row('  of the heap: linear memory', (f) => hs(f).memoryBytes, kib),
  row('  of the heap: engine after load (wasm3: module structures + value stack)', (f) => hs(f).heapAfterLoadBytes - hs(f).memoryBytes, kib),
  row('  of the heap: growth during the wake (wasm3: compiled code)', (f) => hs(f).heapHighWaterBytes - hs(f).heapAfterLoadBytes, kib),
  row('  wasm3 value stack high-water (of 4 KiB reserved)', (f) => hs(f).valueStackHighWaterBytes, kib),
  row('  stack high-water', (f) => hs(f).stackHighWaterBytes, kib),
  row('  static (.data + .bss + .noinit)', (f) => hs(f).staticRamBytes, kib),
  row('instructions: reset → module started', (f) => hs(f).loadInsns, mi),
);
for (const suite of SUITES) {
  rows.push(
    row(`${suite} handshake with the test peer (connect → connected): instructions, fresh image`, (f) => f.peer[suite].coldInsns, mi),
    row(`  the same again on that image (compiled: retained sleep)`, (f) => f.peer[suite].warmInsns, mi),
    row(`  peak RAM (heap + stack + static)`, (f) => f.peer[suite].peakRamBytes, kib, `≤ ${kib(BUDGET.ramBytes)}: ${verdict(w3.peer[suite].peakRamBytes <= BUDGET.ramBytes)}`),
    row(`  wasm3 value stack high-water`, (f) => f.peer[suite].valueStackBytes, kib),
  );
}
if (results.every((f) => f.seal && f.open)) {
  rows.push(row(`instructions: record seal (${w3.seal!.what})`, (f) => f.seal!.insns, mi), row(`instructions: record open (${w3.open!.what})`, (f) => f.open!.insns, mi),
    row('instructions: record seal + open again, compiled (64 B each)', (f) => f.sealWarm + f.openWarm, mi));
}
if (results.every((f) => f.drbgWarm > 0)) {
  rows.push(row('instructions: HMAC-DRBG generate, 32 B (test image, compiled)', (f) => f.drbgWarm, mi));
}
if (results.every((f) => f.p256)) {
  for (const op of Object.keys(w3.p256!)) rows.push(row(`P-256 ${op} (test image, warm)`, (f) => f.p256![op], mi));
  rows.push(row('  wasm3 value stack high-water after the P-256 operations', (f) => f.p256ValueStackBytes, kib));
}
for (const mode of SLEEP_MODES) {
  rows.push(row(`time at 64 MHz (1 instruction/cycle), ${mode}: resumed wake`, (f) => wakeOf(f, mode, 'resumed').totalInsns, ms));
}
console.log(`The firmware on a Cortex-M4 (QEMU mps2-an386, -icount shift=0): wasm3 vs wasm2c\n`);
console.log(table(['', ...results.map((f) => f.build), `wasm3 / ${BASELINE}`, 'budget'], rows));
const parts = (f: BuildFigures) => Object.entries(f.flashByPart).filter(([, v]) => v >= 64).map(([k, v]) => `${k} ${kib(v)}`).join(', ');
console.log(`\nflash by part — ${results.map((f) => `${f.build}: ${parts(f)}`).join('; ')}`);
const top = (w: WakeFigures) => Object.entries(w.perCall).sort((a, b) => b[1] - a[1]).slice(0, 4).map(([k, v]) => `${k} ${mi(v)}`).join(', ');
for (const mode of SLEEP_MODES) {
  for (const k of WAKE_KINDS) console.log(`heaviest calls, ${mode} ${k.name} — ${results.map((f) => `${f.build}: ${top(wakeOf(f, mode, k.name))}`).join('; ')}`);
}
const peak = Math.max(...w3.modes.flatMap((m) => m.wakes.map((w) => w.peakRamBytes)));
console.log(`peak RAM of the wasm3 image over every wake kind and mode: ${kib(peak)} (budget ${kib(BUDGET.ramBytes)}, aim ${kib(BUDGET.ramAimBytes)})`);
mkdirSync('reports', { recursive: true });
writeFileSync('reports/bench-mcu.json', JSON.stringify({ date: new Date().toISOString(), budget: BUDGET, baseline: BASELINE, results }, null, 2));
console.log('written: reports/bench-mcu.json');
