/**
 * A progress line for long replays: wakes done of the expected total, the rate, and the time left.
 * Written over itself on a terminal (stderr); nothing at all when stderr is not a terminal or under
 * CI, so logs and piped output stay clean.
 */
import { deviceSpec, endMs, type FleetOptions } from './spec.ts';

/** Wakes the replay will simulate, about (each device wakes every wakeEvery + awake from its first wake). */
export function expectedWakes(o: Pick<FleetOptions, 'devices' | 'days' | 'seed' | 'sleepyShare' | 'timeline' | 'schedule' | 'profiles'>): number {
  const end = endMs(o);
  let n = 0;
  for (let i = 0; i < o.devices; i++) {
    const d = deviceSpec(o, i);
    if (d.firstWakeMs < end) n += 1 + Math.floor((end - d.firstWakeMs) / (d.wakeEveryMs + d.awakeMs));
  }
  return n * o.profiles.length;
}

/** "12,000 / 80,000 wakes (15 %), 1,400 wakes/s, about 43 s left". */
export function progressLine(done: number, total: number, elapsedMs: number): string {
  const rate = elapsedMs > 0 ? (done * 1000) / elapsedMs : 0;
  const pct = total > 0 ? Math.min(100, Math.floor((100 * done) / total)) : 0;
  const leftS = rate > 0 ? Math.max(0, (total - done) / rate) : NaN;
  const left = Number.isFinite(leftS) ? (leftS >= 90 ? `about ${Math.round(leftS / 60)} min left` : `about ${Math.round(leftS)} s left`) : 'time left unknown';
  return `replay: ${done.toLocaleString('en-US')} / ~${total.toLocaleString('en-US')} wakes (${pct} %), ${Math.round(rate).toLocaleString('en-US')} wakes/s, ${left}`;
}

export interface ProgressStream {
  isTTY?: boolean;
  write(s: string): unknown;
}

/** How often `--progress` writes a line when stderr is not a terminal (a log: lines, not rewrites). */
export const LOG_PROGRESS_EVERY_MS = 30_000;

/**
 * Shows progressLine at most once a second on a terminal; `add` is the runner's onWakes. With
 * `forced` (`--progress`) it also writes to a log — stderr not a terminal, or CI — one line every
 * LOG_PROGRESS_EVERY_MS and a last line with the totals.
 */
export class Progress {
  readonly enabled: boolean;
  readonly #lines: boolean;
  #done = 0;
  #shown = 0;
  readonly #t0 = performance.now();

  constructor(private readonly total: number, private readonly out: ProgressStream, env: NodeJS.ProcessEnv = process.env, forced = false) {
    const terminal = out.isTTY === true && !env.CI;
    this.enabled = terminal || forced;
    this.#lines = !terminal;
  }

  add = (wakes: number): void => {
    this.#done += wakes;
    if (!this.enabled) return;
    const now = performance.now();
    if (now - this.#shown < (this.#lines ? LOG_PROGRESS_EVERY_MS : 1000)) return;
    if (this.#lines && this.#shown === 0 && now - this.#t0 < LOG_PROGRESS_EVERY_MS) return;
    this.#shown = now;
    const line = progressLine(this.#done, this.total, now - this.#t0);
    this.out.write(this.#lines ? `${line}\n` : `\r\x1b[2K${line}`);
  };

  /** Clears the line (the summary follows); in a log, a last line with the totals. */
  end(): void {
    if (!this.enabled) return;
    if (!this.#lines) {
      if (this.#shown > 0) this.out.write('\r\x1b[2K');
      return;
    }
    const s = Math.max(0.001, (performance.now() - this.#t0) / 1000);
    this.out.write(`replay: ${this.#done.toLocaleString('en-US')} wakes in ${s.toFixed(0)} s, ${Math.round(this.#done / s).toLocaleString('en-US')} wakes/s\n`);
  }
}
