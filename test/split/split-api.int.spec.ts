// The API on the split composition (the log behind the plain port, everything else in SQL): the flow, and a crash between the two appends of the one two-stream command.

import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import type { EventStore, NewEvent } from '../../domain/ports/event-store.js';
import { apiHarness, type ApiHarness } from '../http/api-harness.js';
import { splitLogs } from '../support/split-logs.js';

let h: ApiHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** Fails the next append to `streamId` as a lost connection would, once armed: the crash between the run's append and the assignment's. */
function failingOnce(streamId: string) {
  const state = { armed: false, failed: 0 };
  const wrap = (log: EventStore): EventStore => ({
    ...log,
    append: async (id: string, events: readonly NewEvent[], options) => {
      if (state.armed && id === streamId) {
        state.armed = false;
        state.failed += 1;
        throw new Error('connection terminated: injected crash between the two appends of POST /v1/assignments');
      }
      return log.append(id, events, options);
    },
  });
  return { state, wrap };
}

const assign = (assignmentId: string, idempotencyKey: string) => ({
  method: 'POST' as const,
  url: '/v1/assignments',
  headers: { 'idempotency-key': idempotencyKey },
  payload: { assignmentId, runId: 'run-1', contributorId: 'alice', step: 1, shardId: 'mnist-00', batchIndex: 1, seed: '42' },
});

