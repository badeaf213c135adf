/** Small benchmark helpers: time-boxed loops, interleaved rounds, a printed table. */

export interface Measured {
  name: string;
  opsPerSec: number;
}

/** Runs `fn` in batches until `ms` elapsed; returns operations per second. */
export function rate(fn: () => void, ms: number, batch = 100): number {
  for (let i = 0; i < batch; i++) fn(); // warm up the JIT
  let ops = 0;
  const start = process.hrtime.bigint();
  const limit = BigInt(ms) * 1_000_000n;
  let elapsed = 0n;
  while (elapsed < limit) {
    for (let i = 0; i < batch; i++) fn();
    ops += batch;
    elapsed = process.hrtime.bigint() - start;
  }
  return ops / (Number(elapsed) / 1e9);
}

/**
 * Measures several contenders in alternating rounds so that machine noise hits all of them alike;
 * reports the median of the rounds.
 */
export function compare(contenders: Record<string, () => void>, rounds = 5, msPerRound = 200): Record<string, number> {
  const samples: Record<string, number[]> = {};
  for (const k of Object.keys(contenders)) samples[k] = [];
  for (let r = 0; r < rounds; r++) {
    for (const [k, fn] of Object.entries(contenders)) samples[k].push(rate(fn, msPerRound));
  }
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(samples)) out[k] = median(v);
  return out;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const line = (r: string[]) => '| ' + r.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |';
  return [line(headers), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...cells.slice(1).map(line)].join('\n');
}

export const fmt = (n: number): string => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2));

/** Wall-clock ms with sub-millisecond resolution (comparable across processes on one machine). */
export const wallMs = (): number => performance.timeOrigin + performance.now();
