/**
 * Two replays side by side (`--compare A.json B.json`, the JSON a replay writes next to its
 * report) and one parameter swept (`--sweep PARAM=a,b,c`): the figures that matter for the 2019
 * incident, per profile, in one table; and what differs between the two runs' options.
 */
import type { Profile } from '../../session-abi.ts';
import { dur, type FleetResult, type ProfileSummary } from './summary.ts';

/** The figures a comparison or a sweep shows for one profile of one run. */
export interface Figures {
  stuck: number;
  share: number;
  stuckP50Ms: number;
  stillStuckAtEnd: number;
  healedByMay8Evening: number | null;
  eventsLost: number;
  elevated: number;
  wakes: number;
}

export function figuresOf(r: FleetResult, p: ProfileSummary): Figures {
  return {
    stuck: p.stuck.devices,
    share: p.stuck.share,
    stuckP50Ms: p.stuck.p50Ms,
    stillStuckAtEnd: p.stuck.stillStuckAtEnd,
    healedByMay8Evening: p.profile === 'legacy' ? (r.statusPage?.healedByMay8Evening ?? null) : null,
    eventsLost: p.events.lost,
    elevated: p.bytes.elevated,
    wakes: p.wakes,
  };
}

const pct = (x: number): string => `${(x * 100).toFixed(x > 0 && x < 0.1 ? 1 : 0)} %`;
const int = (n: number): string => n.toLocaleString('en-US');

function cells(f: Figures | undefined): string[] {
  if (!f) return ['–', '–', '–', '–', '–'];
  return [`${int(f.stuck)} (${pct(f.share)})`, f.stuck ? dur(f.stuckP50Ms) : '–', int(f.stillStuckAtEnd), int(f.eventsLost), int(f.elevated)];
}

const HEAD = ['stuck (share)', 'stuck p50', 'still stuck', 'events lost', 'elevated usage'];

function table(header: string[], rows: string[][]): string[] {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(w[i])).join('  ').trimEnd();
  return [line(header), ...rows.map(line)];
}

/** Paths of every leaf value of a JSON-able object ("timeline.healDelayMs" → "5000"). */
function leaves(x: unknown, at = '', out = new Map<string, string>()): Map<string, string> {
  if (x !== null && typeof x === 'object' && !Array.isArray(x)) {
    for (const [k, v] of Object.entries(x)) leaves(v, at ? `${at}.${k}` : k, out);
  } else out.set(at, JSON.stringify(x));
  return out;
}

/** The options two runs differ in ("workers" and "engine" left out: they do not change a result). */
export function optionDiff(a: FleetResult, b: FleetResult): string[] {
  const la = leaves({ ...a.options, workers: 0, engine: '' });
  const lb = leaves({ ...b.options, workers: 0, engine: '' });
  const keys = [...new Set([...la.keys(), ...lb.keys()])].sort();
  return keys.filter((k) => la.get(k) !== lb.get(k)).map((k) => `${k}: ${la.get(k) ?? '–'} → ${lb.get(k) ?? '–'}`);
}

export function compareText(a: FleetResult, b: FleetResult, nameA: string, nameB: string): string {
  const lines = [`Compare: A = ${nameA} (${int(a.options.devices)} devices, ${a.options.days} days), B = ${nameB} (${int(b.options.devices)} devices, ${b.options.days} days)`];
  const diff = optionDiff(a, b);
  lines.push(diff.length ? `Options that differ (A → B):\n${diff.map((d) => `  ${d}`).join('\n')}` : 'The two runs have the same options.');
  lines.push('');
  const profiles = [...new Set([...a.profiles, ...b.profiles].map((p) => p.profile))] as Profile[];
  const rows: string[][] = [];
  for (const profile of profiles) {
    const pa = a.profiles.find((p) => p.profile === profile);
    const pb = b.profiles.find((p) => p.profile === profile);
    rows.push([profile, 'A', ...cells(pa && figuresOf(a, pa))]);
    rows.push(['', 'B', ...cells(pb && figuresOf(b, pb))]);
  }
  lines.push(...table(['profile', 'run', ...HEAD], rows));
  if (a.statusPage && b.statusPage) {
    const h = (r: FleetResult) => (r.statusPage!.healedByMay8Evening === null ? 'replay ends first' : `${r.statusPage!.healedByMay8Evening} of ${r.statusPage!.stuck}`);
    lines.push('', `legacy healed by May 8 20:00: A ${h(a)}, B ${h(b)} (status page: 480 of ~500); implied fleet for ~500 stuck: A ${a.statusPage.impliedFleet ?? '–'}, B ${b.statusPage.impliedFleet ?? '–'}`);
  }
  return lines.join('\n');
}

/** One swept value's run. */
export interface SweepPoint {
  value: string;
  result: FleetResult;
}

export function sweepText(param: string, points: SweepPoint[]): string {
  const profiles = points[0]?.result.profiles.map((p) => p.profile) ?? [];
  const rows: string[][] = [];
  for (const pt of points) {
    for (const profile of profiles) {
      const p = pt.result.profiles.find((x) => x.profile === profile)!;
      const f = figuresOf(pt.result, p);
      rows.push([pt.value, profile, ...cells(f), f.healedByMay8Evening === null ? '–' : `${f.healedByMay8Evening} / ${f.stuck}`]);
    }
  }
  return [`Sweep of --${param} (${points.length} runs, ${int(points[0]?.result.options.devices ?? 0)} devices, ${points[0]?.result.options.days ?? 0} days each)`, '',
    ...table([param, 'profile', ...HEAD, 'healed by May 8 20:00'], rows)].join('\n');
}
