/**
 * Prometheus metrics (prom-client) for one cloud instance: the core's counters exported at scrape
 * time, store latency histograms, table sizes, and an HTTP endpoint (GET /metrics). Only counts
 * and ids of kinds appear here — never keys, identities or addresses.
 */
import http from 'node:http';
import { once } from 'node:events';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CloudCore } from './core.ts';
import type { AcceptResult, SessionStore, StoredSession } from './store.ts';
import type { EventLog } from './events.ts';

export const METRIC_PREFIX = 'sleepy_cloud_';

/** Every counter the core and the webhook sender increment: help text and label names. */
export const COUNTER_CATALOGUE: Record<string, { help: string; labels: string[] }> = {
  datagrams_in: { help: 'UDP datagrams received', labels: [] },
  datagrams_accepted: { help: 'Datagrams with at least one record handled', labels: [] },
  datagrams_dropped: { help: 'Datagrams of which no record was handled', labels: [] },
  datagrams_out: { help: 'UDP datagrams sent', labels: [] },
  bytes_in: { help: 'Bytes received', labels: [] },
  bytes_out: { help: 'Bytes sent', labels: [] },
  records_in: { help: 'Records handled, by content type', labels: ['content'] },
  records_out: { help: 'Records sent, by content type', labels: ['content'] },
  drops: { help: 'Records (or datagram remainders) silently discarded, by reason', labels: ['reason'] },
  handshakes: { help: 'Handshakes by result (started after a valid cookie)', labels: ['result'] },
  handshake_failures: { help: 'Failed handshakes by reason', labels: ['reason'] },
  handshake_retransmits: { help: 'Retransmissions of our last handshake flight', labels: [] },
  hello_verify_requests: { help: 'HelloVerifyRequests sent (stateless cookie exchange)', labels: [] },
  cookies_invalid: { help: 'ClientHellos carrying a cookie that did not verify', labels: [] },
  reset_tokens_issued: { help: 'Reset tokens handed to devices after a handshake', labels: [] },
  reset_tokens_not_issued: { help: 'CID sessions without a reset token, by reason', labels: ['reason'] },
  unknown_session_records: { help: 'Records for a session the store does not have', labels: ['kind'] },
  heals_sent: { help: 'Heal datagrams sent, by feature', labels: ['kind'] },
  heals_suppressed: { help: 'Heal datagrams not sent, by feature and reason', labels: ['kind', 'reason'] },
  coap: { help: 'CoAP messages handled, by kind', labels: ['kind'] },
  events: { help: 'Device events: accepted (first time), duplicate (same id, same content) or id_reuse (same id, other content)', labels: ['result'] },
  event_id_reuse: { help: 'Events whose id (device, incarnation, seq) was claimed for other content: not delivered, answered 4.09, session discarded, by device', labels: ['device'] },
  sessions_closed: { help: 'Sessions closed by the device', labels: ['reason'] },
  store_errors: { help: 'Session store operations that failed', labels: ['op'] },
  internal_errors: { help: 'Unexpected exceptions while handling a datagram (should stay 0)', labels: [] },
  send_errors: { help: 'Datagrams the socket refused to send', labels: [] },
  webhook_deliveries: { help: 'Events delivered to the webhook (2xx)', labels: [] },
  webhook_failures: { help: 'Failed webhook attempts, by reason', labels: ['reason'] },
  webhook_dead_letters: { help: 'Events the receiver refused permanently, moved to the dead-letter list, by reason', labels: ['reason'] },
  event_log_errors: { help: 'Event log operations that failed (the event is not ACKed / is retried), by op', labels: ['op'] },
  renegotiations_refused: { help: 'Handshake records on established sessions answered with no_renegotiation', labels: [] },
  undecryptable_records: { help: 'Records with a CID naming a device that could not be decrypted (bad MAC, or no session for that CID), by device', labels: ['device'] },
};

