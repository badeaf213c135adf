/**
 * The one flag parser of every `sleepy-session` subcommand: node:util parseArgs (strict) over a
 * declared list of flags, which also generates each subcommand's `--help`. Every mistake is one
 * line naming the flag and what is allowed (a UsageError; exit code 2), before anything starts.
 */
import { parseArgs } from 'node:util';

export class UsageError extends Error {}

export interface FlagSpec {
  name: string;
  /** Placeholder of the value (e.g. "FILE"); absent for a switch that takes no value. */
  value?: string;
  help: string;
  /** Shown in the help text. */
  default?: string;
}

export interface CommandSpec {
  /** e.g. "cloud" or "events list". */
  name: string;
  summary: string;
  flags: FlagSpec[];
  /** Extra lines after the flag list. */
  notes?: string;
}

export type ParsedFlags = Record<string, string | boolean | undefined>;

export function helpText(spec: CommandSpec): string {
  const rows = spec.flags.map((f) => [`--${f.name}${f.value ? ` ${f.value}` : ''}`, f.help + (f.default !== undefined ? ` (default ${f.default})` : '')]);
  rows.push(['--help, -h', 'this text']);
  const width = Math.max(...rows.map((r) => r[0].length)) + 2;
  const lines = [`usage: sleepy-session ${spec.name} [flags]`, '', `  ${spec.summary}`, '', ...rows.map(([a, b]) => `  ${a.padEnd(width)}${b}`)];
  if (spec.notes) lines.push('', spec.notes);
  return lines.join('\n');
}

/** Parses argv against the spec; 'help' when --help/-h was given. Throws a one-line UsageError. */
export function parseFlags(spec: CommandSpec, argv: string[]): ParsedFlags | 'help' {
  if (argv.includes('--help') || argv.includes('-h')) return 'help';
  const options: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const f of spec.flags) options[f.name] = { type: f.value ? 'string' : 'boolean' };
  const allowed = spec.flags.map((f) => `--${f.name}`).join(', ') || '(none)';
  // "--devices -5": parseArgs would take -5 for a flag and say the value is missing; a negative
  // number is a value, so it reaches the flag's own check, which names the allowed range.
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const name = /^--([a-z0-9-]+)$/.exec(argv[i])?.[1];
    if (name && options[name]?.type === 'string' && i + 1 < argv.length && /^-(\d|\.\d)/.test(argv[i + 1])) {
      args.push(`${argv[i]}=${argv[i + 1]}`);
      i++;
    } else args.push(argv[i]);
  }
  let parsed;
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: false, tokens: true });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const msg = err.message.split('\n')[0];
    if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const flag = /'([^']+)'/.exec(msg)?.[1] ?? msg;
      throw new UsageError(`${spec.name}: unknown flag ${flag}; allowed: ${allowed}`);
    }
    if (err.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      const arg = /'([^']+)'/.exec(msg)?.[1] ?? msg;
      throw new UsageError(`${spec.name}: unexpected argument '${arg}'; flags are: ${allowed}`);
    }
    if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      const flag = /--([a-z0-9-]+)/.exec(msg)?.[1];
      const f = spec.flags.find((x) => x.name === flag);
      if (f && !f.value) throw new UsageError(`${spec.name}: --${f.name} takes no value`);
      throw new UsageError(`${spec.name}: flag --${flag ?? '?'} needs a value${f?.value ? ` (${f.value})` : ''}`);
    }
    throw new UsageError(`${spec.name}: ${msg}`);
  }
  const seen = new Set<string>();
  for (const t of parsed.tokens ?? []) {
    if (t.kind !== 'option') continue;
    if (seen.has(t.name)) throw new UsageError(`${spec.name}: flag --${t.name} given twice`);
    seen.add(t.name);
    // parseArgs takes "--flag --other" as a value only when written --flag=--other; say so plainly.
    if (options[t.name]?.type === 'string' && t.inlineValue === false && typeof t.value === 'string' && t.value.startsWith('--')) {
      throw new UsageError(`${spec.name}: flag --${t.name} needs a value`);
    }
  }
  return parsed.values as ParsedFlags;
}

/** A string flag's value ('' never counts as given). */
export function str(flags: ParsedFlags, name: string): string | undefined {
  const v = flags[name];
  return typeof v === 'string' ? v : undefined;
}

/** Parses "15m", "90s", "2h40m", "500ms" or plain milliseconds. */
export function duration(command: string, flag: string, value: string): number {
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  if (/^\d+$/.test(value)) return Number(value);
  const parts = [...value.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== value) {
    throw new UsageError(`${command}: --${flag} must be a duration like 500ms, 90s, 15m or 2h40m (got '${value}')`);
  }
  return Math.round(parts.reduce((ms, p) => ms + Number(p[1]) * units[p[2]], 0));
}

/** Validates an enumerated flag value and names the allowed ones on error. */
export function oneOf<T extends string>(command: string, flag: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new UsageError(`${command}: --${flag} must be one of ${allowed.join(', ')} (got '${value}')`);
  }
  return value as T;
}

export function hostPort(command: string, flag: string, value: string | undefined): { host: string; port: number } {
  const m = value?.match(/^(.+):(\d{1,5})$/);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) throw new UsageError(`${command}: --${flag} must be HOST:PORT with a port 1..65535 (got '${value ?? ''}')`);
  return { host: m[1], port };
}

export function portFlag(command: string, flag: string, value: string): number {
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) throw new UsageError(`${command}: --${flag} must be a port number 0..65535 (got '${value}')`);
  return Number(value);
}

export function redisUrl(command: string, flag: string, value: string, allowMemory: boolean): string {
  if (allowMemory && value === 'memory') return value;
  if (!/^rediss?:\/\/[^\s/:]+(:\d{1,5})?(\/\d+)?$/.test(value)) {
    throw new UsageError(`${command}: --${flag} must be ${allowMemory ? 'memory or ' : ''}redis://HOST:PORT (got '${value}')`);
  }
  return value;
}

/** A text flag that must not be empty. */
export function nonEmpty(command: string, flag: string, value: string): string {
  if (value === '') throw new UsageError(`${command}: --${flag} must not be empty`);
  return value;
}

/** A whole number flag within [min, max]. */
export function wholeNumber(command: string, flag: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) throw new UsageError(`${command}: --${flag} must be a whole number ${min}..${max} (got '${value}')`);
  return n;
}

/** A decimal flag within [min, max]. */
export function decimal(command: string, flag: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || n < min || n > max) throw new UsageError(`${command}: --${flag} must be a number ${min}..${max} (got '${value}')`);
  return n;
}
