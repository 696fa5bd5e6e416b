// Errors that teach (issue 15): each refusal names the field and what it accepts, the limit that applied, the content
// types a route takes, and an id the log has never seen; every one through the real app on PGlite, with real keys.

import { randomUUID } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_API_LIMITS } from '../../adapters/http/api-context.js';
import { GRADIENT_ROUTE_LIMIT_BYTES } from '../../adapters/http/routes/gradients-routes.js';
import { ALL_PROJECTORS } from '../../projections/index.js';
import { ProjectionRunner } from '../../projections/runner.js';
import { closeObjectSchemas } from '../../adapters/http/strict-bodies.js';
import { withArticle } from '../../adapters/http/wording.js';
import { mnistShardDigests } from '../../replay/data/mnist.js';
import { referenceStep } from '../../replay/graphs/reference-steps.js';
import { apiHarness, type ApiHarness, type SignedContributor } from './api-harness.js';
import { expectConformant } from './openapi-conformance.js';

const STEP = referenceStep('softmax-regression');

type Problem = { status: number; code: string; detail: string; errors?: { field: string; message: string; allowed?: unknown[] }[]; [member: string]: unknown };

let h: ApiHarness;
let alice: SignedContributor;
let initialCheckpointDigest: string;

beforeAll(async () => {
  h = await apiHarness('pglite');
  alice = await h.contributor('alice');
  ({ checkpointDigest: initialCheckpointDigest } = await h.seedRun('run-1', alice, 'a1'));
});

afterAll(async () => {
  await h.close();
});

function expectProblem(response: LightMyRequestResponse, status: number, code: string): Problem {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toContain('application/problem+json');
  const body = response.json() as Problem;
  expect(body).toMatchObject({ status, code });
  return body;
}

/** The refusal, and proof that it appended nothing. */
async function expectRefused(send: () => Promise<LightMyRequestResponse>, status: number, code: string): Promise<Problem> {
  const before = await h.eventCount();
  const problem = expectProblem(await send(), status, code);
  expect(await h.eventCount(), 'a refused request appended an event').toBe(before);
  return problem;
}

function runBody(runId: string, overrides: Record<string, unknown> = {}) {
  return {
    runId, stepGraphDigest: STEP.graphDigest, initialCheckpointDigest, shards: mnistShardDigests().slice(0, 1),
    rewardPolicy: { baseRewardMsat: '1000000', maxBonusMsat: '200000' },
    verificationPolicy: { replayProbability: 1, maxGradientNorm: 50, minRelativeImprovement: 0.001 },
    escrowPolicy: { cltvDeltaBlocks: 144, invoiceExpirySec: 3600, disputeWindowMs: 86_400_000, assignmentTimeoutMs: 3_600_000 },
    ...overrides,
  };
}

const gradientHeaders = (overrides: Record<string, string> = {}) => ({ 'x-gradient-encoding': 'dense-f32', 'x-claimed-loss': '2.30', 'x-compute-time-ms': '1500', ...overrides });

describe('a value outside a union of literals names the values allowed', () => {
  it('a funding source: body/source must be one of: customer, subsidy', async () => {
    const problem = await expectRefused(() => h.staff('coordinator', { method: 'POST', url: '/v1/runs/run-1/fundings', payload: { fundingId: 'f-gift', source: 'gift', amountMsat: '1' } }), 400, 'VALIDATION_FAILED');
    expect(problem.detail).toBe('body/source must be one of: customer, subsidy');
    expect(problem.errors).toEqual([{ field: 'body/source', message: 'must be one of: customer, subsidy', allowed: ['customer', 'subsidy'] }]);
    // Not a string at all: still one line, with the values.
    const typed = await expectRefused(() => h.staff('coordinator', { method: 'POST', url: '/v1/runs/run-1/fundings', payload: { fundingId: 'f-num', source: 7, amountMsat: '1' } }), 400, 'VALIDATION_FAILED');
    expect(typed.detail).toBe('body/source must be one of: customer, subsidy');
  });

  it('a metrics granularity: querystring/granularity must be one of: hour, day, week', async () => {
    const problem = expectProblem(await h.staff('analyst', { method: 'GET', url: '/v1/metrics/periods?granularity=year' }), 400, 'VALIDATION_FAILED');
    expect(problem.detail).toBe('querystring/granularity must be one of: hour, day, week');
    const missing = expectProblem(await h.staff('analyst', { method: 'GET', url: '/v1/metrics/periods' }), 400, 'VALIDATION_FAILED');
    expect(missing.detail).toBe('querystring/granularity is required');
  });

  it('a gradient encoding header: headers/x-gradient-encoding must be one of: dense-f32, sparseloco', async () => {
    const send = () => h.signed(alice, { method: 'POST', url: '/v1/assignments/a1/gradient', bytes: new Uint8Array(16), headers: gradientHeaders({ 'x-gradient-encoding': 'gzip' }) });
    const problem = await expectRefused(send, 400, 'VALIDATION_FAILED');
    expect(problem.detail).toBe('headers/x-gradient-encoding must be one of: dense-f32, sparseloco');
  });

  it('a payout kind in the path: params/kind must be one of: bonus, compensation', async () => {
    const problem = await expectRefused(() => h.signed(alice, { method: 'PUT', url: '/v1/assignments/a1/payout-invoices/tip', json: { bolt11: 'lnbcrt1xxxxxxxxxx' } }), 400, 'VALIDATION_FAILED');
    expect(problem.detail).toBe('params/kind must be one of: bonus, compensation');
  });

  it('a verdict: the tag lists its values, and the branch it names reports its own fields', async () => {
    const unknownTag = await expectRefused(() => h.staff('validator', { method: 'POST', url: '/v1/assignments/a1/verdicts', payload: { verdict: 'maybe', evidence: {} } }), 400, 'VALIDATION_FAILED');
    expect(unknownTag.detail).toBe('body/verdict must be one of: accepted, rejected');
    // A rejection without its reason code: not "qualityScore is required" from the accepted branch.
    const rejected = await expectRefused(() => h.staff('validator', { method: 'POST', url: '/v1/assignments/a1/verdicts', payload: { verdict: 'rejected', evidence: {} } }), 400, 'VALIDATION_FAILED');
    expect(rejected.detail).toBe('body/reasonCode is required');
    expect(rejected.errors).toEqual([{ field: 'body/reasonCode', message: 'is required' }]);
  });
});