/** Times every store operation into a histogram. */
export class InstrumentedStore implements SessionStore {
  readonly kind: SessionStore['kind'];
  constructor(
    readonly inner: SessionStore,
    readonly latency: Histogram<'op'>,
  ) {
    this.kind = inner.kind;
  }
  async #time<T>(op: string, p: Promise<T>): Promise<T> {
    const end = this.latency.startTimer({ op });
    try {
      return await p;
    } finally {
      end();
    }
  }
  get(id: string, nowMs: number): Promise<StoredSession | undefined> {
    return this.#time('get', this.inner.get(id, nowMs));
  }
  put(id: string, s: StoredSession, init: { top: number; nextOutSeq: number }, ttlMs: number, nowMs: number): Promise<void> {
    return this.#time('put', this.inner.put(id, s, init, ttlMs, nowMs));
  }
  accept(id: string, seq: number, outCount: number, ttlMs: number, nowMs: number): Promise<AcceptResult> {
    return this.#time('accept', this.inner.accept(id, seq, outCount, ttlMs, nowMs));
  }
  reserve(id: string, count: number, nowMs: number): Promise<number | undefined> {
    return this.#time('reserve', this.inner.reserve(id, count, nowMs));
  }
  delete(id: string): Promise<void> {
    return this.#time('delete', this.inner.delete(id));
  }
  wipe(): Promise<void> {
    return this.inner.wipe();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

export interface CloudMetrics {
  registry: Registry;
  storeLatency: Histogram<'op'>;
  /** Binds the core whose counters and tables are exported. */
  attach(core: CloudCore, extra?: () => Record<string, number>, events?: EventLog): void;
}

export function createMetrics(): CloudMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
  let core: CloudCore | null = null;
  let extra: (() => Record<string, number>) | undefined;
  let events: EventLog | undefined;
  for (const [name, def] of Object.entries(COUNTER_CATALOGUE)) {
    new Counter({
      name: `${METRIC_PREFIX}${name}_total`,
      help: def.help,
      labelNames: def.labels,
      registers: [registry],
      collect() {
        if (!core) return;
        this.reset();
        for (const [key, value] of core.stats.values) {
          const bar = key.indexOf('|');
          const base = bar < 0 ? key : key.slice(0, bar);
          if (base !== name) continue;
          if (def.labels.length === 0) {
            this.inc(value);
            continue;
          }
          const parts = key.slice(bar + 1).split('/');
          const labels: Record<string, string> = {};
          def.labels.forEach((l, i) => (labels[l] = parts[i] ?? ''));
          this.inc(labels, value);
        }
      },
    });
  }
  new Gauge({
    name: `${METRIC_PREFIX}table_entries`,
    help: 'Entries in the in-process tables (all bounded)',
    labelNames: ['table'],
    registers: [registry],
    collect() {
      if (!core) return;
      this.reset();
      for (const [table, n] of Object.entries({ ...core.tableSizes(), ...(extra?.() ?? {}) })) this.set({ table }, n);
    },
  });
  for (const [name, help, read] of [
    ['event_log_backlog', 'Events in the event log waiting for delivery', (l: EventLog) => l.backlog()],
    ['event_log_dead_letters', 'Events in the dead-letter list (sleepy-session events list)', (l: EventLog) => l.deadCount()],
  ] as const) {
    new Gauge({
      name: `${METRIC_PREFIX}${name}`,
      help,
      registers: [registry],
      async collect() {
        if (!events) return;
        try {
          this.set(await read(events));
        } catch {
          this.set(-1); // the log is unreachable right now
        }
      },
    });
  }
  const storeLatency = new Histogram({
    name: `${METRIC_PREFIX}store_latency_seconds`,
    help: 'Session store operation latency',
    labelNames: ['op'],
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2],
    registers: [registry],
  });
  return {
    registry,
    storeLatency,
    attach(c, e, l) {
      core = c;
      extra = e;
      events = l;
    },
  };
}

/** Serves GET /metrics; returns the server and its port. */
export async function serveMetrics(registry: Registry, port: number, host: string): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try GET /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      () => res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics failed\n'),
    );
  });
  server.listen(port, host);
  await once(server, 'listening');
  const addr = server.address();
  return { server, port: typeof addr === 'object' && addr ? addr.port : port };
}

/** Parses Prometheus text into {"name{labels}": value} (for tests and the CLI). */
export function parsePrometheus(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}
