/**
 * The report's charts as Vega-Lite specs built from a FleetResult, and their rendering to SVG in
 * Node (vega-lite compiles, a headless vega View draws; no browser, no canvas). Every chart draws
 * one series per profile (mark name `series`, field `profile`), shares one colour per profile, and
 * carries the timeline as vertical rules with numbered tags (the numbers key the page's timeline).
 */
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { TopLevelSpec } from 'vega-lite';
import type { Profile } from '../../session-abi.ts';
import { DAY_MS, HOUR_MS, calendar } from '../fleet/spec.ts';
import { bytesShown, type FleetResult, type ProfileSummary } from '../fleet/summary.ts';

/** Okabe–Ito colours (distinguishable with colour-blindness), one per profile. */
export const PROFILE_COLORS: Record<Profile, string> = { legacy: '#D55E00', fixed: '#E69F00', default: '#0072B2' };

/**
 * Virtual ms → the timestamp the charts plot: the PDT wall clock read as UTC, so a `utc` scale
 * labels days as the status page does, whatever the time zone of the machine drawing it.
 */
const PLOT_EPOCH_MS = Date.UTC(2019, 4, 2);
const plotTime = (virtualMs: number): number => PLOT_EPOCH_MS + virtualMs;
/** The x encoding of every layer over the time axis (its utc scale keeps labels zone-free). */
const X_UTC = { field: 'time', type: 'temporal', scale: { type: 'utc' } } as const;

/** A numbered mark on the time axis: a timeline event, or an alert rule firing (for some profiles). */
export interface TimelineTag {
  n: number;
  atMs: number;
  when: string;
  /** 'alarm': a rule of the profile's cloud fired; 'would-fire': the 2019 cloud had no such rule, it would have fired. */
  kind: 'event' | 'alarm' | 'would-fire';
  label: string;
  /** Alarm tags: the profiles whose cloud fired it at that minute. */
  profiles: Profile[];
  /** Row of the tag above the plot, so that tags close in time do not overlap. */
  row: number;
}

/** Tags closer than this (virtual time) go on separate rows. */
const TAG_MIN_GAP_MS = 14 * HOUR_MS;

export function timelineTags(r: FleetResult): TimelineTag[] {
  const raw: Omit<TimelineTag, 'n' | 'row'>[] = r.timeline.map((e) => ({ atMs: e.atMs, when: calendar(e.atMs), kind: 'event', label: e.label, profiles: [] }));
  const alarms = new Map<string, Omit<TimelineTag, 'n' | 'row'>>();
  for (const p of r.profiles) {
    for (const a of p.alarms) {
      if (a.firedAtMs === null) continue;
      const key = `${a.rule}@${a.firedAtMs}@${a.inCloud}`;
      const after = a.afterCrashMs === null ? '' : `, ${Math.round(a.afterCrashMs / 60_000)} min after the crash`;
      const tag = alarms.get(key) ?? (a.inCloud
        ? { atMs: a.firedAtMs, when: calendar(a.firedAtMs), kind: 'alarm' as const, label: `alert ${a.rule} fires${after}`, profiles: [] }
        : { atMs: a.firedAtMs, when: calendar(a.firedAtMs), kind: 'would-fire' as const, label: `alert ${a.rule} would have fired${after} (the 2019 cloud had no such rule)`, profiles: [] });
      tag.profiles.push(p.profile);
      alarms.set(key, tag);
    }
  }
  raw.push(...alarms.values());
  raw.sort((a, b) => a.atMs - b.atMs || (a.kind === b.kind ? 0 : a.kind === 'event' ? -1 : 1));
  const lastInRow: number[] = [];
  return raw.map((t, i) => {
    let row = lastInRow.findIndex((at) => t.atMs - at >= TAG_MIN_GAP_MS);
    if (row < 0) row = lastInRow.length;
    lastInRow[row] = t.atMs;
    return { ...t, n: i + 1, row };
  });
}

const WIDTH = 860;
const HEIGHT = 190;
const TAG_ROW_PX = 12;
const BAR_WIDTH = 190;
/** Deliveries are drawn as the mean per hour over blocks of this many series steps (6 h for a replay of days): hourly counts of a small fleet are mostly noise. */
export const DELIVERY_BLOCK_STEPS = 6;

