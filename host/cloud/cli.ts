/**
 * `sleepy-session cloud ...`: runs the cloud until SIGINT/SIGTERM. Exported as runCloudCommand for
 * host/cli.ts; also runnable directly (`node --import tsx host/cloud/cli.ts --devices FILE ...`),
 * which is how the multi-process tests start it. Bad or missing flags get an error naming the flag
 * and what is allowed (exit code 2).
 */
import { pathToFileURL } from 'node:url';
import { DevicesError } from './devices.ts';
import { parseHeal, startCloud, type RunningCloud } from './server.ts';

export const CLOUD_USAGE = `usage: sleepy-session cloud --devices FILE [flags]

  --devices FILE         device registry JSON (format: docs/protocol.md) — required
  --port N               UDP port, 0..65535 (default 5684; 0 = any free port)
  --host ADDR            UDP bind address (default 127.0.0.1; 0.0.0.0 for all interfaces)
  --store SPEC           memory | redis://HOST:PORT (default memory)
  --webhook URL          http(s) URL that receives device events by POST (default: none)
  --heal LIST            comma-separated: reset-token, malformed; or none (default reset-token)
  --metrics-port N       HTTP port for GET /metrics, 0..65535 (default: no endpoint; 0 = any free port)
  --metrics-host ADDR    bind address of the metrics endpoint (default 127.0.0.1)
  --identity-hint TEXT   PSK identity hint sent in a ServerKeyExchange (default: none, no SKE)
  --session-ttl SECONDS  idle lifetime of a session in the store (default 604800 = 7 days)`;

const FLAGS = ['devices', 'port', 'host', 'store', 'webhook', 'heal', 'metrics-port', 'metrics-host', 'identity-hint', 'session-ttl'] as const;
type Flag = (typeof FLAGS)[number];

export class CloudUsageError extends Error {}

function parseArgs(argv: string[]): Partial<Record<Flag, string>> {
  const out: Partial<Record<Flag, string>> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new CloudUsageError(`unexpected argument '${arg}'; flags are: ${FLAGS.map((f) => '--' + f).join(', ')}`);
    const eq = arg.indexOf('=');
    const name = (eq < 0 ? arg.slice(2) : arg.slice(2, eq)) as Flag;
    if (!FLAGS.includes(name)) throw new CloudUsageError(`unknown flag --${name}; allowed: ${FLAGS.map((f) => '--' + f).join(', ')}`);
    let value: string | undefined = eq < 0 ? undefined : arg.slice(eq + 1);
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined || value.startsWith('--')) throw new CloudUsageError(`flag --${name} needs a value`);
    }
    if (name in out) throw new CloudUsageError(`flag --${name} given twice`);
    out[name] = value;
  }
  return out;
}

function portFlag(flag: string, value: string): number {
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) throw new CloudUsageError(`--${flag} must be a port number 0..65535 (got '${value}')`);
  return Number(value);
}

/** Validated options for startCloud, or a CloudUsageError naming the flag. */
export function cloudOptionsFromArgs(argv: string[]) {
  const f = parseArgs(argv);
  if (!f.devices) throw new CloudUsageError('--devices FILE is required (device registry JSON; see docs/protocol.md)');
  const store = f.store ?? 'memory';
  if (store !== 'memory' && !/^rediss?:\/\/[^\s/:]+(:\d{1,5})?(\/\d+)?$/.test(store)) {
    throw new CloudUsageError(`--store must be memory or redis://HOST:PORT (got '${store}')`);
  }
  let heal;
  try {
    heal = parseHeal(f.heal ?? 'reset-token');
  } catch (e) {
    throw new CloudUsageError(`--heal: ${(e as Error).message}`);
  }
  if (f.webhook !== undefined) {
    let u: URL | undefined;
    try {
      u = new URL(f.webhook);
    } catch {
      u = undefined;
    }
    if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:')) throw new CloudUsageError(`--webhook must be an http:// or https:// URL (got '${f.webhook}')`);
  }
  let sessionTtlMs: number | undefined;
  if (f['session-ttl'] !== undefined) {
    if (!/^\d+$/.test(f['session-ttl']) || Number(f['session-ttl']) < 1) throw new CloudUsageError(`--session-ttl must be a whole number of seconds ≥ 1 (got '${f['session-ttl']}')`);
    sessionTtlMs = Number(f['session-ttl']) * 1000;
  }
  return {
    devices: f.devices,
    port: f.port === undefined ? 5684 : portFlag('port', f.port),
    host: f.host ?? '127.0.0.1',
    store,
    webhook: f.webhook ?? null,
    heal,
    metricsPort: f['metrics-port'] === undefined ? null : portFlag('metrics-port', f['metrics-port']),
    metricsHost: f['metrics-host'] ?? '127.0.0.1',
    config: {
      ...(f['identity-hint'] !== undefined ? { identityHint: f['identity-hint'] } : {}),
      ...(sessionTtlMs !== undefined ? { sessionTtlMs } : {}),
    },
  };
}

/** Runs the cloud until SIGINT or SIGTERM; returns the exit code (2 for usage errors). */
export async function runCloudCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(CLOUD_USAGE);
    return 0;
  }
  let cloud: RunningCloud;
  try {
    const opts = cloudOptionsFromArgs(argv);
    cloud = await startCloud({ ...opts, log: (line) => console.error(line) });
  } catch (e) {
    if (e instanceof CloudUsageError || e instanceof DevicesError) {
      console.error(`sleepy-session cloud: ${e.message}`);
      return 2;
    }
    console.error(`sleepy-session cloud: ${(e as Error).message}`);
    return 1;
  }
  // One machine-readable line on stdout: what the tests and scripts wait for.
  console.log(`cloud listening udp=${cloud.host}:${cloud.port}${cloud.metricsPort !== null ? ` metrics=${cloud.metricsPort}` : ''} store=${cloud.store.kind}`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await cloud.close();
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await runCloudCommand(process.argv.slice(2));
}
