// The command path (load -> decide -> append) against both engines: retries, the retry bound and idempotency keys.

import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handleCommand, loadAggregate } from '../../adapters/commands/command-handler.js';
import { openEventStore } from '../../adapters/event-store/open-event-store.js';
import type { PostgresEventStore } from '../../adapters/postgres/postgres-event-store.js';
import { runDecider, runStreamId, type RunCommand } from '../../domain/run/index.js';
import type { EventStore } from '../../domain/ports/event-store.js';
import { createPostgresDatabase } from '../support/databases.js';
import { command, openRunData } from '../domain/fixtures.js';

const engines = [
  { name: 'pglite', open: () => openEventStore({ engine: 'pglite' }), parallel: 6 },
  {
    name: 'postgres',
    open: async () => openEventStore({ engine: 'postgres', connectionString: await createPostgresDatabase('commands'), maxConnections: 16 }),
    parallel: 12,
  },
] as const;

const newEventId = () => randomUUID();

function openRun(runId: string): RunCommand {
  return command<RunCommand>('OpenRun', openRunData({ runId }));
}
function fund(runId: string, fundingId: string, amountMsat: bigint): RunCommand {
  return command<RunCommand>('FundRun', { runId, fundingId, source: 'customer', amountMsat });
}
function reserve(runId: string, reservationId: string, amountMsat: bigint): RunCommand {
  return command<RunCommand>('ReserveBudget', { runId, reservationId, assignmentId: reservationId, amountMsat });
}

async function caught(promise: Promise<unknown>): Promise<{ code?: string }> {
  return promise.then(
    () => ({}),
    (error: { code?: string }) => error,
  );
}