describe('unknown JSON fields are refused by name (400 UNKNOWN_FIELD), at any depth', () => {
  it('a top-level field: a funding with a note', async () => {
    const problem = await expectRefused(() => h.staff('coordinator', { method: 'POST', url: '/v1/runs/run-1/fundings', payload: { fundingId: `f-${randomUUID()}`, source: 'customer', amountMsat: '1', note: 'thanks' } }), 400, 'UNKNOWN_FIELD');
    expect(problem.detail).toBe('body/note is not a field of this request (unknown fields are refused, not ignored)');
    expect(problem.errors).toEqual([{ field: 'body/note', message: 'is not a field of this request (unknown fields are refused, not ignored)' }]);
  });

  it('nested objects of a run: rewardPolicy, verificationPolicy, escrowPolicy and a shard', async () => {
    const [shard] = mnistShardDigests();
    const cases: [Record<string, unknown>, string][] = [
      [{ rewardPolicy: { baseRewardMsat: '1000000', maxBonusMsat: '200000', currency: 'usd' } }, 'body/rewardPolicy/currency'],
      [{ verificationPolicy: { replayProbability: 1, maxGradientNorm: 50, minRelativeImprovement: 0.001, strict: true } }, 'body/verificationPolicy/strict'],
      [{ escrowPolicy: { cltvDeltaBlocks: 144, invoiceExpirySec: 3600, disputeWindowMs: 1, assignmentTimeoutMs: 1, graceMs: 5 } }, 'body/escrowPolicy/graceMs'],
      [{ shards: [{ ...shard, size: 100 }] }, 'body/shards/0/size'],
      [{ runName: 'mine' }, 'body/runName'],
    ];
    for (const [override, field] of cases) {
      const problem = await expectRefused(() => h.staff('coordinator', { method: 'POST', url: '/v1/runs', payload: runBody('run-strict', override) }), 400, 'UNKNOWN_FIELD');
      expect(problem.detail).toContain(field);
      expect(problem.errors?.[0]?.field).toBe(field);
    }
    // The same body without the extras opens the run: the refusal was the field, nothing else.
    expect((await h.staff('coordinator', { method: 'POST', url: '/v1/runs', payload: runBody('run-strict') })).statusCode).toBe(201);
  });

  it('a signed body (a contributor registering) and a verdict branch', async () => {
    const bob = await h.contributor('bob');
    const registration = await expectRefused(() => h.signed(bob, { method: 'POST', url: '/v1/contributors', json: { contributorId: 'bob', signingPublicKeyHex: bob.publicKeyHex, lightningNodePubkeyHex: bob.nodeKeyHex, email: 'b@example.com' } }), 400, 'UNKNOWN_FIELD');
    expect(registration.detail).toContain('body/email');
    const verdict = await expectRefused(() => h.staff('validator', { method: 'POST', url: '/v1/assignments/a1/verdicts', payload: { verdict: 'rejected', reasonCode: 'LOSS_NOT_IMPROVED', evidence: {}, comment: 'x' } }), 400, 'UNKNOWN_FIELD');
    expect(verdict.detail).toContain('body/comment');
  });

  it('keeps free-form objects open (a verdict\'s evidence) and extra headers accepted', async () => {
    // Evidence is a record: any keys. The request also carries a header no route names.
    const response = await h.staff('validator', { method: 'POST', url: '/v1/assignments/a1/verdicts', payload: { verdict: 'rejected', reasonCode: 'LOSS_NOT_IMPROVED', evidence: { anything: { nested: 1 } } }, headers: { 'x-trace-id': 'abc' } });
    // a1 has no gradient yet: the domain refuses the stage, which proves the schema let the body through.
    expectProblem(response, 409, 'NOT_SUBMITTED');
  });

  it('closes declared objects only, and leaves explicit choices alone', () => {
    const schema = {
      type: 'object',
      properties: {
        a: { type: 'object', properties: { b: { type: 'string' } } },
        open: { type: 'object', properties: {}, additionalProperties: true },
        record: { type: 'object', patternProperties: { '^.*$': {} } },
        list: { type: 'array', items: { type: 'object', properties: { c: { type: 'integer' } } } },
        either: { anyOf: [{ type: 'object', properties: { d: { const: 1 } } }, { type: 'string' }] },
      },
    };
    closeObjectSchemas(schema);
    expect(schema).toMatchObject({
      additionalProperties: false,
      properties: {
        a: { additionalProperties: false },
        open: { additionalProperties: true },
        list: { items: { additionalProperties: false } },
        either: { anyOf: [{ additionalProperties: false }, { type: 'string' }] },
      },
    });
    expect(schema.properties.record).not.toHaveProperty('additionalProperties');
  });
});

