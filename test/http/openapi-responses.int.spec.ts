// The conformance checker itself (it fails what it should), and the document's security declarations checked against the app: each secured operation refuses an anonymous call with 401, no public one does.

import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPERATIONS } from '../../adapters/http/openapi-operations.js';
import { apiHarness, type ApiHarness, type SignedContributor } from './api-harness.js';
import { checkExchanges, expectConformant, type Exchange } from './openapi-conformance.js';

type Doc = Parameters<typeof checkExchanges>[0] & { paths: Record<string, Record<string, { operationId: string; security: Record<string, string[]>[]; requestBody?: unknown }>> };

let h: ApiHarness;
let doc: Doc;
let alice: SignedContributor;
let checkpointDigest: string;

beforeAll(async () => {
  h = await apiHarness('pglite');
  alice = await h.contributor('alice');
  ({ checkpointDigest } = await h.seedRun('run-1', alice, 'a1'));
  doc = (await h.app.inject({ method: 'GET', url: '/docs/json' })).json();
});
afterAll(async () => h?.close());

const APPENDED = JSON.stringify({ status: 'appended', events: [{ type: 'RunOpened', data: {} }] });
function exchange(overrides: Partial<Exchange>): Exchange {
  return { method: 'POST', route: '/v1/runs', url: '/v1/runs', status: 201, contentType: 'application/json; charset=utf-8', body: APPENDED, requestContentType: 'application/json', requestBody: Buffer.from('{}'), ...overrides };
}
/** The checker on one made-up exchange; a request body the document accepts unless told otherwise. */
function problemsOf(overrides: Partial<Exchange>): string[] {
  return checkExchanges(doc, [exchange({ requestBody: Buffer.from(JSON.stringify(validRunBody())), ...overrides })]).problems;
}
function validRunBody() {
  return {
    runId: 'r', stepGraphDigest: 'ab'.repeat(32), initialCheckpointDigest: 'ab'.repeat(32), shards: [{ shardId: 's', digest: 'ab'.repeat(32) }],
    rewardPolicy: { baseRewardMsat: '1', maxBonusMsat: '0' }, verificationPolicy: { replayProbability: 1, maxGradientNorm: 5, minRelativeImprovement: 0 },
    escrowPolicy: { cltvDeltaBlocks: 144, invoiceExpirySec: 3600, disputeWindowMs: 1, assignmentTimeoutMs: 1 },
  };
}

