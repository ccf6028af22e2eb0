/**
 * Opens a drill report page in headless Chromium (Debian's, through
 * playwright-core, which gives it a fresh throwaway profile) and reads what a person would see: the verdict, the
 * timeline chart's events, the objectives, and every request the page made.
 */
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

export interface RenderedReport {
  title: string;
  verdictText: string;
  verdictVisible: boolean;
  /** the chart's events: name, offset in seconds, whether its dot is visible, its label */
  chartEvents: { event: string; offset: string; dotVisible: boolean; label: string }[];
  objectives: { name: string; pass: string; visible: boolean; result: string }[];
  measureCards: string[];
  unrevertedAlert: string | null;
  /** every request other than the page itself */
  requests: string[];
  /** the chart's size on screen: it must really be drawn */
  chartBox: { width: number; height: number } | null;
}

export async function openReportInChromium(htmlPath: string): Promise<RenderedReport> {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage();
    const pageUrl = pathToFileURL(htmlPath).href;
    const requests: string[] = [];
    page.on('request', (r) => {
      if (r.url() !== pageUrl) requests.push(r.url());
    });
    await page.goto(pageUrl, { waitUntil: 'load' });
    const chartEvents = await page.$$eval('#timeline-chart g.event', (gs) =>
      gs.map((g) => {
        const dot = g.querySelector('circle');
        const box = dot?.getBoundingClientRect();
        return {
          event: g.getAttribute('data-event') ?? '',
          offset: g.querySelector('text.offset')?.textContent ?? '',
          dotVisible: !!box && box.width > 0 && box.height > 0,
          label: g.querySelector('text.label')?.textContent ?? '',
        };
      }),
    );
    const objectives = await page.$$eval('#objectives tr[data-objective]', (trs) =>
      trs.map((tr) => {
        const box = tr.getBoundingClientRect();
        return { name: tr.getAttribute('data-objective') ?? '', pass: tr.getAttribute('data-pass') ?? '', visible: box.height > 0, result: tr.querySelector('.badge')?.textContent ?? '' };
      }),
    );
    const chart = await page.locator('#timeline-chart').boundingBox();
    return {
      title: await page.title(),
      verdictText: (await page.locator('#verdict strong').textContent()) ?? '',
      verdictVisible: await page.locator('#verdict').isVisible(),
      chartEvents,
      objectives,
      measureCards: await page.$$eval('#measured .card', (cs) => cs.map((c) => (c as unknown as { innerText: string }).innerText.replace(/\s+/g, ' ').trim())),
      unrevertedAlert: (await page.locator('#unreverted').count()) ? await page.locator('#unreverted').innerText() : null,
      requests,
      chartBox: chart ? { width: chart.width, height: chart.height } : null,
    };
  } finally {
    await browser.close();
  }
}
