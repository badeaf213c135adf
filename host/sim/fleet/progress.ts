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

/** Shows progressLine at most once a second on a terminal; `add` is the runner's onWakes. */
export class Progress {
  readonly enabled: boolean;
  #done = 0;
  #shown = 0;
  readonly #t0 = performance.now();

  constructor(private readonly total: number, private readonly out: ProgressStream, env: NodeJS.ProcessEnv = process.env) {
    this.enabled = out.isTTY === true && !env.CI;
  }

  add = (wakes: number): void => {
    this.#done += wakes;
    if (!this.enabled) return;
    const now = performance.now();
    if (now - this.#shown < 1000) return;
    this.#shown = now;
    this.out.write(`\r\x1b[2K${progressLine(this.#done, this.total, now - this.#t0)}`);
  };

  /** Clears the line (the summary follows). */
  end(): void {
    if (this.enabled && this.#shown > 0) this.out.write('\r\x1b[2K');
  }
}
