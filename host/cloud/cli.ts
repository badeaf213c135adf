/**
 * `sleepy-session cloud ...`: runs the cloud until SIGINT/SIGTERM; `sleepy-session events ...`
 * lists and retries the dead letters of a Redis event log. Exported for host/cli.ts; also runnable
 * directly (`node --import tsx host/cloud/cli.ts --devices FILE ...`), which is how the
 * multi-process tests start it. Flags go through the shared parser (host/cli-flags.ts): a bad one
 * is one line naming it and what is allowed, exit code 2, before anything starts.
 */
import { statSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { UsageError, duration, helpText, parseFlags, portFlag, redisUrl, str, type CommandSpec } from '../cli-flags.ts';
import { DevicesError, loadDevicesFile } from './devices.ts';
import { ServerKey, ServerKeyError } from './p256.ts';
import { RedisEventLog } from './redis-events.ts';
import { clusterNodes, clusterParams } from './redis-client.ts';
import { parseHeal, startCloud, type RunningCloud } from './server.ts';

export const CLOUD_SPEC: CommandSpec = {
  name: 'cloud',
  summary: 'the DTLS 1.2 cloud: PSK and ECDHE-ECDSA with raw public keys (docs/protocol.md)',
  flags: [
    { name: 'devices', value: 'FILE', help: 'device registry JSON (format: docs/protocol.md §9) — required' },
    { name: 'port', value: 'N', help: 'UDP port, 0..65535 (0 = any free port)', default: '5684' },
    { name: 'host', value: 'ADDR', help: 'UDP bind address (0.0.0.0 for all interfaces)', default: '127.0.0.1' },
    { name: 'store', value: 'SPEC', help: 'session cache: memory | redis://HOST:PORT | redis-cluster://HOST:PORT[,HOST:PORT…][?wait=N&wait-ms=MS]', default: 'memory' },
    { name: 'events', value: 'SPEC', help: 'event log: memory (one process, not durable) | redis://HOST:PORT (a Redis with appendonly yes, appendfsync always) | redis-cluster://HOST:PORT[,HOST:PORT…][?shards=N&wait=N&wait-ms=MS] (docs/scaling.md)', default: 'memory' },
    { name: 'webhook', value: 'URL', help: 'http(s) URL that receives device events by POST', default: 'none' },
    { name: 'webhook-max-delay', value: 'DUR', help: 'longest back-off between attempts at one event (it is retried forever), 100ms..24h', default: '30s' },
    { name: 'event-reclaim-after', value: 'DUR', help: 'events another process took and left this long are taken over, 1s..24h', default: '60s' },
    { name: 'heal', value: 'LIST', help: 'comma-separated, each at most once: reset-token, malformed; or none', default: 'reset-token' },
    { name: 'metrics-port', value: 'N', help: 'HTTP port for GET /metrics, 0..65535 (0 = any free port)', default: 'no endpoint' },
    { name: 'metrics-host', value: 'ADDR', help: 'bind address of the metrics endpoint', default: '127.0.0.1' },
    { name: 'identity-hint', value: 'TEXT', help: 'PSK identity hint sent in a ServerKeyExchange, 1..255 bytes', default: 'none, no SKE' },
    { name: 'session-ttl', value: 'SECONDS', help: 'idle lifetime of a session in the store', default: '604800 = 7 days' },
    { name: 'key', value: 'FILE', help: 'the cloud\'s P-256 private key, PEM (openssl ecparam -name prime256v1 -genkey -noout -out FILE); required when devices are registered by publicKey', default: 'none: PSK only' },
    { name: 'print-public-key', help: 'print the public key of --key (hex of the 65-byte point devices pin) and exit' },
    { name: 'keylog', value: 'FILE', help: 'append an NSS key log (Wireshark) to FILE — it decrypts every session: debugging only', default: 'none' },
  ],
};

export const EVENTS_SPEC: CommandSpec = {
  name: 'events',
  summary: 'the dead letters of a Redis event log: events a webhook receiver refused permanently',
  flags: [
    { name: 'events', value: 'URL', help: 'the event log, redis://HOST:PORT or redis-cluster://HOST:PORT[,…] — required' },
    { name: 'retry', value: 'IDS', help: "move dead letters back for delivery: 'all' or comma-separated ids" },
    { name: 'limit', value: 'N', help: 'list at most N dead letters', default: '100' },
  ],
  notes: '  Without --retry, lists the dead letters (one JSON line each) and exits.',
};

/** Bounds of the duration flags: [min ms, max ms, as written in the message]. */
export const DURATION_BOUNDS = {
  // Below 100 ms a failing receiver is hammered; above a day an event waits for no reason.
  'webhook-max-delay': [100, 24 * 3_600_000, '100ms..24h'],
  // Below 1 s processes take each other's entries while they are being sent (duplicates).
  'event-reclaim-after': [1000, 24 * 3_600_000, '1s..24h'],
} as const;

function boundedDuration(flag: keyof typeof DURATION_BOUNDS, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const [min, max, text] = DURATION_BOUNDS[flag];
  const ms = duration('cloud', flag, value);
  if (!(ms >= min && ms <= max)) throw new UsageError(`cloud: --${flag} must be a duration ${text} (got '${value}')`);
  return ms;
}

/** The identity hint goes into a ServerKeyExchange: 1..255 bytes (none at all: leave the flag out). */
export const MAX_IDENTITY_HINT_BYTES = 255;

function identityHint(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const n = Buffer.byteLength(value, 'utf8');
  if (n < 1 || n > MAX_IDENTITY_HINT_BYTES) throw new UsageError(`cloud: --identity-hint must be 1..${MAX_IDENTITY_HINT_BYTES} bytes of UTF-8 text (got ${n} bytes)`);
  return value;
}

/** redisUrl, and the port (6379 when none) must be 1..65535: the URL parser's "Invalid URL" names no flag. */
function redisSpec(command: string, flag: string, value: string, allowMemory: boolean): string {
  if (value.startsWith('redis-cluster://')) {
    try {
      clusterNodes(value);
      clusterParams(value);
    } catch (e) {
      throw new UsageError(`${command}: --${flag}: ${(e as Error).message}`);
    }
    return value;
  }
  redisUrl(command, flag, value, allowMemory);
  if (value === 'memory') return value;
  let port: number;
  try {
    const u = new URL(value);
    port = u.port === '' ? 6379 : Number(u.port);
  } catch {
    port = NaN;
  }
  if (!(port >= 1 && port <= 65535)) throw new UsageError(`${command}: --${flag} must be ${allowMemory ? 'memory or ' : ''}redis://HOST:PORT with a port 1..65535 (got '${value}')`);
  return value;
}

/** Validated options for startCloud (the devices file is read and checked too), or a UsageError naming the flag. */
export function cloudOptionsFromArgs(argv: string[]) {
  const f = parseFlags(CLOUD_SPEC, argv);
  if (f === 'help') throw new UsageError('cloud: --help is handled by runCloudCommand');
  const devices = str(f, 'devices');
  if (f['print-public-key'] === true) throw new UsageError('cloud: --print-public-key is handled by runCloudCommand');
  if (!devices) throw new UsageError('cloud: --devices FILE is required (device registry JSON; see docs/protocol.md)');
  const store = redisSpec('cloud', 'store', str(f, 'store') ?? 'memory', true);
  const events = redisSpec('cloud', 'events', str(f, 'events') ?? 'memory', true);
  let heal;
  try {
    heal = parseHeal(str(f, 'heal') ?? 'reset-token');
  } catch (e) {
    throw new UsageError(`cloud: --heal: ${(e as Error).message}`);
  }
  const webhook = str(f, 'webhook');
  if (webhook !== undefined) {
    let u: URL | undefined;
    try {
      u = new URL(webhook);
    } catch {
      u = undefined;
    }
    if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:')) throw new UsageError(`cloud: --webhook must be an http:// or https:// URL (got '${webhook}')`);
  }
  let sessionTtlMs: number | undefined;
  const ttl = str(f, 'session-ttl');
  if (ttl !== undefined) {
    if (!/^\d+$/.test(ttl) || Number(ttl) < 1) throw new UsageError(`cloud: --session-ttl must be a whole number of seconds ≥ 1 (got '${ttl}')`);
    sessionTtlMs = Number(ttl) * 1000;
  }
  const maxDelayMs = boundedDuration('webhook-max-delay', str(f, 'webhook-max-delay'));
  const reclaimIdleMs = boundedDuration('event-reclaim-after', str(f, 'event-reclaim-after'));
  const hint = identityHint(str(f, 'identity-hint'));
  const port = str(f, 'port');
  const metricsPort = str(f, 'metrics-port');
  return {
    devices,
    port: port === undefined ? 5684 : portFlag('cloud', 'port', port),
    host: str(f, 'host') ?? '127.0.0.1',
    store,
    events,
    webhook: webhook
      ? { url: webhook, ...(maxDelayMs !== undefined ? { maxDelayMs, baseDelayMs: Math.min(250, maxDelayMs) } : {}), ...(reclaimIdleMs !== undefined ? { reclaimIdleMs } : {}) }
      : null,
    heal,
    metricsPort: metricsPort === undefined ? null : portFlag('cloud', 'metrics-port', metricsPort),
    metricsHost: str(f, 'metrics-host') ?? '127.0.0.1',
    keyLogFile: str(f, 'keylog'),
    config: {
      ...(hint !== undefined ? { identityHint: hint } : {}),
      ...(sessionTtlMs !== undefined ? { sessionTtlMs } : {}),
    },
  };
}

/** The --key file as a ServerKey; a bad one is a usage error naming the flag (never the key's bytes). */
function keyFlag(path: string | undefined): ServerKey | null {
  if (path === undefined) return null;
  try {
    return ServerKey.fromFile(path);
  } catch (e) {
    if (e instanceof ServerKeyError) throw new UsageError(`cloud: --key ${path}: ${e.message}`);
    throw e;
  }
}

/** Reads and checks the devices file before anything starts: it must exist, parse and name at least one device. */
function checkDevicesFile(path: string) {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new UsageError(`cloud: --devices ${path}: no such file`);
  }
  if (!st.isFile()) throw new UsageError(`cloud: --devices ${path}: not a file`);
  const file = loadDevicesFile(path);
  if (file.registry.size === 0) throw new UsageError(`cloud: --devices ${path}: the registry names no device; add at least one (format: docs/protocol.md §9)`);
  return file;
}

