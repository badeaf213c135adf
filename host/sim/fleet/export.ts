/**
 * `--export FILE.csv|FILE.jsonl`: one row per device and profile, what a postmortem author loads
 * into a notebook. Times are ISO 8601 in the status page's zone (PDT, −07:00) and virtual ms.
 */
import { writeFileSync } from 'node:fs';
import type { Profile } from '../../session-abi.ts';
import type { DeviceOutcome } from './outcome.ts';
import { EPOCH_UNIX_MS } from './spec.ts';

export const EXPORT_COLUMNS = [
  'profile', 'device', 'class', 'pattern', 'wake_every_s', 'awake_s', 'wakes',
  'stuck', 'stuck_from', 'stuck_to', 'stuck_hours', 'heal_mechanism', 'healed_at', 'wakes_stuck',
  'bytes_up', 'bytes_down', 'bytes_while_stuck', 'handshakes',
  'events_published', 'events_delivered', 'events_lost', 'events_queued', 'events_duplicated',
] as const;

export type ExportRow = Record<(typeof EXPORT_COLUMNS)[number], string | number | boolean | null>;

/** Virtual ms → "2019-05-02T10:00:00-07:00". */
export function pdt(ms: number): string {
  return new Date(EPOCH_UNIX_MS + ms - 7 * 3_600_000).toISOString().replace(/\.\d{3}Z$/, '-07:00');
}

export function exportRows(devices: Map<Profile, DeviceOutcome[]>, endMs: number): ExportRow[] {
  const rows: ExportRow[] = [];
  for (const [profile, outs] of devices) {
    for (const d of outs) {
      const stuck = d.stuckWakes > 0;
      const to = stuck ? d.healedAtMs : null;
      rows.push({
        profile, device: `dev-${String(d.index).padStart(6, '0')}`, class: d.kind, pattern: d.pattern,
        wake_every_s: Math.round(d.wakeEveryMs / 1000), awake_s: d.awakeMs / 1000, wakes: d.wakes,
        stuck, stuck_from: stuck ? pdt(d.firstWakeAfterCrashMs!) : null, stuck_to: to === null ? null : pdt(to),
        stuck_hours: stuck ? Number((((d.healedAtMs ?? endMs) - d.firstWakeAfterCrashMs!) / 3_600_000).toFixed(3)) : 0,
        heal_mechanism: d.healedBy, healed_at: d.healedAtMs === null ? null : pdt(d.healedAtMs), wakes_stuck: d.stuckWakes,
        bytes_up: d.bytesUp, bytes_down: d.bytesDown, bytes_while_stuck: d.bytesStuck, handshakes: d.handshakes,
        events_published: d.published, events_delivered: d.delivered, events_lost: d.lost, events_queued: d.pending, events_duplicated: d.duplicates,
      });
    }
  }
  return rows;
}

const csvCell = (v: ExportRow[keyof ExportRow]): string => {
  if (v === null) return '';
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

/** The rows as CSV (a header line first) or JSON Lines, by the file's extension. */
export function exportText(path: string, rows: ExportRow[]): string {
  if (path.endsWith('.jsonl')) return rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
  return [EXPORT_COLUMNS.join(','), ...rows.map((r) => EXPORT_COLUMNS.map((c) => csvCell(r[c])).join(','))].join('\n') + '\n';
}

export function writeExport(path: string, devices: Map<Profile, DeviceOutcome[]>, endMs: number): number {
  const rows = exportRows(devices, endMs);
  writeFileSync(path, exportText(path, rows));
  return rows.length;
}