const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';

function colorScale(r: FleetResult) {
  return { domain: r.profiles.map((p) => p.title), range: r.profiles.map((p) => PROFILE_COLORS[p.profile]) };
}

function timeX(r: FleetResult, title = '2019, Pacific time') {
  return {
    field: 'time',
    type: 'temporal' as const,
    title,
    scale: { type: 'utc' as const, domain: [plotTime(0), plotTime(r.options.days * DAY_MS)] },
    axis: { format: '%b %-d', tickCount: { interval: 'day', step: 1 }, labelAngle: 0, grid: true, gridColor: '#eee' },
  };
}

/** Rules and numbered tags for the timeline, layered over a time chart. */
function timelineLayers(r: FleetResult, tags: TimelineTag[]): object[] {
  const events = tags.filter((t) => t.kind === 'event').map((t) => ({ time: plotTime(t.atMs), n: String(t.n), label: t.label }));
  const rulesOf = (kind: TimelineTag['kind']) => tags.filter((t) => t.kind === kind).flatMap((t) => t.profiles.map((p) => ({
    time: plotTime(t.atMs), profile: r.profiles.find((s) => s.profile === p)!.title, label: t.label,
  })));
  const alarmRules = rulesOf('alarm');
  const wouldFireRules = rulesOf('would-fire');
  const tagData = tags.map((t) => ({ time: plotTime(t.atMs), n: String(t.n), tagY: -8 - t.row * TAG_ROW_PX, kind: t.kind }));
  const layers: object[] = [];
  if (events.length) {
    layers.push({
      name: 'timeline_events',
      data: { values: events },
      mark: { type: 'rule', strokeDash: [4, 3], color: '#666', strokeWidth: 1 },
      encoding: { x: X_UTC },
    });
  }
  if (alarmRules.length) {
    layers.push({
      name: 'timeline_alarms',
      data: { values: alarmRules },
      mark: { type: 'rule', strokeDash: [1, 2], strokeWidth: 1.5 },
      encoding: { x: X_UTC, color: { field: 'profile', type: 'nominal' } },
    });
  }
  if (wouldFireRules.length) {
    layers.push({
      name: 'timeline_would_fire',
      data: { values: wouldFireRules },
      mark: { type: 'rule', strokeDash: [1, 5], strokeWidth: 1, opacity: 0.55 },
      encoding: { x: X_UTC, color: { field: 'profile', type: 'nominal' } },
    });
  }
  if (tagData.length) {
    layers.push({
      name: 'timeline_tags',
      data: { values: tagData },
      mark: { type: 'text', fontSize: 10, fontWeight: 'bold', baseline: 'bottom', align: 'center' },
      encoding: {
        x: X_UTC,
        y: { field: 'tagY', type: 'quantitative', scale: null },
        text: { field: 'n' },
        color: { condition: [{ test: "datum.kind === 'alarm'", value: '#a00' }, { test: "datum.kind === 'would-fire'", value: '#999' }], value: '#444' },
      },
    });
  }
  return layers;
}

interface Point {
  time: number;
  profile: string;
  value: number;
}

/**
 * One point per block of `blockSteps` series steps at the end of the block (the series count what
 * happened in a step, or the state at its end): the mean of the block's steps, times `scale`.
 */
function stepped(r: FleetResult, pick: (p: ProfileSummary) => number[], blockSteps = 1, scale = 1): Point[] {
  return r.profiles.flatMap((p) => {
    const steps = pick(p);
    const stepMs = p.series.stepMs;
    const points: Point[] = [];
    for (let h = 0; h < steps.length; h += blockSteps) {
      const block = steps.slice(h, h + blockSteps);
      points.push({ time: plotTime((h + block.length) * stepMs), profile: p.title, value: (scale * block.reduce((a, b) => a + b, 0)) / block.length });
    }
    return points;
  });
}

/** "1 h", "10 min". */
function stepText(ms: number): string {
  return ms >= HOUR_MS ? `${ms / HOUR_MS} h` : `${ms / 60_000} min`;
}

