// TrainLedger analyst dashboard: signs in with a staff key (sessionStorage, Authorization header only), polls the metrics,
// ledger and disputes routes, and draws them with uPlot. Each rendered part carries data-* attributes that say what it shows.
'use strict';

(() => {
  const KEY_STORAGE = 'trainledger.dashboard.apiKey';
  const POLL_MS = 5000;
  const LIST_ROWS = '10';
  const $ = (selector) => document.querySelector(selector);
  const state = { key: sessionStorage.getItem(KEY_STORAGE), seq: 0, timer: null, charts: new Map(), generation: 0, granularity: 'hour' };
  const PERIOD_SEC = { hour: 3600, day: 86400, week: 604800 };

  class ApiFailure extends Error {
    constructor(status, code, detail) {
      super(detail);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path, params = {}) {
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) if (value !== undefined && value !== '') search.set(name, value);
    const query = search.toString();
    const response = await fetch(query ? `${path}?${query}` : path, { headers: { authorization: `Bearer ${state.key}`, accept: 'application/json' }, cache: 'no-store' });
    if (!response.ok) {
      let problem = {};
      try { problem = await response.json(); } catch { /* not JSON: the status says enough */ }
      throw new ApiFailure(response.status, problem.code ?? 'HTTP_' + response.status, problem.detail ?? response.statusText);
    }
    return response.json();
  }

  // ---- formatting ---------------------------------------------------------------------------------------------------
  const satsFormat = new Intl.NumberFormat('en-US', { maximumFractionDigits: 3 });
  const percentFormat = new Intl.NumberFormat('en-US', { style: 'percent', maximumFractionDigits: 1 });
  const msatToSats = (msat) => Number(BigInt(msat)) / 1000;
  const sats = (msat) => `${satsFormat.format(msatToSats(msat))} sats`;
  const percent = (ratio) => (ratio === null ? '–' : percentFormat.format(ratio));
  const when = (ms) => new Date(ms).toLocaleString('en-GB', { month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });

  // ---- totals over the selected periods, by the same rules as the metrics projection --------------------------------
  const ratio = (numerator, denominator) => (denominator === 0n ? null : Number(numerator) / Number(denominator));
  function totalsOf(periods) {
    const sum = (field) => periods.reduce((acc, p) => acc + BigInt(p[field]), 0n);
    const revenue = sum('externalRevenueMsat');
    const paid = sum('rewardsPaidMsat');
    const fromSubsidy = sum('rewardsPaidFromSubsidyMsat');
    const accepted = sum('acceptedCount');
    const rejected = sum('rejectedCount');
    const resolved = sum('resolvedCount');
    const last = periods[periods.length - 1];
    return {
      externalRevenueMsat: revenue.toString(),
      rewardsPaidMsat: paid.toString(),
      subsidyFundingMsat: sum('subsidyFundingMsat').toString(),
      subsidyRatio: ratio(fromSubsidy, revenue),
      takeRate: ratio(revenue - paid, revenue),
      acceptanceRate: ratio(accepted, accepted + rejected),
      disputeRate: ratio(sum('disputedCount'), rejected),
      overturnRate: ratio(sum('overturnedCount'), resolved),
      escrowOutstandingMsat: last ? last.escrowOutstandingMsat : '0',
    };
  }

  function renderTiles(totals) {
    for (const tile of document.querySelectorAll('[data-kpi]')) {
      const name = tile.dataset.kpi;
      const value = totals[name];
      tile.dataset.value = String(value);
      tile.querySelector('.value').textContent = name.endsWith('Msat') ? sats(value) : percent(value);
    }
  }

  // ---- charts -------------------------------------------------------------------------------------------------------
  const asPercent = (_u, values) => values.map((v) => (v === null ? '' : percentFormat.format(v)));
  const CHARTS = {
    money: {
      unit: 'sats',
      series: [
        { label: 'External revenue', stroke: '#1f77b4', value: (p) => msatToSats(p.externalRevenueMsat) },
        { label: 'Rewards paid', stroke: '#d62728', value: (p) => msatToSats(p.rewardsPaidMsat) },
        { label: 'Subsidy funding', stroke: '#ff7f0e', value: (p) => msatToSats(p.subsidyFundingMsat) },
        { label: 'Rewards from subsidy', stroke: '#9467bd', dash: [6, 4], value: (p) => msatToSats(p.rewardsPaidFromSubsidyMsat) },
      ],
    },
    ratios: {
      unit: 'ratio',
      series: [
        { label: 'Subsidy ratio', stroke: '#9467bd', value: (p) => p.subsidyRatio },
        { label: 'Take rate', stroke: '#2b9348', value: (p) => p.takeRate },
      ],
    },
    rates: {
      unit: 'ratio',
      series: [
        { label: 'Acceptance', stroke: '#2b9348', value: (p) => p.acceptanceRate },
        { label: 'Dispute', stroke: '#ff7f0e', value: (p) => p.disputeRate },
        { label: 'Overturn', stroke: '#d62728', value: (p) => p.overturnRate },
      ],
    },
    escrow: {
      unit: 'sats',
      series: [{ label: 'Escrow outstanding', stroke: '#1f4e79', fill: 'rgba(31,78,121,0.12)', value: (p) => msatToSats(p.escrowOutstandingMsat) }],
    },
  };

  function xRange(u) {
    const xs = u.data[0];
    const half = PERIOD_SEC[state.granularity] / 2;
    return xs.length === 0 ? [0, 1] : [xs[0] - half, xs[xs.length - 1] + half];
  }

  function chartOptions(spec, width) {
    const formatValue = spec.unit === 'ratio' ? (_u, v) => (v === null || v === undefined ? '–' : percentFormat.format(v)) : (_u, v) => (v === null || v === undefined ? '–' : satsFormat.format(v));
    return {
      width,
      height: 240,
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      // From the data, with half a period of margin each side: for a single point uPlot would otherwise span 1,000 days.
      scales: { x: { time: true, range: xRange } },
      axes: [{}, { size: 64, ...(spec.unit === 'ratio' ? { values: asPercent } : {}) }],
      series: [
        { label: 'Period', value: (_u, v) => (v === null || v === undefined ? '–' : when(v * 1000)) },
        ...spec.series.map((s) => ({ label: s.label, stroke: s.stroke, width: 2, spanGaps: false, points: { show: true, size: 6 }, value: formatValue, ...(s.dash ? { dash: s.dash } : {}), ...(s.fill ? { fill: s.fill } : {}) })),
      ],
    };
  }

  function renderChart(name, periods) {
    const figure = document.querySelector(`[data-chart="${name}"]`);
    const plot = figure.querySelector('.plot');
    const spec = CHARTS[name];
    const xs = periods.map((p) => p.periodStartMs / 1000);
    const columns = spec.series.map((s) => periods.map((p) => s.value(p)));
    figure.dataset.points = String(periods.length);
    figure.dataset.series = JSON.stringify({ periodStartMs: periods.map((p) => p.periodStartMs), series: Object.fromEntries(spec.series.map((s, i) => [s.label, columns[i]])) });
    let chart = state.charts.get(name);
    if (periods.length === 0) {
      if (chart) chart.destroy();
      state.charts.delete(name);
      figure.dataset.state = 'empty';
      return;
    }
    const data = [xs, ...columns];
    if (chart) chart.setData(data);
    else {
      chart = new uPlot(chartOptions(spec, Math.max(plot.clientWidth, 200)), data, plot);
      state.charts.set(name, chart);
    }
    figure.dataset.state = 'ready';
  }

  function resizeCharts() {
    for (const [name, chart] of state.charts) {
      const plot = document.querySelector(`[data-chart="${name}"] .plot`);
      const width = Math.max(plot.clientWidth, 200);
      if (chart.width !== width) chart.setSize({ width, height: 240 });
    }
  }

  function destroyCharts() {
    for (const chart of state.charts.values()) chart.destroy();
    state.charts.clear();
    for (const figure of document.querySelectorAll('[data-chart]')) figure.dataset.state = 'empty';
  }

  // ---- tables (built with textContent: nothing from the API is parsed as HTML) --------------------------------------
  function cell(row, text, className) {
    const td = row.insertCell();
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function renderTop(rows) {
    const table = $('#top-contributors');
    const body = table.tBodies[0];
    body.replaceChildren();
    for (const c of rows) {
      const row = body.insertRow();
      row.dataset.contributor = c.contributorId;
      row.dataset.paidMsat = c.paidMsat;
      cell(row, c.contributorId);
      cell(row, satsFormat.format(msatToSats(c.paidMsat)), 'num');
      cell(row, String(c.payments), 'num');
      cell(row, satsFormat.format(msatToSats(c.pendingEscrowMsat)), 'num');
    }
    if (rows.length === 0) cell(body.insertRow(), 'No payments in this selection yet').colSpan = 4;
    table.dataset.rows = String(rows.length);
  }

  function renderDisputes(rows) {
    const table = $('#recent-disputes');
    const body = table.tBodies[0];
    body.replaceChildren();
    for (const d of rows) {
      const row = body.insertRow();
      row.dataset.assignment = d.assignmentId;
      row.dataset.resolution = d.resolution ?? 'open';
      cell(row, when(d.disputedAtMs));
      cell(row, d.assignmentId);
      cell(row, d.contributorId);
      cell(row, d.rejectionCode);
      cell(row, d.replayOutcome === null ? 'pending' : `${d.replayOutcome} (${d.executionProvider})`);
      cell(row, d.resolution ?? 'open', `verdict-${d.resolution ?? 'open'}`);
      const link = document.createElement('a');
      link.href = `/v1/disputes/${encodeURIComponent(d.assignmentId)}`;
      link.dataset.recipe = d.assignmentId;
      link.textContent = d.replayOutcome === null ? 'dispute' : 'recipe';
      row.insertCell().append(link);
    }
    if (rows.length === 0) cell(body.insertRow(), 'No disputes in this selection').colSpan = 7;
    table.dataset.rows = String(rows.length);
  }

  // The link names the API route, but the key must not ride in a URL: fetch it with the header and show it here.
  async function showRecipe(assignmentId) {
    const dialog = $('#recipe-dialog');
    const pre = $('#recipe-body');
    pre.textContent = 'Loading…';
    dialog.dataset.state = 'loading';
    if (!dialog.open) dialog.showModal();
    try {
      const dispute = await api(`/v1/disputes/${encodeURIComponent(assignmentId)}`);
      pre.textContent = JSON.stringify(dispute, null, 2);
      dialog.dataset.assignment = assignmentId;
      dialog.dataset.state = 'ready';
    } catch (error) {
      pre.textContent = `Could not load the recipe: ${error.message}`;
      dialog.dataset.state = 'error';
    }
  }

  // ---- filters and refresh ------------------------------------------------------------------------------------------
  function updateRunOptions(runs) {
    const select = $('#run-filter');
    const known = new Set([...select.options].map((o) => o.value));
    for (const run of runs) {
      if (known.has(run.runId)) continue;
      const option = document.createElement('option');
      option.value = run.runId;
      option.textContent = run.runId;
      select.append(option);
    }
    select.dataset.runs = String(select.options.length - 1);
  }

  function selection() {
    const period = $('#period-filter').value;
    return { runId: $('#run-filter').value, periodMs: period, granularity: $('#granularity-filter').value };
  }

  async function refresh() {
    clearTimeout(state.timer);
    const seq = ++state.seq;
    const chosen = selection();
    const window = { runId: chosen.runId || undefined, fromMs: chosen.periodMs ? String(Date.now() - Number(chosen.periodMs)) : undefined };
    document.body.dataset.state = document.body.dataset.state === 'ready' ? 'refreshing' : 'loading';
    try {
      const [runs, periods, top, disputes] = await Promise.all([
        api('/v1/metrics/runs'),
        api('/v1/metrics/periods', { granularity: chosen.granularity, ...window }),
        api('/v1/ledger/top-contributors', { ...window, limit: LIST_ROWS }),
        api('/v1/disputes', { ...window, limit: LIST_ROWS }),
      ]);
      if (seq !== state.seq) return; // the filters changed while this was in flight; the newer refresh renders
      if (state.granularity !== chosen.granularity) destroyCharts();
      state.granularity = chosen.granularity;
      updateRunOptions(runs);
      renderTiles(totalsOf(periods));
      for (const name of Object.keys(CHARTS)) renderChart(name, periods);
      renderTop(top);
      renderDisputes(disputes);
      $('#load-error').hidden = true;
      $('#refreshed-at').textContent = new Date().toLocaleTimeString('en-GB');
      const body = document.body.dataset;
      body.renderedRun = chosen.runId;
      body.renderedPeriod = chosen.periodMs;
      body.renderedGranularity = chosen.granularity;
      body.generation = String(++state.generation);
      body.state = 'ready';
    } catch (error) {
      if (seq !== state.seq) return;
      if (error instanceof ApiFailure && (error.status === 401 || error.status === 403)) {
        signOut(error.status === 401 ? 'That key is no longer valid: sign in again.' : `This key may not read the dashboard (${error.code}): use an analyst, auditor or coordinator key.`);
        return;
      }
      $('#load-error').textContent = `Refresh failed (${error.code ?? 'NETWORK'}): ${error.message}. Retrying.`;
      $('#load-error').hidden = false;
      document.body.dataset.state = 'error';
    }
    if (seq === state.seq && state.key) state.timer = setTimeout(refreshWhenVisible, POLL_MS);
  }

  function refreshWhenVisible() {
    if (document.visibilityState === 'hidden') state.timer = setTimeout(refreshWhenVisible, POLL_MS);
    else void refresh();
  }

  // ---- sign in and out ----------------------------------------------------------------------------------------------
  const roleOf = (key) => (/^tl_([a-z]+)_/.exec(key) ?? [])[1] ?? 'staff';

  function showDashboard() {
    $('#sign-in').hidden = true;
    $('#dashboard').hidden = false;
    $('#who').hidden = false;
    const role = roleOf(state.key);
    $('#role').textContent = `signed in · ${role}`;
    $('#role').dataset.role = role;
    void refresh();
  }

  function signOut(message) {
    clearTimeout(state.timer);
    state.seq++;
    state.key = null;
    sessionStorage.removeItem(KEY_STORAGE);
    destroyCharts();
    $('#dashboard').hidden = true;
    $('#who').hidden = true;
    $('#sign-in').hidden = false;
    const error = $('#sign-in-error');
    error.hidden = !message;
    error.textContent = message ?? '';
    document.body.dataset.state = 'signed-out';
  }

  async function signIn(event) {
    event.preventDefault();
    const input = $('#api-key');
    state.key = input.value.trim();
    input.value = '';
    try {
      await api('/v1/metrics/runs');
    } catch (error) {
      signOut(error instanceof ApiFailure && error.status === 403 ? 'This key may not read metrics: use an analyst, auditor or coordinator key.' : error instanceof ApiFailure && error.status === 401 ? 'Unknown or revoked key.' : `Could not reach the API: ${error.message}`);
      return;
    }
    sessionStorage.setItem(KEY_STORAGE, state.key);
    showDashboard();
  }

  function start() {
    $('#sign-in-form').addEventListener('submit', signIn);
    $('#sign-out').addEventListener('click', () => signOut());
    $('#filters').addEventListener('change', () => void refresh());
    $('#filters').addEventListener('submit', (event) => event.preventDefault());
    $('#recent-disputes').addEventListener('click', (event) => {
      const link = event.target.closest('a[data-recipe]');
      if (!link) return;
      event.preventDefault();
      void showRecipe(link.dataset.recipe);
    });
    document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'visible' && state.key) void refresh(); });
    new ResizeObserver(resizeCharts).observe($('.charts'));
    if (state.key) showDashboard();
    else signOut();
  }

  start();
})();