describe('limits and content types are named', () => {
  it('413 BODY_TOO_LARGE says the JSON limit in bytes (detail and limitBytes)', async () => {
    const limit = DEFAULT_API_LIMITS.jsonBodyLimitBytes;
    const payload = JSON.stringify({ fundingId: 'f-big', source: 'customer', amountMsat: '1', pad: 'x'.repeat(limit) });
    const problem = await expectRefused(() => h.staff('coordinator', { method: 'POST', url: '/v1/runs/run-1/fundings', payload, headers: { 'content-type': 'application/json' } }), 413, 'BODY_TOO_LARGE');
    expect(problem.limitBytes).toBe(limit);
    expect(problem.detail).toContain(`${limit}-byte limit of POST /v1/runs/:runId/fundings`);
  });

  it('413 says a route\'s own limit: the gradient route, and the run model\'s narrower one (GRADIENT_TOO_LARGE)', async () => {
    const overRoute = await expectRefused(() => h.signed(alice, { method: 'POST', url: '/v1/assignments/a1/gradient', bytes: new Uint8Array(GRADIENT_ROUTE_LIMIT_BYTES + 1), headers: gradientHeaders() }), 413, 'BODY_TOO_LARGE');
    expect(overRoute.limitBytes).toBe(GRADIENT_ROUTE_LIMIT_BYTES);
    expect(overRoute.detail).toContain(`${GRADIENT_ROUTE_LIMIT_BYTES}-byte limit`);
    const denseBytes = STEP.model.parameters.reduce((n, p) => n + p.dims.reduce((a, d) => a * d, 1), 0) * 4;
    const overModel = await expectRefused(() => h.signed(alice, { method: 'POST', url: '/v1/assignments/a1/gradient', bytes: new Uint8Array(denseBytes + 4), headers: gradientHeaders() }), 413, 'GRADIENT_TOO_LARGE');
    expect(overModel).toMatchObject({ limitBytes: denseBytes, receivedBytes: denseBytes + 4 });
    expect(overModel.detail).toContain(`a dense-f32 gradient of ${STEP.model.name} is at most ${denseBytes} bytes`);
  });

  it('415 says what the route accepts: JSON routes, octet-stream routes, and a JSON body sent where bytes belong', async () => {
    const json = await expectRefused(() => h.staff('coordinator', { method: 'POST', url: '/v1/runs/run-1/fundings', payload: '<funding/>', headers: { 'content-type': 'application/xml' } }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    expect(json.detail).toBe('POST /v1/runs/:runId/fundings does not accept Content-Type application/xml; send Content-Type: application/json');
    expect(json.accepted).toEqual(['application/json']);
    const text = await expectRefused(() => h.staff('coordinator', { method: 'PUT', url: '/v1/checkpoints', payload: 'abc', headers: { 'content-type': 'text/plain' } }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    expect(text.accepted).toEqual(['application/octet-stream']);
    expect(text.detail).toContain('send Content-Type: application/octet-stream');
    const gradient = await expectRefused(() => h.signed(alice, { method: 'POST', url: '/v1/assignments/a1/gradient', json: { gradient: [0.1] }, headers: gradientHeaders() }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    expect(gradient.accepted).toEqual(['application/octet-stream']);
    expect(gradient.detail).toContain('application/octet-stream');
  });
});

describe('ids the log has never seen are 404 in ledger and metrics queries', () => {
  beforeAll(async () => {
    // A run with no funding and no work: it exists in the log, and no projection has a row for it.
    expect((await h.staff('coordinator', { method: 'POST', url: '/v1/runs', payload: runBody('run-idle') })).statusCode).toBe(201);
    const runner = new ProjectionRunner({ store: h.store, projectors: ALL_PROJECTORS });
    await runner.prepare();
    await runner.catchUp();
  });

  it('transfers of an unknown assignment: 404 ASSIGNMENT_NOT_FOUND; of a known one with none yet: 200 []', async () => {
    const unknown = expectProblem(await h.staff('auditor', { method: 'GET', url: '/v1/ledger/assignments/nope/transfers' }), 404, 'ASSIGNMENT_NOT_FOUND');
    expect(unknown.detail).toBe('assignment nope does not exist');
    const known = await h.staff('auditor', { method: 'GET', url: '/v1/ledger/assignments/a1/transfers' });
    expect(known.statusCode, known.body).toBe(200);
    expect(known.json()).toEqual([]);
  });

  it('ledger accounts filtered by an unknown run or contributor: 404 RUN_NOT_FOUND / CONTRIBUTOR_NOT_FOUND', async () => {
    expect(expectProblem(await h.staff('analyst', { method: 'GET', url: '/v1/ledger/accounts?runId=nope' }), 404, 'RUN_NOT_FOUND').detail).toBe('run nope does not exist');
    expectProblem(await h.staff('analyst', { method: 'GET', url: '/v1/ledger/accounts?contributorId=nope' }), 404, 'CONTRIBUTOR_NOT_FOUND');
    expect((await h.staff('analyst', { method: 'GET', url: '/v1/ledger/accounts?runId=run-1' })).statusCode).toBe(200);
    const idle = await h.staff('analyst', { method: 'GET', url: '/v1/ledger/accounts?runId=run-idle' });
    expect(idle.statusCode, idle.body).toBe(200);
    expect(idle.json()).toEqual([]);
    expect((await h.staff('analyst', { method: 'GET', url: '/v1/ledger/accounts?contributorId=alice' })).statusCode).toBe(200);
  });

  it('metrics by period for an unknown run: 404 RUN_NOT_FOUND; for a known run with no rows yet: 200 []', async () => {
    expectProblem(await h.staff('analyst', { method: 'GET', url: '/v1/metrics/periods?granularity=day&runId=nope' }), 404, 'RUN_NOT_FOUND');
    const funded = await h.staff('analyst', { method: 'GET', url: '/v1/metrics/periods?granularity=day&runId=run-1' });
    expect(funded.statusCode, funded.body).toBe(200);
    expect(funded.json()).not.toEqual([]);
    const idle = await h.staff('analyst', { method: 'GET', url: '/v1/metrics/periods?granularity=day&runId=run-idle' });
    expect(idle.statusCode, idle.body).toBe(200);
    expect(idle.json()).toEqual([]);
  });
});

describe('wording', () => {
  it('says "an analyst key" when a key lacks the scope', async () => {
    const problem = expectProblem(await h.staff('analyst', { method: 'POST', url: '/v1/runs', payload: runBody('run-analyst') }), 403, 'FORBIDDEN');
    expect(problem.detail).toMatch(/^an analyst key holds none of the scopes/);
    const auditor = expectProblem(await h.staff('auditor', { method: 'POST', url: '/v1/runs', payload: runBody('run-auditor') }), 403, 'FORBIDDEN');
    expect(auditor.detail).toMatch(/^an auditor key/);
    const validator = expectProblem(await h.staff('validator', { method: 'POST', url: '/v1/runs', payload: runBody('run-validator') }), 403, 'FORBIDDEN');
    expect(validator.detail).toMatch(/^a validator key/);
  });

  it('puts the right article before any word', () => {
    expect(['analyst', 'auditor', 'escrow', 'invoice', 'coordinator', 'bonus', 'dense-f32', 'sparseloco', 'Ohm', '8-byte', '11-step', '110-step'].map(withArticle)).toEqual([
      'an analyst', 'an auditor', 'an escrow', 'an invoice', 'a coordinator', 'a bonus', 'a dense-f32', 'a sparseloco', 'an Ohm', 'an 8-byte', 'an 11-step', 'a 110-step',
    ]);
  });
});

it('answered nothing in this file that its OpenAPI document (/docs/json) does not describe', async () => {
  await expectConformant(h);
});
