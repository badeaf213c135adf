/**
 * The cloud as a running server: a node:dgram socket around the sans-IO CloudCore, the session
 * store (memory or Redis), the webhook sender and the metrics endpoint. `startCloud` is what the
 * CLI, the tests and the benchmark use; it returns once the socket (and metrics port) listen.
 */
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { closeSync, openSync, writeSync } from 'node:fs';
import type http from 'node:http';
import { CloudCore, DEFAULT_HEAL, type CloudEvent, type CoreConfig, type CoreOutput, type HealFlags } from './core.ts';
import { loadDevicesFile, type DeviceRegistry } from './devices.ts';
import { InstrumentedStore, createMetrics, serveMetrics } from './metrics.ts';
import { MemoryStore, type SessionStore } from './store.ts';
import { RedisStore } from './redis-store.ts';
import { WebhookDelivery, type WebhookOptions } from './webhook.ts';
import { MemoryEventLog, type EventLog } from './events.ts';
import { RedisEventLog } from './redis-events.ts';
import { ServerKey } from './p256.ts';

export const HEAL_FEATURES = ['reset-token', 'malformed'] as const;

/** "reset-token,malformed" | "reset-token" | "malformed" | "none" → flags; throws naming the allowed values. */
export function parseHeal(spec: string): HealFlags {
  const flags: HealFlags = { resetToken: false, malformed: false };
  const items = spec
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const allowed = `allowed: ${HEAL_FEATURES.join(', ')} (comma-separated, each at most once) or none`;
  if (items.length === 1 && items[0] === 'none') return flags;
  if (items.length === 0) throw new Error(`empty heal list; ${allowed}`);
  if (items.length !== spec.split(',').length) throw new Error(`empty item in '${spec}'; ${allowed}`);
  const seen = new Set<string>();
  for (const item of items) {
    if (seen.has(item)) throw new Error(`'${item}' is listed twice; ${allowed}`);
    seen.add(item);
    if (item === 'reset-token') flags.resetToken = true;
    else if (item === 'malformed') flags.malformed = true;
    else throw new Error(`unknown heal feature '${item}'; ${allowed}`);
  }
  return flags;
}

export interface StartCloudOptions {
  /** UDP port (0 = any free port). */
  port?: number;
  host?: string;
  /** A registry, or the path of a devices JSON file. */
  devices: DeviceRegistry | string;
  /** Shared by all cloud processes; else the devices file's cloudSecret, else $SLEEPY_CLOUD_SECRET, else random. */
  cloudSecret?: Buffer;
  /** A store, 'memory' (default), 'redis://HOST:PORT' or 'redis-cluster://HOST:PORT[,HOST:PORT…]'. */
  store?: SessionStore | string;
  /** The event log: a log, 'memory' (default; one process, bounded, not durable) or 'redis://HOST:PORT' (persistent Redis). */
  events?: EventLog | string;
  webhook?: string | WebhookOptions | null;
  heal?: HealFlags | string;
  /** HTTP port for GET /metrics (0 = any free port; null/undefined = no endpoint). */
  metricsPort?: number | null;
  metricsHost?: string;
  config?: Partial<CoreConfig>;
  /** Datagrams handled concurrently at most; more are dropped (drops{reason="overload"}). */
  maxInflight?: number;
  /** Interval of the retransmission timer (ms). */
  tickMs?: number;
  log?: (line: string) => void;
  onEvent?: (e: CloudEvent) => void;
  /**
   * The cloud's P-256 key pair (ECDHE-ECDSA with raw public keys). Default: a fresh random one, so
   * tests and simulators can run ECDHE and read `serverPublicKey`; null: PSK only. (The CLI instead
   * requires --key when devices are registered by public key: a key that changes at every restart
   * would break every device that pinned it.)
   */
  serverKey?: ServerKey | null;
  /** Appends an NSS key log (one "CLIENT_RANDOM" line per handshake) to this file: it decrypts every session. Debugging only. */
  keyLogFile?: string;
}

export interface RunningCloud {
  port: number;
  host: string;
  metricsPort: number | null;
  core: CloudCore;
  store: SessionStore;
  events: EventLog;
  webhook: WebhookDelivery | null;
  /** The server's public key (65-byte uncompressed point) that devices pin; null when it has no key pair. */
  serverPublicKey: Buffer | null;
  /** The Prometheus text of this instance. */
  metrics(): Promise<string>;
  /** The core's counters as a plain object ("drops|bad_mac": 3, ...). */
  counters(): Record<string, number>;
  /** Datagrams being handled right now. */
  inflight(): number;
  close(): Promise<void>;
}

/** "1.2.3.4:5" / "[::1]:5" → address and port. */
export function splitAddr(addr: string): { address: string; port: number } {
  const i = addr.lastIndexOf(':');
  let address = addr.slice(0, i);
  if (address.startsWith('[')) address = address.slice(1, -1);
  return { address, port: Number(addr.slice(i + 1)) };
}