function lineChart(r: FleetResult, tags: TimelineTag[], values: Point[], y: object, extra: object[] = [], mark: object = { interpolate: 'step-before' }, width = WIDTH): object {
  return {
    width,
    height: HEIGHT,
    layer: [
      {
        name: 'series',
        data: { values },
        mark: { type: 'line', strokeWidth: 1.75, ...mark },
        encoding: { x: timeX(r), y, color: { field: 'profile', type: 'nominal', title: 'firmware', scale: colorScale(r) } },
      },
      ...extra,
      ...timelineLayers(r, tags),
    ],
  };
}

function topLevel(spec: object, description: string, tags: TimelineTag[]): TopLevelSpec {
  // The legend sits above the timeline tags, which sit above the plot (a concat's bounds already hold them).
  const tagRows = tags.length && !('hconcat' in spec) ? Math.max(...tags.map((t) => t.row)) + 1 : 0;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    description,
    background: 'white',
    padding: { top: 8, left: 4, right: 4, bottom: 4 },
    config: {
      font: FONT,
      view: { stroke: '#ccc' },
      axis: { labelFontSize: 11, titleFontSize: 11, titleFontWeight: 'normal', titleColor: '#555', labelColor: '#333' },
      legend: { orient: 'top', direction: 'horizontal', offset: 6 + tagRows * TAG_ROW_PX, labelFontSize: 12, titleFontSize: 12, symbolType: 'stroke', symbolStrokeWidth: 3, labelLimit: 260 },
    },
    ...spec,
  } as TopLevelSpec;
}

export interface ChartSpec {
  id: 'healthy' | 'stuck' | 'deliveries' | 'bytes';
  title: string;
  caption: string;
  spec: TopLevelSpec;
}

