/**
 * What one engine did in one conformance scenario, step by step, and the parity checker that
 * compares such traces across engines and names the first difference.
 *
 * A step is one observable output of the module (a transmitted datagram, received application
 * data, a persisted write, an event, a crypto result, the counters, the linear memory at the end)
 * or the outcome of one call (its result and the state afterwards). Everything in a trace comes
 * from the module or from the seed, so for the same scenario and seed every engine must produce
 * an identical trace.
 */

export type StepKind =
  | 'call' // an input call: what (name and arguments), bytes = input bytes if any, fields = result/state
  | 'tx' // one datagram from poll_transmit
  | 'app-rx' // one application record from recv
  | 'store' // one persistent-memory write from poll_store (lifecycle issue)
  | 'event' // one application event from poll_event (lifecycle issue)
  | 'crypto' // the output of a crypto_* export
  | 'counters' // counters_read, as named fields
  | 'memory' // the whole linear memory (bytes) and its size / heap pointer (fields)
  | 'error'; // the scenario stopped: a trap or a failed scenario check (fields.message)

export interface Step {
  kind: StepKind;
  /** What happened, in engine-independent words, e.g. "handle_datagram(t=3000, 87 B)" or "tx #4". */
  what: string;
  bytes?: Uint8Array;
  fields?: Record<string, string | number | boolean | null>;
}

export interface Trace {
  scenario: string;
  seed: number;
  engine: string;
  steps: Step[];
  /** Set when the scenario did not run to the end (also recorded as a final 'error' step). */
  error?: string;
}

/** Collects steps for one run. Scenarios get one through their context. */
export class TraceRecorder {
  readonly steps: Step[] = [];
  /** Per-kind running numbers, so labels like "tx #4" count datagrams of one kind. */
  private readonly seen = new Map<StepKind, number>();

  record(kind: StepKind, what: string, data: { bytes?: Uint8Array; fields?: Step['fields'] } = {}): void {
    const step: Step = { kind, what };
    if (data.bytes) step.bytes = Uint8Array.from(data.bytes); // a copy: the caller may reuse its buffer
    if (data.fields) step.fields = { ...data.fields };
    this.steps.push(step);
  }

  /** The next running number for `kind` (1-based). */
  next(kind: StepKind): number {
    const n = (this.seen.get(kind) ?? 0) + 1;
    this.seen.set(kind, n);
    return n;
  }
}

/** The first place where two engines' traces of the same scenario and seed differ. */
export interface ParityDifference {
  scenario: string;
  seed: number;
  /** 0-based index of the first differing step. */
  step: number;
  reference: { engine: string; step?: Step };
  other: { engine: string; step?: Step };
  /** What differs: 'kind', 'what', 'field <name>', 'bytes' or 'length' (one trace ended). */
  aspect: string;
  /** For 'bytes': the first differing byte offset. */
  offset?: number;
  /** Human-readable report, several lines. */
  message: string;
}

/**
 * Compares every trace with the first (the reference engine) and returns the first difference,
 * or null when all traces are identical. All traces must be of the same scenario and seed.
 */
export function checkParity(traces: readonly Trace[]): ParityDifference | null {
  if (traces.length < 2) return null;
  const [ref, ...others] = traces;
  for (const t of others) {
    if (t.scenario !== ref.scenario || t.seed !== ref.seed) {
      throw new Error(`checkParity: traces of different runs (${ref.scenario}#${ref.seed} vs ${t.scenario}#${t.seed})`);
    }
    const d = firstDifference(ref, t);
    if (d) return d;
  }
  return null;
}

/** Throws an Error carrying the report when the traces differ. */
export function assertParity(traces: readonly Trace[]): void {
  const d = checkParity(traces);
  if (d) throw new ParityError(d);
}

export class ParityError extends Error {
  constructor(readonly difference: ParityDifference) {
    super(difference.message);
    this.name = 'ParityError';
  }
}

function firstDifference(ref: Trace, other: Trace): ParityDifference | null {
  const n = Math.max(ref.steps.length, other.steps.length);
  for (let i = 0; i < n; i++) {
    const a = ref.steps[i];
    const b = other.steps[i];
    const found = compareSteps(a, b);
    if (found) {
      const base = { scenario: ref.scenario, seed: ref.seed, step: i, reference: { engine: ref.engine, step: a }, other: { engine: other.engine, step: b } };
      return { ...base, ...found, message: report(ref, other, i, found) };
    }
  }
  return null;
}

