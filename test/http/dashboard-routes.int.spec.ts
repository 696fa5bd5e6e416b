// The dashboard's page, assets and read routes through inject: what anyone may load, and each read route's rejection
// paths (401 no key, 403 wrong role, 400 bad query, 404 unknown run or assignment), then a dispute as the routes show it.

import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALL_PROJECTORS } from '../../projections/index.js';
import { ProjectionRunner } from '../../projections/runner.js';
import { mnistBatch } from '../../replay/data/mnist.js';
import { encodeDense } from '../../replay/encoding/dense-f32.js';
import { referenceStep } from '../../replay/graphs/reference-steps.js';
import { initialParameters } from '../../replay/model/checkpoint.js';
import { StepRunner } from '../../replay/step/step-runner.js';
import { apiHarness, type ApiHarness, type SignedContributor } from './api-harness.js';
import { expectConformant } from './openapi-conformance.js';

const STEP = referenceStep('softmax-regression');
const LISTS = ['/v1/disputes', '/v1/ledger/top-contributors'] as const;

function expectProblem(response: LightMyRequestResponse, status: number, code: string): void {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toContain('application/problem+json');
  expect(response.json()).toMatchObject({ status, code });
}

let h: ApiHarness;
let alice: SignedContributor;

beforeAll(async () => {
  h = await apiHarness('pglite');
  alice = await h.contributor('alice');
  await h.seedRun('run-1', alice, 'a1');
  const runner = new StepRunner({ provider: 'cpu', graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 });
  let gradient: Uint8Array;
  try {
    const batch = mnistBatch({ shardId: 'mnist-00', batchIndex: 0, batchSize: STEP.batchSize, seed: '42' });
    const { outputs } = await runner.run(STEP, initialParameters(STEP.model, '1'), { x: batch.x, y: batch.y, batchSize: STEP.batchSize }, STEP.learningRate);
    gradient = encodeDense(STEP.model, outputs.gradients);
  } finally {
    await runner.close();
  }
  const headers = { 'x-gradient-encoding': 'dense-f32', 'x-claimed-loss': '2.30', 'x-compute-time-ms': '1500' };
  const steps = [
    await h.signed(alice, { method: 'POST', url: '/v1/assignments/a1/gradient', bytes: gradient, headers }),
    await h.staff('validator', { method: 'POST', url: '/v1/assignments/a1/verdicts', payload: { verdict: 'rejected', reasonCode: 'LOSS_NOT_IMPROVED', evidence: { relativeImprovement: -0.01 } } }),
    await h.signed(alice, { method: 'POST', url: '/v1/assignments/a1/disputes', json: { disputeId: 'd-1', reason: 'the gradient is honest' } }),
  ];
  for (const response of steps) expect(response.statusCode, response.body).toBe(201);
  // Review of the split: a reason PostgreSQL cannot store (an unpaired surrogate, NUL) is refused by the decider
  // with its field, so no event a projector would stop on for good is ever logged.
  for (const reason of ['honest \uD800', 'nul \u0000 here']) {
    const refused = await h.signed(alice, { method: 'POST', url: '/v1/assignments/a1/disputes', json: { disputeId: 'd-2', reason } });
    expect(refused.statusCode, refused.body).toBe(422);
    expect(refused.json()).toMatchObject({ code: 'INVALID_TEXT', field: 'reason' });
  }
  const projections = new ProjectionRunner({ store: h.store, projectors: ALL_PROJECTORS });
  await projections.prepare();
  await projections.catchUp();
}, 120_000);

afterAll(async () => h?.close());

