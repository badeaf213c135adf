/**
 * The report a person opens after `sleepy-session start`: an HTML page (charts as SVG rendered in
 * Node, the per-profile table, the timeline) and, next to it, the JSON behind it.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, extname } from 'node:path';
import type { FleetResult } from '../fleet/summary.ts';
import { chartSpecs, renderSvg, timelineTags, type TimelineTag } from './charts.ts';
import { reportHtml } from './html.ts';

/** The JSON behind the page: the fleet result as is, plus what the page derives from it. */
export type ReportData = FleetResult & {
  report: { timelineTags: TimelineTag[]; charts: { id: string; title: string }[] };
};

/** `reports/incident.html` → `reports/incident.json`. */
export function jsonPathFor(htmlPath: string): string {
  const ext = extname(htmlPath);
  return `${ext ? htmlPath.slice(0, -ext.length) : htmlPath}.json`;
}

export async function renderReport(result: FleetResult): Promise<{ html: string; data: ReportData }> {
  const tags = timelineTags(result);
  const specs = chartSpecs(result);
  const charts = await Promise.all(specs.map(async (c) => ({ id: c.id, title: c.title, caption: c.caption, svg: await renderSvg(c.spec) })));
  const data: ReportData = { ...result, report: { timelineTags: tags, charts: specs.map((c) => ({ id: c.id, title: c.title })) } };
  return { html: reportHtml({ result, tags, charts, data }), data };
}

/** Writes `htmlPath` (self-contained, works offline) and the JSON behind it next to it (same name, .json). */
export async function writeReport(result: FleetResult, htmlPath: string): Promise<void> {
  if (extname(htmlPath).toLowerCase() !== '.html') throw new Error(`report: ${htmlPath} must end in .html (the JSON goes next to it as .json)`);
  const { html, data } = await renderReport(result);
  await mkdir(dirname(htmlPath), { recursive: true });
  await writeFile(jsonPathFor(htmlPath), `${JSON.stringify(data, null, 2)}\n`);
  await writeFile(htmlPath, html);
}
