/**
 * Webhook delivery: each accepted device event is POSTed as JSON to the configured URL, retried
 * with exponential back-off (with jitter) until a 2xx answer or `maxAttempts`. Events reach this
 * queue once per (device, event seq) — the store's claim de-duplicates — so a receiver sees each
 * event once unless an answer is lost after it processed the request; the `Idempotency-Key`
 * header (device:seq) lets it drop that rare duplicate. Body format in docs/protocol.md.
 */
import type { Counters } from './core.ts';

export interface WebhookOptions {
  url: string;
  maxAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  timeoutMs?: number;
  concurrency?: number;
  /** Events waiting beyond this are refused (counted as webhook_give_ups{reason="queue_full"}). */
  maxQueue?: number;
}

export interface WebhookEvent {
  deviceId: string;
  /** The device's event-stream incarnation (hex), null for devices that send none. */
  incarnation?: string | null;
  name: string;
  seq: number;
  data: Buffer;
  receivedMs: number;
}

interface Job {
  ev: WebhookEvent;
  attempts: number;
}

/** device:incarnation:seq (device:seq without an incarnation): equal keys are the same event. */
export function idempotencyKey(ev: WebhookEvent): string {
  return ev.incarnation ? `${ev.deviceId}:${ev.incarnation}:${ev.seq}` : `${ev.deviceId}:${ev.seq}`;
}

export function webhookBody(ev: WebhookEvent): string {
  return JSON.stringify({
    id: idempotencyKey(ev),
    device: ev.deviceId,
    incarnation: ev.incarnation ?? null,
    event: ev.name,
    seq: ev.seq,
    data: ev.data.toString('base64'),
    receivedAt: new Date(ev.receivedMs).toISOString(),
  });
}

export class WebhookSender {
  readonly url: string;
  readonly #o: Required<Omit<WebhookOptions, 'url'>>;
  readonly #stats: Counters;
  readonly #ready: Job[] = [];
  readonly #timers = new Set<NodeJS.Timeout>();
  #active = 0;
  #waiting = 0;
  #closed = false;
  #idle: (() => void)[] = [];

  constructor(opts: WebhookOptions, stats: Counters) {
    const u = new URL(opts.url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`webhook URL must be http: or https: (got ${u.protocol})`);
    this.url = opts.url;
    this.#o = { maxAttempts: 10, baseDelayMs: 250, maxDelayMs: 30_000, timeoutMs: 5000, concurrency: 16, maxQueue: 100_000, ...opts };
    this.#stats = stats;
  }

  /** Events not yet delivered (queued, in flight or waiting for a retry). */
  get backlog(): number {
    return this.#ready.length + this.#active + this.#waiting;
  }

  enqueue(ev: WebhookEvent): void {
    if (this.#closed) return;
    if (this.backlog >= this.#o.maxQueue) {
      this.#stats.inc('webhook_give_ups', 'queue_full');
      return;
    }
    this.#ready.push({ ev, attempts: 0 });
    this.#pump();
  }

  /** Resolves when nothing is left to deliver. */
  whenIdle(): Promise<void> {
    if (this.backlog === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #pump(): void {
    while (!this.#closed && this.#active < this.#o.concurrency && this.#ready.length > 0) {
      const job = this.#ready.shift()!;
      this.#active++;
      void this.#attempt(job).finally(() => {
        this.#active--;
        this.#pump();
        if (this.backlog === 0) for (const r of this.#idle.splice(0)) r();
      });
    }
  }

  async #attempt(job: Job): Promise<void> {
    job.attempts++;
    let failure: string;
    try {
      const res = await fetch(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': idempotencyKey(job.ev) },
        body: webhookBody(job.ev),
        signal: AbortSignal.timeout(this.#o.timeoutMs),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) {
        this.#stats.inc('webhook_deliveries');
        return;
      }
      failure = `http_${res.status >= 500 ? '5xx' : res.status >= 400 ? '4xx' : 'other'}`;
    } catch (e) {
      failure = (e as Error).name === 'TimeoutError' ? 'timeout' : 'network';
    }
    this.#stats.inc('webhook_failures', failure);
    if (job.attempts >= this.#o.maxAttempts) {
      this.#stats.inc('webhook_give_ups', 'max_attempts');
      return;
    }
    if (this.#closed) return;
    const backoff = Math.min(this.#o.maxDelayMs, this.#o.baseDelayMs * 2 ** (job.attempts - 1));
    const delay = backoff * (1 + 0.2 * Math.random());
    this.#waiting++;
    const t = setTimeout(() => {
      this.#timers.delete(t);
      this.#waiting--;
      this.#ready.push(job);
      this.#pump();
    }, delay);
    this.#timers.add(t);
  }

  /** Stops retrying; events still queued are counted as given up. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    const left = this.#ready.length + this.#waiting;
    if (left > 0) this.#stats.inc('webhook_give_ups', 'shutdown', left);
    this.#timers.clear();
    this.#ready.length = 0;
    this.#waiting = 0;
    for (const r of this.#idle.splice(0)) r();
  }
}
