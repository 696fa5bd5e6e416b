// The API reference at /docs in real Chromium with every request to another origin blocked: it renders each operation of /docs/json, with no console error.

import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiHarness, type ApiHarness } from '../http/api-harness.js';

/** As the dashboard's browser test finds it: CHROMIUM_PATH, else Debian's chromium. */
const CHROMIUM = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p): p is string => typeof p === 'string' && p !== '' && existsSync(p));
const UI_TIMEOUT_MS = 20_000;

if (!CHROMIUM && process.env.TRAINLEDGER_REQUIRE_CHROMIUM === '1') {
  throw new Error('docs browser test: TRAINLEDGER_REQUIRE_CHROMIUM=1 but no chromium was found; install Debian\'s chromium or set CHROMIUM_PATH');
}
if (!CHROMIUM) process.stderr.write('\n*** /docs browser test SKIPPED: no chromium found (set CHROMIUM_PATH, or `apt-get install chromium`). ***\n\n');

describe.skipIf(!CHROMIUM)(CHROMIUM ? 'the /docs reference in Chromium, offline' : '/docs in Chromium SKIPPED: chromium not installed', () => {
  let h: ApiHarness;
  let browser: Browser;
  let address: string;

  beforeAll(async () => {
    h = await apiHarness('pglite');
    address = await h.app.listen({ port: 0, host: '127.0.0.1' });
    browser = await chromium.launch({ executablePath: CHROMIUM!, args: ['--no-sandbox'] });
  });
  afterAll(async () => {
    await browser?.close();
    await h?.close();
  });

  it('renders every operation from this origin alone', async () => {
    const page = await browser.newPage();
    const elsewhere: string[] = [];
    const complaints: string[] = [];
    // The network is cut for anything but this server: a CDN asset would fail here as it would offline.
    await page.route('**/*', async (route) => {
      if (new URL(route.request().url()).origin === address) return route.continue();
      elsewhere.push(route.request().url());
      return route.abort();
    });
    page.on('console', (message) => {
      if (message.type() === 'error') complaints.push(message.text());
    });
    page.on('pageerror', (error) => complaints.push(String(error)));
    await page.goto(`${address}/docs`);
    const operationIds = ((await h.app.inject({ method: 'GET', url: '/docs/json' })).json() as { paths: Record<string, Record<string, { operationId: string }>> }).paths;
    const expected = Object.values(operationIds).flatMap((item) => Object.values(item).map((op) => op.operationId));
    await page.locator('.opblock').nth(expected.length - 1).waitFor({ timeout: UI_TIMEOUT_MS });
    expect(await page.locator('.opblock').count()).toBe(expected.length);
    const shown = await page.locator('.opblock-summary-operation-id').allTextContents();
    expect(shown.map((s) => s.trim()).sort()).toEqual(expected.sort());
    expect(elsewhere).toEqual([]);
    expect(complaints).toEqual([]);
    await page.close();
  }, 60_000);
});
