// The budget rule over HTTP: an assignment reserves its worst case, a bonus above its reserved bound is refused, and a tight run still pays its base.

import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { handleCommand } from '../../adapters/commands/command-handler.js';
import { runDecider, runStreamId, type RunCommand } from '../../domain/run/index.js';
import { apiHarness, type ApiHarness } from './api-harness.js';

/** The harness's run: base 1,000,000 msat, bonus bound 200,000; the default fee ceiling is 5,000 + 5,000 ppm of the larger. */
const BASE_MSAT = 1_000_000n;
const FEE_CEILING_MSAT = 5_000n + (BASE_MSAT * 5_000n) / 1_000_000n;
const FULL_WORST_CASE_MSAT = BASE_MSAT + 200_000n + 2n * FEE_CEILING_MSAT;
const BASE_ONLY_MSAT = BASE_MSAT + FEE_CEILING_MSAT;

let h: ApiHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const gradient = { method: 'POST' as const, url: '/v1/assignments/a-1/gradient', bytes: new Uint8Array(31_400), headers: { 'x-gradient-encoding': 'dense-f32', 'x-claimed-loss': '1', 'x-compute-time-ms': '5' } };
const accepted = (bonusMsat: string) => ({ method: 'POST' as const, url: '/v1/assignments/a-1/verdicts', payload: { verdict: 'accepted', qualityScore: 0.9, bonusMsat, evidence: {} } });

describe.each(['pglite', 'postgres'] as const)('assignments after a crash on %s (issue 12)', (engine) => {
  const assign = (assignmentId: string) => ({ method: 'POST' as const, url: '/v1/assignments', payload: { assignmentId, runId: 'run-1', contributorId: 'alice', step: 1, shardId: 'mnist-00', batchIndex: 1, seed: '42' } });

  it('defect 3: a retry whose stored response was lost replays the assignment, although the clock and the budget moved since', async () => {
    h = await apiHarness(engine);
    const alice = await h.contributor('alice');
    await h.seedRun('run-1', alice, 'a-1');
    const first = await h.staff('coordinator', { ...assign('a-2'), headers: { 'idempotency-key': 'assign-a-2' } });
    expect(first.statusCode, first.body).toBe(201);
    // The crash: the events committed, the HTTP record of the response did not survive.
    await sql`DELETE FROM http_idempotency`.execute(h.db);
    h.clock.nowMs += 60_000;
    const retry = await h.staff('coordinator', { ...assign('a-2'), headers: { 'idempotency-key': 'assign-a-2' } });
    expect(retry.statusCode, retry.body).toBe(201);
    expect(JSON.parse(retry.body).events).toEqual(JSON.parse(first.body).events);
    const log = await h.store.readAll({ maxCount: 10_000 });
    expect(log.filter((e) => e.type === 'WorkAssigned' && e.data.assignmentId === 'a-2')).toHaveLength(1);
    expect(log.filter((e) => e.type === 'BudgetReserved' && e.data.assignmentId === 'a-2')).toHaveLength(1);
  });

  it('defect 5: reserves and assigns in one transaction, and never assigns under a reservation released as orphaned', async () => {
    h = await apiHarness(engine);
    const alice = await h.contributor('alice');
    await h.seedRun('run-1', alice, 'a-1');
    const assigned = (await h.store.readAll({ maxCount: 10_000 })).filter((e) => e.type === 'BudgetReserved' || e.type === 'WorkAssigned');
    expect(assigned.map((e) => e.type).sort()).toEqual(['BudgetReserved', 'WorkAssigned']);
    expect(assigned[0]!.position.transactionId).toBe(assigned[1]!.position.transactionId);
    // A reservation left alone (a store without atomic appends, and a crash) and released by the recovery reaction.
    const newEventId = () => randomUUID();
    const runCmd = (type: string, data: object) => handleCommand(h!.store, runDecider, runStreamId('run-1'), { type, data, metadata: { nowMs: h!.clock.nowMs } } as RunCommand, { newEventId });
    await runCmd('ReserveBudget', { runId: 'run-1', reservationId: 'rsv-a-9', assignmentId: 'a-9', amountMsat: 1_000n });
    await runCmd('ReleaseBudget', { runId: 'run-1', reservationId: 'rsv-a-9', spentMsat: 0n });
    const refused = await h.staff('coordinator', assign('a-9'));
    expect(refused.statusCode, refused.body).toBe(409);
    expect(JSON.parse(refused.body).code).toBe('RESERVATION_RELEASED');
  });
});

describe.each(['pglite', 'postgres'] as const)('the budget rule on %s', (engine) => {
  it('reserves base, the bonus bound and one fee ceiling per payment, and refuses a bonus above the bound', async () => {
    h = await apiHarness(engine);
    const alice = await h.contributor('alice');
    await h.seedRun('run-1', alice, 'a-1');
    const view = JSON.parse((await h.staff('coordinator', { method: 'GET', url: '/v1/assignments/a-1' })).body);
    expect(view.terms).toMatchObject({ maxBonusMsat: '200000', maxFeeMsat: String(FEE_CEILING_MSAT) });
    expect(view.reservation).toEqual({ reservationId: 'rsv-a-1', worstCaseMsat: String(FULL_WORST_CASE_MSAT) });
    expect(JSON.parse((await h.staff('coordinator', { method: 'GET', url: '/v1/runs/run-1' })).body).reservedMsat).toBe(String(FULL_WORST_CASE_MSAT));
    expect((await h.signed(alice, gradient)).statusCode).toBe(201);
    const before = await h.eventCount();
    const refused = await h.staff('validator', accepted('200001'));
    expect(refused.statusCode, refused.body).toBe(422);
    expect(JSON.parse(refused.body)).toMatchObject({ code: 'BONUS_EXCEEDS_MAX', maxBonusMsat: '200000' });
    expect(await h.eventCount()).toBe(before);
    expect((await h.staff('validator', accepted('200000'))).statusCode).toBe(201);
  });

  it('gives a run funded for one base payment no bonus bound: the bonus is refused, the base is still owed', async () => {
    h = await apiHarness(engine);
    const alice = await h.contributor('alice');
    await h.seedRun('run-1', alice, 'a-1', String(BASE_ONLY_MSAT));
    const view = JSON.parse((await h.staff('coordinator', { method: 'GET', url: '/v1/assignments/a-1' })).body);
    expect(view.terms.maxBonusMsat).toBe('0');
    expect(view.reservation.worstCaseMsat).toBe(String(BASE_ONLY_MSAT));
    const second = await h.staff('coordinator', { method: 'POST', url: '/v1/assignments', payload: { assignmentId: 'a-2', runId: 'run-1', contributorId: 'alice', step: 1, shardId: 'mnist-00', batchIndex: 1, seed: '42' } });
    expect(second.statusCode, second.body).toBe(409);
    expect(JSON.parse(second.body).code).toBe('INSUFFICIENT_BUDGET');
    expect((await h.signed(alice, gradient)).statusCode).toBe(201);
    const refused = await h.staff('validator', accepted('9400'));
    expect(refused.statusCode, refused.body).toBe(422);
    expect(JSON.parse(refused.body).code).toBe('BONUS_EXCEEDS_MAX');
    expect((await h.staff('validator', accepted('0'))).statusCode).toBe(201);
    const after = JSON.parse((await h.signed(alice, { method: 'GET', url: '/v1/assignments/a-1' })).body);
    // No escrow engine runs here: the base is owed by compensation, within what was reserved.
    expect(after.payouts).toEqual([expect.objectContaining({ kind: 'compensation', state: 'invoice-needed', amountMsat: '1000000' })]);
  });
});
