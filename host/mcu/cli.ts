/**
 * `sleepy-session mcu ...`: flags for the MCU bridge (host/mcu/bridge.ts). Kept apart from
 * host/cli.ts, which only dispatches here.
 */
import { parseArgs } from 'node:util';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROFILES, type Credentials, type Profile } from '../session-abi.ts';
import { UsageError, duration, hostPort, oneOf, suiteOf } from '../cli.ts';
import { serverPublicKeyFlag } from '../key-flags.ts';
import { MCU_BUILDS, mcuUnavailable } from './qemu.ts';

export const MCU_USAGE = `usage: sleepy-session mcu [flags]
  mcu                        one device on the Cortex-M4 image (QEMU mps2-an386, npm run build:mcu)
                             against a cloud: the image runs once per wake, its UART (SLIP) relayed to UDP
      --cloud HOST:PORT      the cloud (sleepy-session cloud)
      --id ID                device id (as in the cloud's devices file)
      --server-key HEX|FILE  ECDHE-ECDSA (raw public keys): the cloud's P-256 public key to pin,
                             as 'sleepy-session cloud --key FILE --print-public-key' prints it, or a
                             file holding it or a PEM public key; provisioning a new flash file
                             generates the device's key pair (its public key is printed for the
                             cloud's devices file) — this or --psk is required
      --psk HEX              PSK instead: the pre-shared key, 16..64 bytes in hex
      --identity ID          PSK identity (default: the id)
      --print-public-key     print the device in --flash FILE as a line of the cloud's devices file
                             and exit; a missing FILE is provisioned first (with --id and --server-key)
      --profile legacy|fixed|default   firmware behaviour (default: default)
      --wakes N              number of wakes, 1..100000 (default 3)
      --wake-every DUR       sleep between wakes (default 15m)
      --awake DUR            time the application stays awake after boot (default 3s)
      --flash FILE           flash image: the firmware's 1,280-byte persisted region + a 40-byte
                             board block (1,320 bytes), provisioned when missing with the
                             credentials above (an existing file keeps its own) (default: a temp file)
      --build wasm3|wasm2c|wasm2c-O2   engine inside the image (default wasm3)
      --image debug|release  debug (default): the image with semihosting (command line, log and
                             flash file through the debugger channel); release: no semihosting,
                             log on UART1, flash in the board's file-backed PSRAM, exit by reset
      --sleep reset|retained reset (default): deep sleep, every wake a new power-on (RAM lost);
                             retained: System ON idle between wakes in one power-on, the module
                             kept compiled and the session slots in retained RAM (no flash write
                             per wake; ending the run is a power loss: the next run handshakes)
      --no-publish           do not publish a reading at each wake`;

export async function mcuCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(MCU_USAGE);
    return 0;
  }
  const options = {
    cloud: { type: 'string' }, id: { type: 'string' }, identity: { type: 'string' }, psk: { type: 'string' },
    profile: { type: 'string' }, wakes: { type: 'string' }, 'wake-every': { type: 'string' }, awake: { type: 'string' },
    flash: { type: 'string' }, build: { type: 'string' }, image: { type: 'string' }, sleep: { type: 'string' }, 'no-publish': { type: 'boolean' },
    'server-key': { type: 'string' }, 'print-public-key': { type: 'boolean' },
  } as const;
  let values;
  try {
    ({ values } = parseArgs({ args: argv, strict: true, allowPositionals: false, options }));
  } catch (e) {
    const allowed = Object.keys(options).map((k) => `--${k}`).join(', ');
    throw new UsageError(`mcu: ${(e as Error).message.split('\n')[0].split('. ')[0]}; allowed: ${allowed}`);
  }
  const profile: Profile = oneOf('mcu', 'profile', values.profile ?? 'default', PROFILES);
  const credentialsOf = (suite: 'ecdhe' | 'psk', id: string): Credentials => {
    if (suite === 'ecdhe') return { suite, serverPublicKey: serverPublicKeyFlag('mcu', 'server-key', values['server-key']!) };
    if (!/^([0-9a-fA-F]{2}){16,64}$/.test(values.psk!)) throw new UsageError('mcu: --psk must be 16..64 bytes in hex');
    return { suite, identity: values.identity ?? id, psk: Buffer.from(values.psk!, 'hex') };
  };
  if (values['print-public-key']) {
    if (!values.flash) throw new UsageError('mcu: --print-public-key needs --flash FILE (the device whose public key to print)');
    if (values.psk !== undefined) throw new UsageError('mcu: --print-public-key: a PSK device has no public key (--psk)');
    if ((values.id === undefined) !== (values['server-key'] === undefined)) {
      throw new UsageError('mcu: --print-public-key: --id and --server-key go together (both provision a missing file; an existing one needs neither)');
    }
    const { mcuPublicKeyEntry } = await import('./bridge.ts');
    const credentials = values.id === undefined ? undefined : credentialsOf('ecdhe', values.id);
    console.log(await mcuPublicKeyEntry({ flashPath: values.flash, id: values.id, credentials, profile, log: (line) => console.error(line) }));
    return 0;
  }
  const cloud = hostPort('mcu', 'cloud', values.cloud);
  if (!values.id) throw new UsageError('mcu: --id ID is required');
  const credentials = credentialsOf(suiteOf('mcu', values), values.id);
  const build = oneOf('mcu', 'build', values.build ?? 'wasm3', MCU_BUILDS);
  const image = oneOf('mcu', 'image', values.image ?? 'debug', ['debug', 'release'] as const);
  const sleep = oneOf('mcu', 'sleep', values.sleep ?? 'reset', ['reset', 'retained'] as const);
  const wakes = Number(values.wakes ?? 3);
  if (!Number.isInteger(wakes) || wakes < 1 || wakes > 100_000) throw new UsageError(`mcu: --wakes must be a whole number 1..100000 (got '${values.wakes}')`);
  const why = mcuUnavailable(build);
  if (why) throw new UsageError(`mcu: ${why}`);
  const wakeEveryMs = duration('mcu', 'wake-every', values['wake-every'] ?? '15m');
  const appAwakeMs = duration('mcu', 'awake', values.awake ?? '3s');
  const { runMcu } = await import('./bridge.ts');
  // Without --flash the device exists for this run only; its flash holds its key, so it goes at the end.
  const flashPath = values.flash ?? join(tmpdir(), `sleepy-mcu-${process.pid}-${Date.now()}.flash`);
  try {
    await runMcu({
      cloud, id: values.id, credentials, profile, wakes,
      wakeEveryMs, appAwakeMs, flashPath, build, image, sleep, publish: !values['no-publish'], log: (line) => console.log(line),
    });
  } finally {
    if (!values.flash) rmSync(flashPath, { force: true });
  }
  return 0;
}
