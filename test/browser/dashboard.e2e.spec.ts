// The analyst dashboard in real Chromium: a fresh embedded server, two simulated runs, sign-in with an analyst key, every
// chart and tile checked against the metrics API, the run filter, no console errors, and layout at a laptop and a phone size.

import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simulate, type SimulationSummary } from '../../adapters/cli/simulate.js';
import { StaffClient } from '../../adapters/client/trainledger-client.js';
import { loadConfig } from '../../adapters/config.js';
import { newApiKey } from '../../adapters/http/auth/api-keys.js';
import { startSystem, type RunningSystem } from '../../adapters/system.js';

/** CHROMIUM_PATH overrides; .ci/run installs Debian's chromium, which lands at /usr/bin/chromium. */
const CHROMIUM = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p): p is string => typeof p === 'string' && p !== '' && existsSync(p));
const ARTIFACTS = join(process.cwd(), 'test-artifacts');
const VIEWPORTS = [
  { name: '1280x800', width: 1280, height: 800 },
  { name: '390x844', width: 390, height: 844 },
] as const;
const CHARTS = ['money', 'ratios', 'rates', 'escrow'] as const;
/** Longest wait for one DOM state (a refresh is a handful of small queries). */
const UI_TIMEOUT_MS = 20_000;

type Periods = Record<string, string | number | null>[];
type RunTotals = Record<string, string | number | null> & { runId: string };

if (!CHROMIUM && process.env.TRAINLEDGER_REQUIRE_CHROMIUM === '1') {
  throw new Error('dashboard browser test: TRAINLEDGER_REQUIRE_CHROMIUM=1 (as .ci/run sets it) but no chromium was found; install Debian\'s chromium or set CHROMIUM_PATH');
}
if (!CHROMIUM) {
  process.stderr.write(
    '\n*** dashboard browser test SKIPPED: no chromium found (set CHROMIUM_PATH, or `apt-get install chromium`; .ci/run installs it). ***\n\n',
  );
}

