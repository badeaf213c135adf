/**
 * The `sleepy-session` command. Subcommands grow with the product; each validates its flags and
 * names the offending flag and the allowed values on error.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import crypto from 'node:crypto';
import { V8Engine } from './engines/v8.ts';
import type { Engine } from './engines/engine.ts';
import { readFirmware } from './firmware.ts';

export class UsageError extends Error {}

const USAGE = `usage: sleepy-session <command> [flags]

commands:
  start                      the main job: replay the May 2019 session-cache wipe for the three
                             firmware profiles side by side (cloud in process, virtual time)
      --wake-every DUR       sleep between wakes (default 15m)
      --wipe-at DUR          when the cache is wiped (default 40m)
      --heal-at DUR|never    when the cloud rolls out the malformed-datagram heal (default 2h40m)
      --until DUR            end of the replay (default 3h35m)
      --engine v8|wasm3      engine for the firmware (default v8)
      --seed TEXT            seed of every random choice (default may-2019)
      --report FILE          JSON report (default reports/incident.json)
  connect                    the firmware's DTLS client over real UDP: stdin lines are sent as
                             application data, received data is printed
      --server HOST:PORT     DTLS 1.2 PSK server (e.g. openssl s_server -dtls1_2 -nocert -psk HEX
                             -psk_identity ID -cipher PSK-AES128-CCM8 -accept 127.0.0.1:PORT)
      --identity ID          PSK identity
      --psk HEX              pre-shared key, 1..64 bytes in hex
      --engine v8|wasm3      engine to run the firmware on (default v8)
  device                     one device over real UDP against a cloud, waking periodically
      --cloud HOST:PORT      the cloud (sleepy-session cloud)
      --id ID                device id (as in the cloud's devices file)
      --identity ID          PSK identity (default: the id)
      --psk HEX              pre-shared key, 16..64 bytes in hex
      --profile legacy|fixed|default   firmware behaviour (default: default)
      --wake-every DUR       sleep between wakes (default 15m)
      --publish-every-wake   publish a reading at every wake
      --speed N              virtual time runs N times faster than the wall clock (default 1)
      --wakes N              stop after N wakes (default 0: until interrupted)
      --flash FILE           keep persistent memory in FILE across runs
      --engine v8|wasm3      engine for the firmware (default v8)
  mcu                        one device on the Cortex-M4 image in QEMU against a cloud (flags:
                             sleepy-session mcu --help)
  cloud --devices FILE [--port 5684] [--store memory|redis://HOST:PORT] [--webhook URL]
        [--heal reset-token,malformed|none] [--metrics-port N]
                             the DTLS 1.2 PSK cloud (docs/protocol.md)
  help                       this text`;

export interface Flags {
  [name: string]: string;
}

/** Parses `--name value` / `--name=value` pairs against the allowed flag names of a command. */
export function parseFlags(args: string[], allowed: string[], command: string): Flags {
  const flags: Flags = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith('--')) throw new UsageError(`${command}: unexpected argument '${arg}'; flags are: ${allowed.map((a) => '--' + a).join(', ')}`);
    let [name, value] = arg.slice(2).split(/=(.*)/s, 2);
    if (!allowed.includes(name)) {
      throw new UsageError(`${command}: unknown flag --${name}; allowed: ${allowed.map((a) => '--' + a).join(', ') || '(none)'}`);
    }
    if (value === undefined) {
      value = args[++i];
      if (value === undefined || value.startsWith('--')) throw new UsageError(`${command}: flag --${name} needs a value`);
    }
    flags[name] = value;
  }
  return flags;
}

/** Parses "15m", "90s", "2h40m", "500ms" or plain milliseconds. */
export function duration(command: string, flag: string, value: string): number {
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  if (/^\d+$/.test(value)) return Number(value);
  const parts = [...value.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== value) {
    throw new UsageError(`${command}: --${flag} must be a duration like 500ms, 90s, 15m or 2h40m (got '${value}')`);
  }
  return Math.round(parts.reduce((ms, p) => ms + Number(p[1]) * units[p[2]], 0));
}

async function start(args: string[]): Promise<number> {
  const flags = parseFlags(args, ['report', 'engine', 'seed', 'wake-every', 'wipe-at', 'heal-at', 'until'], 'start');
  const { DEFAULT_INCIDENT, formatIncident, runIncident } = await import('./sim/incident.ts');
  const engineName = oneOf('start', 'engine', flags.engine ?? 'v8', ['v8', 'wasm3'] as const);
  await engineByName(engineName); // fails early, with the reason, when the engine is not built
  const makeEngine = async (): Promise<() => Engine> => {
    if (engineName === 'v8') return () => new V8Engine();
    const { Wasm3Engine } = await import('./engines/wasm3/index.ts');
    return () => new Wasm3Engine();
  };
  const opts = {
    ...DEFAULT_INCIDENT,
    seed: flags.seed ?? DEFAULT_INCIDENT.seed,
    wakeEveryMs: flags['wake-every'] ? duration('start', 'wake-every', flags['wake-every']) : DEFAULT_INCIDENT.wakeEveryMs,
    wipeAtMs: flags['wipe-at'] ? duration('start', 'wipe-at', flags['wipe-at']) : DEFAULT_INCIDENT.wipeAtMs,
    malformedAtMs: flags['heal-at'] === 'never' ? null
      : flags['heal-at'] ? duration('start', 'heal-at', flags['heal-at']) : DEFAULT_INCIDENT.malformedAtMs,
    endMs: flags.until ? duration('start', 'until', flags.until) : DEFAULT_INCIDENT.endMs,
    engine: await makeEngine(),
  };
  if (opts.wakeEveryMs < 1000) throw new UsageError('start: --wake-every must be at least 1s');
  if (opts.endMs <= opts.wipeAtMs) throw new UsageError('start: --until must be later than --wipe-at');
  const reportPath = flags.report ?? 'reports/incident.json';
  const result = await runIncident(opts);
  const dir = reportPath.includes('/') ? reportPath.slice(0, reportPath.lastIndexOf('/')) : '.';
  mkdirSync(dir, { recursive: true });
  writeFileSync(reportPath, JSON.stringify(result, null, 2));
  // The verdicts close the output: the one thing to read when scrolling is short.
  console.log(formatIncident(result, `report: ${reportPath}`));
  return 0;
}
/** Validates an enumerated flag value and names the allowed ones on error. */
export function oneOf<T extends string>(command: string, flag: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new UsageError(`${command}: --${flag} must be one of ${allowed.join(', ')} (got '${value}')`);
  }
  return value as T;
}

