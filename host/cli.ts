/**
 * The `sleepy-session` command. Every subcommand declares its flags (a CommandSpec) and parses
 * them with the one parser in cli-flags.ts, which also writes its `--help`; a bad value is one
 * line naming the flag and the allowed values, exit code 2, before anything starts.
 */
import { closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
import crypto from 'node:crypto';
import { V8Engine } from './engines/v8.ts';
import type { Engine } from './engines/engine.ts';
import { readFirmware } from './firmware.ts';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { PROFILES, SUITES, type Credentials, type Profile } from './session-abi.ts';
import type { DeviceOutcome } from './sim/fleet/outcome.ts';
import { DEFAULT_FLEET, type FleetOptions } from './sim/fleet/spec.ts';
import { WHAT_IFS, whatIf } from './sim/fleet/whatif.ts';
import { LIVE_FLEET, LIVE_MAX_DEVICES, LIVE_SPEED } from './sim/live/options.ts';

import { UsageError, decimal, duration, helpText, hostPort, nonEmpty, oneOf, parseFlags, str, wholeNumber, type CommandSpec, type ParsedFlags } from './cli-flags.ts';

export { UsageError, duration, hostPort, oneOf };

const ENGINE_FLAG = { name: 'engine', value: 'v8|wasm3', help: 'engine for the firmware', default: 'v8' };

export const START_SPEC: CommandSpec = {
  name: 'start',
  summary: 'the main job: replay May 2–16, 2019 (a session-cache crash) for a fleet under the three firmware profiles side by side (cloud in process, virtual time)',
  flags: [
    { name: 'devices', value: 'N', help: 'devices in the fleet (1..1000000; with --live 1..1000 per profile)', default: String(DEFAULT_FLEET.devices) },
    { name: 'sleepy-share', value: 'F', help: 'share of sleepy devices, 0..1 (the rest are always connected)', default: String(DEFAULT_FLEET.sleepyShare) },
    { name: 'days', value: 'N', help: 'days replayed from May 2 00:00 (0.5..60; the crash is May 2 10:00)', default: String(DEFAULT_FLEET.days) },
    { name: 'seed', value: 'TEXT', help: 'seed of every random choice', default: DEFAULT_FLEET.seed },
    { name: 'profile', value: 'LIST', help: 'profiles to replay, comma-separated: legacy, fixed, default', default: 'legacy,fixed,default' },
    { name: 'workers', value: 'N', help: 'worker threads, each running one firmware instance at a time (1..64)', default: String(DEFAULT_FLEET.workers) },
    ENGINE_FLAG,
    { name: 'suite', value: 'ecdhe|psk', help: 'the handshake of every profile: ECDHE-ECDSA P-256 with raw public keys (what Device OS used) or PSK', default: 'ecdhe' },
    { name: 'trace', value: 'DEVICE', help: "also print one device's wakes (index or id, e.g. 7 or dev-000007)" },
    { name: 'live', help: 'the same replay over real UDP against cloud processes and a real redis-server killed with SIGKILL at the crash (compressed to one virtual hour, 100 devices; docs/fleet.md)' },
    { name: 'speed', value: 'N', help: 'with --live: virtual time runs N times faster than the wall clock, 2..240 (faster, this machine falls behind and the results go wrong)', default: '60' },
    { name: 'pcap', value: 'FILE', help: 'write the traffic of the first --pcap-devices devices, every profile, as a pcap (docs/pcap.md)' },
    { name: 'pcap-devices', value: 'N', help: 'devices in the --pcap capture', default: '4' },
    { name: 'progress', help: 'the progress line also when stderr is not a terminal or under CI: a line every 30 s and the totals at the end (a long run in the background)' },
    { name: 'overwrite', help: 'let --pcap and --export replace a file that exists (the report is always replaced)' },
    { name: 'export', value: 'FILE.csv|FILE.jsonl', help: 'one row per device and profile: class, pattern, stuck from/to, heal mechanism, wakes stuck, bytes, events published/delivered/lost' },
    ...WHAT_IFS.filter((w) => w.name !== 'sleepy-share').map((w) => ({ name: w.name, value: w.value, help: w.help })),
    { name: 'sweep', value: 'PARAM=a,b,c', help: `replay once per value of one parameter (${WHAT_IFS.map((w) => w.name).join(', ')}; values of 'rollout' separated by ';'), print the figures side by side and plot them (--report, default reports/sweep.html)` },
    { name: 'compare', value: 'A.json B.json', help: 'set two earlier runs side by side (the JSON next to their reports): the options that differ, the figures per profile; with --report FILE.html also a page plotting both runs\' devices stuck; no other flag' },
    { name: 'report', value: 'FILE.html', help: 'the report (charts, tables; works offline) — the data behind it goes to FILE.json', default: 'reports/incident.html; with --sweep reports/sweep.html' },
  ],
};

export const CONNECT_SPEC: CommandSpec = {
  name: 'connect',
  summary: "the firmware's DTLS client over real UDP: stdin lines are sent as application data, received data is printed",
  flags: [
    { name: 'server', value: 'HOST:PORT', help: 'DTLS 1.2 server: ECDHE-ECDSA with raw public keys (gnutls-serv, README) with --server-key, or PSK (openssl s_server -dtls1_2 -nocert -psk HEX -psk_identity ID -cipher PSK-AES128-CCM8 -accept 127.0.0.1:PORT) with --identity and --psk — required' },
    { name: 'server-key', value: 'HEX|FILE', help: "ECDHE-ECDSA: the server's P-256 public key to pin, 130 hex digits (04 || X || Y) or a file holding them or a PEM public key" },
    { name: 'key', value: 'FILE', help: "ECDHE-ECDSA: the device's P-256 private key, PEM (openssl ecparam -name prime256v1 -genkey -noout -out FILE)", default: 'a key pair generated by the firmware for this run (its public key is printed)' },
    { name: 'identity', value: 'ID', help: 'PSK identity, 1..128 bytes (with --psk)' },
    { name: 'psk', value: 'HEX', help: 'pre-shared key, 1..64 bytes in hex (PSK instead of --server-key)' },
    ENGINE_FLAG,
  ],
};

export const DEVICE_SPEC: CommandSpec = {
  name: 'device',
  summary: 'one device over real UDP against a cloud, waking periodically',
  flags: [
    { name: 'cloud', value: 'HOST:PORT', help: 'the cloud (sleepy-session cloud) — required (not with --print-public-key)' },
    { name: 'id', value: 'ID', help: "device id as in the cloud's devices file, 1..48 bytes — required (with --print-public-key only to provision)" },
    { name: 'server-key', value: 'HEX|FILE', help: "ECDHE-ECDSA (raw public keys): the cloud's P-256 public key to pin, 130 hex digits as 'sleepy-session cloud --key FILE --print-public-key' prints them, or a file holding them or a PEM public key. The device generates its key pair at provisioning and prints its public key for the cloud's devices file — this or --psk is required" },
    { name: 'psk', value: 'HEX', help: 'PSK instead of --server-key: the pre-shared key, 16..64 bytes in hex' },
    { name: 'identity', value: 'ID', help: 'PSK identity, 1..64 bytes (with --psk)', default: 'the id' },
    { name: 'profile', value: 'legacy|fixed|default', help: 'firmware behaviour', default: 'default' },
    { name: 'wake-every', value: 'DUR', help: 'sleep between wakes', default: '15m' },
    { name: 'publish-every-wake', help: 'publish a reading at every wake' },
    { name: 'speed', value: 'N', help: 'virtual time runs N times faster than the wall clock', default: '1' },
    { name: 'wakes', value: 'N', help: 'stop after N wakes (0: until interrupted)', default: '0' },
    { name: 'flash', value: 'FILE', help: 'keep persistent memory (credentials, key pair, session) in FILE across runs and kills (created when missing; FILE.host keeps the clock and the readings waiting for the outbox)', default: 'RAM: a new device, and a new key pair, at every run' },
    { name: 'print-public-key', help: "print the public key of the device in --flash FILE as a line of the cloud's devices file and exit; an erased or missing FILE is provisioned first (with --id and --server-key)" },
    ENGINE_FLAG,
  ],
};

/** Every subcommand, for the top-level help (cloud and events are loaded on demand). */
const COMMANDS: [string, string][] = [
  ['start', START_SPEC.summary],
  ['connect', CONNECT_SPEC.summary],
  ['device', DEVICE_SPEC.summary],
  ['mcu', 'one device on the Cortex-M4 image in QEMU against a cloud (flags: sleepy-session mcu --help)'],
  ['cloud', 'the DTLS 1.2 cloud: ECDHE-ECDSA with raw public keys and PSK (docs/protocol.md)'],
  ['events', 'list or retry the dead letters of the cloud\'s Redis event log'],
  ['help', 'this text'],
];

const USAGE = [
  'usage: sleepy-session <command> [flags]',
  '',
  'commands:',
  ...COMMANDS.map(([n, s]) => `  ${n.padEnd(9)}${s}`),
  '',
  "'sleepy-session <command> --help' lists the flags of a command.",
].join('\n');

/** Parses a subcommand's flags; null when --help was asked for (and printed). */
function flagsOf(spec: CommandSpec, args: string[]): ParsedFlags | null {
  const f = parseFlags(spec, args);
  if (f !== 'help') return f;
  console.log(helpText(spec));
  return null;
}

/** Resolves a host name now, so an unresolvable one is a usage error and not a crash later. */
async function resolvable(command: string, flag: string, host: string): Promise<void> {
  const { lookup } = await import('node:dns/promises');
  try {
    await lookup(host, { family: 4 });
  } catch (e) {
    throw new UsageError(`${command}: --${flag}: cannot resolve host '${host}' (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/** `start --compare A.json B.json`: two earlier runs side by side. */
async function compareRuns(args: string[]): Promise<number> {
  let rest = args;
  let reportPath: string | null = null;
  const r = rest.indexOf('--report');
  if (r >= 0) {
    reportPath = rest[r + 1] ?? '';
    if (!/[^/]\.html$/.test(reportPath)) throw new UsageError(`start: --compare --report must name an .html file (got '${reportPath}')`);
    rest = [...rest.slice(0, r), ...rest.slice(r + 2)];
  }
  const files = rest.filter((a) => a !== '--compare');
  if (files.length !== 2 || rest[0] !== '--compare' || files.some((f) => f.startsWith('-'))) {
    throw new UsageError('start: --compare takes two JSON files of earlier runs, and --report FILE.html at most: start --compare A.json B.json [--report compare.html]');
  }
  if (reportPath !== null) writableFile('start', 'report', reportPath);
  const { readFileSync } = await import('node:fs');
  const load = (f: string) => {
    let data;
    try {
      data = JSON.parse(readFileSync(f, 'utf8'));
    } catch (e) {
      throw new UsageError(`start: --compare: cannot read ${f} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    if (!data || !Array.isArray(data.profiles) || !data.options) throw new UsageError(`start: --compare: ${f} is not the JSON of a replay (the .json next to its report)`);
    return data;
  };
  const { compareText } = await import('./sim/fleet/compare.ts');
  const [a, b] = [load(files[0]), load(files[1])];
  console.log(compareText(a, b, files[0], files[1]));
  if (reportPath !== null) {
    const { writeCompareReport } = await import('./sim/report/compare.ts');
    await writeCompareReport(a, b, files[0], files[1], reportPath);
    console.log(`\nreport: ${reportPath}`);
  }
  return 0;
}

async function start(args: string[]): Promise<number> {
  if (args.includes('--compare') && !args.includes('--help') && !args.includes('-h')) return compareRuns(args);
  const parsed = flagsOf(START_SPEC, args);
  if (!parsed) return 0;
  const flags = strings(parsed);
  const engine = oneOf('start', 'engine', flags.engine ?? 'v8', ['v8', 'wasm3'] as const);
  await engineByName(engine); // fails early, with the reason, when the engine is not built
  const profiles = (flags.profile ?? 'legacy,fixed,default').split(',').map((p) => oneOf('start', 'profile', p.trim(), PROFILES));
  if (new Set(profiles).size !== profiles.length) throw new UsageError('start: --profile names a profile twice');
  const live = parsed.live === true;
  if (!live && flags.speed !== undefined) throw new UsageError('start: --speed needs --live');
  for (const f of ['days', 'workers', 'trace'] as const) {
    if (live && flags[f] !== undefined) throw new UsageError(`start: --${f} does not apply with --live (its timeline is one virtual hour, its devices run in one process)`);
  }
  const base = live ? LIVE_FLEET : DEFAULT_FLEET;
  const options: FleetOptions = {
    ...base,
    devices: flags.devices !== undefined ? wholeNumber('start', 'devices', flags.devices, 1, live ? LIVE_MAX_DEVICES : 1_000_000) : base.devices,
    sleepyShare: flags['sleepy-share'] !== undefined ? decimal('start', 'sleepy-share', flags['sleepy-share'], 0, 1) : base.sleepyShare,
    days: flags.days !== undefined ? decimal('start', 'days', flags.days, 0.5, 60) : base.days,
    seed: flags.seed !== undefined ? nonEmpty('start', 'seed', flags.seed) : base.seed,
    workers: flags.workers !== undefined ? wholeNumber('start', 'workers', flags.workers, 1, 64) : base.workers,
    profiles,
    engine,
    suite: oneOf('start', 'suite', flags.suite ?? 'ecdhe', SUITES),
  };
  let whatIfOptions = options;
  for (const w of WHAT_IFS) {
    if (w.name === 'sleepy-share' || flags[w.name] === undefined) continue;
    if (live) throw new UsageError(`start: --${w.name} does not apply with --live (what-ifs run in process)`);
    try {
      whatIfOptions = w.apply(whatIfOptions, flags[w.name]!);
    } catch (e) {
      throw new UsageError(`start: ${(e as Error).message}`);
    }
  }
  Object.assign(options, whatIfOptions);
  const speed = flags.speed !== undefined ? decimal('start', 'speed', flags.speed, 2, 240) : LIVE_SPEED;
  let traceIndex: number | null = null;
  if (flags.trace !== undefined) {
    const m = /^(?:dev-)?(\d{1,7})$/.exec(flags.trace);
    if (!m || Number(m[1]) >= options.devices) {
      throw new UsageError(`start: --trace must name a device of the fleet: an index 0..${options.devices - 1} or its id (dev-000007)`);
    }
    traceIndex = Number(m[1]);
  }
  const { MAX_PCAP_DEVICES, writePcap } = await import('./sim/pcap.ts');
  if (flags['pcap-devices'] !== undefined && flags.pcap === undefined) throw new UsageError('start: --pcap-devices needs --pcap FILE');
  const pcapDevices = flags['pcap-devices'] !== undefined ? wholeNumber('start', 'pcap-devices', flags['pcap-devices'], 1, Math.min(MAX_PCAP_DEVICES, options.devices)) : 4;
  if (live && flags.pcap !== undefined) {
    throw new UsageError('start: --pcap does not apply with --live (its datagrams are real: capture them with tcpdump -i lo udp)');
  }
  let sweep: { param: string; values: string[] } | null = null;
  if (flags.sweep !== undefined) {
    const m = /^([a-z-]+)=(.+)$/.exec(flags.sweep);
    const w = m ? whatIf(m[1]) : undefined;
    if (!m || !w) throw new UsageError(`start: --sweep must be PARAM=a,b,c with PARAM one of ${WHAT_IFS.map((x) => x.name).join(', ')} (got '${flags.sweep}')`);
    const values = m[2].split(m[1] === 'rollout' ? ';' : ',').map((v) => v.trim());
    if (values.length < 2 || values.length > 12) throw new UsageError(`start: --sweep takes 2..12 values (got ${values.length})`);
    for (const f of ['live', 'trace', 'pcap', 'export', m[1]] as const) {
      if ((f === 'live' ? live : flags[f] !== undefined)) throw new UsageError(`start: --sweep does not combine with --${f}`);
    }
    for (const v of values) {
      try {
        w.apply(options, v);
      } catch (e) {
        throw new UsageError(`start: --sweep ${m[1]}: ${(e as Error).message}`);
      }
    }
    sweep = { param: m[1], values };
  }
  if (flags.export !== undefined && !/[^/]\.(csv|jsonl)$/.test(flags.export)) {
    throw new UsageError(`start: --export must name a .csv or .jsonl file (got '${flags.export}')`);
  }
  if (live && flags.export !== undefined) throw new UsageError('start: --export does not apply with --live');
  const reportPath = flags.report ?? (flags.sweep !== undefined ? 'reports/sweep.html' : 'reports/incident.html');
  if (!/[^/]\.html$/.test(reportPath) || basename(reportPath) === '.html') {
    throw new UsageError(`start: --report must name an .html file, e.g. reports/incident.html (the JSON goes next to it) (got '${reportPath}')`);
  }
  const jsonPath = reportPath.replace(/\.html$/, '.json');
  if (flags.pcap !== undefined && [reportPath, jsonPath].map((f) => resolve(f)).includes(resolve(flags.pcap))) {
    throw new UsageError(`start: --pcap ${flags.pcap} would overwrite the report (${reportPath}, ${jsonPath})`);
  }
  const overwrite = parsed.overwrite === true;
  if (flags.pcap !== undefined) writableFile('start', 'pcap', flags.pcap, !overwrite);
  writableFile('start', 'report', reportPath);
  writableFile('start', 'report', jsonPath);
  if (flags.export !== undefined) {
    if ([reportPath, jsonPath, flags.pcap].filter(Boolean).map((f) => resolve(f!)).includes(resolve(flags.export))) {
      throw new UsageError(`start: --export ${flags.export} would overwrite another output`);
    }
    writableFile('start', 'export', flags.export, !overwrite);
  }
  if (sweep) return runSweep(options, sweep.param, sweep.values, reportPath);
  const { runFleet } = await import('./sim/fleet/run.ts');
  const { formatFleet } = await import('./sim/fleet/format.ts');
  const captureBelow = flags.pcap !== undefined ? pcapDevices : 0;
  let liveText = '';
  let run;
  if (live) {
    const { checkLiveOptions, formatLiveFacts, runLiveFleet } = await import('./sim/live/run.ts');
    try {
      checkLiveOptions(options, { speed });
    } catch (e) {
      throw new UsageError(`start: ${(e as Error).message}`);
    }
    const r = await runLiveFleet(options, { speed, captureBelow, log: (line) => console.error(line) });
    liveText = formatLiveFacts(r.live);
    run = r;
  } else {
    const { Progress, expectedWakes } = await import('./sim/fleet/progress.ts');
    // A progress line on a terminal (none in CI or when stderr is piped, unless --progress).
    const forced = parsed.progress === true;
    const progress = new Progress((process.stderr.isTTY && !process.env.CI) || forced ? expectedWakes(options) : 0, process.stderr, process.env, forced);
    try {
      run = await runFleet(options, { traceIndex, captureBelow, onWakes: progress.add });
    } finally {
      progress.end();
    }
  }
  const { result, captures } = run;
  const { writeReport } = await import('./sim/report/index.ts');
  await writeReport(result, reportPath);
  const written = [`report: ${reportPath} (data: ${reportPath.replace(/\.html$/, '.json')})`];
  if (flags.export !== undefined) {
    const { writeExport } = await import('./sim/fleet/export.ts');
    const n = writeExport(flags.export, (run as { devices: Map<Profile, DeviceOutcome[]> }).devices, options.days * 86_400_000);
    written.push(`export: ${flags.export} (${n.toLocaleString('en-US')} rows)`);
  }
  if (flags.pcap !== undefined) {
    const w = writePcap(flags.pcap, captures);
    written.push(`pcap: ${flags.pcap} (${w.packets.toLocaleString('en-US')} packets of ${Math.min(pcapDevices, options.devices)} devices)`);
  }
  console.log(formatFleet(result, written.join('; '), live ? `live over real UDP at ×${speed}` : undefined));
  if (liveText) console.log(`\n${liveText}`);
  return 0;
}

/** `start --sweep PARAM=a,b,c`: one replay per value, the figures side by side, plotted. */
async function runSweep(base: FleetOptions, param: string, values: string[], reportPath: string): Promise<number> {
  const { runFleet } = await import('./sim/fleet/run.ts');
  const { sweepText } = await import('./sim/fleet/compare.ts');
  const { writeSweepReport } = await import('./sim/report/sweep.ts');
  const w = whatIf(param)!;
  const points = [];
  for (const value of values) {
    if (process.stderr.isTTY && !process.env.CI) process.stderr.write(`sweep: --${param} ${value} (${points.length + 1} of ${values.length})\n`);
    points.push({ value, result: (await runFleet(w.apply(base, value))).result });
  }
  await writeSweepReport(param, points, reportPath);
  console.log(`${sweepText(param, points)}\n\nreport: ${reportPath} (data: ${reportPath.replace(/\.html$/, '.json')})`);
  return 0;
}

/**
 * Creates a folder one level at a time (mkdirSync's recursive mode loops forever under /proc on
 * Node 20: `--report /proc/x/y.html` hung), so an impossible path fails at once with its reason.
 */
function makeFolder(dir: string): void {
  const abs = resolve(dir);
  let at = abs.startsWith(sep) ? sep : '';
  for (const part of abs.split(sep).filter(Boolean)) {
    at = join(at, part);
    let st;
    try {
      st = statSync(at);
    } catch {
      mkdirSync(at);
      continue;
    }
    if (!st.isDirectory()) throw Object.assign(new Error(`${at} is not a folder`), { code: 'ENOTDIR' });
  }
}

/**
 * Creates the file's folder and checks the file can be written, before a long run. `keep`: a
 * file that exists is refused (named, with the flag that allows it) instead of overwritten.
 */
function writableFile(command: string, flag: string, path: string, keep = false): void {
  if (keep && existsSync(path)) {
    throw new UsageError(`${command}: --${flag}: ${path} exists; remove it, name another file, or add --overwrite`);
  }
  try {
    makeFolder(dirname(path));
    closeSync(openSync(path, 'a'));
  } catch (e) {
    throw new UsageError(`${command}: --${flag}: cannot write ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}


/** The string flags of a parse (switches left out). */
function strings(f: ParsedFlags): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const k of Object.keys(f)) out[k] = str(f, k);
  return out;
}

async function engineByName(name: 'v8' | 'wasm3'): Promise<Engine> {
  if (name === 'v8') return new V8Engine();
  const { Wasm3Engine, wasm3Available } = await import('./engines/wasm3/index.ts');
  if (!wasm3Available()) throw new UsageError('--engine wasm3: build/wasm3.node is not built (npm run build:wasm3; needs cargo)');
  return new Wasm3Engine();
}

/** The flags that pick a command's credentials: --server-key (ECDHE-ECDSA) or --psk (PSK), exactly one. */
export function suiteOf(command: string, flags: Record<string, string | boolean | undefined>): 'ecdhe' | 'psk' {
  const ecdhe = flags['server-key'] !== undefined, psk = flags.psk !== undefined;
  if (ecdhe && psk) {
    throw new UsageError(`${command}: --server-key and --psk exclude each other: --server-key HEX|FILE for ECDHE-ECDSA with raw public keys, or --psk HEX for a PSK`);
  }
  if (!ecdhe && !psk) {
    throw new UsageError(`${command}: --server-key HEX|FILE is required (the ${command === 'device' || command === 'mcu' ? "cloud's public key, from 'sleepy-session cloud --key FILE --print-public-key'" : "server's public key"}), or --psk HEX for a PSK`);
  }
  if (ecdhe && flags.identity !== undefined) throw new UsageError(`${command}: --identity goes with --psk; with --server-key the device is known by its public key`);
  return ecdhe ? 'ecdhe' : 'psk';
}

async function connectCommand(args: string[]): Promise<number> {
  const parsed = flagsOf(CONNECT_SPEC, args);
  if (!parsed) return 0;
  const flags = strings(parsed);
  const server = hostPort('connect', 'server', flags.server);
  const suite = suiteOf('connect', flags);
  let serverKey: Buffer | null = null;
  if (suite === 'ecdhe') {
    const { serverPublicKeyFlag } = await import('./key-flags.ts');
    serverKey = serverPublicKeyFlag('connect', 'server-key', flags['server-key']!);
  } else {
    if (flags.key !== undefined) throw new UsageError('connect: --key goes with --server-key (ECDHE-ECDSA); a PSK needs no key pair');
    if (!flags.identity) throw new UsageError('connect: --identity ID is required with --psk');
    const identityBytes = Buffer.byteLength(flags.identity);
    if (identityBytes > 128) throw new UsageError(`connect: --identity must be 1..128 bytes (got ${identityBytes})`);
    if (!/^([0-9a-fA-F]{2}){1,64}$/.test(flags.psk!)) throw new UsageError('connect: --psk must be 1..64 bytes in hex');
  }
  await resolvable('connect', 'server', server.host);
  const engine = await engineByName(oneOf('connect', 'engine', flags.engine ?? 'v8', ['v8', 'wasm3'] as const));
  const { FirmwareClient } = await import('./session-abi.ts');
  const { UdpDriver } = await import('./udp-driver.ts');
  const client = new FirmwareClient(await engine.load(readFirmware()));
  client.seed(crypto.randomBytes(48));
  if (serverKey) {
    if (flags.key !== undefined) {
      const { devicePrivateKeyFile } = await import('./key-flags.ts');
      const privateKey = devicePrivateKeyFile('connect', 'key', flags.key);
      try {
        client.provisionEcdhe(serverKey, privateKey);
      } finally {
        privateKey.fill(0);
      }
    } else {
      // Generated on the device from its DRBG (the factory step; its store writes stay in RAM).
      const publicKey = client.provisionDeviceEcdhe('default', 'connect', serverKey);
      console.error(`connect: the firmware generated a key pair for this run; its public key: ${Buffer.from(publicKey).toString('hex')}`);
    }
  } else {
    client.provision(Buffer.from(flags.identity!), Buffer.from(flags.psk!, 'hex'));
  }
  const driver = new UdpDriver(client, { ...server, onData: (d) => process.stdout.write(Buffer.from(d)) });
  await driver.open();
  const state = await driver.handshake();
  if (state !== 'connected') {
    console.error(`connect: handshake ${state}: ${client.lastError}${client.lastAlert >= 0 ? ` (alert ${client.lastAlert})` : ''}`);
    driver.close();
    return 1;
  }
  console.error(`connect: connected to ${flags.server} (${suite === 'ecdhe' ? 'ECDHE-ECDSA, raw public keys' : 'PSK'}) on ${engine.name}`);
  const { createInterface } = await import('node:readline');
  const ended = driver.waitFor((s) => s !== 'connected').then((s) => {
    console.error(`connect: connection ${s}: ${client.lastError}`);
    process.stdin.destroy();
  });
  for await (const line of createInterface({ input: process.stdin })) {
    if (client.state !== 'connected') break;
    driver.send(Buffer.from(line + '\n'));
  }
  if (client.state === 'connected') client.close(Date.now());
  await Promise.race([ended, new Promise((r) => setTimeout(r, 50))]);
  driver.close();
  return 0;
}

/** Flags that only make sense for a running device (refused with --print-public-key). */
const RUN_FLAGS = ['cloud', 'wake-every', 'publish-every-wake', 'speed', 'wakes', 'psk', 'identity'] as const;

async function deviceCommand(argv: string[]): Promise<number> {
  const parsed = flagsOf(DEVICE_SPEC, argv);
  if (!parsed) return 0;
  const publishEveryWake = parsed['publish-every-wake'] === true;
  const printKey = parsed['print-public-key'] === true;
  const flags = strings(parsed);
  if (printKey) {
    if (flags.flash === undefined) throw new UsageError('device: --print-public-key needs --flash FILE (without a flash file the key pair is generated anew at every run)');
    if (flags.psk !== undefined) throw new UsageError('device: --print-public-key: a PSK device (--psk) has no public key');
    const extra = RUN_FLAGS.find((f) => parsed[f] !== undefined);
    if (extra) throw new UsageError(`device: --${extra} does not apply with --print-public-key (it prints the key and exits)`);
  } else {
    hostPort('device', 'cloud', flags.cloud);
  }
  if (flags.id !== undefined || !printKey) {
    if (!flags.id) throw new UsageError('device: --id ID is required');
    const idBytes = Buffer.byteLength(flags.id);
    if (idBytes > 48) throw new UsageError(`device: --id must be 1..48 bytes (got ${idBytes})`);
  }
  const { PROFILES } = await import('./session-abi.ts');
  const profile = oneOf('device', 'profile', flags.profile ?? 'default', PROFILES);
  const suite = printKey ? 'ecdhe' : suiteOf('device', flags);
  const { serverPublicKeyFlag } = await import('./key-flags.ts');
  const serverPublicKey = flags['server-key'] !== undefined ? serverPublicKeyFlag('device', 'server-key', flags['server-key']) : undefined;
  const engine = await engineByName(oneOf('device', 'engine', flags.engine ?? 'v8', ['v8', 'wasm3'] as const));
  const { runDevice, openFlash, publicKeyEntry, DeviceStartError } = await import('./device-cli.ts');
  if (printKey) {
    try {
      console.log(await publicKeyEntry({ flashPath: flags.flash!, id: flags.id, serverPublicKey, profile, engine, log: (line) => console.error(`device: ${line}`) }));
    } catch (e) {
      if (e instanceof DeviceStartError) throw new UsageError(`device: ${e.message}`);
      throw e;
    }
    return 0;
  }
  const cloud = hostPort('device', 'cloud', flags.cloud);
  const identityBytes = Buffer.byteLength(flags.identity ?? flags.id!);
  if (identityBytes > 64) throw new UsageError(`device: --identity must be 1..64 bytes (got ${identityBytes})`);
  if (suite === 'psk' && !/^([0-9a-fA-F]{2}){16,64}$/.test(flags.psk!)) throw new UsageError('device: --psk must be 16..64 bytes in hex');
  const speed = Number(flags.speed ?? 1);
  if (!(speed >= 1 && speed <= 1_000_000)) throw new UsageError(`device: --speed must be a number from 1 to 1000000 (got '${flags.speed}')`);
  const wakes = Number(flags.wakes ?? 0);
  if (!Number.isInteger(wakes) || wakes < 0) throw new UsageError(`device: --wakes must be a whole number ≥ 0 (got '${flags.wakes}')`);
  await resolvable('device', 'cloud', cloud.host);
  const wakeEveryMs = flags['wake-every'] ? duration('device', 'wake-every', flags['wake-every']) : 15 * 60_000;
  const credentials: Credentials = serverPublicKey
    ? { suite: 'ecdhe', serverPublicKey }
    : { suite: 'psk', identity: flags.identity ?? flags.id!, psk: Buffer.from(flags.psk!, 'hex') };
  try {
    // The flash file is checked (and created erased when missing) before anything starts.
    const flash = flags.flash !== undefined ? openFlash(flags.flash) : null;
    await runDevice({
      cloud, id: flags.id!, credentials, profile,
      wakeEveryMs, publishEveryWake, speed, wakes, appAwakeMs: 3000, flash, engine,
      log: (line) => console.log(line),
    });
  } catch (e) {
    if (e instanceof DeviceStartError) throw new UsageError(`device: ${e.message}`);
    // A failure while running (a firmware trap, a disk error): one line, not a stack trace.
    console.error(`sleepy-session: device: ${(e as Error).message}`);
    return 1;
  } finally {
    if (credentials.suite === 'psk') credentials.psk.fill(0);
  }
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'start':
        return await start(rest);
      case 'connect':
        return await connectCommand(rest);
      case 'device':
        return await deviceCommand(rest);
      case 'mcu': {
        const { mcuCommand } = await import('./mcu/cli.ts');
        return await mcuCommand(rest);
      }
      case 'cloud': {
        const { runCloudCommand } = await import('./cloud/cli.ts');
        return await runCloudCommand(rest);
      }
      case 'events': {
        const { runEventsCommand } = await import('./cloud/cli.ts');
        return await runEventsCommand(rest);
      }
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        console.log(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command '${command}'; allowed: ${COMMANDS.map(([n]) => n).join(', ')}`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`sleepy-session: ${e.message}`);
      return 2;
    }
    throw e;
  }
}
