/**
 * The report page: one self-contained HTML file (inline CSS and SVG, the data as an inert JSON
 * block; no script runs, nothing is fetched), readable offline and printable.
 */
import { DAY_MS, calendar } from '../fleet/spec.ts';
import { bytesShown, dur, type FleetResult, type ProfileSummary } from '../fleet/summary.ts';
import { statusPageText } from '../fleet/format.ts';
import { PROFILE_COLORS, type TimelineTag } from './charts.ts';

export const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const kB = (n: number): string => (n >= 1000 ? `${(n / 1000).toFixed(1)} kB` : `${Math.round(n)} B`);

/** JSON inside <script>: `<` escaped so no string in the data can close the element. */
export const inertJson = (data: unknown): string => JSON.stringify(data).replace(/</g, '\\u003c');

const CSS = `
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f7f9; color: #1d2329; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1140px; margin: 0 auto; padding: 24px 28px 40px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 0 0 6px; }
.sub { color: #555; margin: 0 0 18px; }
section, figure { background: #fff; border: 1px solid #dde1e6; border-radius: 6px; padding: 14px 16px; margin: 0 0 16px; }
figure svg { display: block; max-width: 100%; height: auto; }
figcaption { color: #444; font-size: 13px; margin-top: 6px; }
.verdicts { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 10px; }
.verdict { border-left: 5px solid; padding: 6px 10px; background: #fafbfc; }
.verdict b { display: block; }
ol.timeline { margin: 0; padding: 0; list-style: none; columns: 2; column-gap: 28px; }
ol.timeline li { break-inside: avoid; padding: 1px 0; }
.tag { display: inline-block; min-width: 20px; text-align: center; font-weight: bold; font-size: 12px; color: #444; }
.tag.alarm { color: #a00; }
.tag.would-fire { color: #999; }
.when { font-variant-numeric: tabular-nums; color: #333; margin-right: 6px; }
.dot { display: inline-block; width: 9px; height: 9px; border-radius: 50%; margin: 0 2px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; vertical-align: top; padding: 5px 8px; border-bottom: 1px solid #e6e8eb; }
thead th { border-bottom: 2px solid #c9ced4; }
td.num { font-variant-numeric: tabular-nums; }
th.row { font-weight: normal; color: #333; white-space: nowrap; }
th.row.sub { padding-left: 22px; color: #666; }
ul.cell { margin: 0; padding-left: 16px; }
.muted { color: #777; }
footer { color: #666; font-size: 12px; }
`;

function alarmCell(p: ProfileSummary, rule: string): string {
  const a = p.alarms.find((x) => x.rule === rule);
  if (!a || a.firedAtMs === null) return `<span class="muted">${a && !a.inCloud ? 'would not have fired' : 'did not fire'}</span>`;
  return `${a.inCloud ? '' : '<span class="muted">would have fired (no such rule in 2019)</span> '}${esc(calendar(a.firedAtMs))}${a.afterCrashMs === null ? '' : ` <span class="muted">(${esc(dur(a.afterCrashMs))} after the crash)</span>`}`;
}

function healsCell(p: ProfileSummary): string {
  const real = p.heals.filter((h) => h.mechanism !== 'none');
  if (real.length === 0) return '<span class="muted">–</span>';
  return `<ul class="cell">${real.map((h) => `<li><b>${esc(h.mechanism)}</b> ${int(h.devices)} devices<br><span class="muted">${esc(calendar(h.firstAtMs))}${h.lastAtMs > h.firstAtMs ? ` – ${esc(calendar(h.lastAtMs))}` : ''}</span></li>`).join('')}</ul>`;
}

const pctl = (x: { p50Ms: number; p99Ms: number; maxMs: number }): string => `${dur(x.p50Ms)} / ${dur(x.p99Ms)} / ${dur(x.maxMs)}`;