function report(command: string, e: unknown): number {
  if (e instanceof UsageError) {
    console.error(`sleepy-session ${e.message}`);
    return 2;
  }
  if (e instanceof DevicesError) {
    console.error(`sleepy-session ${command}: ${e.message}`);
    return 2;
  }
  console.error(`sleepy-session ${command}: ${(e as Error).message}`);
  return 1;
}

/** Runs the cloud until SIGINT or SIGTERM; returns the exit code (2 for usage errors, 1 when it cannot start). */
export async function runCloudCommand(argv: string[]): Promise<number> {
  let cloud: RunningCloud;
  try {
    if (parseFlags(CLOUD_SPEC, argv) === 'help') {
      console.log(helpText(CLOUD_SPEC));
      return 0;
    }
    const flags = parseFlags(CLOUD_SPEC, argv) as Record<string, string | boolean | undefined>;
    if (flags['print-public-key'] === true) {
      const key = keyFlag(str(flags, 'key'));
      if (!key) throw new UsageError('cloud: --print-public-key needs --key FILE');
      console.log(key.publicPoint.toString('hex'));
      return 0;
    }
    const opts = cloudOptionsFromArgs(argv);
    const file = checkDevicesFile(opts.devices);
    const serverKey = keyFlag(str(flags, 'key'));
    if (!serverKey && file.registry.publicKeyDevices > 0) {
      throw new UsageError(`cloud: --key FILE is required: ${opts.devices} registers ${file.registry.publicKeyDevices} device(s) by publicKey, which pin the cloud's public key (make one: openssl ecparam -name prime256v1 -genkey -noout -out FILE)`);
    }
    cloud = await startCloud({ ...opts, devices: file.registry, cloudSecret: file.cloudSecret?.reveal(), serverKey, log: (line) => console.error(line) });
  } catch (e) {
    return report('cloud', e);
  }
  // The stop signals are handled before the line below: whoever waits for it may stop us at once.
  const stopped = new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  // One machine-readable line on stdout: what the tests and scripts wait for.
  console.log(`cloud listening udp=${cloud.host}:${cloud.port}${cloud.metricsPort !== null ? ` metrics=${cloud.metricsPort}` : ''} store=${cloud.store.kind} events=${cloud.events.kind}`);
  await stopped;
  await cloud.close();
  return 0;
}