describe.each(engines)('command handling [$name]', (engine) => {
  let store: PostgresEventStore;
  beforeAll(async () => {
    store = (await engine.open()).store;
  });
  afterAll(async () => {
    await store?.close();
  });

  async function run(runId: string, cmd: RunCommand, idempotencyKey?: string) {
    return handleCommand(store, runDecider, runStreamId(runId), cmd, { newEventId, ...(idempotencyKey ? { idempotencyKey } : {}) });
  }

  it('loads, decides and appends, so state follows the log', async () => {
    const runId = `r${randomUUID().slice(0, 8)}`;
    expect((await run(runId, openRun(runId))).status).toBe('appended');
    await run(runId, fund(runId, 'f1', 5_000n));
    const outcome = await run(runId, reserve(runId, 'a1', 2_000n));
    expect(outcome.events.map((e) => e.type)).toEqual(['BudgetReserved']);
    const { state, lastRevision } = await loadAggregate(store, runDecider, runStreamId(runId));
    expect(lastRevision).toBe(2);
    expect(state).toMatchObject({ status: 'open', reservedMsat: 2_000n });
  });

  it('passes domain errors through with their code and appends nothing', async () => {
    const runId = `r${randomUUID().slice(0, 8)}`;
    await run(runId, openRun(runId));
    const error = await caught(run(runId, reserve(runId, 'a1', 1n)));
    expect(error.code).toBe('INSUFFICIENT_BUDGET');
    expect(await store.readStream(runStreamId(runId))).toHaveLength(1);
  });

  it('reports a command the decider finds already satisfied as a no-op', async () => {
    const runId = `r${randomUUID().slice(0, 8)}`;
    await run(runId, openRun(runId));
    await run(runId, fund(runId, 'f1', 5_000n));
    expect((await run(runId, fund(runId, 'f1', 5_000n))).status).toBe('no-op');
    expect(await store.readStream(runStreamId(runId))).toHaveLength(2);
  });

  it('returns the original outcome for a repeated idempotency key, and refuses the key for another payload', async () => {
    const runId = `r${randomUUID().slice(0, 8)}`;
    await run(runId, openRun(runId));
    const key = `fund-${randomUUID()}`;
    const first = await run(runId, fund(runId, 'f1', 5_000n), key);
    // A later clock must not matter: the digest covers what the client asked, not when.
    const again = await run(runId, { ...fund(runId, 'f1', 5_000n), metadata: { nowMs: 1_800_000_000_000 } }, key);
    expect(again).toMatchObject({ status: 'duplicate', lastRevision: first.lastRevision, position: first.position });
    expect(again.events).toEqual(first.events);
    const conflict = await caught(run(runId, fund(runId, 'f2', 7_000n), key));
    expect(conflict.code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(await store.readStream(runStreamId(runId))).toHaveLength(2);
  });

  it('answers a retry with the original outcome when the decider now refuses it, or would decide it anew', async () => {
    const runId = `r${randomUUID().slice(0, 8)}`;
    await run(runId, openRun(runId));
    await run(runId, fund(runId, 'f1', 5_000n));
    const key = `reserve-${randomUUID()}`;
    const first = await run(runId, reserve(runId, 'a1', 1_000n), key);
    // Released since: the decider would refuse the reservation id now (single use); the key still answers.
    await run(runId, command<RunCommand>('ReleaseBudget', { runId, reservationId: 'a1', spentMsat: 0n }));
    const refusedNow = await run(runId, reserve(runId, 'a1', 1_000n), key);
    expect(refusedNow).toMatchObject({ status: 'duplicate', lastRevision: first.lastRevision, position: first.position });
    // A decider that would write again (a checkpoint at a later step) collides with the key's row: nothing new, the original answer.
    const publishKey = `publish-${randomUUID()}`;
    const publish = (step: number) => command<RunCommand>('PublishCheckpoint', { runId, checkpointId: `c${step}`, step, digest: 'ab'.repeat(32) });
    const published = await run(runId, publish(1), publishKey);
    const lengthBefore = (await store.readStream(runStreamId(runId))).length;
    const again = await caught(run(runId, publish(2), publishKey));
    expect(again.code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(await run(runId, publish(1), publishKey)).toMatchObject({ status: 'duplicate', position: published.position });
    expect(await store.readStream(runStreamId(runId))).toHaveLength(lengthBefore);
  });

  it('decides the first attempt on a state the caller loaded, and a stale one costs a retry, not a wrong write', async () => {
    const runId = `r${randomUUID().slice(0, 8)}`;
    await run(runId, openRun(runId));
    await run(runId, fund(runId, 'f1', 1_000n));
    const stale = await loadAggregate(store, runDecider, runStreamId(runId));
    // Another writer takes the whole budget after the load.
    await run(runId, reserve(runId, 'a1', 1_000n));
    const error = await caught(handleCommand(store, runDecider, runStreamId(runId), reserve(runId, 'a2', 1_000n), { newEventId, loaded: stale }));
    expect(error.code).toBe('INSUFFICIENT_BUDGET');
    const { state } = await loadAggregate(store, runDecider, runStreamId(runId));
    expect(state).toMatchObject({ reservedMsat: 1_000n });
    // A fresh loaded state is used as is: the command appends on its revision.
    await run(runId, fund(runId, 'f2', 1_000n));
    const fresh = await loadAggregate(store, runDecider, runStreamId(runId));
    const outcome = await handleCommand(store, runDecider, runStreamId(runId), reserve(runId, 'a2', 1_000n), { newEventId, loaded: fresh });
    expect(outcome.lastRevision).toBe(fresh.lastRevision! + 1);
  });

  it('lets exactly one of many racing requests with the same key write', async () => {
    const runId = `r${randomUUID().slice(0, 8)}`;
    await run(runId, openRun(runId));
    const key = `fund-${randomUUID()}`;
    const outcomes = await Promise.all(Array.from({ length: engine.parallel }, () => run(runId, fund(runId, 'f1', 5_000n), key)));
    expect(outcomes.filter((o) => o.status === 'appended')).toHaveLength(1);
    expect(new Set(outcomes.map((o) => o.position?.globalPosition))).toEqual(new Set([outcomes[0]!.position!.globalPosition]));
    expect(await store.readStream(runStreamId(runId))).toHaveLength(2);
  });

  it('retries conflicts so parallel reservations never overdraw the budget', async () => {
    const runId = `r${randomUUID().slice(0, 8)}`;
    await run(runId, openRun(runId));
    await run(runId, fund(runId, 'f1', 3_000n));
    const results = await Promise.all(
      Array.from({ length: engine.parallel }, (_, i) =>
        handleCommand(store, runDecider, runStreamId(runId), reserve(runId, `a${i}`, 1_000n), { newEventId, maxAttempts: 50 }).then(
          () => 'reserved',
          (error: { code?: string }) => error.code,
        ),
      ),
    );
    expect(results.filter((r) => r === 'reserved')).toHaveLength(3);
    expect(results.filter((r) => r === 'INSUFFICIENT_BUDGET')).toHaveLength(engine.parallel - 3);
    const { state } = await loadAggregate(store, runDecider, runStreamId(runId));
    expect(state).toMatchObject({ reservedMsat: 3_000n });
  });

  it('gives up with CONCURRENCY_CONFLICT after its bound when the stream keeps moving', async () => {
    const runId = `r${randomUUID().slice(0, 8)}`;
    await run(runId, openRun(runId));
    await run(runId, fund(runId, 'f0', 1_000_000n));
    let rival = 0;
    // A real competing writer lands on the stream between every decision and its append.
    const contested: EventStore = Object.create(store);
    contested.append = async (streamId, events, options) => {
      await handleCommand(store, runDecider, streamId, fund(runId, `rival-${(rival += 1)}`, 1n), { newEventId });
      return store.append(streamId, events, options);
    };
    const error = await caught(handleCommand(contested, runDecider, runStreamId(runId), reserve(runId, 'a1', 1n), { newEventId, maxAttempts: 3 }));
    expect(error.code).toBe('CONCURRENCY_CONFLICT');
    expect(rival).toBe(3);
    const { state } = await loadAggregate(store, runDecider, runStreamId(runId));
    expect(state).toMatchObject({ reservedMsat: 0n });
  });
});