export async function openStore(spec: string): Promise<SessionStore> {
  if (spec === 'memory') return new MemoryStore();
  if (/^(rediss?|redis-cluster):\/\//.test(spec)) return RedisStore.connect({ url: spec });
  throw new Error(`unknown store '${spec}'; allowed: memory, redis://HOST:PORT, redis-cluster://HOST:PORT[,HOST:PORT…]`);
}

export async function openEventLog(spec: string, withDelivery: boolean): Promise<EventLog> {
  if (spec === 'memory') return new MemoryEventLog({ keepEntries: withDelivery });
  if (/^(rediss?|redis-cluster):\/\//.test(spec)) return RedisEventLog.connect({ url: spec });
  throw new Error(`unknown event log '${spec}'; allowed: memory, redis://HOST:PORT, redis-cluster://HOST:PORT[,HOST:PORT…]`);
}

/** At most `perSec` lines a second; the rest are summarised in one line per second. */
export function rateLimitedLog(log: (line: string) => void, perSec: number): (line: string) => void {
  let windowStart = 0;
  let n = 0;
  let suppressed = 0;
  return (line) => {
    const now = Date.now();
    if (now - windowStart >= 1000) {
      if (suppressed > 0) log(`cloud: ${suppressed} more handshake failures in the last second not logged`);
      windowStart = now;
      n = 0;
      suppressed = 0;
    }
    if (n++ < perSec) log(line);
    else suppressed++;
  };
}

export async function startCloud(opts: StartCloudOptions): Promise<RunningCloud> {
  const log = opts.log ?? (() => {});
  let registry: DeviceRegistry;
  let fileSecret: Buffer | undefined;
  if (typeof opts.devices === 'string') {
    const f = loadDevicesFile(opts.devices);
    registry = f.registry;
    fileSecret = f.cloudSecret?.reveal();
  } else registry = opts.devices;
  let cloudSecret = opts.cloudSecret ?? fileSecret;
  if (!cloudSecret && process.env.SLEEPY_CLOUD_SECRET) {
    cloudSecret = Buffer.from(process.env.SLEEPY_CLOUD_SECRET, 'hex');
    if (cloudSecret.length < 32) throw new Error('SLEEPY_CLOUD_SECRET must be at least 32 bytes of hex');
  }
  if (!cloudSecret) {
    cloudSecret = crypto.randomBytes(32);
    log('cloud: no cloudSecret configured; using a random one (cookies and reset tokens are not shared with other processes and do not survive a restart)');
  }
  const heal = typeof opts.heal === 'string' ? parseHeal(opts.heal) : (opts.heal ?? DEFAULT_HEAL);
  const webhookOpts = typeof opts.webhook === 'string' ? { url: opts.webhook } : opts.webhook;
  const m = createMetrics();
  // Everything that can fail (ports, Redis) is opened before the datagram socket: a cloud that
  // cannot start completely does not start at all.
  const opened: { close(): Promise<void> | void }[] = [];
  const fail = async (e: unknown): Promise<never> => {
    for (const o of opened.reverse()) await o.close();
    throw e;
  };
  let metricsServer: http.Server | null = null;
  let metricsPort: number | null = null;
  if (opts.metricsPort !== undefined && opts.metricsPort !== null) {
    const mh = opts.metricsHost ?? '127.0.0.1';
    const s = await serveMetrics(m.registry, opts.metricsPort, mh).catch((e: Error) => fail(new Error(`--metrics-port ${opts.metricsPort}: cannot listen on ${mh}:${opts.metricsPort} (${(e as NodeJS.ErrnoException).code ?? e.message})`)));
    metricsServer = s.server;
    metricsPort = s.port;
    opened.push({ close: () => new Promise<void>((r) => s.server.close(() => r())) });
  }
  const ownStore = typeof opts.store !== 'object';
  const rawStore = typeof opts.store === 'object' ? opts.store : await openStore(opts.store ?? 'memory').catch(fail);
  if (ownStore) opened.push(rawStore);
  const ownEvents = typeof opts.events !== 'object';
  const events = typeof opts.events === 'object' ? opts.events : await openEventLog(opts.events ?? 'memory', !!webhookOpts).catch(fail);
  if (ownEvents) opened.push(events);
  if (events.kind === 'redis' && !webhookOpts) {
    log('cloud: event log in Redis but no --webhook: events wait in the log for a process that delivers them (the log holds 10,000,000; then devices are not ACKed)');
  }
  if (events.kind === 'memory' && rawStore.kind === 'redis') {
    log('cloud: event log in memory while sessions are in Redis: events are not shared between processes and do not survive a restart (use --events redis://…)');
  }
  const serverKey = opts.serverKey === undefined ? ServerKey.generate() : opts.serverKey;
  let keyLogFd: number | null = null;
  if (opts.keyLogFile !== undefined) {
    try {
      keyLogFd = openSync(opts.keyLogFile, 'a', 0o600);
    } catch (e) {
      await fail(new Error(`--keylog ${opts.keyLogFile}: cannot open for appending (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`));
    }
    const fd = keyLogFd!;
    opened.push({ close: () => closeSync(fd) });
    log(`cloud: writing TLS key log to ${opts.keyLogFile}: it decrypts every session (debugging only)`);
  }
  const keyLog = keyLogFd === null ? null : (line: string) => writeSync(keyLogFd!, line + '\n');
  const store = new InstrumentedStore(rawStore, m.storeLatency);
  const core = new CloudCore({ devices: registry, store, events, cloudSecret, heal, config: opts.config, serverKey, keyLog });
  const stats = core.stats;
  const webhook = webhookOpts ? new WebhookDelivery(webhookOpts, events, stats) : null;
  m.attach(core, () => ({ inflight, webhookInHand: webhook?.inHand ?? 0 }), events);
  const logFailure = rateLimitedLog(log, 20);

  const host = opts.host ?? '127.0.0.1';
  const socket = dgram.createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
  const maxInflight = opts.maxInflight ?? 4096;
  let inflight = 0;
  let closed = false;

  const onError = (err: Error | null) => {
    if (err) stats.inc('send_errors');
  };
  const emit = (out: CoreOutput, from?: dgram.RemoteInfo, fromKey?: string): void => {
    if (closed) return;
    for (const t of out.transmits) {
      if (from && t.to === fromKey) socket.send(t.data, from.port, from.address, onError);
      else {
        const a = splitAddr(t.to);
        socket.send(t.data, a.port, a.address, onError);
      }
    }
    for (const e of out.events) {
      if (e.kind === 'event') webhook?.nudge();
      else if (e.kind === 'handshake') log(`cloud: handshake device=${e.deviceId} session=${e.sessionId} from=${e.from} token=${e.tokenIssued}`);
      else if (e.kind === 'handshake_failed') logFailure(`cloud: handshake failed from=${e.from}${e.identity !== null ? ` identity=${JSON.stringify(e.identity)}` : ''} reason=${e.reason}`);
      else log(`cloud: session closed device=${e.deviceId} session=${e.sessionId} reason=${e.reason}`);
      opts.onEvent?.(e);
    }
  };

  socket.on('message', (msg, rinfo) => {
    if (inflight >= maxInflight) {
      stats.inc('datagrams_in');
      stats.inc('drops', 'overload');
      stats.inc('datagrams_dropped');
      return;
    }
    const key = rinfo.family === 'IPv6' ? `[${rinfo.address}]:${rinfo.port}` : `${rinfo.address}:${rinfo.port}`;
    inflight++;
    core.handleDatagram(msg, key, Date.now()).then(
      (out) => {
        inflight--;
        emit(out, rinfo, key);
      },
      () => {
        inflight--;
        stats.inc('internal_errors');
      },
    );
  });
  const bindError = (e: Error) => e;
  socket.once('error', bindError);
  socket.bind(opts.port ?? 0, host);
  try {
    await once(socket, 'listening');
  } catch (e) {
    socket.close();
    await fail(new Error(`--port ${opts.port ?? 0}: cannot bind udp ${host}:${opts.port ?? 0} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`));
  }
  socket.off('error', bindError);
  socket.on('error', (e) => log(`cloud: socket error ${e.message}`));
  const port = socket.address().port;
  webhook?.start();

  let ticking = false;
  const timer = setInterval(() => {
    if (ticking || closed) return;
    ticking = true;
    core.handleTimeout(Date.now()).then(
      (out) => {
        ticking = false;
        emit(out);
      },
      () => {
        ticking = false;
        stats.inc('internal_errors');
      },
    );
  }, opts.tickMs ?? 50);

  log(`cloud: listening udp ${host}:${port}; store ${rawStore.kind}; events ${events.kind}; heal ${[heal.resetToken && 'reset-token', heal.malformed && 'malformed'].filter(Boolean).join(',') || 'none'}; ${registry.size} devices (${registry.publicKeyDevices} by public key)${serverKey ? `; ECDHE-ECDSA public key ${serverKey.publicPoint.toString('hex')}` : ''}${metricsPort !== null ? `; metrics http://${opts.metricsHost ?? '127.0.0.1'}:${metricsPort}/metrics` : ''}`);

  return {
    port,
    host,
    metricsPort,
    core,
    store: rawStore,
    events,
    webhook,
    serverPublicKey: serverKey ? serverKey.publicPoint : null,
    metrics: () => m.registry.metrics(),
    counters: () => stats.snapshot(),
    inflight: () => inflight,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      socket.close();
      await webhook?.close();
      if (metricsServer) {
        metricsServer.closeAllConnections();
        await new Promise<void>((r) => metricsServer!.close(() => r()));
      }
      if (ownStore) await rawStore.close();
      if (ownEvents) await events.close();
      if (keyLogFd !== null) closeSync(keyLogFd);
    },
  };
}