interface Found {
  aspect: string;
  offset?: number;
}

function compareSteps(a: Step | undefined, b: Step | undefined): Found | null {
  if (!a || !b) return { aspect: 'length' };
  if (a.kind !== b.kind) return { aspect: 'kind' };
  if (a.what !== b.what) return { aspect: 'what' };
  const names = [...new Set([...Object.keys(a.fields ?? {}), ...Object.keys(b.fields ?? {})])];
  for (const name of names) {
    const x = a.fields?.[name];
    const y = b.fields?.[name];
    if (!Object.is(x, y)) return { aspect: `field ${name}` };
  }
  if (!a.bytes !== !b.bytes) return { aspect: 'bytes', offset: 0 };
  if (a.bytes && b.bytes) {
    const len = Math.min(a.bytes.length, b.bytes.length);
    let off = 0;
    while (off < len && a.bytes[off] === b.bytes[off]) off++;
    if (off < len || a.bytes.length !== b.bytes.length) return { aspect: 'bytes', offset: off };
  }
  return null;
}

/** Hex of a whole byte string up to this length; longer ones are shown as a window. */
const FULL_HEX_BYTES = 128;
const WINDOW_BYTES = 32;

export function hexWindow(bytes: Uint8Array | undefined, offset = 0): string {
  if (!bytes) return '(no bytes)';
  const hex = (from: number, to: number) => Buffer.from(bytes.subarray(from, to)).toString('hex');
  if (bytes.length <= FULL_HEX_BYTES) return hex(0, bytes.length) || '(empty)';
  const from = Math.max(0, offset - WINDOW_BYTES / 2);
  const to = Math.min(bytes.length, from + WINDOW_BYTES);
  return `[${from}..${to}) ${from > 0 ? '…' : ''}${hex(from, to)}${to < bytes.length ? '…' : ''}`;
}

function describeStep(s: Step | undefined): string {
  if (!s) return '(trace ended)';
  const len = s.bytes ? `, ${s.bytes.length} B` : '';
  return `${s.what.startsWith(s.kind) ? '' : `${s.kind} `}${s.what}${len}`;
}

function report(ref: Trace, other: Trace, i: number, f: Found): string {
  const a = ref.steps[i];
  const b = other.steps[i];
  const w = Math.max(ref.engine.length, other.engine.length);
  const name = (e: string) => e.padEnd(w);
  const lines = [
    `engine parity: scenario ${ref.scenario}, seed ${ref.seed}: step ${i} differs (${f.aspect}) between ${ref.engine} and ${other.engine}`,
  ];
  if (i > 0) lines.push(`  after: ${describeStep(ref.steps[i - 1])}`);
  lines.push(`  ${name(ref.engine)}: ${describeStep(a)}`, `  ${name(other.engine)}: ${describeStep(b)}`);
  if (f.aspect === 'length') {
    const [longer, shorter] = a ? [ref, other] : [other, ref];
    lines.push(`  ${shorter.engine} ended after ${shorter.steps.length} steps, ${longer.engine} has ${longer.steps.length}`);
  } else if (f.aspect.startsWith('field ')) {
    const field = f.aspect.slice(6);
    lines.push(`  ${name(ref.engine)}: ${field} = ${JSON.stringify(a!.fields?.[field])}`, `  ${name(other.engine)}: ${field} = ${JSON.stringify(b!.fields?.[field])}`);
  } else if (f.aspect === 'bytes') {
    lines.push(`  first differing byte at offset ${f.offset}`);
    lines.push(`  ${name(ref.engine)}: ${hexWindow(a!.bytes, f.offset)}`, `  ${name(other.engine)}: ${hexWindow(b!.bytes, f.offset)}`);
  }
  for (const [t, s] of [[ref, a], [other, b]] as const) {
    if (s?.kind === 'error') lines.push(`  ${t.engine} stopped: ${String(s.fields?.message)}`);
  }
  return lines.join('\n');
}
