// Every /v1 route through fastify's inject: its rejection paths (status, problem+json, stable code, and that nothing was
// appended or stored), a happy path per route group, and a property that no request content ever earns a 5xx.

import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { LightMyRequestResponse } from 'fastify';
import fc from 'fast-check';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signRequest } from '../../adapters/http/auth/http-signature.js';
import { GRADIENT_ROUTE_LIMIT_BYTES } from '../../adapters/http/routes/gradients-routes.js';
import { MAX_COMPUTE_TIME_MS } from '../../domain/limits.js';
import { ALL_PROJECTORS } from '../../projections/index.js';
import { ProjectionRunner } from '../../projections/runner.js';
import { mnistBatch, mnistShardDigests } from '../../replay/data/mnist.js';
import { encodeDense } from '../../replay/encoding/dense-f32.js';
import { encodeSparseLoco, maxSparseLocoSizeBytes } from '../../replay/encoding/sparseloco.js';
import { referenceStep } from '../../replay/graphs/reference-steps.js';
import { initialParameters } from '../../replay/model/checkpoint.js';
import { StepRunner } from '../../replay/step/step-runner.js';
import { apiHarness, type ApiHarness, type Engine, type SignedContributor } from './api-harness.js';
import { expectConformant } from './openapi-conformance.js';

type Response = LightMyRequestResponse;

const STEP = referenceStep('softmax-regression');
const PROBLEM_JSON = 'application/problem+json';
const MAX_SKEW_SEC = 300;
/** Generated requests per property; each is one inject against a real store. */
const FUZZ_RUNS = 50;
const UNKNOWN_DIGEST = 'ab'.repeat(32);

// ---------------------------------------------------------------------------------------------------------------------
// Helpers

function expectProblem(response: Response, status: number, code: string): void {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toContain(PROBLEM_JSON);
  expect(response.json()).toMatchObject({ status, code });
}

