// The report a person opens: a small fleet replayed, its report written, then opened in headless
// Chromium with the network cut off: nothing fetched, no error, every chart with every profile.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Page } from 'puppeteer-core';
import { findChromium, openReport } from '../../scripts/report-screenshot.ts';
import { runFleet } from '../../host/sim/fleet/run.ts';
import { DEFAULT_FLEET } from '../../host/sim/fleet/spec.ts';
import { LIVE_FLEET } from '../../host/sim/live/options.ts';
import type { FleetResult } from '../../host/sim/fleet/summary.ts';
import { renderSvg } from '../../host/sim/report/charts.ts';
import { formatFleet } from '../../host/sim/fleet/format.ts';
import { jsonPathFor, renderReport, writeReport, type ReportData } from '../../host/sim/report/index.ts';
import { skipOrFail } from './engines.ts';

const CHARTS = ['healthy', 'stuck', 'deliveries', 'bytes'] as const;

/** Attribute values and CSS that would make a browser fetch something (anything but `#fragment`). */
function externalReferences(html: string): string[] {
  const found: string[] = [];
  for (const m of html.matchAll(/\s(src|href|xlink:href|srcset|poster|action|data)\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)/gi)) {
    const value = m[2].replace(/^["']|["']$/g, '');
    if (!value.startsWith('#')) found.push(`${m[1]}=${value}`);
  }
  for (const m of html.matchAll(/url\(\s*["']?([^"')]*)/gi)) if (!m[1].startsWith('#')) found.push(`url(${m[1]})`);
  for (const m of html.matchAll(/@import[^;]*/gi)) found.push(m[0]);
  for (const m of html.matchAll(/<(link|iframe|object|embed|img|audio|video|source)\b[^>]*>/gi)) found.push(m[0]);
  for (const m of html.matchAll(/<script\b[^>]*>/gi)) if (!/type="application\/json"/.test(m[0])) found.push(m[0]);
  return found;
}

interface Expected {
  titles: string[];
  timelineRules: number;
}

/**
 * Problems with the loaded page, one line each (empty: fine). Each chart must have a legend entry
 * per profile and a drawn series per profile in the legend entry's colour; the page the comparison with
 * the status page; the time charts the timeline's rules.
 */
function checkReportPage(page: Page, expected: Expected): Promise<string[]> {
  return page.evaluate(({ charts, titles, timelineRules }) => {
    const problems: string[] = [];
    for (const id of charts) {
      const fig = document.querySelector(`figure[data-chart="${id}"]`);
      const svg = fig?.querySelector('svg');
      if (!fig || !svg) {
        problems.push(`${id}: no chart`);
        continue;
      }
      const legend = new Map<string, string>();
      for (const entry of svg.querySelectorAll('.role-legend-entry .role-scope > g')) {
        const label = entry.querySelector('.role-legend-label text')?.textContent ?? '';
        legend.set(label, entry.querySelector('.role-legend-symbol path')?.getAttribute('stroke') ?? '');
      }
      const lines = [...svg.querySelectorAll('.series_marks path')];
      for (const title of titles) {
        if (!legend.has(title)) problems.push(`${id}: no legend entry for ${title}`);
        const line = lines.find((p) => (p.getAttribute('aria-label') ?? '').endsWith(`firmware: ${title}`));
        const vertices = (line?.getAttribute('d') ?? '').split(/[LM]/).length - 1;
        if (!line || vertices < 10) problems.push(`${id}: no series for ${title}`);
        else if (legend.has(title) && line.getAttribute('stroke') !== legend.get(title)) problems.push(`${id}: series ${title} not in its legend colour`);
      }
      if (id === 'bytes') {
        const bars = [...svg.querySelectorAll('.bytes_bars_marks path')].map((p) => p.getAttribute('aria-label') ?? '');
        for (const title of titles) if (!bars.some((b) => b.endsWith(`firmware: ${title}`))) problems.push(`${id}: no bar for ${title}`);
      }
      const rules = svg.querySelectorAll('.timeline_events_marks line').length;
      if (rules !== timelineRules) problems.push(`${id}: ${rules} timeline rules, expected ${timelineRules}`);
    }
    if (!document.querySelector('section#status-page')?.textContent?.includes('would take a fleet of')) problems.push('no comparison with the status page');
    return problems;
  }, { charts: [...CHARTS], ...expected });
}

function pngSize(path: string): { width: number; height: number } {
  const png = readFileSync(path);
  assert.equal(png.subarray(1, 4).toString('latin1'), 'PNG', `${path} is not a PNG`);
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

describe('fleet report (reports/incident.html)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sleepy-report-'));
  const htmlPath = join(dir, 'incident.html');
  let result: FleetResult;

  before(async () => {
    ({ result } = await runFleet({ ...DEFAULT_FLEET, devices: 24, workers: 2, seed: 'report-test' }));
    await writeReport(result, htmlPath);
  });

  it('writes a self-contained page and the JSON behind it next to it, the same JSON embedded', () => {
    const html = readFileSync(htmlPath, 'utf8');
    assert.deepEqual(externalReferences(html), []);
    // The check itself finds what it must.
    assert.deepEqual(externalReferences('<img src="https://x/y.png"><link rel="stylesheet" href="a.css"><p style="background:url(b.png)">'),
      ['src=https://x/y.png', 'href=a.css', 'url(b.png)', '<img src="https://x/y.png">', '<link rel="stylesheet" href="a.css">']);
    assert.equal((html.match(/<svg\b/g) ?? []).length, CHARTS.length);

    const data: ReportData = JSON.parse(readFileSync(jsonPathFor(htmlPath), 'utf8'));
    const embedded = /<script type="application\/json" id="report-data">([^<]*)<\/script>/.exec(html);
    assert.ok(embedded, 'the JSON is embedded');
    assert.deepEqual(JSON.parse(embedded[1]), data);
    assert.equal(data.profiles.length, 3);
    assert.deepEqual(data.profiles.map((p) => p.verdict), result.profiles.map((p) => p.verdict));

    // The status page's counts are set beside the legacy replay as counts, never scaled onto its curve.
    const legacy = result.profiles.find((p) => p.profile === 'legacy')!;
    const c = data.statusPage!;
    assert.ok(c.stuck > 0 && c.stuck === legacy.stuck.devices, 'the legacy replay has stuck devices');
    assert.equal(c.share, legacy.stuck.devices / legacy.devices);
    assert.equal(c.impliedFleet, Math.round(500 / c.share));
    assert.equal(c.reportedHealedShare, 480 / 500);
    assert.match(html, new RegExp(`~500 stuck would take a fleet of ~${c.impliedFleet!.toLocaleString('en-US')} devices like this one`));
    assert.doesNotMatch(html, /reported_points|scaled/);
  });

  it('writeReport refuses a path that is not .html, naming it', async () => {
    await assert.rejects(writeReport(result, join(dir, 'incident.json')), /incident\.json must end in \.html/);
  });

  it('is the same page whatever the time zone of the machine drawing it (dates are Pacific, as the status page)', async () => {
    const zone = process.env.TZ;
    try {
      process.env.TZ = 'Pacific/Kiritimati';
      const east = (await renderReport(result)).html;
      process.env.TZ = 'America/Los_Angeles';
      const west = (await renderReport(result)).html;
      assert.ok(east === west, 'the page depends on the time zone');
      assert.match(east, /May 2 10:00/);
    } finally {
      if (zone === undefined) delete process.env.TZ;
      else process.env.TZ = zone;
    }
  });

  it('a 3-day replay: devices still stuck count to the last hour, the May 8 comparison says the replay ends first', async () => {
    const { result: short } = await runFleet({ ...DEFAULT_FLEET, devices: 8, workers: 2, days: 3, seed: 'report-test', profiles: ['legacy'] });
    const legacy = short.profiles[0];
    assert.ok(legacy.stuck.stillStuckAtEnd > 0, 'some devices are still stuck after 3 days');
    assert.equal(legacy.series.stuck.at(-1), legacy.stuck.stillStuckAtEnd);
    const { html } = await renderReport(short);
    assert.equal(short.statusPage!.healedByMay8Evening, null);
    assert.match(html, /this replay ends before May 8 evening/);
    assert.match(html, /May 2019 replay: 8 devices, one firmware profile/);
  });

  it('a replay shorter than a day (the live timeline: one hour) shows its bytes per wake, not scaled to a device-day', async () => {
    const { result: hour } = await runFleet({ ...LIVE_FLEET, devices: 6, workers: 1, profiles: ['legacy', 'default'] });
    const { html } = await renderReport(hour);
    assert.match(html, /Bytes on the air per device/);
    assert.match(html, /Per wake, a stuck device while stuck/);
    assert.doesNotMatch(html, /device-day/);
    const legacy = hour.profiles.find((p) => p.profile === 'legacy')!;
    assert.equal(legacy.bytes.unit, 'wake');
    assert.ok(legacy.bytes.perStuckWake! > 0 && legacy.bytes.wakeRatio !== null, 'legacy.bytes.perStuckWake! > 0 && legacy.bytes.wakeRatio !== null');
    const text = formatFleet(hour);
    assert.match(text, /bytes\/wake stuck vs healthy/);
    assert.doesNotMatch(text, /bytes\/day/);
  });

  it('a chart vega-lite warns about fails the report instead of going missing', async () => {
    const bad = { description: 'bad', data: { values: [{ a: 1 }] }, mark: 'line', encoding: { x: { field: 'a', type: 'quantitative' }, align: { value: 'left' } } };
    await assert.rejects(renderSvg(bad as never), /report: chart "bad": warning: .*align/);
    const good = await renderSvg({ ...bad, encoding: { x: bad.encoding.x } } as never);
    assert.match(good, /^<svg /);
  });

  it('opens offline in headless Chromium: nothing fetched, no error, every chart with every profile, the status-page comparison', async (t) => {
    const chromium = findChromium();
    if (!chromium) {
      skipOrFail(t, 'chromium not installed (Debian: apt-get install chromium)');
      return;
    }
    const pngPath = join(dir, 'incident.png');
    const expected: Expected = { titles: result.profiles.map((p) => p.title), timelineRules: result.timeline.length };
    const visit = await openReport(htmlPath, {
      chromium,
      screenshotPath: pngPath,
      inspect: async (page) => {
        const whole = await checkReportPage(page, expected);
        // The check fails a page that lacks a series, a legend entry or the status-page comparison.
        await page.evaluate(() => {
          const fixedLine = [...document.querySelectorAll('figure[data-chart="deliveries"] .series_marks path')].find((p) => p.getAttribute('aria-label')?.endsWith('fixed (Device OS 1.2.x)'));
          fixedLine?.remove();
          const legacyEntry = [...document.querySelectorAll('figure[data-chart="bytes"] .role-legend-entry .role-scope > g')].find((g) => g.textContent === 'legacy (Device OS 1.1.0)');
          legacyEntry?.remove();
          document.querySelector('section#status-page')?.remove();
        });
        const broken = await checkReportPage(page, expected);
        return { whole, broken, title: await page.title() };
      },
    });
    assert.deepEqual(visit.requests, [pathToFileURL(resolve(htmlPath)).href], 'the page asks for nothing but itself');
    assert.deepEqual(visit.consoleErrors, []);
    assert.deepEqual(visit.pageErrors, []);
    assert.deepEqual(visit.inspected.whole, []);
    assert.deepEqual(visit.inspected.broken, [
      'deliveries: no series for fixed (Device OS 1.2.x)',
      'bytes: no legend entry for legacy (Device OS 1.1.0)',
      'no comparison with the status page',
    ]);
    assert.match(visit.inspected.title, /^May 2019 replay: 24 devices/);
    assert.ok(existsSync(pngPath), 'existsSync(pngPath)');
    const size = pngSize(pngPath);
    assert.equal(size.width, 1200);
    assert.ok(size.height > 2000, `full page, not the viewport (${size.height} px)`);
  });
});
