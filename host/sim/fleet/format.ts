/**
 * The fleet replay as text: one column per profile, then one verdict line per profile (the last
 * lines, the one thing to read when scrolling is short). `--trace` adds one device's wakes.
 */
import type { TracedWake } from './outcome.ts';
import { calendar, DAY_MS } from './spec.ts';
import { ELEVATED_USAGE, bytesShown, dur, type FleetResult, type ProfileSummary, type StatusPageComparison } from './summary.ts';

const kB = (n: number): string => (n >= 1000 ? `${(n / 1000).toFixed(1)} kB` : `${Math.round(n)} B`);
const int = (n: number): string => n.toLocaleString('en-US');
const pct = (x: number): string => `${(x * 100).toFixed(x > 0 && x < 0.1 ? 1 : 0)} %`;

/** The legacy replay beside the status page's counts: shares and the fleet size they imply, never scaled. */
export function statusPageText(c: StatusPageComparison): string {
  const implied = c.impliedFleet === null ? 'no legacy device stuck, so no fleet size follows'
    : `~${c.reportedStuck} stuck would take a fleet of ~${int(c.impliedFleet)} devices like this one`;
  const healed = c.healedByMay8Evening === null ? 'this replay ends before May 8 evening'
    : `${int(c.healedByMay8Evening)} of ${int(c.stuck)} (${pct(c.healedShare ?? 0)}) here`;
  return `Status page: ~${c.reportedStuck} devices stuck, ${c.reportedHealedByMay8Evening} healed by May 8 evening (${pct(c.reportedHealedShare)}), fleet size not given.\n` +
    `Legacy here: ${int(c.stuck)} of ${int(c.devices)} devices stuck (${pct(c.share)}): ${implied}; healed by May 8 20:00: ${healed}.`;
}

function healsText(p: ProfileSummary): string[] {
  const real = p.heals.filter((h) => h.mechanism !== 'none');
  if (real.length === 0) return ['–'];
  return real.map((h) => `${h.mechanism} ${h.devices} (${calendar(h.firstAtMs)}${h.lastAtMs > h.firstAtMs ? ` – ${calendar(h.lastAtMs)}` : ''})`);
}

function alarmText(p: ProfileSummary, rule: string): string {
  const a = p.alarms.find((x) => x.rule === rule);
  if (!a || a.firedAtMs === null) return a && !a.inCloud ? 'would not have fired' : 'did not fire';
  const at = `${calendar(a.firedAtMs)} (+${dur(a.afterCrashMs!)})`;
  return a.inCloud ? at : `would have fired ${at}`;
}