/** `sleepy-session events --events redis://… [--retry all|ID,…] [--limit N]`. */
export async function runEventsCommand(argv: string[]): Promise<number> {
  let log: RedisEventLog | undefined;
  try {
    const f = parseFlags(EVENTS_SPEC, argv);
    if (f === 'help') {
      console.log(helpText(EVENTS_SPEC));
      return 0;
    }
    const url = str(f, 'events');
    if (!url) throw new UsageError('events: --events redis://HOST:PORT is required (the event log of the cloud)');
    redisSpec('events', 'events', url, false);
    const limitText = str(f, 'limit') ?? '100';
    if (!/^\d{1,7}$/.test(limitText) || Number(limitText) < 1) throw new UsageError(`events: --limit must be a whole number 1..9999999 (got '${limitText}')`);
    const retry = str(f, 'retry');
    if (retry !== undefined && retry !== 'all' && !/^(\d+\/)?\d+-\d+(,(\d+\/)?\d+-\d+)*$/.test(retry)) {
      throw new UsageError(`events: --retry must be 'all' or comma-separated dead-letter ids like 1700000000000-0 (on a cluster 3/1700000000000-0) (got '${retry}')`);
    }
    log = await RedisEventLog.connect({ url });
    if (retry !== undefined) {
      const n = await log.retryDead(retry === 'all' ? 'all' : retry.split(','));
      console.log(`moved ${n} dead letter(s) back to the event log for delivery`);
      return 0;
    }
    const dead = await log.listDead(Number(limitText));
    for (const d of dead) {
      console.log(JSON.stringify({ id: d.id, reason: d.reason, failedAt: new Date(d.failedMs).toISOString(), device: d.ev.deviceId, incarnation: d.ev.incarnation, seq: d.ev.seq, event: d.ev.name, data: d.ev.data.toString('base64') }));
    }
    console.error(`${dead.length} dead letter(s)${dead.length === Number(limitText) ? ` (--limit ${limitText}; there may be more)` : ''}`);
    return 0;
  } catch (e) {
    return report('events', e);
  } finally {
    await log?.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await runCloudCommand(process.argv.slice(2));
}