describe.skipIf(!CHROMIUM)(CHROMIUM ? 'analyst dashboard in Chromium' : 'analyst dashboard in Chromium SKIPPED: chromium not installed', () => {
  const adminKey = newApiKey('coordinator');
  const dataDir = mkdtempSync(join(tmpdir(), 'trainledger-dashboard-'));
  let system: RunningSystem;
  let browser: Browser;
  let analystKey: string;
  const runs: SimulationSummary[] = [];

  async function getJson<T>(path: string, key = analystKey): Promise<T> {
    const response = await fetch(`${system.address}${path}`, { headers: { authorization: `Bearer ${key}` } });
    expect(response.status, `${path}: ${await response.clone().text()}`).toBe(200);
    return (await response.json()) as T;
  }

  /** Projections read the log behind the writers: wait until none is behind, so the API and the page see the same figures. */
  async function projectionsCurrent(): Promise<void> {
    for (;;) {
      const health = await getJson<{ projections: { lagEvents: number }[] }>('/health');
      if (health.projections.every((p) => p.lagEvents === 0)) return;
      await new Promise((resolve) => setTimeout(resolve, 100)); // polling the server, not synchronising the page
    }
  }

  beforeAll(async () => {
    const config = loadConfig(['--data-dir', dataDir, '--port', '0'], {});
    system = await startSystem({ config, env: { TRAINLEDGER_ADMIN_KEY: adminKey }, log: () => {} });
    // Two runs of different sizes (funding scales with contributors), each with one cheater who disputes.
    for (const [contributors, cheaters, seed] of [[3, 0.34, '11'], [4, 0.25, '12']] as const) {
      runs.push(await simulate({ baseUrl: system.address, adminKey, contributors, steps: 1, cheaters, disputeShare: 1, seed, roundTimeoutMs: 60_000, disputeWindowMs: 2_000, progress: () => {} }));
    }
    analystKey = (await new StaffClient({ baseUrl: system.address }, adminKey).issueKey({ keyId: 'dashboard-analyst', role: 'analyst', label: 'browser test' })).apiKey;
    await projectionsCurrent();
    mkdirSync(ARTIFACTS, { recursive: true });
    browser = await chromium.launch({ executablePath: CHROMIUM!, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await system?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** A page that records every console error, uncaught exception and failed request. */
  async function openPage(width: number, height: number): Promise<{ page: Page; problems: string[] }> {
    const context = await browser.newContext({ viewport: { width, height }, offline: false });
    // No internet: anything not on the app's own origin fails, and would show up below.
    await context.route((url) => !url.href.startsWith(system.address), (route) => route.abort('internetdisconnected'));
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('console', (message) => { if (message.type() === 'error' || message.type() === 'warning') problems.push(`console.${message.type()}: ${message.text()}`); });
    page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
    page.on('requestfailed', (request) => problems.push(`requestfailed: ${request.url()} ${request.failure()?.errorText ?? ''}`));
    page.on('response', (response) => { if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.url()}`); });
    return { page, problems };
  }

  async function signIn(page: Page): Promise<void> {
    await page.goto(system.address + '/');
    await page.locator('#sign-in').waitFor({ state: 'visible' });
    await page.fill('#api-key', analystKey);
    await page.click('#sign-in-form button[type=submit]');
    await page.waitForSelector('body[data-state="ready"]', { timeout: UI_TIMEOUT_MS });
  }

  /** Chooses a run and waits until the page says it rendered that run (the generation moves on every refresh). */
  async function chooseRun(page: Page, runId: string): Promise<void> {
    await page.waitForSelector(`#run-filter option[value="${runId}"]`, { state: 'attached', timeout: UI_TIMEOUT_MS });
    await page.selectOption('#run-filter', runId);
    await page.waitForSelector(`body[data-state="ready"][data-rendered-run="${runId}"]`, { timeout: UI_TIMEOUT_MS });
  }

  async function chartSeries(page: Page, chart: string): Promise<{ state: string; periodStartMs: number[]; series: Record<string, (number | null)[]> }> {
    const figure = page.locator(`[data-chart="${chart}"]`);
    const state = (await figure.getAttribute('data-state')) ?? '';
    return { state, ...JSON.parse((await figure.getAttribute('data-series')) ?? '{}') };
  }

  async function tiles(page: Page): Promise<Record<string, string>> {
    return page.$$eval('[data-kpi]', (els) => Object.fromEntries(els.map((el) => [(el as unknown as { dataset: Record<string, string> }).dataset.kpi, (el as unknown as { dataset: Record<string, string> }).dataset.value])));
  }

  const sats = (msat: unknown) => Number(BigInt(String(msat))) / 1000;

  /** What each chart must plot, from the metrics API directly. */
  function expectedCharts(periods: Periods): Record<(typeof CHARTS)[number], Record<string, (number | null)[]>> {
    return {
      money: {
        'External revenue': periods.map((p) => sats(p.externalRevenueMsat)),
        'Rewards paid': periods.map((p) => sats(p.rewardsPaidMsat)),
        'Subsidy funding': periods.map((p) => sats(p.subsidyFundingMsat)),
        'Rewards from subsidy': periods.map((p) => sats(p.rewardsPaidFromSubsidyMsat)),
      },
      ratios: { 'Subsidy ratio': periods.map((p) => p.subsidyRatio as number | null), 'Take rate': periods.map((p) => p.takeRate as number | null) },
      rates: { Acceptance: periods.map((p) => p.acceptanceRate as number | null), Dispute: periods.map((p) => p.disputeRate as number | null), Overturn: periods.map((p) => p.overturnRate as number | null) },
      escrow: { 'Escrow outstanding': periods.map((p) => sats(p.escrowOutstandingMsat)) },
    };
  }

  async function expectRunShown(page: Page, runId: string): Promise<Record<string, unknown>> {
    const periods = await getJson<Periods>(`/v1/metrics/periods?granularity=hour&runId=${runId}`);
    expect(periods.length).toBeGreaterThan(0);
    const expected = expectedCharts(periods);
    const shown: Record<string, unknown> = {};
    for (const chart of CHARTS) {
      const actual = await chartSeries(page, chart);
      expect(actual.state, `${chart} chart`).toBe('ready');
      expect(actual.periodStartMs).toEqual(periods.map((p) => p.periodStartMs));
      expect(actual.series, `${chart} chart matches /v1/metrics/periods`).toEqual(expected[chart]);
      // A chart of this run holds the run's data: uPlot drew a canvas for it.
      expect(await page.locator(`[data-chart="${chart}"] canvas`).count()).toBeGreaterThan(0);
      shown[chart] = actual.series;
    }
    expect(expected.money['External revenue']!.some((v) => (v ?? 0) > 0), 'the run had revenue').toBe(true);
    expect(expected.rates.Acceptance!.some((v) => v !== null), 'the run had verdicts').toBe(true);

    // Tiles over all time equal the per-run figures, which the API computes by another query (metricsByRun).
    const totals = (await getJson<RunTotals[]>('/v1/metrics/runs')).find((r) => r.runId === runId)!;
    const kpis = await tiles(page);
    for (const name of ['externalRevenueMsat', 'rewardsPaidMsat', 'subsidyFundingMsat', 'escrowOutstandingMsat']) expect(kpis[name], name).toBe(String(totals[name]));
    for (const name of ['subsidyRatio', 'takeRate', 'acceptanceRate', 'disputeRate', 'overturnRate']) expect(kpis[name], name).toBe(String(totals[name]));
    shown.kpis = kpis;

    // Top contributors: exactly what the route ranks, and together they got every reward the run paid.
    const top = await getJson<{ contributorId: string; paidMsat: string }[]>(`/v1/ledger/top-contributors?runId=${runId}&limit=10`);
    const rows = await page.$$eval('#top-contributors tbody tr[data-contributor]', (trs) => trs.map((tr) => ({ contributorId: (tr as unknown as { dataset: Record<string, string> }).dataset.contributor, paidMsat: (tr as unknown as { dataset: Record<string, string> }).dataset.paidMsat })));
    expect(rows).toEqual(top.map((t) => ({ contributorId: t.contributorId, paidMsat: t.paidMsat })));
    expect(top.reduce((sum, t) => sum + BigInt(t.paidMsat), 0n)).toBe(BigInt(String(totals.rewardsPaidMsat)));

    // Recent disputes of this run, each resolved on replay, each with a recipe one click away.
    const disputes = await getJson<{ assignmentId: string; resolution: string | null }[]>(`/v1/disputes?runId=${runId}&limit=10`);
    expect(disputes.length).toBeGreaterThan(0);
    const disputeRows = await page.$$eval('#recent-disputes tbody tr[data-assignment]', (trs) => trs.map((tr) => (tr as unknown as { dataset: Record<string, string> }).dataset.assignment));
    expect(disputeRows).toEqual(disputes.map((d) => d.assignmentId));
    return shown;
  }

  it('signs in with an analyst key, shows every figure of each run as the metrics API has it, and the run filter changes them', async () => {
    const { page, problems } = await openPage(1280, 800);
    await signIn(page);
    expect(await page.getAttribute('#role', 'data-role')).toBe('analyst');
    // The key lives in this tab's sessionStorage and in no URL.
    expect(await page.evaluate('sessionStorage.getItem("trainledger.dashboard.apiKey")')).toBe(analystKey);
    expect(page.url()).not.toContain(analystKey);

    // All runs: both runs' periods summed by the API; the charts plot exactly those.
    const all = await getJson<Periods>('/v1/metrics/periods?granularity=hour');
    const allExpected = expectedCharts(all);
    for (const chart of CHARTS) expect((await chartSeries(page, chart)).series, `${chart} (all runs)`).toEqual(allExpected[chart]);

    const [first, second] = runs;
    await chooseRun(page, first!.runId);
    const shownFirst = await expectRunShown(page, first!.runId);
    await chooseRun(page, second!.runId);
    const shownSecond = await expectRunShown(page, second!.runId);
    expect(shownSecond.money, 'the run filter changed the revenue chart').not.toEqual(shownFirst.money);
    expect(shownSecond.kpis, 'the run filter changed the tiles').not.toEqual(shownFirst.kpis);

    // A recipe link opens the replay's recipe, fetched with the header (the link itself carries no key).
    const link = page.locator('#recent-disputes a[data-recipe]').first();
    const assignmentId = (await link.getAttribute('data-recipe'))!;
    expect(await link.getAttribute('href')).toBe(`/v1/disputes/${assignmentId}`);
    await link.click();
    await page.waitForSelector(`#recipe-dialog[data-state="ready"][data-assignment="${assignmentId}"]`, { timeout: UI_TIMEOUT_MS });
    const detail = JSON.parse((await page.textContent('#recipe-body')) ?? '{}');
    expect(detail).toEqual(await getJson(`/v1/disputes/${assignmentId}`));
    expect(detail.recipe).toMatchObject({ graphDigest: expect.stringMatching(/^[0-9a-f]{64}$/), checkpointDigest: expect.stringMatching(/^[0-9a-f]{64}$/) });
    await page.click('#recipe-dialog button');

    // Live: the page polls on its own; a later generation arrives without any input.
    const generation = await page.getAttribute('body', 'data-generation');
    await page.waitForSelector(`body[data-state="ready"]:not([data-generation="${generation}"])`, { timeout: UI_TIMEOUT_MS });
    expect(problems, 'console errors, page errors or failed requests').toEqual([]);
    await page.context().close();
  }, 120_000);

  for (const viewport of VIEWPORTS) {
    it(`lays out at ${viewport.name} without horizontal overflow, and saves a screenshot`, async () => {
      const { page, problems } = await openPage(viewport.width, viewport.height);
      await signIn(page);
      await chooseRun(page, runs[1]!.runId);
      for (const chart of CHARTS) await page.waitForSelector(`[data-chart="${chart}"][data-state="ready"] canvas`, { timeout: UI_TIMEOUT_MS });
      const layout = (await page.evaluate(`(() => {
        const root = document.scrollingElement;
        const wide = [...document.querySelectorAll('main *')].filter((el) => {
          if (el.closest('.scroll')) return false; // tables scroll inside their own box
          const box = el.getBoundingClientRect();
          return box.width > 0 && box.right > innerWidth + 0.5;
        }).map((el) => el.tagName + (el.id ? '#' + el.id : '') + '.' + el.className);
        const charts = [...document.querySelectorAll('[data-chart]')].map((fig) => ({ chart: fig.dataset.chart, figure: fig.getBoundingClientRect().width, canvas: fig.querySelector('canvas').getBoundingClientRect().width }));
        return { scrollWidth: root.scrollWidth, innerWidth, wide, charts };
      })()`)) as { scrollWidth: number; innerWidth: number; wide: string[]; charts: { chart: string; figure: number; canvas: number }[] };
      expect(layout.scrollWidth, 'the page scrolls sideways').toBeLessThanOrEqual(layout.innerWidth);
      expect(layout.wide, 'elements past the right edge').toEqual([]);
      for (const c of layout.charts) expect(c.canvas, `${c.chart} chart wider than its card`).toBeLessThanOrEqual(c.figure);
      await page.screenshot({ path: join(ARTIFACTS, `dashboard-${viewport.name}.png`), fullPage: true });
      expect(problems, 'console errors, page errors or failed requests').toEqual([]);
      await page.context().close();
    }, 120_000);
  }
});
