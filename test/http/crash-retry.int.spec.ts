// Retries after a crash, through the whole app on PGlite and PostgreSQL: a retry whose first attempt committed gets the original answer, and a claim left by a dead process does not block it.

import { createHash, randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiHarness, type ApiHarness, type Engine, type SignedContributor } from './api-harness.js';

/** A dense-f32 gradient of the softmax-regression model (all zeros): it decodes, which is all the route checks. */
const GRADIENT_BYTES = new Uint8Array(31_400);
const GRADIENT_HEADERS = { 'x-gradient-encoding': 'dense-f32', 'x-claimed-loss': '1.5', 'x-compute-time-ms': '5' };

function fingerprintOf(method: string, url: string, body: Uint8Array): string {
  return createHash('sha256').update(`${method}\n${url}\n`).update(body).digest('hex');
}

describe.each(['pglite', 'postgres'] as const)('retries after a crash on %s', (engine: Engine) => {
  let h: ApiHarness;
  let alice: SignedContributor;

  beforeAll(async () => {
    h = await apiHarness(engine);
    alice = await h.contributor('alice');
    await h.seedRun('run-1', alice, 'a-1');
  });
  afterAll(async () => h?.close());

  const assign = async (assignmentId: string) => {
    const created = await h.staff('coordinator', { method: 'POST', url: '/v1/assignments', payload: { assignmentId, runId: 'run-1', contributorId: 'alice', step: 1, shardId: 'mnist-00', batchIndex: 0, seed: '42' } });
    expect(created.statusCode, created.body).toBe(201);
  };
  const submit = (assignmentId: string, idempotencyKey: string) =>
    h.signed(alice, { method: 'POST', url: `/v1/assignments/${assignmentId}/gradient`, bytes: GRADIENT_BYTES, headers: GRADIENT_HEADERS, idempotencyKey });
  const submittedEvents = async (assignmentId: string) =>
    (await h.store.readAll({ maxCount: 10_000 })).filter((e) => e.type === 'GradientSubmitted' && (e.data as { assignmentId?: string }).assignmentId === assignmentId);

  // Regression (issue 12, defect 3): the route refused on "already submitted" before the command-level key could replay.
  it('answers a gradient retry whose first attempt committed, its kept response lost, with the original 201 and events', async () => {
    await assign('a-lost');
    const key = randomUUID();
    const first = await submit('a-lost', key);
    expect(first.statusCode, first.body).toBe(201);
    // The crash: the events committed, the HTTP-level record of the response did not survive.
    await sql`delete from http_idempotency where principal = ${'contributor:alice'} and idem_key = ${key}`.execute(h.db);

    const retry = await submit('a-lost', key);
    expect(retry.statusCode, retry.body).toBe(201);
    expect(retry.json().events).toEqual(first.json().events);
    expect(await submittedEvents('a-lost')).toHaveLength(1);
    // A fresh key is a new submission, and that is still refused.
    const another = await submit('a-lost', randomUUID());
    expect(another.statusCode, another.body).toBe(409);
    expect(another.json().code).toBe('ALREADY_SUBMITTED');
  });

  it('still refuses a retry with the same key but other submission headers once the kept response is lost', async () => {
    await assign('a-changed');
    const key = randomUUID();
    expect((await submit('a-changed', key)).statusCode).toBe(201);
    await sql`delete from http_idempotency where principal = ${'contributor:alice'} and idem_key = ${key}`.execute(h.db);
    const changed = await h.signed(alice, { method: 'POST', url: '/v1/assignments/a-changed/gradient', bytes: GRADIENT_BYTES, headers: { ...GRADIENT_HEADERS, 'x-claimed-loss': '0.5' }, idempotencyKey: key });
    expect(changed.statusCode, changed.body).toBe(422);
    expect(changed.json().code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(await submittedEvents('a-changed')).toHaveLength(1);
  });

  // Regression (issue 12, defect 4): a claim left in flight by a killed process blocked every retry for the 5-minute lease.
  it('processes at once a retry whose claim was left in flight by a process that is gone', async () => {
    await assign('a-killed');
    const key = randomUUID();
    const url = '/v1/assignments/a-killed/gradient';
    // What a SIGKILL mid-request leaves: a fresh in-flight claim made by another server process, which no longer runs.
    await sql`insert into http_idempotency (principal, idem_key, request_hash, status, created_at_ms, instance_id)
      values (${'contributor:alice'}, ${key}, ${fingerprintOf('POST', url, GRADIENT_BYTES)}, 'in_flight', ${h.clock.nowMs}, ${randomUUID()})`.execute(h.db);

    const retry = await submit('a-killed', key);
    expect(retry.statusCode, retry.body).toBe(201);
    expect(await submittedEvents('a-killed')).toHaveLength(1);
    const again = await submit('a-killed', key);
    expect(again.statusCode).toBe(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.body).toBe(retry.body);
  });
});
