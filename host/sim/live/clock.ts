/**
 * Accelerated virtual time for the live replay: virtual ms = start + speed × wall ms elapsed,
 * except while paused (the runner pauses it while it kills and restarts real processes, so that a
 * crash or a rollout is an instant of the timeline, as in the in-process replay). Callbacks run
 * on one real timer, at or after their virtual time; they read `now()` (never early).
 *
 * Paced by the runner: virtual time never runs more than `paceSlackMs` ahead of the earliest
 * callback not yet run. On a machine too busy to keep up with `speed` (another CPU-heavy job, a
 * slow CI host) the clock holds instead of running away, so a wake starts, a device's timer fires
 * and a datagram is received at the virtual time it would have on an idle machine: what the
 * devices see does not depend on the machine's speed, only the wall time does (`heldWallMs`).
 */
import { MinHeap } from '../fleet/partition.ts';

export interface ClockTimer {
  cancelled: boolean;
}

interface Entry extends ClockTimer {
  atMs: number;
  order: number;
  run: () => void | Promise<void>;
}

/** Default pacing slack (virtual ms): at ×60, 8 ms of wall time. */
export const PACE_SLACK_MS = 500;

export class VirtualClock {
  #speed: number;
  readonly #paceSlackMs: number;
  /** The largest value now() returned: time never goes back. */
  #last = 0;
  #heldWallMs = 0;
  #baseVirtualMs: number;
  #baseWallMs = performance.now();
  #paused = true;
  #order = 0;
  #timer: NodeJS.Timeout | null = null;
  /** Callbacks taken off the heap and not finished (an async one until its promise settles). */
  readonly #running = new Set<Entry>();
  readonly #heap = new MinHeap<Entry>((a, b) => a.atMs - b.atMs || a.order - b.order);
  /** The first error a callback threw (the runner fails with it). */
  error: unknown = null;

  /** `paceSlackMs`: Infinity for a clock that runs at `speed` whatever the runner does (no pacing). */
  constructor(speed: number, startMs = 0, paceSlackMs = PACE_SLACK_MS) {
    this.#speed = speed;
    this.#baseVirtualMs = startMs;
    this.#last = startMs;
    this.#paceSlackMs = paceSlackMs;
  }

  now(): number {
    if (this.#paused) return this.#baseVirtualMs;
    const wall = performance.now();
    let v = this.#baseVirtualMs + (wall - this.#baseWallMs) * this.#speed;
    const floor = this.#earliestUnfinishedMs();
    if (v > floor + this.#paceSlackMs) {
      // The runner is behind its callbacks: hold time there (never going back) and run on from it.
      const held = Math.max(this.#last, floor + this.#paceSlackMs);
      this.#heldWallMs += (v - held) / this.#speed;
      v = held;
      this.#baseVirtualMs = v;
      this.#baseWallMs = wall;
    }
    this.#last = Math.max(this.#last, v);
    return this.#last;
  }

  /** The earliest virtual time of a callback not yet run, running, or awaiting (an async one). */
  #earliestUnfinishedMs(): number {
    let m = this.#heap.peek()?.atMs ?? Infinity;
    for (const e of this.#running) m = Math.min(m, e.atMs);
    return m;
  }

  /** Wall ms the clock was held for the runner to catch up (0 on a machine that keeps up with `speed`). */
  get heldWallMs(): number {
    return this.#heldWallMs;
  }

  get speed(): number {
    return this.#speed;
  }

  /** Changes the rate from now on (the runner slows it while the cloud processes answer late). */
  setSpeed(speed: number): void {
    if (!(speed > 0)) throw new RangeError(`clock: speed must be positive (got ${speed})`);
    if (!this.#paused) {
      this.#baseVirtualMs = this.now();
      this.#baseWallMs = performance.now();
    }
    this.#speed = speed;
    this.#arm();
  }

  get paused(): boolean {
    return this.#paused;
  }

  /** Runs `run` at virtual `atMs` (at once if that has passed). */
  at(atMs: number, run: () => void | Promise<void>): ClockTimer {
    const e: Entry = { atMs, order: this.#order++, run, cancelled: false };
    this.#heap.push(e);
    if (this.#heap.peek() === e) this.#arm();
    return e;
  }

  pause(): void {
    if (this.#paused) return;
    this.#baseVirtualMs = this.now();
    this.#last = this.#baseVirtualMs;
    this.#paused = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#baseWallMs = performance.now();
    this.#paused = false;
    this.#arm();
  }

  #arm(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const top = this.#heap.peek();
    if (this.#paused || !top) return;
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, (top.atMs - this.now()) / this.#speed));
  }

  #fire(): void {
    this.#timer = null;
    for (let top = this.#heap.peek(); top && !this.#paused && top.atMs <= this.now(); top = this.#heap.peek()) {
      this.#heap.pop();
      if (top.cancelled) continue;
      const e = top;
      this.#running.add(e);
      try {
        const p = e.run();
        if (p) {
          p.catch((err: unknown) => this.#fail(err)).finally(() => this.#running.delete(e));
        } else this.#running.delete(e);
      } catch (err) {
        this.#running.delete(e);
        this.#fail(err);
      }
    }
    this.#arm();
  }

  #fail(e: unknown): void {
    this.error ??= e;
  }
}
