/**
 * The board's RTC for a host that runs in real or accelerated time and may be stopped and started
 * again (the `device` command): virtual milliseconds that keep running across process restarts.
 *
 *   virtual(now) = anchor.virtualMs + (wall now − anchor.wallMs) × anchor.speed
 *
 * The anchor is persisted next to the flash image. A new process continues from the persisted
 * anchor at the speed that anchor was taken with (an upper bound of every time the stopped process
 * can have used, so time never runs backwards even when --speed changes), then re-anchors at its
 * own speed. A first start begins at the wall clock (Date.now()), so at --speed 1 virtual time is
 * real time. A wall clock that steps back while the process runs is absorbed (virtual time
 * stands still until it catches up); one that steps back while the device is stopped costs at most
 * the time since the last persisted anchor (taken at every wake).
 */
export interface ClockAnchor {
  wallMs: number;
  virtualMs: number;
  /** Virtual ms per wall ms from this anchor on. */
  speed: number;
}

export class ScaledClock {
  private anchor: ClockAnchor;
  private lastMs: number;

  /** Continues `saved` (or starts at the wall clock) and re-anchors at `speed`. */
  constructor(saved: ClockAnchor | null, speed: number, private readonly wallNow: () => number = Date.now) {
    const wall = wallNow();
    const v = saved ? ScaledClock.at(saved, wall) : wall;
    this.anchor = { wallMs: wall, virtualMs: v, speed };
    this.lastMs = v;
  }

  private static at(a: ClockAnchor, wallMs: number): number {
    return Math.round(a.virtualMs + Math.max(0, wallMs - a.wallMs) * a.speed);
  }

  /** Virtual ms now; never less than a value returned before. */
  now(): number {
    this.lastMs = Math.max(this.lastMs, ScaledClock.at(this.anchor, this.wallNow()));
    return this.lastMs;
  }

  /** Re-anchors at the current time; persist the result: continuing from it never goes back. */
  mark(): ClockAnchor {
    const virtualMs = this.now();
    this.anchor = { wallMs: this.wallNow(), virtualMs, speed: this.anchor.speed };
    return { ...this.anchor };
  }

  /** Wall milliseconds until virtual time `virtualMs` (0 if past). */
  wallMsUntil(virtualMs: number): number {
    return Math.max(0, (virtualMs - this.now()) / this.anchor.speed);
  }
}