export function chartSpecs(r: FleetResult): ChartSpec[] {
  const tags = timelineTags(r);
  const c = r.statusPage;
  const statusNote = c
    ? ` Not drawn: the status page's counts (~${c.reportedStuck} stuck, ${c.reportedHealedByMay8Evening} healed by May 8 evening) are devices of a fleet of unknown size, not a share of this one; they are set beside the legacy replay as counts below the table.`
    : '';
  const days = r.options.days;
  const bytesPerDay = r.profiles.flatMap((p) => p.series.bytesPerDeviceDay.slice(0, Math.ceil(days)).map((value, d) => ({ time: plotTime(d * DAY_MS + DAY_MS / 2), profile: p.title, value })));
  const stuckVsHealthy = r.profiles.flatMap((p) => [
    ...(bytesShown(p).stuck === null ? [] : [{ profile: p.title, kind: 'stuck', value: bytesShown(p).stuck! }]),
    { profile: p.title, kind: 'healthy', value: bytesShown(p).healthy },
  ]);
  const noStuck = r.profiles.filter((p) => bytesShown(p).stuck === null).map((p) => p.profile);
  const unit = r.profiles[0]?.bytes.unit ?? 'device-day';

  return [
    {
      id: 'healthy',
      title: 'Share of the fleet healthy',
      caption: `At the end of each ${stepText(r.profiles[0]?.series.stepMs ?? HOUR_MS)}, the share of devices not stuck (a device is stuck from its first wake after the crash that does not reach the cloud until it is back in a session the cloud has).${statusNote}`,
      spec: topLevel(lineChart(r, tags, stepped(r, (p) => p.series.healthyShare),
        { field: 'value', type: 'quantitative', title: 'healthy', axis: { format: '.0%' }, scale: { domain: [0, 1] } }), 'Share of the fleet healthy over time per firmware profile', tags),
    },
    {
      id: 'stuck',
      title: 'Devices stuck',
      caption: `Devices stuck at the end of each ${stepText(r.profiles[0]?.series.stepMs ?? HOUR_MS)}.`,
      spec: topLevel(lineChart(r, tags, stepped(r, (p) => p.series.stuck),
        { field: 'value', type: 'quantitative', title: 'devices stuck', axis: { tickMinStep: 1, format: ',d' }, scale: { domain: [0, Math.max(1, ...r.profiles.flatMap((p) => p.series.stuck))] } }), 'Devices stuck over time per firmware profile', tags),
    },
    {
      id: 'deliveries',
      title: 'Webhook deliveries per hour',
      caption: `Events the cloud delivered to the webhook per hour (distinct events; mean over blocks of ${stepText(DELIVERY_BLOCK_STEPS * (r.profiles[0]?.series.stepMs ?? HOUR_MS))}). The gap between a profile's curve and the default's is events that never arrive: what the customer noticed.`,
      spec: topLevel(lineChart(r, tags, stepped(r, (p) => p.series.deliveriesPerStep, DELIVERY_BLOCK_STEPS, HOUR_MS / (r.profiles[0]?.series.stepMs ?? HOUR_MS)),
        { field: 'value', type: 'quantitative', title: 'deliveries / hour', axis: { tickMinStep: 1, format: ',d' } }), 'Webhook deliveries per hour per firmware profile', tags),
    },
    {
      id: 'bytes',
      title: 'Bytes on the air per device',
      caption: `${days >= 2 ? 'Left: bytes on the air (both directions) per device per day, whole fleet. Right: per' : 'Per'} ${unit}, a stuck device while stuck against a sleepy device while healthy${noStuck.length ? ` (${noStuck.join(', ')}: no device stuck, no bar)` : ''}.${unit === 'wake' ? ' Per wake, not per day: a replay shorter than a day (the live hour compresses wake intervals to minutes) says nothing about a day of the real fleet.' : ''} Cellular data is paid per byte.`,
      spec: topLevel({
        hconcat: [
          // A replay shorter than two days has no day-by-day line worth drawing (one partial day).
          ...(days >= 2 ? [lineChart(r, tags, bytesPerDay, { field: 'value', type: 'quantitative', title: 'bytes / device / day' }, [], { interpolate: 'linear', point: true }, WIDTH - BAR_WIDTH - 90)] : []),
          {
            width: BAR_WIDTH,
            height: HEIGHT,
            layer: [
              {
                name: 'bytes_bars',
                data: { values: stuckVsHealthy },
                mark: { type: 'bar' },
                encoding: {
                  x: { field: 'kind', type: 'nominal', title: null, sort: ['stuck', 'healthy'], axis: { labelAngle: 0, labelLimit: 90 } },
                  xOffset: { field: 'profile', type: 'nominal', sort: r.profiles.map((p) => p.title) },
                  y: { field: 'value', type: 'quantitative', title: `bytes / ${unit}` },
                  color: { field: 'profile', type: 'nominal', title: 'firmware', scale: colorScale(r) },
                },
              },
            ],
          },
        ],
        resolve: { scale: { y: 'independent' } },
      }, `Bytes on the air per device per day, and per stuck vs healthy ${unit}, per firmware profile`, tags),
    },
  ];
}

/**
 * A logger that turns warnings and errors into a thrown error: vega only logs a chart it cannot
 * draw and vega-lite drops what it does not understand, and a report must not silently lose a chart.
 */
function strictLogger(what: string) {
  const problems: string[] = [];
  const logger = {
    level(): number { return vega.Warn; },
    error(...args: unknown[]) { problems.push(`error: ${args.map(String).join(' ')}`); return logger; },
    warn(...args: unknown[]) { problems.push(`warning: ${args.map(String).join(' ')}`); return logger; },
    info() { return logger; },
    debug() { return logger; },
  };
  const check = (): void => {
    if (problems.length) throw new Error(`report: chart "${what}": ${problems.join('; ')}`);
  };
  return { logger, check };
}

/** Vega-Lite → Vega → SVG, headless (renderer 'none': no canvas, text widths estimated). */
export async function renderSvg(spec: TopLevelSpec, what = spec.description ?? 'chart'): Promise<string> {
  const log = strictLogger(what);
  const compiled = vl.compile(spec, { logger: log.logger as never }).spec;
  log.check();
  const view = new vega.View(vega.parse(compiled), { renderer: 'none', logger: log.logger as never });
  try {
    view.logLevel(vega.Warn);
    let svg: string;
    try {
      svg = await view.toSVG();
    } finally {
      log.check();
    }
    return svg;
  } finally {
    view.finalize();
  }
}
