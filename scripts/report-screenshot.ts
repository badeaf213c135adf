/**
 * Opens a report in headless Chromium (Debian `chromium`, driven by puppeteer-core) with the
 * network cut off: every request is recorded and only the report file itself is let through.
 * Returns what the page did (requests, console errors, page errors) and, on request, a full-page
 * PNG. The report test and the README picture both go through here.
 *
 *   node --import tsx scripts/report-screenshot.ts reports/incident.html docs/img/incident-report.png
 */
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import puppeteer, { type Page } from 'puppeteer-core';

/** Path of the chromium binary, or null when it is not installed. */
export function findChromium(): string | null {
  for (const name of ['chromium', 'chromium-browser']) {
    try {
      const path = execFileSync('which', [name], { encoding: 'utf8' }).trim();
      if (path) return path;
    } catch {
      // not on PATH: try the next name
    }
  }
  return null;
}

export interface PageVisit<T> {
  /** Every URL the page asked for, in order (the report file itself included). */
  requests: string[];
  consoleErrors: string[];
  pageErrors: string[];
  /** What `inspect` returned. */
  inspected: T;
}

export interface OpenOptions<T> {
  chromium?: string;
  /** Full-page PNG written here after load. */
  screenshotPath?: string;
  width?: number;
  /** Runs in Node with the loaded page (e.g. page.evaluate checks). */
  inspect?: (page: Page) => Promise<T>;
}

export async function openReport<T = undefined>(htmlPath: string, opts: OpenOptions<T> = {}): Promise<PageVisit<T>> {
  const executablePath = opts.chromium ?? findChromium();
  if (!executablePath) throw new Error('report-screenshot: chromium not found on PATH (Debian: apt-get install chromium)');
  const url = pathToFileURL(resolve(htmlPath)).href;
  const browser = await puppeteer.launch({
    executablePath,
    headless: true,
    // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--disable-background-networking'],
  });
  const requests: string[] = [];
  const consoleErrors: string[] = [];
  const pageErrors: string[] = [];
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: opts.width ?? 1200, height: 900, deviceScaleFactor: 1 });
    await page.setRequestInterception(true);
    page.on('request', (req) => {
      requests.push(req.url());
      if (req.url() === url) void req.continue();
      else void req.abort('blockedbyclient');
    });
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    const response = await page.goto(url, { waitUntil: 'load' });
    if (!response || !response.ok()) throw new Error(`report-screenshot: ${htmlPath} did not load (${response?.status() ?? 'no response'})`);
    const inspected = (opts.inspect ? await opts.inspect(page) : undefined) as T;
    if (opts.screenshotPath) await page.screenshot({ path: opts.screenshotPath as `${string}.png`, fullPage: true, type: 'png' });
    return { requests, consoleErrors, pageErrors, inspected };
  } finally {
    await browser.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [html, png] = process.argv.slice(2);
  if (!html || !png || !png.endsWith('.png')) {
    console.error('usage: node --import tsx scripts/report-screenshot.ts REPORT.html OUT.png');
    process.exit(2);
  }
  const visit = await openReport(html, { screenshotPath: png });
  const blocked = visit.requests.filter((u) => u !== pathToFileURL(resolve(html)).href);
  const problems = [...blocked.map((u) => `request: ${u}`), ...visit.consoleErrors.map((e) => `console: ${e}`), ...visit.pageErrors.map((e) => `page error: ${e}`)];
  if (problems.length) {
    console.error(`report-screenshot: ${html}:\n  ${problems.join('\n  ')}`);
    process.exit(1);
  }
  console.log(`wrote ${png}`);
}