function profileTable(r: FleetResult): string {
  const rows: [string, boolean, (p: ProfileSummary) => string][] = [
    ['devices (sleepy / always connected)', false, (p) => `${int(p.devices)} (${int(p.sleepy)} / ${int(p.devices - p.sleepy)})`],
    ['devices stuck (sleepy)', false, (p) => `<b>${int(p.stuck.devices)}</b> (${int(p.stuck.sleepy)})`],
    ['stuck for p50 / p99 / max', true, (p) => (p.stuck.devices ? pctl(p.stuck) : '<span class="muted">–</span>')],
    ['still stuck at the end', true, (p) => int(p.stuck.stillStuckAtEnd)],
    ['healed within the first wake (never stuck)', false, (p) => (p.healedInFirstWake.devices ? `${int(p.healedInFirstWake.devices)} <span class="muted">(p50 ${esc(dur(p.healedInFirstWake.p50Ms))}, max ${esc(dur(p.healedInFirstWake.maxMs))})</span>` : '0')],
    ['healed by (first – last)', false, healsCell],
    ['events published', false, (p) => int(p.events.published)],
    ['delivered to the webhook', true, (p) => int(p.events.delivered)],
    ['lost', true, (p) => (p.events.lost ? `<b>${int(p.events.lost)}</b>` : '0')],
    ['duplicated', true, (p) => int(p.events.duplicated)],
    ['still queued at the end', true, (p) => int(p.events.pending)],
    [`bytes / ${r.profiles[0]?.bytes.unit ?? 'device-day'}: stuck vs healthy`, false, (p) => {
      const b = bytesShown(p);
      return b.stuck === null ? `– vs ${kB(b.healthy)}` : `${kB(b.stuck)} vs ${kB(b.healthy)}${b.ratio === null ? '' : ` (${b.ratio.toFixed(1)}×)`}`;
    }],
    ...[...new Set(r.profiles.flatMap((p) => p.alarms.map((a) => a.rule)))].map((rule): [string, boolean, (p: ProfileSummary) => string] =>
      [`alert ${rule}`, false, (p) => alarmCell(p, rule)]),
    ['handshakes', false, (p) => int(p.handshakes)],
    ['wakes', false, (p) => int(p.wakes)],
    ['verdict', false, (p) => esc(p.verdict)],
  ];
  const head = `<thead><tr><th></th>${r.profiles.map((p) => `<th data-profile="${esc(p.profile)}"><span class="dot" style="background:${PROFILE_COLORS[p.profile]}"></span> ${esc(p.title)}</th>`).join('')}</tr></thead>`;
  const body = rows.map(([label, sub, f]) => `<tr><th class="row${sub ? ' sub' : ''}" scope="row">${esc(label)}</th>${r.profiles.map((p) => `<td class="num">${f(p)}</td>`).join('')}</tr>`).join('\n');
  return `<table id="profiles">${head}<tbody>${body}</tbody></table>`;
}

function timelineList(tags: TimelineTag[]): string {
  const dots = (t: TimelineTag): string => t.profiles.map((p) => `<span class="dot" title="${esc(p)}" style="background:${PROFILE_COLORS[p]}"></span>`).join('');
  const profileNames = (t: TimelineTag): string => (t.profiles.length ? ` (${esc(t.profiles.join(', '))})` : '');
  return `<ol class="timeline">${tags.map((t) => `<li data-kind="${t.kind}"><span class="tag ${t.kind}">${t.n}</span> <span class="when">${esc(t.when)}</span>${esc(t.label)}${profileNames(t)} ${dots(t)}</li>`).join('')}</ol>`;
}

export interface PageParts {
  result: FleetResult;
  tags: TimelineTag[];
  charts: { id: string; title: string; caption: string; svg: string }[];
  data: unknown;
}

export function reportHtml({ result: r, tags, charts, data }: PageParts): string {
  const o = r.options;
  const sleepy = r.profiles[0]?.sleepy ?? 0;
  const n = r.profiles.length;
  const title = `May 2019 replay: ${int(o.devices)} devices, ${n === 1 ? 'one firmware profile' : `${n === 3 ? 'three' : n} firmware profiles`}`;
  const verdicts = r.profiles.map((p) => `<div class="verdict" data-profile="${esc(p.profile)}" style="border-color:${PROFILE_COLORS[p.profile]}"><b>${esc(p.title)}</b>${esc(p.verdict)}</div>`).join('');
  const figures = charts.map((c) => `<figure id="chart-${c.id}" data-chart="${c.id}"><h2>${esc(c.title)}</h2>${c.svg}<figcaption>${esc(c.caption)}</figcaption></figure>`).join('\n');
  const comparison = r.statusPage
    ? `${statusPageText(r.statusPage).split('\n').map((l) => esc(l)).join('<br>')}<br>The status page's counts are not drawn on the charts: they are devices of Particle's fleet, whose size it did not give, and this fleet is not that one. What the replay can be compared on is a share (how many of the stuck devices were healed by May 8 evening) and the fleet size the stuck share implies; docs/fleet.md ("Beside the status page") says where the model and the status page differ.`
    : 'This replay has no legacy profile, so there is nothing to set beside the status page.';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
<h1>${esc(title)}</h1>
<p class="sub">${int(sleepy)} sleepy and ${int(o.devices - sleepy)} always-connected devices, May 2 00:00 – ${esc(calendar(o.days * DAY_MS))} (Pacific time, virtual), seed “${esc(o.seed)}”, engine ${esc(r.engine)}; the same fleet and schedule under each profile. ${int(r.wakes)} wakes simulated in ${(r.wallMs / 1000).toFixed(1)} s.</p>
<section id="verdicts"><h2>Verdict</h2><div class="verdicts">${verdicts}</div></section>
<section id="timeline"><h2>Timeline</h2><p class="muted" style="margin:0 0 6px">The numbers tag the vertical rules in the charts (grey dashed: events; dotted, in the profile's colour: an alert of that profile's cloud firing; faint, with a grey number: an alert that would have fired — the 2019 cloud had no such rule).</p>${timelineList(tags)}</section>
${figures}
<section id="table"><h2>Per profile</h2>${profileTable(r)}</section>
<section id="status-page"><h2>Beside the status page</h2><p style="margin:0">${comparison}</p></section>
<footer>Generated by <code>sleepy-session start</code>. The data behind this page is embedded below (<code>script#report-data</code>) and written next to it as JSON.</footer>
</main>
<script type="application/json" id="report-data">${inertJson(data)}</script>
</body>
</html>
`;
}