describe('the dashboard page and its assets', () => {
  it('serves the page, its script, styles and uPlot to anyone, from this origin, under a strict CSP', async () => {
    for (const [url, type] of [['/', 'text/html'], ['/dashboard/app.js', 'text/javascript'], ['/dashboard/app.css', 'text/css'], ['/dashboard/vendor/uPlot.iife.min.js', 'text/javascript'], ['/dashboard/vendor/uPlot.min.css', 'text/css'], ['/dashboard/favicon.svg', 'image/svg+xml']] as const) {
      const response = await h.app.inject({ method: 'GET', url });
      expect(response.statusCode, url).toBe(200);
      expect(response.headers['content-type']).toContain(type);
      expect(response.headers['content-security-policy']).toContain("script-src 'self'");
      expect(response.body.length).toBeGreaterThan(100);
    }
    const page = (await h.app.inject({ method: 'GET', url: '/' })).body;
    // Nothing is loaded from another origin: no internet needed.
    expect(page).not.toMatch(/(src|href)="(https?:)?\/\//);
  });

  it('does not serve other files from the assets folder or node_modules', async () => {
    for (const url of ['/dashboard/index.html', '/dashboard/vendor/uPlot.cjs.js', '/dashboard/../package.json', '/dashboard/vendor/../../package.json']) {
      expect((await h.app.inject({ method: 'GET', url })).statusCode, url).toBe(404);
    }
  });
});

describe('dashboard read routes: rejection paths', () => {
  const reads = [...LISTS, '/v1/disputes/a1'];

  it('answers 401 without a key or with an unknown one', async () => {
    for (const url of reads) {
      expectProblem(await h.app.inject({ method: 'GET', url }), 401, 'AUTHENTICATION_REQUIRED');
      expectProblem(await h.app.inject({ method: 'GET', url, headers: { authorization: 'Bearer tl_analyst_' + 'x'.repeat(43) } }), 401, 'INVALID_API_KEY');
    }
  });

  it('answers 403 to a validator key (no metrics or ledger scope), and reads for analyst, auditor and coordinator', async () => {
    for (const url of reads) {
      expectProblem(await h.staff('validator', { method: 'GET', url }), 403, 'FORBIDDEN');
      for (const role of ['analyst', 'auditor', 'coordinator'] as const) expect((await h.staff(role, { method: 'GET', url })).statusCode, `${role} ${url}`).toBe(200);
    }
  });

  it('answers 400 to a bad query: limit out of range or not a number, a bad timestamp, an empty window, a bad id; an unknown parameter by name', async () => {
    for (const list of LISTS) {
      for (const query of ['limit=0', 'limit=101', 'limit=ten', 'fromMs=-1', 'toMs=1.5', 'fromMs=10&toMs=10', 'fromMs=20&toMs=10', 'runId=' + encodeURIComponent('run 1')]) {
        expectProblem(await h.staff('analyst', { method: 'GET', url: `${list}?${query}` }), 400, 'VALIDATION_FAILED');
      }
      // An unknown parameter is refused by name, never ignored (a key pasted into a URL, say).
      for (const query of ['granularity=hour', 'key=tl_analyst_x']) expectProblem(await h.staff('analyst', { method: 'GET', url: `${list}?${query}` }), 400, 'UNKNOWN_FIELD');
    }
    expectProblem(await h.staff('analyst', { method: 'GET', url: '/v1/disputes/' + encodeURIComponent('a 1') }), 400, 'VALIDATION_FAILED');
  });

  it('answers 404 to an unknown run, an unknown assignment, and an assignment never disputed', async () => {
    for (const list of LISTS) expectProblem(await h.staff('analyst', { method: 'GET', url: `${list}?runId=no-such-run` }), 404, 'RUN_NOT_FOUND');
    expectProblem(await h.staff('analyst', { method: 'GET', url: '/v1/disputes/no-such-assignment' }), 404, 'ASSIGNMENT_NOT_FOUND');
    const bob = await h.contributor('bob');
    await h.seedRun('run-2', bob, 'b1');
    expectProblem(await h.staff('analyst', { method: 'GET', url: '/v1/disputes/b1' }), 404, 'DISPUTE_NOT_FOUND');
  });
});

describe('dashboard read routes: what they show', () => {
  it('lists the open dispute with its rejection, by run and by period, and shows it alone', async () => {
    const all = await h.staff('analyst', { method: 'GET', url: '/v1/disputes' });
    expect(all.statusCode, all.body).toBe(200);
    const expected = { assignmentId: 'a1', runId: 'run-1', contributorId: 'alice', disputeId: 'd-1', rejectionCode: 'LOSS_NOT_IMPROVED', reason: 'the gradient is honest', replayOutcome: null, resolution: null };
    expect(all.json()).toEqual([expect.objectContaining(expected)]);
    const disputedAtMs = all.json()[0].disputedAtMs as number;
    expect((await h.staff('analyst', { method: 'GET', url: '/v1/disputes?runId=run-1&limit=1' })).json()).toHaveLength(1);
    expect((await h.staff('analyst', { method: 'GET', url: `/v1/disputes?fromMs=${disputedAtMs + 1}` })).json()).toEqual([]);
    expect((await h.staff('analyst', { method: 'GET', url: `/v1/disputes?fromMs=${disputedAtMs}&toMs=${disputedAtMs + 1}` })).json()).toHaveLength(1);
    const one = await h.staff('auditor', { method: 'GET', url: '/v1/disputes/a1' });
    expect(one.json()).toMatchObject({ ...expected, validatorId: expect.any(String), recipe: null, replayJobId: null });
  });

  it('ranks no one while nothing was paid, and answers the same shape for a run', async () => {
    const top = await h.staff('analyst', { method: 'GET', url: '/v1/ledger/top-contributors?runId=run-1' });
    expect(top.statusCode, top.body).toBe(200);
    expect(Array.isArray(top.json())).toBe(true);
    for (const row of top.json() as Record<string, unknown>[]) expect(row).toEqual({ contributorId: expect.any(String), paidMsat: expect.stringMatching(/^[0-9]+$/), payments: expect.any(Number), pendingEscrowMsat: expect.stringMatching(/^[0-9]+$/) });
  });
});

it('answered nothing in this file that its OpenAPI document (/docs/json) does not describe', async () => {
  await expectConformant(h);
});