describe('the conformance checker', () => {
  it('passes an answer the document describes', () => {
    expect(problemsOf({})).toEqual([]);
    expect(problemsOf({ status: 409, contentType: 'application/problem+json; charset=utf-8', body: JSON.stringify({ type: 'https://trainledger.dev/problems/run-already-opened', title: 'Run already opened', status: 409, code: 'RUN_ALREADY_OPENED', detail: 'x' }) })).toEqual([]);
  });

  it('fails a status the operation does not list, naming the operation and the status', () => {
    expect(problemsOf({ status: 200 })).toEqual([expect.stringMatching(/^POST \/v1\/runs -> 200: status 200 is not listed for openRun/)]);
    expect(problemsOf({ status: 404, contentType: 'application/problem+json', body: '{}' })[0]).toMatch(/status 404 is not listed for openRun/);
  });

  it('fails a body that does not match the schema for its status, with the ajv error', () => {
    expect(problemsOf({ body: JSON.stringify({ status: 'appended' }) })).toEqual([expect.stringMatching(/does not match the document: \/ must have required property 'events'/)]);
    expect(problemsOf({ status: 400, contentType: 'application/problem+json', body: JSON.stringify({ code: 'X' }) })[0]).toMatch(/must have required property/);
  });

  it('fails a content type the document does not list for that status', () => {
    expect(problemsOf({ contentType: 'text/plain' })[0]).toMatch(/answered text\/plain; the document lists application\/json/);
    expect(problemsOf({ status: 422, contentType: 'application/json', body: '{}' })[0]).toMatch(/the document lists application\/problem\+json/);
  });

  it('fails an accepted request the document would refuse, and a body where none is declared', () => {
    expect(problemsOf({ requestBody: Buffer.from(JSON.stringify({ ...validRunBody(), extra: 1 })) })[0]).toMatch(/accepted a request body the document refuses: \/ must NOT have additional properties/);
    expect(problemsOf({ requestContentType: 'application/octet-stream' })[0]).toMatch(/accepted a application\/octet-stream body; the document lists application\/json/);
    const getRun = { method: 'GET', route: '/v1/runs/:runId', url: '/v1/runs/r', status: 404, contentType: 'application/problem+json', body: JSON.stringify({ type: 'https://trainledger.dev/problems/run-not-found', title: 't', status: 404, code: 'RUN_NOT_FOUND', detail: 'd' }) };
    expect(checkExchanges(doc, [exchange({ ...getRun, requestBody: undefined })]).problems).toEqual([]);
    expect(checkExchanges(doc, [exchange({ ...getRun, status: 200, body: '{}', requestBody: Buffer.from('x') })]).problems).toEqual(expect.arrayContaining([expect.stringMatching(/accepted a request body \(application\/json\) where the document declares none/)]));
  });

  it('fails a method the document does not have on a documented path, and skips only hidden routes', () => {
    expect(checkExchanges(doc, [exchange({ method: 'DELETE' })]).problems[0]).toMatch(/the document has no DELETE operation on \/v1\/runs/);
    expect(checkExchanges(doc, [exchange({ route: '/docs/json' }), exchange({ route: undefined })]).checked).toBe(0);
  });
});

/** A URL for each path of the document, its parameters filled with things the seeded world has. */
function urlOf(path: string): string {
  const values: Record<string, string> = { runId: 'run-1', assignmentId: 'a1', contributorId: 'alice', digest: checkpointDigest, kind: 'bonus' };
  return path.replace(/\{([A-Za-z]+)\}/g, (_m, name: string) => values[name] ?? name);
}

describe('the security the document declares', () => {
  it('is what the app enforces: 401 to an anonymous call exactly where an operation declares security', async () => {
    const seen: string[] = [];
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        const anonymous = await h.app.inject({
          method: method.toUpperCase() as 'GET',
          url: urlOf(path) + (op.operationId === 'listPeriodMetrics' ? '?granularity=day' : ''),
          headers: { 'idempotency-key': randomUUID(), ...(op.requestBody ? { 'content-type': 'application/json' } : {}) },
          ...(op.requestBody ? { payload: '{}' } : {}),
        });
        const secured = op.security.length > 0;
        expect(anonymous.statusCode === 401, `${op.operationId}: declares ${secured ? 'security' : 'none'}, answered ${anonymous.statusCode} ${anonymous.body.slice(0, 200)}`).toBe(secured);
        seen.push(op.operationId);
      }
    }
    expect(seen.sort()).toEqual(Object.values(OPERATIONS).map((op) => op.operationId).sort());
  });

  it('names the scopes that let a staff key in, and a key holding none of them gets 403', async () => {
    // The validator role holds verdicts:write and assignments:read only.
    const validatorScopes = ['verdicts:write', 'assignments:read'];
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        const staff = op.security.find((s) => 'staffKey' in s)?.staffKey;
        if (!staff || method !== 'get' || staff.some((scope) => validatorScopes.includes(scope))) continue;
        const response = await h.staff('validator', { method: 'GET', url: urlOf(path) + (op.operationId === 'listPeriodMetrics' ? '?granularity=day' : '') });
        expect(response.statusCode, `${op.operationId} (scopes ${staff.join(', ')}) let a validator key in`).toBe(403);
      }
    }
  });

  it('answered nothing above that the document does not describe', async () => {
    await expectConformant(h);
  });
});