/** Files in the harness's blob folder: a refused gradient must not leave bytes behind. */
function blobCount(h: ApiHarness): number {
  const root = (h.blobs as unknown as { rootDir: string }).rootDir;
  return readdirSync(root, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .reduce((n, dir) => n + readdirSync(join(root, dir.name)).filter((name) => !name.endsWith('.tmp')).length, 0);
}

/** Sends the request and checks the refusal: status, problem+json, code, and no event appended, no blob stored. */
async function expectRefused(h: ApiHarness, send: () => Promise<Response>, status: number, code: string): Promise<Response> {
  const events = await h.eventCount();
  const blobs = blobCount(h);
  const response = await send();
  expectProblem(response, status, code);
  expect(await h.eventCount(), 'a refused request appended an event').toBe(events);
  expect(blobCount(h), 'a refused request stored a blob').toBe(blobs);
  return response;
}

function expectCreated(response: Response): { status: string; events: { type: string; data: Record<string, unknown> }[] } & Record<string, unknown> {
  expect(response.statusCode, response.body).toBe(201);
  expect(response.headers['content-type']).toContain('application/json');
  return response.json();
}

function gradientHeaders(overrides: Record<string, string> = {}): Record<string, string> {
  return { 'x-gradient-encoding': 'dense-f32', 'x-claimed-loss': '2.30', 'x-compute-time-ms': '1500', ...overrides };
}

/**
 * A signed request built by hand, for what the harness's `signed` cannot send: a body other than the one signed
 * (`signedBody`), any content type, or no Idempotency-Key at all (`idempotencyKey: null`).
 */
function signedRaw(
  h: ApiHarness,
  who: SignedContributor,
  o: { method: 'GET' | 'POST' | 'PUT'; url: string; body?: Uint8Array; signedBody?: Uint8Array; contentType?: string; headers?: Record<string, string>; idempotencyKey?: string | null; keyId?: string; createdSec?: number; nonce?: string },
): Promise<Response> {
  const body = o.body ?? new Uint8Array(0);
  const signature = signRequest({
    method: o.method, path: o.url, body: o.signedBody ?? body, keyId: o.keyId ?? who.contributorId, privateKey: who.privateKey,
    createdSec: o.createdSec ?? Math.floor(h.clock.nowMs / 1000), nonce: o.nonce ?? randomBytes(18).toString('base64url'),
  });
  const headers: Record<string, string> = { ...signature, ...o.headers };
  if (o.contentType) headers['content-type'] = o.contentType;
  if (o.idempotencyKey !== null && o.method !== 'GET') headers['idempotency-key'] = o.idempotencyKey ?? randomUUID();
  return h.app.inject({ method: o.method, url: o.url, headers, ...(o.method === 'GET' ? {} : { payload: Buffer.from(body) }) });
}

function submitGradient(h: ApiHarness, who: SignedContributor, assignmentId: string, bytes: Uint8Array, headers: Record<string, string> = {}, extra: { idempotencyKey?: string; nonce?: string; keyId?: string; createdSec?: number } = {}) {
  return h.signed(who, { method: 'POST', url: `/v1/assignments/${assignmentId}/gradient`, bytes, headers: gradientHeaders(headers), ...extra });
}

function assignBody(assignmentId: string, overrides: Record<string, unknown> = {}) {
  return { assignmentId, runId: 'run-1', contributorId: 'alice', step: 1, shardId: 'mnist-00', batchIndex: 0, seed: '42', ...overrides };
}

async function assign(h: ApiHarness, assignmentId: string, overrides: Record<string, unknown> = {}): Promise<string> {
  const created = expectCreated(await h.staff('coordinator', { method: 'POST', url: '/v1/assignments', payload: assignBody(assignmentId, overrides) }));
  return created.paymentHash as string;
}

function runBody(runId: string, overrides: Record<string, unknown> = {}) {
  return {
    runId, stepGraphDigest: STEP.graphDigest, initialCheckpointDigest: UNKNOWN_DIGEST, shards: mnistShardDigests().slice(0, 1),
    rewardPolicy: { baseRewardMsat: '1000000', maxBonusMsat: '200000' },
    verificationPolicy: { replayProbability: 1, maxGradientNorm: 50, minRelativeImprovement: 0.001 },
    escrowPolicy: { cltvDeltaBlocks: 144, invoiceExpirySec: 3600, disputeWindowMs: 86_400_000, assignmentTimeoutMs: 3_600_000 },
    ...overrides,
  };
}

const REJECT = { verdict: 'rejected', reasonCode: 'LOSS_NOT_IMPROVED', evidence: { relativeImprovement: -0.01 } };
const ACCEPT = { verdict: 'accepted', qualityScore: 0.9, bonusMsat: '1000', evidence: { relativeImprovement: 0.02 } };

async function runView(h: ApiHarness, runId = 'run-1'): Promise<Record<string, unknown>> {
  const response = await h.staff('coordinator', { method: 'GET', url: `/v1/runs/${runId}` });
  expect(response.statusCode, response.body).toBe(200);
  return response.json();
}

/** One float of a dense body replaced, for non-finite refusals. */
function withFloat(bytes: Uint8Array, index: number, value: number): Uint8Array {
  const copy = Uint8Array.from(bytes);
  new DataView(copy.buffer).setFloat32(index * 4, value, true);
  return copy;
}

function idempotencyFingerprint(method: string, url: string, body: Uint8Array): string {
  return createHash('sha256').update(`${method}\n${url}\n`).update(body).digest('hex');
}

async function insertInFlight(h: ApiHarness, principal: string, key: string, fingerprint: string): Promise<void> {
  await sql`insert into http_idempotency (principal, idem_key, request_hash, status, created_at_ms)
    values (${principal}, ${key}, ${fingerprint}, 'in_flight', ${h.clock.nowMs})`.execute(h.db);
}

// ---------------------------------------------------------------------------------------------------------------------
// The world: a seeded run with alice assigned 'a1', bob registered, and an honest gradient for the seeded batch.

type World = { h: ApiHarness; alice: SignedContributor; bob: SignedContributor };

let honest: { dense: Uint8Array; sparse: Uint8Array; loss: string };

async function openWorld(engine: Engine): Promise<World> {
  const h = await apiHarness(engine);
  const alice = await h.contributor('alice');
  const bob = await h.contributor('bob');
  await h.seedRun('run-1', alice, 'a1');
  expectCreated(await h.signed(bob, { method: 'POST', url: '/v1/contributors', json: { contributorId: 'bob', signingPublicKeyHex: bob.publicKeyHex, lightningNodePubkeyHex: bob.nodeKeyHex } }));
  return { h, alice, bob };
}

beforeAll(async () => {
  const runner = new StepRunner({ provider: 'cpu', graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 });
  try {
    const batch = mnistBatch({ shardId: 'mnist-00', batchIndex: 0, batchSize: STEP.batchSize, seed: '42' });
    const { outputs } = await runner.run(STEP, initialParameters(STEP.model, '1'), { x: batch.x, y: batch.y, batchSize: STEP.batchSize }, STEP.learningRate);
    honest = {
      dense: encodeDense(STEP.model, outputs.gradients),
      sparse: encodeSparseLoco(STEP.model, outputs.gradients, { chunkSize: 64, topK: 8 }),
      loss: outputs.loss.toFixed(6),
    };
  } finally {
    await runner.close();
  }
});

// ---------------------------------------------------------------------------------------------------------------------
// Signatures and idempotency, on both engines

describe.each(['pglite', 'postgres'] as const)('signatures and idempotency on %s', (engine) => {
  let w: World;
  const gradientUrl = '/v1/assignments/a-sig/gradient';

  beforeAll(async () => {
    w = await openWorld(engine);
    await assign(w.h, 'a-sig');
  });
  afterAll(async () => w.h.close());

  it('refuses a request without signature headers (SIGNATURE_MISSING)', async () => {
    const { h } = w;
    await expectRefused(h, () => h.app.inject({ method: 'POST', url: gradientUrl, headers: { ...gradientHeaders(), 'content-type': 'application/octet-stream', 'idempotency-key': randomUUID() }, payload: Buffer.from(honest.dense) }), 401, 'SIGNATURE_MISSING');
    await expectRefused(h, () => h.app.inject({ method: 'GET', url: '/v1/assignments/a-sig' }), 401, 'SIGNATURE_MISSING');
  });

  it('refuses a signature by another key under alice\'s key id (SIGNATURE_INVALID)', async () => {
    const mallory = await w.h.contributor('mallory');
    await expectRefused(w.h, () => submitGradient(w.h, mallory, 'a-sig', honest.dense, { 'x-claimed-loss': honest.loss }, { keyId: 'alice' }), 401, 'SIGNATURE_INVALID');
  });

  it('refuses a body changed after signing (CONTENT_DIGEST_MISMATCH)', async () => {
    const changed = withFloat(honest.dense, 7, 0.25);
    await expectRefused(w.h, () => signedRaw(w.h, w.alice, { method: 'POST', url: gradientUrl, body: changed, signedBody: honest.dense, contentType: 'application/octet-stream', headers: gradientHeaders() }), 401, 'CONTENT_DIGEST_MISMATCH');
  });

  it('refuses a signature older than the skew (SIGNATURE_EXPIRED) and one from the future (SIGNATURE_FROM_FUTURE)', async () => {
    const nowSec = Math.floor(w.h.clock.nowMs / 1000);
    await expectRefused(w.h, () => submitGradient(w.h, w.alice, 'a-sig', honest.dense, {}, { createdSec: nowSec - MAX_SKEW_SEC - 1 }), 401, 'SIGNATURE_EXPIRED');
    await expectRefused(w.h, () => submitGradient(w.h, w.alice, 'a-sig', honest.dense, {}, { createdSec: nowSec + MAX_SKEW_SEC + 1 }), 401, 'SIGNATURE_FROM_FUTURE');
    // The skew itself is still accepted.
    expect((await w.h.signed(w.alice, { method: 'GET', url: '/v1/assignments/a-sig', createdSec: nowSec - MAX_SKEW_SEC })).statusCode).toBe(200);
  });

  it('refuses a second use of a nonce, even with a fresh Idempotency-Key (NONCE_REPLAYED)', async () => {
    const nonce = randomBytes(18).toString('base64url');
    expect((await w.h.signed(w.alice, { method: 'GET', url: '/v1/assignments/a-sig', nonce })).statusCode).toBe(200);
    await expectRefused(w.h, () => w.h.signed(w.alice, { method: 'GET', url: '/v1/assignments/a-sig', nonce }), 401, 'NONCE_REPLAYED');
    await expectRefused(w.h, () => submitGradient(w.h, w.alice, 'a-sig', honest.dense, {}, { nonce, idempotencyKey: randomUUID() }), 401, 'NONCE_REPLAYED');
  });

  it('refuses an unknown key id (UNKNOWN_KEY) and malformed signature headers (SIGNATURE_MALFORMED)', async () => {
    const stranger = await w.h.contributor('stranger');
    await expectRefused(w.h, () => submitGradient(w.h, stranger, 'a-sig', honest.dense), 401, 'UNKNOWN_KEY');
    await expectRefused(w.h, () => w.h.signed(w.alice, { method: 'GET', url: '/v1/assignments/a-sig', headers: { 'signature-input': 'sig1=("@method");created=1' } }), 401, 'SIGNATURE_MALFORMED');
  });

  it('requires an Idempotency-Key on state-changing routes, signed or staff (IDEMPOTENCY_KEY_MISSING)', async () => {
    const { h } = w;
    await expectRefused(h, () => signedRaw(h, w.alice, { method: 'POST', url: gradientUrl, body: honest.dense, contentType: 'application/octet-stream', headers: gradientHeaders(), idempotencyKey: null }), 400, 'IDEMPOTENCY_KEY_MISSING');
    await expectRefused(h, () => h.app.inject({ method: 'POST', url: '/v1/runs/run-1/fundings', headers: { authorization: `Bearer ${h.keys.coordinator}` }, payload: { fundingId: 'f-nokey', source: 'customer', amountMsat: '5' } }), 400, 'IDEMPOTENCY_KEY_MISSING');
  });

  it('replays the first outcome for the same key and body, and refuses the key for another body', async () => {
    const { h } = w;
    const key = randomUUID();
    const payload = { fundingId: 'f-idem', source: 'subsidy', amountMsat: '777' };
    const before = await h.eventCount();
    const first = await h.staff('coordinator', { method: 'POST', url: '/v1/runs/run-1/fundings', payload, idempotencyKey: key });
    expect(expectCreated(first).events).toHaveLength(1);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    expect(await h.eventCount()).toBe(before + 1);

    const again = await h.staff('coordinator', { method: 'POST', url: '/v1/runs/run-1/fundings', payload, idempotencyKey: key });
    expect(again.statusCode).toBe(first.statusCode);
    expect(again.body).toBe(first.body);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(await h.eventCount()).toBe(before + 1);

    await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/runs/run-1/fundings', payload: { ...payload, amountMsat: '778' }, idempotencyKey: key }), 422, 'IDEMPOTENCY_KEY_REUSED');
  });

  it('replays a signed registration to a retry with a fresh nonce and the same key', async () => {
    const { h } = w;
    const carol = await h.contributor('carol');
    const json = { contributorId: 'carol', signingPublicKeyHex: carol.publicKeyHex, lightningNodePubkeyHex: carol.nodeKeyHex };
    const key = randomUUID();
    const before = await h.eventCount();
    const first = await h.signed(carol, { method: 'POST', url: '/v1/contributors', json, idempotencyKey: key });
    expect(expectCreated(first).events.map((e) => e.type)).toEqual(['ContributorRegistered']);
    const again = await h.signed(carol, { method: 'POST', url: '/v1/contributors', json, idempotencyKey: key });
    expect(again.statusCode).toBe(201);
    expect(again.body).toBe(first.body);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(await h.eventCount()).toBe(before + 1);
    await expectRefused(h, () => h.signed(carol, { method: 'POST', url: '/v1/contributors', json: { ...json, lightningNodePubkeyHex: w.alice.nodeKeyHex }, idempotencyKey: key }), 422, 'IDEMPOTENCY_KEY_REUSED');
  });

  it('answers 409 IDEMPOTENCY_REQUEST_IN_FLIGHT while the first request with the key is still running', async () => {
    const { h } = w;
    // The first request is held in flight by writing its claim row directly, as the plugin does when it starts one.
    const staffKey = randomUUID();
    const raw = Buffer.from(JSON.stringify({ fundingId: 'f-flight', source: 'customer', amountMsat: '10' }));
    await insertInFlight(h, 'key:test-coordinator', staffKey, idempotencyFingerprint('POST', '/v1/runs/run-1/fundings', raw));
    const held = await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/runs/run-1/fundings', payload: raw, headers: { 'content-type': 'application/json' }, idempotencyKey: staffKey }), 409, 'IDEMPOTENCY_REQUEST_IN_FLIGHT');
    expect(held.headers['retry-after']).toBe('1');
    // Another body under the held key is a reuse, not a wait.
    await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/runs/run-1/fundings', payload: { fundingId: 'f-other', source: 'customer', amountMsat: '10' }, idempotencyKey: staffKey }), 422, 'IDEMPOTENCY_KEY_REUSED');

    // The same for a signed gradient: the claim is scoped to the verified contributor.
    const gradientKey = randomUUID();
    await insertInFlight(h, 'contributor:alice', gradientKey, idempotencyFingerprint('POST', gradientUrl, honest.dense));
    await expectRefused(h, () => submitGradient(h, w.alice, 'a-sig', honest.dense, { 'x-claimed-loss': honest.loss }, { idempotencyKey: gradientKey }), 409, 'IDEMPOTENCY_REQUEST_IN_FLIGHT');
  });

  it('runs two concurrent submissions with one key once: one 201, the other 409 in flight or its replay', async () => {
    const { h } = w;
    await assign(h, 'a-race');
    const key = randomUUID();
    const events = await h.eventCount();
    const answers = await Promise.all([0, 1].map(() => submitGradient(h, w.alice, 'a-race', honest.dense, { 'x-claimed-loss': honest.loss }, { idempotencyKey: key })));
    const fresh = answers.filter((a) => a.statusCode === 201 && a.headers['idempotent-replayed'] === undefined);
    expect(fresh, answers.map((a) => a.body).join('\n')).toHaveLength(1);
    const other = answers.find((a) => a !== fresh[0])!;
    if (other.statusCode === 409) expectProblem(other, 409, 'IDEMPOTENCY_REQUEST_IN_FLIGHT');
    else {
      expect(other.statusCode).toBe(201);
      expect(other.headers['idempotent-replayed']).toBe('true');
      expect(other.body).toBe(fresh[0]!.body);
    }
    expect(await h.eventCount()).toBe(events + 1);
  });

  it('accepts the honest gradient once every refusal above is behind it', async () => {
    const { h } = w;
    const events = await h.eventCount();
    const created = expectCreated(await submitGradient(h, w.alice, 'a-sig', honest.dense, { 'x-claimed-loss': honest.loss }));
    expect(created.events.map((e) => e.type)).toEqual(['GradientSubmitted']);
    expect(await h.eventCount()).toBe(events + 1);
  });
  it('answered nothing above that its OpenAPI document (/docs/json) does not describe', async () => {
    await expectConformant(w.h);
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// Everything else on PGlite, one shared world

describe('on PGlite', () => {
  let w: World;
  let h: ApiHarness;

  beforeAll(async () => {
    w = await openWorld('pglite');
    h = w.h;
  });
  afterAll(async () => h.close());

  describe('staff keys and roles', () => {
    it('refuses a staff route without a bearer key (AUTHENTICATION_REQUIRED)', async () => {
      await expectRefused(h, () => h.app.inject({ method: 'POST', url: '/v1/runs', headers: { 'idempotency-key': randomUUID() }, payload: runBody('run-nokey') }), 401, 'AUTHENTICATION_REQUIRED');
      await expectRefused(h, () => h.app.inject({ method: 'GET', url: '/v1/events' }), 401, 'AUTHENTICATION_REQUIRED');
      await expectRefused(h, () => h.app.inject({ method: 'GET', url: '/v1/ledger/trial-balance' }), 401, 'AUTHENTICATION_REQUIRED');
    });

    it('refuses a garbage, unknown or non-bearer key (INVALID_API_KEY)', async () => {
      for (const authorization of ['Bearer garbage', `Bearer tl_coordinator_${randomBytes(32).toString('base64url')}`, `Basic ${h.keys.coordinator}`, `Bearer ${h.keys.coordinator}x`]) {
        await expectRefused(h, () => h.app.inject({ method: 'POST', url: '/v1/runs/run-1/fundings', headers: { authorization, 'idempotency-key': randomUUID() }, payload: { fundingId: 'f-bad', source: 'customer', amountMsat: '1' } }), 401, 'INVALID_API_KEY');
      }
      await expectRefused(h, () => h.app.inject({ method: 'GET', url: '/v1/runs/run-1', headers: { authorization: 'Bearer nope' } }), 401, 'INVALID_API_KEY');
    });

    // Each pair is a real denial under ROLE_SCOPES; the request is otherwise valid, so only the scope refuses it.
    const denials: { role: 'coordinator' | 'validator' | 'analyst' | 'auditor'; method: 'GET' | 'POST' | 'PUT'; url: string; payload?: () => unknown; why: string }[] = [
      { role: 'analyst', method: 'POST', url: '/v1/runs', payload: () => runBody('run-denied'), why: 'runs:write' },
      { role: 'auditor', method: 'POST', url: '/v1/runs/run-1/fundings', payload: () => ({ fundingId: 'f-denied', source: 'customer', amountMsat: '1' }), why: 'runs:write' },
      { role: 'validator', method: 'POST', url: '/v1/assignments', payload: () => assignBody('a-denied'), why: 'assignments:write' },
      { role: 'analyst', method: 'POST', url: '/v1/assignments/a1/verdicts', payload: () => REJECT, why: 'verdicts:write' },
      { role: 'coordinator', method: 'POST', url: '/v1/assignments/a1/verdicts', payload: () => REJECT, why: 'verdicts:write (the coordinator does not judge)' },
      { role: 'analyst', method: 'GET', url: '/v1/events', why: 'events:read' },
      { role: 'validator', method: 'GET', url: '/v1/events', why: 'events:read' },
      { role: 'validator', method: 'GET', url: '/v1/ledger/accounts', why: 'ledger:read' },
      { role: 'validator', method: 'GET', url: '/v1/rewards/contributors', why: 'rewards:read' },
      { role: 'analyst', method: 'GET', url: '/v1/assignments/a1', why: 'assignments:read' },
      { role: 'auditor', method: 'POST', url: '/v1/api-keys', payload: () => ({ keyId: 'k-denied', role: 'analyst', label: 'no' }), why: 'keys:write' },
    ];
    it.each(denials)('refuses $role on $method $url: it lacks $why (FORBIDDEN)', async ({ role, method, url, payload }) => {
      await expectRefused(h, () => h.staff(role, { method, url, ...(payload ? { payload: payload() as object } : {}) }), 403, 'FORBIDDEN');
    });

    it('refuses an analyst uploading a checkpoint (FORBIDDEN)', async () => {
      await expectRefused(h, () => h.staff('analyst', { method: 'PUT', url: '/v1/checkpoints', payload: Buffer.alloc(31_400), headers: { 'content-type': 'application/octet-stream' } }), 403, 'FORBIDDEN');
    });

    it('refuses a contributor signature on a staff-only route (AUTHENTICATION_REQUIRED)', async () => {
      await expectRefused(h, () => h.signed(w.alice, { method: 'POST', url: '/v1/runs', json: runBody('run-by-alice') }), 401, 'AUTHENTICATION_REQUIRED');
      await expectRefused(h, () => h.signed(w.alice, { method: 'POST', url: '/v1/assignments/a1/verdicts', json: ACCEPT }), 401, 'AUTHENTICATION_REQUIRED');
      await expectRefused(h, () => h.signed(w.alice, { method: 'GET', url: '/v1/events' }), 401, 'AUTHENTICATION_REQUIRED');
      await expectRefused(h, () => h.signed(w.alice, { method: 'GET', url: '/v1/rewards/contributors' }), 401, 'AUTHENTICATION_REQUIRED');
    });

    it('refuses a staff key on a contributor-only route (SIGNATURE_MISSING)', async () => {
      await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/assignments/a1/disputes', payload: { disputeId: 'd-staff', reason: 'no' } }), 401, 'SIGNATURE_MISSING');
    });
  });

  describe('ownership', () => {
    it('shows alice her own assignment', async () => {
      const response = await h.signed(w.alice, { method: 'GET', url: '/v1/assignments/a1' });
      expect(response.statusCode, response.body).toBe(200);
      expect(response.json()).toMatchObject({ assignmentId: 'a1', status: 'assigned' });
    });

    it('hides alice\'s assignment from bob: GET, gradient, dispute and invoice are all 404 ASSIGNMENT_NOT_FOUND', async () => {
      await expectRefused(h, () => h.signed(w.bob, { method: 'GET', url: '/v1/assignments/a1' }), 404, 'ASSIGNMENT_NOT_FOUND');
      await expectRefused(h, () => submitGradient(h, w.bob, 'a1', honest.dense, { 'x-claimed-loss': honest.loss }), 404, 'ASSIGNMENT_NOT_FOUND');
      await expectRefused(h, () => h.signed(w.bob, { method: 'POST', url: '/v1/assignments/a1/disputes', json: { disputeId: 'd-bob', reason: 'mine now' } }), 404, 'ASSIGNMENT_NOT_FOUND');
      await expectRefused(h, () => h.signed(w.bob, { method: 'PUT', url: '/v1/assignments/a1/invoice', json: { bolt11: 'lnbcrt10u1pbobbobbob' } }), 404, 'ASSIGNMENT_NOT_FOUND');
      expect(await h.signed(w.alice, { method: 'GET', url: '/v1/assignments/a1' })).toMatchObject({ statusCode: 200 });
    });

    it('refuses bob reading alice\'s rewards (FORBIDDEN)', async () => {
      await expectRefused(h, () => h.signed(w.bob, { method: 'GET', url: '/v1/rewards/contributors/alice' }), 403, 'FORBIDDEN');
    });
  });

  describe('gradient bodies', () => {
    const url = '/v1/assignments/a-grad/gradient';
    beforeAll(async () => {
      await assign(h, 'a-grad');
    });

    it('refuses NaN, +Inf and -Inf inside an otherwise valid dense body (GRADIENT_NON_FINITE)', async () => {
      for (const [index, value] of [[0, Number.NaN], [4_000, Number.POSITIVE_INFINITY], [7_849, Number.NEGATIVE_INFINITY]] as const) {
        const response = await expectRefused(h, () => submitGradient(h, w.alice, 'a-grad', withFloat(honest.dense, index, value), { 'x-claimed-loss': honest.loss }), 422, 'GRADIENT_NON_FINITE');
        expect(response.json().detail).toContain(`[${index < 7_840 ? index : index - 7_840}]`);
      }
    });

    it('refuses an empty body (GRADIENT_EMPTY) and a truncated one (GRADIENT_TRUNCATED)', async () => {
      await expectRefused(h, () => submitGradient(h, w.alice, 'a-grad', new Uint8Array(0)), 422, 'GRADIENT_EMPTY');
      await expectRefused(h, () => submitGradient(h, w.alice, 'a-grad', honest.dense.subarray(0, honest.dense.byteLength - 4)), 422, 'GRADIENT_TRUNCATED');
      await expectRefused(h, () => submitGradient(h, w.alice, 'a-grad', honest.dense.subarray(0, 3)), 422, 'GRADIENT_TRUNCATED');
    });

    it('refuses a body longer than the run\'s model allows (GRADIENT_TOO_LARGE), per encoding', async () => {
      const longer = new Uint8Array(honest.dense.byteLength + 4);
      longer.set(honest.dense);
      await expectRefused(h, () => submitGradient(h, w.alice, 'a-grad', longer), 413, 'GRADIENT_TOO_LARGE');
      await expectRefused(h, () => submitGradient(h, w.alice, 'a-grad', new Uint8Array(maxSparseLocoSizeBytes(STEP.model) + 1), { 'x-gradient-encoding': 'sparseloco' }), 413, 'GRADIENT_TOO_LARGE');
    });

    it('refuses a body over the route limit before reading it (BODY_TOO_LARGE)', async () => {
      await expectRefused(h, () => submitGradient(h, w.alice, 'a-grad', new Uint8Array(GRADIENT_ROUTE_LIMIT_BYTES + 1)), 413, 'BODY_TOO_LARGE');
    });

    it('refuses a JSON or text body (UNSUPPORTED_MEDIA_TYPE)', async () => {
      await expectRefused(h, () => h.signed(w.alice, { method: 'POST', url, json: { gradient: [0.1, 0.2] }, headers: gradientHeaders() }), 415, 'UNSUPPORTED_MEDIA_TYPE');
      await expectRefused(h, () => signedRaw(h, w.alice, { method: 'POST', url, body: honest.dense, contentType: 'application/xml', headers: gradientHeaders() }), 415, 'UNSUPPORTED_MEDIA_TYPE');
      // fastify parses text/plain itself and keeps no raw bytes for it, so the signature check sees an empty body and
      // answers 401 CONTENT_DIGEST_MISMATCH rather than 415: misleading, but still a refusal that changes nothing.
      const events = await h.eventCount();
      const text = await signedRaw(h, w.alice, { method: 'POST', url, body: honest.dense, contentType: 'text/plain', headers: gradientHeaders() });
      expect(text.statusCode).toBeGreaterThanOrEqual(400);
      expect(text.statusCode).toBeLessThan(500);
      expect(text.headers['content-type']).toContain(PROBLEM_JSON);
      expect(await h.eventCount()).toBe(events);
    });

    it('refuses bad gradient headers (VALIDATION_FAILED)', async () => {
      const bad: Record<string, string>[] = [{ 'x-gradient-encoding': 'dense-f64' }, { 'x-gradient-encoding': '' }, { 'x-claimed-loss': '-1' }, { 'x-claimed-loss': 'NaN' }, { 'x-claimed-loss': '1e999' }, { 'x-compute-time-ms': '1.5' }, { 'x-compute-time-ms': String(MAX_COMPUTE_TIME_MS + 1) }];
      for (const headers of bad) {
        await expectRefused(h, () => submitGradient(h, w.alice, 'a-grad', honest.dense, headers), 400, 'VALIDATION_FAILED');
      }
      await expectRefused(h, () => signedRaw(h, w.alice, { method: 'POST', url, body: honest.dense, contentType: 'application/octet-stream', headers: { 'x-gradient-encoding': 'dense-f32' } }), 400, 'VALIDATION_FAILED');
    });

    it('refuses corrupt sparseloco bodies with the decoder\'s code', async () => {
      const sparse = honest.sparse;
      const badVersion = Uint8Array.from(sparse);
      badVersion[4] = 9;
      const cases: [Uint8Array, string][] = [
        [Uint8Array.from(sparse, (b, i) => (i < 4 ? 0x58 : b)), 'GRADIENT_BAD_MAGIC'],
        [badVersion, 'GRADIENT_BAD_VERSION'],
        [sparse.subarray(0, sparse.byteLength - 10), 'GRADIENT_TRUNCATED'],
        [Uint8Array.from([...sparse, 0]), 'GRADIENT_TRAILING_BYTES'],
        [new Uint8Array(0), 'GRADIENT_EMPTY'],
      ];
      for (const [bytes, code] of cases) await expectRefused(h, () => submitGradient(h, w.alice, 'a-grad', bytes, { 'x-gradient-encoding': 'sparseloco' }), 422, code);
      // A dense body announced as sparseloco is not a sparseloco body.
      await expectRefused(h, () => submitGradient(h, w.alice, 'a-grad', honest.dense, { 'x-gradient-encoding': 'sparseloco' }), 413, 'GRADIENT_TOO_LARGE');
    });

    it('accepts the honest body after all those refusals, once; a second submission is ALREADY_SUBMITTED', async () => {
      const events = await h.eventCount();
      const blobs = blobCount(h);
      expectCreated(await submitGradient(h, w.alice, 'a-grad', honest.dense, { 'x-claimed-loss': honest.loss }));
      expect(await h.eventCount()).toBe(events + 1);
      expect(blobCount(h)).toBe(blobs + 1);
      await expectRefused(h, () => submitGradient(h, w.alice, 'a-grad', honest.dense, { 'x-claimed-loss': honest.loss }), 409, 'ALREADY_SUBMITTED');
    });

    // Regression: the bytes were once stored before the command decided, so every refused resubmission left a blob
    // behind and a contributor could grow storage without bound. The route now decides first.
    it('stores no blob for a refused resubmission with other bytes', async () => {
      await assign(h, 'a-orphan');
      expectCreated(await submitGradient(h, w.alice, 'a-orphan', honest.dense, { 'x-claimed-loss': honest.loss }));
      await expectRefused(h, () => submitGradient(h, w.alice, 'a-orphan', honest.sparse, { 'x-gradient-encoding': 'sparseloco', 'x-claimed-loss': honest.loss }), 409, 'ALREADY_SUBMITTED');
    });
  });

  describe('unknown things and refused commands', () => {
    it('answers RUN_NOT_FOUND for fundings, checkpoints, GET and assignments of an unknown run', async () => {
      await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/runs/nope/fundings', payload: { fundingId: 'f1', source: 'customer', amountMsat: '1' } }), 404, 'RUN_NOT_FOUND');
      await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/runs/nope/checkpoints', payload: { checkpointId: 'c1', step: 1, digest: UNKNOWN_DIGEST } }), 404, 'RUN_NOT_FOUND');
      await expectRefused(h, () => h.staff('coordinator', { method: 'GET', url: '/v1/runs/nope' }), 404, 'RUN_NOT_FOUND');
      await expectRefused(h, () => h.signed(w.alice, { method: 'GET', url: '/v1/runs/nope' }), 404, 'RUN_NOT_FOUND');
      await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/assignments', payload: assignBody('a-norun', { runId: 'nope' }) }), 404, 'RUN_NOT_FOUND');
    });

    it('answers ASSIGNMENT_NOT_FOUND for every route naming an unknown assignment', async () => {
      await expectRefused(h, () => h.staff('validator', { method: 'GET', url: '/v1/assignments/nope' }), 404, 'ASSIGNMENT_NOT_FOUND');
      await expectRefused(h, () => h.staff('validator', { method: 'POST', url: '/v1/assignments/nope/verdicts', payload: ACCEPT }), 404, 'ASSIGNMENT_NOT_FOUND');
      await expectRefused(h, () => submitGradient(h, w.alice, 'nope', honest.dense), 404, 'ASSIGNMENT_NOT_FOUND');
      await expectRefused(h, () => h.signed(w.alice, { method: 'POST', url: '/v1/assignments/nope/disputes', json: { disputeId: 'd1', reason: 'why' } }), 404, 'ASSIGNMENT_NOT_FOUND');
      await expectRefused(h, () => h.signed(w.alice, { method: 'PUT', url: '/v1/assignments/nope/invoice', json: { bolt11: 'lnbcrt10u1pnopenope' } }), 404, 'ASSIGNMENT_NOT_FOUND');
    });

    it('refuses an unknown step graph (UNKNOWN_STEP_GRAPH) and a checkpoint never uploaded (CHECKPOINT_NOT_UPLOADED)', async () => {
      const run = await runView(h);
      await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/runs', payload: runBody('run-graph', { stepGraphDigest: UNKNOWN_DIGEST, initialCheckpointDigest: run.initialCheckpointDigest }) }), 422, 'UNKNOWN_STEP_GRAPH');
      await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/runs', payload: runBody('run-nockpt') }), 422, 'CHECKPOINT_NOT_UPLOADED');
      await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/runs/run-1/checkpoints', payload: { checkpointId: 'c-missing', step: 5, digest: UNKNOWN_DIGEST } }), 422, 'CHECKPOINT_NOT_UPLOADED');
    });

    it('refuses reopening a run with another definition (RUN_ALREADY_OPENED)', async () => {
      const run = await runView(h);
      await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/runs', payload: runBody('run-1', { initialCheckpointDigest: run.initialCheckpointDigest, rewardPolicy: { baseRewardMsat: '5', maxBonusMsat: '0' } }) }), 409, 'RUN_ALREADY_OPENED');
    });

    it('refuses an assignment the budget cannot cover (INSUFFICIENT_BUDGET), leaving the budget untouched', async () => {
      const before = await runView(h);
      await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/assignments', payload: assignBody('a-rich', { baseRewardMsat: '1000000000000' }) }), 409, 'INSUFFICIENT_BUDGET');
      const after = await runView(h);
      expect({ funded: after.funded, reservedMsat: after.reservedMsat, spentMsat: after.spentMsat }).toEqual({ funded: before.funded, reservedMsat: before.reservedMsat, spentMsat: before.spentMsat });
    });

    it('refuses assigning to an unregistered contributor, an unknown shard, or an existing id with other terms', async () => {
      await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/assignments', payload: assignBody('a-ghost', { contributorId: 'ghost' }) }), 422, 'CONTRIBUTOR_NOT_ACTIVE');
      await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/assignments', payload: assignBody('a-shard', { shardId: 'mnist-19' }) }), 422, 'UNKNOWN_SHARD');
      await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/assignments', payload: assignBody('a1', { batchIndex: 3 }) }), 409, 'ASSIGNMENT_EXISTS');
    });

    it('refuses commands out of stage: a verdict before a gradient, a dispute before a rejection', async () => {
      await expectRefused(h, () => h.staff('validator', { method: 'POST', url: '/v1/assignments/a1/verdicts', payload: REJECT }), 409, 'NOT_SUBMITTED');
      await expectRefused(h, () => h.signed(w.alice, { method: 'POST', url: '/v1/assignments/a1/disputes', json: { disputeId: 'd-early', reason: 'too soon' } }), 409, 'NOT_REJECTED');
    });

    it('refuses a hold invoice that is not BOLT11 (INVOICE_INVALID)', async () => {
      await expectRefused(h, () => h.signed(w.alice, { method: 'PUT', url: '/v1/assignments/a1/invoice', json: { bolt11: 'lnbcrt1garbagegarbage' } }), 422, 'INVOICE_INVALID');
    });

    it('refuses checkpoint uploads of no model\'s size, JSON checkpoints, and unknown checkpoint digests', async () => {
      await expectRefused(h, () => h.staff('coordinator', { method: 'PUT', url: '/v1/checkpoints', payload: Buffer.alloc(1_000), headers: { 'content-type': 'application/octet-stream' } }), 422, 'CHECKPOINT_SHAPE_MISMATCH');
      await expectRefused(h, () => h.staff('coordinator', { method: 'PUT', url: '/v1/checkpoints', payload: { parameters: [] } }), 415, 'UNSUPPORTED_MEDIA_TYPE');
      await expectRefused(h, () => h.staff('coordinator', { method: 'GET', url: `/v1/checkpoints/${UNKNOWN_DIGEST}` }), 404, 'CHECKPOINT_NOT_FOUND');
      await expectRefused(h, () => h.staff('coordinator', { method: 'GET', url: '/v1/checkpoints/not-a-digest' }), 400, 'VALIDATION_FAILED');
    });

    it('refuses issuing a key for an unknown role (UNKNOWN_ROLE)', async () => {
      await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/api-keys', payload: { keyId: 'k-root', role: 'root', label: 'nope' } }), 422, 'UNKNOWN_ROLE');
    });

    it('answers ROUTE_NOT_FOUND as a problem for a path no route serves', async () => {
      await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/nowhere', payload: {} }), 404, 'ROUTE_NOT_FOUND');
    });
  });

  describe('schema validation', () => {
    it('refuses malformed and empty JSON (INVALID_JSON), staff or signed', async () => {
      for (const payload of ['{"runId":', '{"a":1}}', 'nope']) {
        await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/runs', payload, headers: { 'content-type': 'application/json' } }), 400, 'INVALID_JSON');
      }
      await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/runs/run-1/fundings', payload: '', headers: { 'content-type': 'application/json' } }), 400, 'INVALID_JSON');
      await expectRefused(h, () => signedRaw(h, w.alice, { method: 'POST', url: '/v1/assignments/a1/disputes', body: Buffer.from('{"disputeId":'), contentType: 'application/json' }), 400, 'INVALID_JSON');
    });

    it('refuses missing and mistyped fields (VALIDATION_FAILED), naming the field', async () => {
      const missing = await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/runs/run-1/fundings', payload: { fundingId: 'f-x', source: 'customer' } }), 400, 'VALIDATION_FAILED');
      expect(missing.json().errors).toContainEqual(expect.objectContaining({ field: 'body/amountMsat' }));
      const { shards: _shards, ...noShards } = runBody('run-noshards');
      await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/runs', payload: noShards }), 400, 'VALIDATION_FAILED');
      await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/runs', payload: runBody('has space') }), 400, 'VALIDATION_FAILED');
      await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/runs', payload: runBody('run-p', { verificationPolicy: { replayProbability: 2, maxGradientNorm: 1, minRelativeImprovement: 0 } }) }), 400, 'VALIDATION_FAILED');
      await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/assignments', payload: assignBody('a-neg', { batchIndex: -1 }) }), 400, 'VALIDATION_FAILED');
      await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/runs/run-1/fundings', payload: { fundingId: 'f-src', source: 'gift', amountMsat: '1' } }), 400, 'VALIDATION_FAILED');
      await expectRefused(h, () => h.staff('validator', { method: 'POST', url: '/v1/assignments/a1/verdicts', payload: { ...REJECT, reasonCode: 'lower case' } }), 400, 'VALIDATION_FAILED');
      await expectRefused(h, () => h.signed(w.alice, { method: 'POST', url: '/v1/assignments/a1/disputes', json: { disputeId: 'd-x' } }), 400, 'VALIDATION_FAILED');
      await expectRefused(h, () => h.signed(w.alice, { method: 'PUT', url: '/v1/assignments/a1/invoice', json: { bolt11: 'short' } }), 400, 'VALIDATION_FAILED');
      await expectRefused(h, () => h.staff('coordinator', { method: 'GET', url: '/v1/metrics/periods?granularity=year' }), 400, 'VALIDATION_FAILED');
      await expectRefused(h, () => h.staff('coordinator', { method: 'GET', url: '/v1/events?after=abc' }), 400, 'VALIDATION_FAILED');
    });

    it('refuses amounts that are not decimal strings of whole msat (VALIDATION_FAILED)', async () => {
      for (const amountMsat of ['12.5', '-1', '1e3', '0x10', 'abc', '', ' 1', '01', '1'.repeat(22), null, true, {}]) {
        await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/runs/run-1/fundings', payload: { fundingId: 'f-amt', source: 'customer', amountMsat } }), 400, 'VALIDATION_FAILED');
      }
      await expectRefused(h, () => h.staff('validator', { method: 'POST', url: '/v1/assignments/a1/verdicts', payload: { ...ACCEPT, bonusMsat: '1.5' } }), 400, 'VALIDATION_FAILED');
      // In range for the schema's 21 digits, beyond 21M BTC: the domain refuses it.
      await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/runs/run-1/fundings', payload: { fundingId: 'f-huge', source: 'customer', amountMsat: '999999999999999999999' } }), 422, 'INVALID_AMOUNT');
    });

    // Regression: with Ajv's default type coercion a JSON number was turned into the Msat string, after JSON.parse
    // had already rounded it (1234567890123456789 funded 1234567890123456800). Coercion is now off.
    it('refuses an amount sent as a JSON number instead of a decimal string', async () => {
      const payload = '{"fundingId":"f-number","source":"customer","amountMsat":1234567890123456789}';
      await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/runs/run-1/fundings', payload, headers: { 'content-type': 'application/json' } }), 400, 'VALIDATION_FAILED');
    });
  });

  describe('happy paths', () => {
    it('registers a contributor with proof of possession, and refuses one signed by another key', async () => {
      const dave = await h.contributor('dave');
      const json = { contributorId: 'dave', signingPublicKeyHex: dave.publicKeyHex, lightningNodePubkeyHex: dave.nodeKeyHex };
      const eve = await h.contributor('eve');
      await expectRefused(h, () => h.signed(eve, { method: 'POST', url: '/v1/contributors', json, keyId: 'dave' }), 401, 'SIGNATURE_INVALID');
      await expectRefused(h, () => h.signed(dave, { method: 'POST', url: '/v1/contributors', json, keyId: 'eve' }), 401, 'UNKNOWN_KEY');
      const created = expectCreated(await h.signed(dave, { method: 'POST', url: '/v1/contributors', json }));
      expect(created.events.map((e) => e.type)).toEqual(['ContributorRegistered']);
      const devKey = await h.app.inject({ method: 'GET', url: '/v1/dev/node-keys/dave' });
      expect(devKey.json()).toMatchObject({ contributorId: 'dave', lightningNodePubkeyHex: dave.nodeKeyHex, realMoney: false });
    });

    it('opens, funds and checkpoints a run', async () => {
      const run = await runView(h);
      const opened = expectCreated(await h.staff('coordinator', { method: 'POST', url: '/v1/runs', payload: runBody('run-2', { initialCheckpointDigest: run.initialCheckpointDigest }) }));
      expect(opened.events.map((e) => e.type)).toEqual(['RunOpened']);
      expectCreated(await h.staff('coordinator', { method: 'POST', url: '/v1/runs/run-2/fundings', payload: { fundingId: 'f1', source: 'subsidy', amountMsat: '5000' } }));
      const published = expectCreated(await h.staff('coordinator', { method: 'POST', url: '/v1/runs/run-2/checkpoints', payload: { checkpointId: 'c1', step: 1, digest: run.initialCheckpointDigest } }));
      expect(published.events.map((e) => e.type)).toHaveLength(1);
      expect(await runView(h, 'run-2')).toMatchObject({ runId: 'run-2', status: 'open', funded: expect.anything(), step: { model: 'softmax-regression' } });
      const checkpoint = await h.signed(w.alice, { method: 'GET', url: `/v1/checkpoints/${run.initialCheckpointDigest as string}` });
      expect(checkpoint.statusCode).toBe(200);
      expect(checkpoint.headers['content-type']).toContain('application/octet-stream');
      expect(createHash('sha256').update(checkpoint.rawPayload).digest('hex')).toBe(run.initialCheckpointDigest);
      const graphs = await h.app.inject({ method: 'GET', url: '/v1/step-graphs' });
      expect(graphs.json()).toContainEqual(expect.objectContaining({ graphDigest: STEP.graphDigest }));
    });

    it('assigns, takes a hold invoice and an honest gradient, rejects, and takes the dispute', async () => {
      const paymentHash = await assign(h, 'a-happy');
      const bolt11 = await h.network.wallet('alice').createHoldInvoice({ paymentHash, amountMsat: 1_000_000n, expirySec: 3_600, cltvDelta: 40, description: 'escrow a-happy' });
      const invoice = await h.signed(w.alice, { method: 'PUT', url: '/v1/assignments/a-happy/invoice', json: { bolt11 } });
      expect(invoice.statusCode, invoice.body).toBe(200);
      expect(invoice.json()).toMatchObject({ assignmentId: 'a-happy', paymentHash, bolt11 });

      const submitted = expectCreated(await submitGradient(h, w.alice, 'a-happy', honest.dense, { 'x-claimed-loss': honest.loss }));
      expect(submitted.events[0]).toMatchObject({ type: 'GradientSubmitted', data: { assignmentId: 'a-happy', encoding: 'dense-f32', sizeBytes: honest.dense.byteLength } });

      const rejected = expectCreated(await h.staff('validator', { method: 'POST', url: '/v1/assignments/a-happy/verdicts', payload: REJECT }));
      expect(rejected.events.map((e) => e.type)).toEqual(['SubmissionRejected']);
      await expectRefused(h, () => h.signed(w.bob, { method: 'POST', url: '/v1/assignments/a-happy/disputes', json: { disputeId: 'd-bob', reason: 'not mine' } }), 404, 'ASSIGNMENT_NOT_FOUND');
      const disputed = expectCreated(await h.signed(w.alice, { method: 'POST', url: '/v1/assignments/a-happy/disputes', json: { disputeId: 'd-1', reason: 'the gradient is the honest one' } }));
      expect(disputed.events).toHaveLength(1);
      await expectRefused(h, () => h.signed(w.alice, { method: 'POST', url: '/v1/assignments/a-happy/disputes', json: { disputeId: 'd-2', reason: 'again' } }), 409, 'ALREADY_DISPUTED');

      const view = await h.signed(w.alice, { method: 'GET', url: '/v1/assignments/a-happy' });
      expect(view.json()).toMatchObject({ assignmentId: 'a-happy', status: 'disputed', escrow: { paymentHash, bolt11, preimageHex: null } });
    });

    it('accepts a submission with a bonus', async () => {
      await assign(h, 'a-accept');
      expectCreated(await submitGradient(h, w.alice, 'a-accept', honest.sparse, { 'x-gradient-encoding': 'sparseloco', 'x-claimed-loss': honest.loss }));
      const accepted = expectCreated(await h.staff('validator', { method: 'POST', url: '/v1/assignments/a-accept/verdicts', payload: ACCEPT }));
      expect(accepted.events.map((e) => e.type)).toEqual(['SubmissionAccepted']);
      await expectRefused(h, () => h.staff('validator', { method: 'POST', url: '/v1/assignments/a-accept/verdicts', payload: REJECT }), 409, 'ALREADY_ACCEPTED');
    });

    it('issues a key for another role, and the new key works', async () => {
      const issued = expectCreated(await h.staff('coordinator', { method: 'POST', url: '/v1/api-keys', payload: { keyId: 'k-analyst-2', role: 'analyst', label: 'second analyst' } }));
      expect(issued).toMatchObject({ keyId: 'k-analyst-2', role: 'analyst' });
      const read = await h.app.inject({ method: 'GET', url: '/v1/runs/run-1', headers: { authorization: `Bearer ${issued.apiKey as string}` } });
      expect(read.statusCode, read.body).toBe(200);
      const denied = await h.app.inject({ method: 'GET', url: '/v1/events', headers: { authorization: `Bearer ${issued.apiKey as string}` } });
      expectProblem(denied, 403, 'FORBIDDEN');
    });

    it('answers every query with JSON once the projections caught up', async () => {
      const runner = new ProjectionRunner({ store: h.store, projectors: ALL_PROJECTORS });
      await runner.prepare();
      await runner.catchUp();
      const reads: ['coordinator' | 'analyst' | 'auditor' | 'validator', string][] = [
        ['analyst', '/v1/ledger/accounts'], ['analyst', '/v1/ledger/accounts?runId=run-1'], ['auditor', '/v1/ledger/trial-balance'],
        ['analyst', '/v1/ledger/assignments/a-happy/transfers'], ['analyst', '/v1/rewards/contributors'], ['auditor', '/v1/rewards/runs'],
        ['analyst', '/v1/rewards/runs/run-1'], ['analyst', '/v1/metrics/periods?granularity=day'], ['analyst', '/v1/metrics/periods?granularity=hour&runId=run-1&fromMs=5&toMs=1'], ['auditor', '/v1/metrics/runs'],
        ['validator', '/v1/assignments/a-happy'], ['analyst', '/v1/runs/run-1'],
      ];
      for (const [role, url] of reads) {
        const response = await h.staff(role, { method: 'GET', url });
        expect(response.statusCode, `${url}: ${response.body}`).toBe(200);
        expect(response.headers['content-type']).toContain('application/json');
        expect(() => response.json()).not.toThrow();
      }
      await expectRefused(h, () => h.staff('analyst', { method: 'GET', url: '/v1/rewards/runs/nope' }), 404, 'RUN_NOT_FOUND');
      const own = await h.signed(w.alice, { method: 'GET', url: '/v1/rewards/contributors/alice' });
      expect([200, 404]).toContain(own.statusCode);
      if (own.statusCode === 404) expectProblem(own, 404, 'CONTRIBUTOR_NOT_FOUND');
    });

    it('exports the log as NDJSON, one parsable event per line, with a resumable position', async () => {
      const response = await h.staff('auditor', { method: 'GET', url: '/v1/events' });
      expect(response.statusCode).toBe(200);
      expect(response.headers['content-type']).toContain('application/x-ndjson');
      const lines = response.body.split('\n').filter((line) => line !== '');
      expect(lines).toHaveLength(await h.eventCount());
      const events = lines.map((line) => JSON.parse(line) as { type: string; streamId: string; position: { globalPosition: string } });
      expect(events.map((e) => e.type)).toContain('GradientSubmitted');
      const next = response.headers['x-next-after'] as string;
      expect(next).toMatch(/^[0-9]+:[0-9]+$/);
      const rest = await h.staff('coordinator', { method: 'GET', url: `/v1/events?after=${next}` });
      expect(rest.body).toBe('');
      const page = await h.staff('coordinator', { method: 'GET', url: '/v1/events?limit=2' });
      expect(page.body.trim().split('\n')).toHaveLength(2);
    });

    it('serves an OpenAPI document listing the /v1 paths, and Prometheus metrics', async () => {
      const docs = await h.app.inject({ method: 'GET', url: '/docs/json' });
      expect(docs.statusCode).toBe(200);
      const document = docs.json() as { openapi: string; paths: Record<string, unknown> };
      expect(document.openapi).toMatch(/^3\./);
      expect(Object.keys(document.paths)).toEqual(expect.arrayContaining(['/v1/runs', '/v1/assignments', '/v1/assignments/{assignmentId}/gradient', '/v1/events']));
      const metrics = await h.app.inject({ method: 'GET', url: '/metrics' });
      expect(metrics.statusCode).toBe(200);
      expect(metrics.body).toMatch(/^trainledger_http_requests_total\{route="\/v1\/assignments\/:assignmentId\/gradient",method="POST",status="422"\} [0-9]+$/m);
    });
  });

  describe('regressions found by these tests', () => {
    // ApiKeyError (API_KEY_ID_TAKEN, INVALID_API_KEY_INPUT) was once unmapped and answered 500.
    it('refuses issuing a key under an id already in use without a 5xx', async () => {
      const response = await h.staff('coordinator', { method: 'POST', url: '/v1/api-keys', payload: { keyId: 'test-analyst', role: 'analyst', label: 'dup' } });
      expect(response.statusCode, response.body).toBeLessThan(500);
      expectProblem(response, 409, 'API_KEY_ID_TAKEN');
    });

    // The route's schema once allowed 200 characters where the key store allows 100.
    it('refuses a key id longer than the store allows without a 5xx', async () => {
      const response = await h.staff('coordinator', { method: 'POST', url: '/v1/api-keys', payload: { keyId: 'k'.repeat(150), role: 'analyst', label: 'long' } });
      expect(response.statusCode, response.body).toBeLessThan(500);
      expect(response.headers['content-type']).toContain(PROBLEM_JSON);
    });

    // Positions beyond int8 once reached the SQL cast and answered 500.
    it('refuses an export position out of range without a 5xx', async () => {
      for (const after of ['1:99999999999999999999', '99999999999999999999:1']) {
        const response = await h.staff('auditor', { method: 'GET', url: `/v1/events?after=${after}` });
        expect(response.statusCode, response.body).toBeLessThan(500);
        expectProblem(response, 400, 'VALIDATION_FAILED');
      }
    });

    // The budget was once reserved before the terms were decided, so a refused assignment still reserved its reward.
    it('appends nothing and reserves nothing for an assignment refused for its terms', async () => {
      const before = await runView(h);
      await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/assignments', payload: assignBody('a-bigstep', { step: 2_000_000_000_000 }) }), 422, 'INVALID_NUMBER');
      await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/assignments', payload: assignBody('a-bigseed', { seed: '99999999999999999999' }) }), 422, 'INVALID_SEED');
      expect((await runView(h)).reservedMsat).toBe(before.reservedMsat);
    });

    // A batch beyond the shard (500 samples, batch size 32: the last batch is 14) could once be assigned, and no one
    // could ever compute or replay it.
    it('refuses an assignment whose batch lies outside the shard (BATCH_OUT_OF_RANGE)', async () => {
      await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/assignments', payload: assignBody('a-nobatch', { batchIndex: 15 }) }), 422, 'BATCH_OUT_OF_RANGE');
    });

    // An explicit base checkpoint is held to the same rule as the run's own: its bytes must be stored.
    it('refuses an assignment on a checkpoint never uploaded (CHECKPOINT_NOT_UPLOADED)', async () => {
      await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/assignments', payload: assignBody('a-nockpt', { baseCheckpointDigest: UNKNOWN_DIGEST }) }), 422, 'CHECKPOINT_NOT_UPLOADED');
    });
  });
  it('answered nothing above that its OpenAPI document (/docs/json) does not describe', async () => {
    await expectConformant(h);
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// No request content earns a 5xx

describe('fuzzing request content (PGlite)', () => {
  let w: World;
  let h: ApiHarness;

  beforeAll(async () => {
    w = await openWorld('pglite');
    h = w.h;
    await assign(h, 'a-fuzz');
  });
  afterAll(async () => h.close());

  function expectNoServerFault(response: Response, what: string): void {
    expect(response.statusCode, `${what} -> ${response.statusCode} ${response.body}`).toBeLessThan(500);
    if (response.statusCode >= 400) expect(response.headers['content-type'], what).toContain(PROBLEM_JSON);
  }

  const printable = (maxLength: number) => fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength });

  it('never answers a 5xx to random gradient bytes, correctly signed', async () => {
    const lengths = fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 31_380, max: 31_420 }), fc.integer({ min: 13_000, max: 13_900 }));
    const body = lengths.chain((length) => fc.uint8Array({ minLength: length, maxLength: length }));
    const sparseHeader = fc.uint8Array({ minLength: 0, maxLength: 200 }).map((tail) => Uint8Array.from([0x54, 0x4c, 0x53, 0x4c, 1, 0, 2, ...tail]));
    await fc.assert(
      fc.asyncProperty(fc.oneof(body, sparseHeader), fc.constantFrom('dense-f32', 'sparseloco'), async (bytes, encoding) => {
        expectNoServerFault(await submitGradient(h, w.alice, 'a-fuzz', bytes, { 'x-gradient-encoding': encoding }), `${encoding} body of ${bytes.byteLength} bytes`);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it('never answers a 5xx to random header values', async () => {
    const names = ['authorization', 'idempotency-key', 'content-type', 'signature', 'signature-input', 'content-digest', 'x-gradient-encoding', 'x-claimed-loss', 'x-compute-time-ms'];
    const headers = fc.dictionary(fc.constantFrom(...names), printable(80), { maxKeys: names.length });
    const target = fc.constantFrom(
      { method: 'POST' as const, url: '/v1/assignments/a-fuzz/gradient', body: honest.dense },
      { method: 'POST' as const, url: '/v1/runs/run-1/fundings', body: Buffer.from(JSON.stringify({ fundingId: 'f-fuzz', source: 'customer', amountMsat: '1' })) },
      { method: 'GET' as const, url: '/v1/assignments/a-fuzz', body: undefined },
    );
    await fc.assert(
      fc.asyncProperty(target, headers, fc.boolean(), async (t, random, signedFirst) => {
        // Half the time the random values land on top of a correct signature, so they reach past authentication.
        const base: Record<string, string> = signedFirst
          ? { ...signRequest({ method: t.method, path: t.url, body: t.body ?? new Uint8Array(0), keyId: 'alice', privateKey: w.alice.privateKey, createdSec: Math.floor(h.clock.nowMs / 1000), nonce: randomBytes(18).toString('base64url') }), ...gradientHeaders(), 'content-type': 'application/octet-stream', 'idempotency-key': randomUUID() }
          : { 'idempotency-key': randomUUID() };
        const response = await h.app.inject({ method: t.method, url: t.url, headers: { ...base, ...random }, ...(t.body ? { payload: Buffer.from(t.body) } : {}) });
        expectNoServerFault(response, `${t.method} ${t.url} ${JSON.stringify(random)}`);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it('never answers a 5xx to random JSON bodies on the POST routes', async () => {
    const run = await runView(h);
    // A valid body per route, so that mutating a few fields reaches the handler and the domain, not only the schema.
    // The api-keys keyId is never mutated: reused and over-long ids have their own tests above.
    const routes: { url: string; who: 'coordinator' | 'validator' | 'alice'; method?: 'PUT'; template: () => Record<string, unknown>; frozen?: string[] }[] = [
      { url: '/v1/runs', who: 'coordinator', template: () => runBody(`run-fz-${randomUUID()}`, { initialCheckpointDigest: run.initialCheckpointDigest }) },
      { url: '/v1/runs/run-1/fundings', who: 'coordinator', template: () => ({ fundingId: `f-${randomUUID()}`, source: 'customer', amountMsat: '1' }) },
      { url: '/v1/runs/run-1/checkpoints', who: 'coordinator', template: () => ({ checkpointId: `c-${randomUUID()}`, step: 1, digest: run.initialCheckpointDigest }) },
      { url: '/v1/assignments', who: 'coordinator', template: () => assignBody(`a-${randomUUID()}`) },
      { url: '/v1/assignments/a-fuzz/verdicts', who: 'validator', template: () => ({ ...ACCEPT }) },
      { url: '/v1/api-keys', who: 'coordinator', template: () => ({ keyId: `k-${randomUUID()}`, role: 'auditor', label: 'fuzz' }), frozen: ['keyId'] },
      { url: '/v1/assignments/a-fuzz/disputes', who: 'alice', template: () => ({ disputeId: `d-${randomUUID()}`, reason: 'fuzz' }) },
      { url: '/v1/assignments/a-fuzz/invoice', who: 'alice', method: 'PUT', template: () => ({ bolt11: 'lnbcrt10u1pfuzzfuzzfuzz' }) },
      { url: '/v1/contributors', who: 'alice', template: () => ({ contributorId: 'alice', signingPublicKeyHex: w.alice.publicKeyHex, lightningNodePubkeyHex: w.alice.nodeKeyHex }) },
    ];
    const mutation = fc.dictionary(fc.constantFrom('runId', 'fundingId', 'source', 'amountMsat', 'checkpointId', 'step', 'digest', 'assignmentId', 'contributorId', 'shardId', 'batchIndex', 'seed', 'baseRewardMsat', 'verdict', 'qualityScore', 'bonusMsat', 'evidence', 'reasonCode', 'role', 'label', 'disputeId', 'reason', 'bolt11', 'shards', 'rewardPolicy', 'escrowPolicy', 'verificationPolicy', 'stepGraphDigest', 'extra'), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 3 });
    const body = fc.oneof(
      { arbitrary: fc.jsonValue({ maxDepth: 4 }).map((value) => ({ kind: 'random' as const, value })), weight: 1 },
      { arbitrary: mutation.map((changes) => ({ kind: 'mutated' as const, changes })), weight: 3 },
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...routes), body, async (route, generated) => {
        let json: unknown;
        if (generated.kind === 'random') json = generated.value;
        else {
          const template = route.template();
          const changes = Object.fromEntries(Object.entries(generated.changes).filter(([key]) => !route.frozen?.includes(key)));
          json = { ...template, ...changes };
        }
        const method = route.method ?? 'POST';
        const response = route.who === 'alice'
          ? await h.signed(w.alice, { method, url: route.url, json })
          : await h.staff(route.who, { method, url: route.url, payload: JSON.stringify(json), headers: { 'content-type': 'application/json' } });
        expectNoServerFault(response, `${method} ${route.url} ${JSON.stringify(json).slice(0, 500)}`);
      }),
      { numRuns: FUZZ_RUNS * 3 },
    );
  });
  // Found by the property above (seed -375769711): the dispute route spread its body over the path's assignment id.
  // Unknown body fields are now refused by name (UNKNOWN_FIELD) before a handler runs; the handlers still name their fields.
  it('lets no body field override the assignment or run named by the path', async () => {
    const run = await runView(h);
    const dispute = await expectRefused(h, () => h.signed(w.alice, { method: 'POST', url: '/v1/assignments/a-fuzz/disputes', json: { disputeId: `d-${randomUUID()}`, reason: 'fuzz', assignmentId: '-' } }), 400, 'UNKNOWN_FIELD');
    expect(dispute.json().errors).toContainEqual(expect.objectContaining({ field: 'body/assignmentId' }));
    const checkpoint = await expectRefused(h, () => h.staff('coordinator', { method: 'POST', url: '/v1/runs/run-1/checkpoints', payload: JSON.stringify({ checkpointId: `c-${randomUUID()}`, step: 1_000_000, digest: run.initialCheckpointDigest, runId: 'run-elsewhere' }), headers: { 'content-type': 'application/json' } }), 400, 'UNKNOWN_FIELD');
    expect(checkpoint.json().detail).toContain('body/runId');
  });
  it('answered nothing above that its OpenAPI document (/docs/json) does not describe', async () => {
    await expectConformant(h);
  });
});