export function hostPort(command: string, flag: string, value: string | undefined): { host: string; port: number } {
  const m = value?.match(/^(.+):(\d{1,5})$/);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) throw new UsageError(`${command}: --${flag} must be HOST:PORT with a port 1..65535 (got '${value ?? ''}')`);
  return { host: m[1], port };
}

async function engineByName(name: 'v8' | 'wasm3'): Promise<Engine> {
  if (name === 'v8') return new V8Engine();
  const { Wasm3Engine, wasm3Available } = await import('./engines/wasm3/index.ts');
  if (!wasm3Available()) throw new UsageError('--engine wasm3: build/wasm3.node is not built (npm run build:wasm3; needs cargo)');
  return new Wasm3Engine();
}

async function connectCommand(args: string[]): Promise<number> {
  const flags = parseFlags(args, ['server', 'identity', 'psk', 'engine'], 'connect');
  const server = hostPort('connect', 'server', flags.server);
  if (!flags.identity) throw new UsageError('connect: --identity ID is required');
  if (!flags.psk || !/^([0-9a-fA-F]{2}){1,64}$/.test(flags.psk)) throw new UsageError('connect: --psk must be 1..64 bytes in hex');
  const engine = await engineByName(oneOf('connect', 'engine', flags.engine ?? 'v8', ['v8', 'wasm3'] as const));
  const { FirmwareClient } = await import('./session-abi.ts');
  const { UdpDriver } = await import('./udp-driver.ts');
  const client = new FirmwareClient(await engine.load(readFirmware()));
  client.provision(Buffer.from(flags.identity), Buffer.from(flags.psk, 'hex'));
  client.seed(crypto.randomBytes(48));
  const driver = new UdpDriver(client, { ...server, onData: (d) => process.stdout.write(Buffer.from(d)) });
  await driver.open();
  const state = await driver.handshake();
  if (state !== 'connected') {
    console.error(`connect: handshake ${state}: ${client.lastError}${client.lastAlert >= 0 ? ` (alert ${client.lastAlert})` : ''}`);
    driver.close();
    return 1;
  }
  console.error(`connect: connected to ${flags.server} on ${engine.name}`);
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

/** Flags that take no value. */
function takeSwitch(args: string[], name: string): [boolean, string[]] {
  const rest = args.filter((a) => a !== `--${name}`);
  return [rest.length !== args.length, rest];
}

async function deviceCommand(argv: string[]): Promise<number> {
  const [publishEveryWake, args] = takeSwitch(argv, 'publish-every-wake');
  const flags = parseFlags(args, ['cloud', 'id', 'identity', 'psk', 'profile', 'wake-every', 'speed', 'wakes', 'flash', 'engine'], 'device');
  const cloud = hostPort('device', 'cloud', flags.cloud);
  if (!flags.id) throw new UsageError('device: --id ID is required');
  if (!flags.psk || !/^([0-9a-fA-F]{2}){16,64}$/.test(flags.psk)) throw new UsageError('device: --psk must be 16..64 bytes in hex');
  const { runDevice } = await import('./device-cli.ts');
  const { PROFILES } = await import('./session-abi.ts');
  const profile = oneOf('device', 'profile', flags.profile ?? 'default', PROFILES);
  const speed = Number(flags.speed ?? 1);
  if (!(speed >= 1 && speed <= 1_000_000)) throw new UsageError(`device: --speed must be a number from 1 to 1000000 (got '${flags.speed}')`);
  const wakes = Number(flags.wakes ?? 0);
  if (!Number.isInteger(wakes) || wakes < 0) throw new UsageError(`device: --wakes must be a whole number ≥ 0 (got '${flags.wakes}')`);
  const engine = await engineByName(oneOf('device', 'engine', flags.engine ?? 'v8', ['v8', 'wasm3'] as const));
  await runDevice({
    cloud, id: flags.id, identity: flags.identity ?? flags.id, psk: Buffer.from(flags.psk, 'hex'), profile,
    wakeEveryMs: flags['wake-every'] ? duration('device', 'wake-every', flags['wake-every']) : 15 * 60_000,
    publishEveryWake, speed, wakes, appAwakeMs: 3000, flashPath: flags.flash ?? null, engine,
    log: (line) => console.log(line),
  });
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
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        console.log(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command '${command}'; allowed: start, device, mcu, connect, cloud, help`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`sleepy-session: ${e.message}`);
      return 2;
    }
    throw e;
  }
}