describe.each(splitLogs())('the API on the $name', (splitLog) => {
  it('runs the flow through the plain port: no multi-stream append, no event in the SQL database, the reservation and its assignment in two appends', async () => {
    h = await apiHarness('split', {}, { splitLog });
    expect(h.store.appendAtomically).toBeUndefined();
    const alice = await h.contributor('alice');
    await h.seedRun('run-1', alice, 'a-1');
    // The SQL database holds the API's tables and checkpoints, never the log.
    expect((await sql<{ found: boolean }>`SELECT to_regclass('events') IS NOT NULL AS found`.execute(h.db)).rows[0]!.found).toBe(false);
    expect((await sql<{ n: number }>`SELECT count(*)::int AS n FROM api_keys`.execute(h.db)).rows[0]!.n).toBeGreaterThan(0);
    const log = await h.store.readAll({ maxCount: 10_000 });
    expect(log.map((e) => e.type)).toEqual(expect.arrayContaining(['RunOpened', 'RunFunded', 'ContributorRegistered', 'BudgetReserved', 'WorkAssigned']));
    const reserved = log.find((e) => e.type === 'BudgetReserved')!;
    const assigned = log.find((e) => e.type === 'WorkAssigned')!;
    // One append per stream, the run's first: a crash between them leaves a reservation, never an assignment without one.
    expect(log.indexOf(reserved)).toBeLessThan(log.indexOf(assigned));
    expect((await h.store.verifyAll()).ok).toBe(true);
    const submitted = await h.signed(alice, { method: 'POST', url: '/v1/assignments/a-1/gradient', bytes: new Uint8Array(31_400), headers: { 'x-gradient-encoding': 'dense-f32', 'x-claimed-loss': '1', 'x-compute-time-ms': '5' } });
    expect(submitted.statusCode, submitted.body).toBe(201);
    const verdict = await h.staff('validator', { method: 'POST', url: '/v1/assignments/a-1/verdicts', payload: { verdict: 'accepted', qualityScore: 0.9, bonusMsat: '100000', evidence: {} } });
    expect(verdict.statusCode, verdict.body).toBe(201);
    expect((await h.conformance()).problems).toEqual([]);
  });

  it('a crash after the reservation and before the assignment: the retry with the same Idempotency-Key appends only the missing assignment', async () => {
    const fault = failingOnce('assignment-a-crash');
    h = await apiHarness('split', {}, { splitLog, wrapLog: fault.wrap });
    const alice = await h.contributor('alice');
    await h.seedRun('run-1', alice, 'a-1');
    fault.state.armed = true;
    const crashed = await h.staff('coordinator', assign('a-crash', 'assign-a-crash'));
    expect(crashed.statusCode, crashed.body).toBe(500);
    expect(fault.state.failed).toBe(1);
    // Half done: the reservation is in the log, the assignment is not.
    const half = await h.store.readAll({ maxCount: 10_000 });
    expect(half.filter((e) => e.type === 'BudgetReserved' && e.data.assignmentId === 'a-crash')).toHaveLength(1);
    expect(half.filter((e) => e.type === 'WorkAssigned' && e.data.assignmentId === 'a-crash')).toHaveLength(0);

    const retry = await h.staff('coordinator', assign('a-crash', 'assign-a-crash'));
    expect(retry.statusCode, retry.body).toBe(201);
    const log = await h.store.readAll({ maxCount: 10_000 });
    expect(log.filter((e) => e.type === 'BudgetReserved' && e.data.assignmentId === 'a-crash')).toHaveLength(1);
    expect(log.filter((e) => e.type === 'WorkAssigned' && e.data.assignmentId === 'a-crash')).toHaveLength(1);
    // The same request again is answered from its records, and appends nothing.
    const again = await h.staff('coordinator', assign('a-crash', 'assign-a-crash'));
    expect(again.statusCode, again.body).toBe(201);
    expect(await h.store.readAll({ maxCount: 10_000 })).toHaveLength(log.length);
    // Reserved once: the run holds both assignments' worst cases, not three.
    const run = JSON.parse((await h.staff('coordinator', { method: 'GET', url: '/v1/runs/run-1' })).body);
    const worstCases = log.filter((e) => e.type === 'BudgetReserved').map((e) => BigInt(e.data.amountMsat as string));
    expect(worstCases).toHaveLength(2);
    expect(run.reservedMsat).toBe(String(worstCases.reduce((a, b) => a + b, 0n)));
  });

  it('the same crash retried under a fresh Idempotency-Key: the standing reservation is the same one (a no-op), the assignment is appended once', async () => {
    const fault = failingOnce('assignment-a-crash2');
    h = await apiHarness('split', {}, { splitLog, wrapLog: fault.wrap });
    const alice = await h.contributor('alice');
    await h.seedRun('run-1', alice, 'a-1');
    fault.state.armed = true;
    expect((await h.staff('coordinator', assign('a-crash2', randomUUID()))).statusCode).toBe(500);
    const retry = await h.staff('coordinator', assign('a-crash2', randomUUID()));
    expect(retry.statusCode, retry.body).toBe(201);
    const log = await h.store.readAll({ maxCount: 10_000 });
    expect(log.filter((e) => e.type === 'BudgetReserved' && e.data.assignmentId === 'a-crash2')).toHaveLength(1);
    expect(log.filter((e) => e.type === 'WorkAssigned' && e.data.assignmentId === 'a-crash2')).toHaveLength(1);
  });

  it('runs POST /v1/audits on the split: 202, and the job finishes clean with every part run over the log catalog', async () => {
    h = await apiHarness('split', {}, { splitLog });
    const alice = await h.contributor('alice');
    await h.seedRun('run-1', alice, 'a-1');
    const started = await h.staff('auditor', { method: 'POST', url: '/v1/audits', payload: {} });
    expect(started.statusCode, started.body).toBe(202);
    const { auditId } = JSON.parse(started.body) as { auditId: string };
    let view: Record<string, any> = { status: 'running' };
    // Polls the job's status until it is no longer running: a condition, not a sleep.
    for (let look = 0; look < 2_000 && view.status === 'running'; look += 1) {
      view = JSON.parse((await h.staff('auditor', { method: 'GET', url: `/v1/audits/${auditId}` })).body);
      if (view.status === 'running') await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(view.status, JSON.stringify(view.error)).toBe('finished');
    expect(view.report.discrepancies).toEqual([]);
    expect(view.clean).toBe(true);
    expect(view.report.parts.settlement.assignments).toBe(1);
    expect(view.report.parts.integrity.events).toBe((await h.store.readAll({ maxCount: 10_000 })).length);
    expect((await h.conformance()).problems).toEqual([]);
  });
});