/** `how`: what ran the devices, when not the worker pool (e.g. "live over real UDP at ×60"). */
export function formatFleet(r: FleetResult, reportLine?: string, how?: string): string {
  const o = r.options;
  const lines: string[] = [];
  const sleepy = r.profiles[0]?.sleepy ?? 0;
  lines.push(`May 2019 replay — ${int(o.devices)} devices (${int(sleepy)} sleepy, ${int(o.devices - sleepy)} always connected), ` +
    `May 2 00:00 → ${calendar(o.days * DAY_MS)}, seed "${o.seed}", engine ${r.engine}, ` +
    `handshakes ${(o.suite ?? 'ecdhe') === 'ecdhe' ? 'ECDHE-ECDSA P-256 (raw public keys)' : 'PSK'} + AES-128-CCM-8`);
  for (const e of r.timeline) lines.push(`  ${calendar(e.atMs)}  ${e.label}`);
  lines.push('');

  const rows: [string, (p: ProfileSummary) => string[]][] = [
    ['devices stuck', (p) => [`${int(p.stuck.devices)} (${int(p.stuck.sleepy)} sleepy), ${pct(p.stuck.share)} of the fleet`]],
    ['  by pattern (stuck / devices)', (p) => p.stuck.byPattern.map((b) => `${b.pattern} ${int(b.stuck)} / ${int(b.devices)}`)],
    ['  stuck for p50 / p99 / max', (p) => [p.stuck.devices ? `${dur(p.stuck.p50Ms)} / ${dur(p.stuck.p99Ms)} / ${dur(p.stuck.maxMs)}` : '–']],
    ['  still stuck at the end', (p) => [int(p.stuck.stillStuckAtEnd)]],
    ['healed within the first wake', (p) => [p.healedInFirstWake.devices ? `${int(p.healedInFirstWake.devices)} (in p50 ${dur(p.healedInFirstWake.p50Ms)}, max ${dur(p.healedInFirstWake.maxMs)}; never stuck)` : '0']],
    ['healed by (first – last)', healsText],
    ['events published', (p) => [int(p.events.published)]],
    ['  delivered to the webhook', (p) => [int(p.events.delivered)]],
    ['  lost', (p) => [int(p.events.lost)]],
    ['  duplicated', (p) => [int(p.events.duplicated)]],
    ['  still queued at the end', (p) => [int(p.events.pending)]],
    [`bytes/${r.profiles[0]?.bytes.unit === 'wake' ? 'wake' : 'day'} stuck vs healthy`, (p) => {
      const b = bytesShown(p);
      return [b.stuck === null ? `– vs ${p.sleepy ? kB(b.healthy) : '–'}` : `${kB(b.stuck)} vs ${kB(b.healthy)}${b.ratio === null ? '' : ` (${b.ratio.toFixed(1)}×)`}`];
    }],
    [`  stuck with elevated usage (>${ELEVATED_USAGE}× own)`, (p) => [p.stuck.devices ? `${int(p.bytes.elevated)} of ${int(p.stuck.devices)}${p.bytes.elevated ? ` (${Object.entries(p.bytes.elevatedByPattern).map(([k, v]) => `${k} ${v}`).join(', ')})` : ''}` : '–']],
    ['alarm: SessionsLost', (p) => [alarmText(p, 'SleepyCloudSessionsLost')]],
    ['alarm: DeviceStuck', (p) => [alarmText(p, 'SleepyCloudDeviceStuck')]],
    ['handshakes', (p) => [int(p.handshakes)]],
    ['wakes', (p) => [int(p.wakes)]],
  ];
  const labelW = Math.max(...rows.map(([l]) => l.length));
  const cells = rows.map(([, f]) => r.profiles.map(f));
  const colW = r.profiles.map((p, i) => Math.max(p.title.length, ...cells.map((c) => Math.max(...c[i].map((s) => s.length)))));
  lines.push(`${''.padEnd(labelW)}  ${r.profiles.map((p, i) => p.title.padEnd(colW[i])).join('  ')}`.trimEnd());
  rows.forEach(([label], ri) => {
    const height = Math.max(...cells[ri].map((c) => c.length));
    for (let k = 0; k < height; k++) {
      lines.push(`${(k === 0 ? label : '').padEnd(labelW)}  ${cells[ri].map((c, i) => (c[k] ?? '').padEnd(colW[i])).join('  ')}`.trimEnd());
    }
  });
  const traced = r.profiles.filter((p) => p.trace);
  if (r.traceDevice && traced.length) {
    for (const p of traced) {
      lines.push('', `== ${r.traceDevice} under ${p.title}`);
      for (const w of p.trace!) lines.push(`   ${calendar(w.atMs)} wake ${String(w.wake).padStart(3)}  ${describeWake(w)}`);
    }
  }
  if (r.statusPage) lines.push('', statusPageText(r.statusPage));
  lines.push('');
  const ran = how ?? `${int(Math.round(r.wakesPerSecond))} wakes/s, ${o.workers} worker${o.workers === 1 ? '' : 's'}`;
  lines.push(`${int(r.wakes)} wakes in ${(r.wallMs / 1000).toFixed(1)} s (${ran})` +
    (reportLine ? `; ${reportLine}` : ''));
  if (r.profiles.some((p) => p.alarms.some((a) => !a.inCloud))) {
    lines.push('("would have fired": the 2019 cloud had no such alert rule; a customer reported the incident on May 3)');
  }
  lines.push('', 'Verdict');
  for (const p of r.profiles) lines.push(`  ${p.profile.padEnd(7)} ${p.verdict}`);
  return lines.join('\n');
}

export function describeWake(w: TracedWake): string {
  const parts: string[] = [];
  for (const e of w.events) {
    switch (e.type) {
      case 'resumed': parts.push(`resumed (use ${e.useCounter})`); break;
      case 'session-discarded': parts.push(`session dropped: ${e.reason}`); break;
      case 'handshake-started': parts.push('handshake'); break;
      case 'connected': parts.push('connected'); break;
      case 'event-acked': parts.push(`#${e.seq} ACKed`); break;
      case 'event-dropped': parts.push(`#${e.seq} LOST at sleep`); break;
      case 'handshake-failed': parts.push(`handshake failed (${e.error})`); break;
      default: break;
    }
  }
  const delivered = w.delivered.length ? ` · cloud delivered #${w.delivered.join(', #')}` : '';
  const heal = w.healsSent.map((k) => (k === 'malformed' ? ' · cloud sent the malformed datagram' : ' · cloud sent a reset token')).join('');
  return `${parts.join(', ') || 'nothing happened'}${delivered}${heal} · ${w.datagramsUp}↑ ${w.bytesUp} B, ${w.datagramsDown}↓ ${w.bytesDown} B`;
}
