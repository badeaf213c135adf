/**
 * Webhook delivery from the event log (docs/protocol.md §8). Each process is one consumer: it
 * takes entries nobody has, POSTs each as JSON, removes it from the log on a 2xx, and otherwise
 * retries with capped exponential back-off for as long as it takes. A receiver that refuses an
 * event permanently (a 4xx other than 408/425/429) sends it to the dead-letter list, visible in
 * metrics and retrievable with `sleepy-session events`. Entries of a process that died are taken
 * over by another after `reclaimIdleMs`. Nothing is given up: the only duplicates a receiver can
 * see carry the same idempotency key (device, incarnation, seq).
 */
import crypto from 'node:crypto';
import os from 'node:os';
import type { Counters } from './core.ts';
import { idempotencyKey, type DeviceEvent, type EventLog, type LoggedEvent } from './events.ts';

export interface WebhookOptions {
  url: string;
  baseDelayMs?: number;
  /** Cap of the back-off between attempts at one event (it is retried forever). */
  maxDelayMs?: number;
  timeoutMs?: number;
  concurrency?: number;
  /** Entries held by this process at once (being sent or waiting for a retry). */
  maxInHand?: number;
  /** Poll interval of the log when it was empty. */
  pollMs?: number;
  /** Entries another consumer took and left untouched this long are taken over. */
  reclaimIdleMs?: number;
  /** Consumer name (default: host, pid and a random part). */
  consumer?: string;
  /**
   * Consumers of the group (other processes, long gone) idle this long with nothing pending are
   * removed from it; checked every min(this, 60 s).
   */
  consumerIdleMs?: number;
}

export function webhookBody(ev: DeviceEvent): string {
  return JSON.stringify({
    id: idempotencyKey(ev),
    device: ev.deviceId,
    incarnation: ev.incarnation,
    event: ev.name,
    seq: ev.seq,
    data: ev.data.toString('base64'),
    receivedAt: new Date(ev.receivedMs).toISOString(),
  });
}

/** Statuses that say "this request will never succeed": the event goes to the dead-letter list. */
export function isPermanentRefusal(status: number): boolean {
  return status >= 400 && status < 500 && status !== 408 && status !== 425 && status !== 429;
}

interface Job {
  entry: LoggedEvent;
  attempts: number;
  timer: NodeJS.Timeout | null;
  /** Delivered, but removing it from the log failed: only that is retried. */
  delivered: boolean;
}

export class WebhookDelivery {
  readonly url: string;
  readonly consumer: string;
  readonly #o: Required<Omit<WebhookOptions, 'url' | 'consumer'>>;
  readonly #log: EventLog;
  readonly #stats: Counters;
  readonly #jobs = new Map<string, Job>();
  readonly #ready: Job[] = [];
  #active = 0;
  #closed = false;
  #loop: Promise<void> | null = null;
  #wake: (() => void) | null = null;
  #lastReclaimMs = 0;
  #lastPruneMs = 0;
  #logErrors = 0;

  constructor(opts: WebhookOptions, log: EventLog, stats: Counters) {
    const u = new URL(opts.url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`webhook URL must be http: or https: (got ${u.protocol})`);
    this.url = opts.url;
    this.consumer = opts.consumer ?? `${os.hostname()}-${process.pid}-${crypto.randomBytes(3).toString('hex')}`;
    this.#o = { baseDelayMs: 250, maxDelayMs: 30_000, timeoutMs: 5000, concurrency: 16, maxInHand: 1000, pollMs: 20, reclaimIdleMs: 60_000, consumerIdleMs: 3_600_000, ...opts };
    this.#log = log;
    this.#stats = stats;
  }

