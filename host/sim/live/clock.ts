/**
 * Accelerated virtual time for the live replay: virtual ms = start + speed × wall ms elapsed,
 * except while paused (the runner pauses it while it kills and restarts real processes, so that a
 * crash or a rollout is an instant of the timeline, as in the in-process replay). Callbacks run
 * on one real timer, at or after their virtual time; they read `now()` (late under load, never early).
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

export class VirtualClock {
  readonly #speed: number;
  #baseVirtualMs: number;
  #baseWallMs = performance.now();
  #paused = true;
  #order = 0;
  #timer: NodeJS.Timeout | null = null;
  readonly #heap = new MinHeap<Entry>((a, b) => a.atMs - b.atMs || a.order - b.order);
  /** The first error a callback threw (the runner fails with it). */
  error: unknown = null;

  constructor(speed: number, startMs = 0) {
    this.#speed = speed;
    this.#baseVirtualMs = startMs;
  }

  now(): number {
    return this.#paused ? this.#baseVirtualMs : this.#baseVirtualMs + (performance.now() - this.#baseWallMs) * this.#speed;
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
      try {
        const p = top.run();
        if (p) p.catch((e: unknown) => this.#fail(e));
      } catch (e) {
        this.#fail(e);
      }
    }
    this.#arm();
  }

  #fail(e: unknown): void {
    this.error ??= e;
  }
}