  /** Events this process holds (being sent or waiting for a retry). */
  get inHand(): number {
    return this.#jobs.size;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** Something was appended: look now rather than at the next poll. */
  nudge(): void {
    this.#wake?.();
  }

  async #run(): Promise<void> {
    while (!this.#closed) {
      let got = 0;
      try {
        const room = this.#o.maxInHand - this.#jobs.size;
        if (room > 0) {
          const now = Date.now();
          if (now - this.#lastReclaimMs >= Math.min(this.#o.reclaimIdleMs, 1000)) {
            this.#lastReclaimMs = now;
            got += this.#add(await this.#log.reclaim(this.consumer, this.#o.reclaimIdleMs, room));
          }
          if (this.#o.maxInHand - this.#jobs.size > 0) got += this.#add(await this.#log.take(this.consumer, this.#o.maxInHand - this.#jobs.size));
        }
        const now = Date.now();
        if (this.#log.pruneConsumers && now - this.#lastPruneMs >= Math.min(this.#o.consumerIdleMs, 60_000)) {
          this.#lastPruneMs = now;
          await this.#log.pruneConsumers(this.#o.consumerIdleMs).catch(() => this.#stats.inc('event_log_errors', 'prune'));
        }
        this.#logErrors = 0;
      } catch {
        this.#stats.inc('event_log_errors', 'read');
        this.#logErrors++;
      }
      if (got === 0 && !this.#closed) {
        // Empty, full, or the log is down: wait (longer while the log keeps failing).
        const wait = this.#logErrors > 0 ? Math.min(1000, this.#o.pollMs * 2 ** this.#logErrors) : this.#o.pollMs;
        await new Promise<void>((r) => {
          const t = setTimeout(r, wait);
          this.#wake = () => {
            clearTimeout(t);
            r();
          };
        });
        this.#wake = null;
      }
    }
  }

  #add(list: LoggedEvent[]): number {
    let n = 0;
    for (const entry of list) {
      if (this.#jobs.has(entry.id)) continue; // ours already (reclaimed while waiting for a retry)
      const job: Job = { entry, attempts: 0, timer: null, delivered: false };
      this.#jobs.set(entry.id, job);
      this.#ready.push(job);
      n++;
    }
    this.#pump();
    return n;
  }

  #pump(): void {
    while (!this.#closed && this.#active < this.#o.concurrency && this.#ready.length > 0) {
      const job = this.#ready.shift()!;
      this.#active++;
      void this.#attempt(job).finally(() => {
        this.#active--;
        this.#pump();
      });
    }
  }

  #retryLater(job: Job): void {
    if (this.#closed) return;
    const backoff = Math.min(this.#o.maxDelayMs, this.#o.baseDelayMs * 2 ** Math.min(30, job.attempts - 1));
    job.timer = setTimeout(() => {
      job.timer = null;
      this.#ready.push(job);
      this.#pump();
    }, backoff * (1 + 0.2 * Math.random()));
  }

  async #attempt(job: Job): Promise<void> {
    const { entry } = job;
    if (!job.delivered) {
      job.attempts++;
      // Keep the entry ours while we work on it (another process would take it over when idle).
      if (job.attempts > 1) await this.#log.touch(this.consumer, [entry.id]).catch(() => undefined);
      let failure: string;
      try {
        const res = await fetch(this.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': idempotencyKey(entry.ev) },
          body: webhookBody(entry.ev),
          signal: AbortSignal.timeout(this.#o.timeoutMs),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) {
          this.#stats.inc('webhook_deliveries');
          job.delivered = true;
        } else if (isPermanentRefusal(res.status)) {
          try {
            await this.#log.deadLetter(entry, `http_${res.status}`, Date.now());
            this.#stats.inc('webhook_dead_letters', `http_${res.status}`);
            this.#jobs.delete(entry.id);
          } catch {
            this.#stats.inc('event_log_errors', 'dead_letter');
            this.#retryLater(job);
          }
          return;
        }
        failure = res.ok ? '' : `http_${res.status >= 500 ? '5xx' : res.status >= 400 ? '4xx' : 'other'}`;
      } catch (e) {
        failure = (e as Error).name === 'TimeoutError' ? 'timeout' : 'network';
      }
      if (!job.delivered) {
        this.#stats.inc('webhook_failures', failure);
        this.#retryLater(job);
        return;
      }
    }
    try {
      await this.#log.ack([entry.id]);
      this.#jobs.delete(entry.id);
    } catch {
      // Delivered but still in the log: retry the removal (a crash now means one redelivery, same key).
      this.#stats.inc('event_log_errors', 'ack');
      this.#retryLater(job);
    }
  }

  /** Resolves when this process holds nothing and the log is empty (tests). */
  async whenIdle(pollMs = 20): Promise<void> {
    while (!this.#closed && (this.#jobs.size > 0 || (await this.#log.backlog().catch(() => 1)) > 0)) await new Promise((r) => setTimeout(r, pollMs));
  }

  /** Stops; what this process holds stays in the log for the next process (or another one) to deliver. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const j of this.#jobs.values()) if (j.timer) clearTimeout(j.timer);
    this.#wake?.();
    await this.#loop;
    this.#jobs.clear();
    this.#ready.length = 0;
  }
}
