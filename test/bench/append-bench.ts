// Append benchmark for one engine: the event store (single and 100-event batches) against a raw INSERT baseline.

import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import type { NewEvent } from '../../domain/ports/event-store.js';
import type { PostgresEventStore } from '../../adapters/postgres/postgres-event-store.js';
import { round, timeSequential, type Timing } from './stats.js';

export type AppendBenchSizes = { singleAppends: number; batchAppends: number; batchSize: number };

export type AppendBenchResult = {
  single: { store: Timing; rawInsert: Timing; storeToRawRatio: number };
  batched: { store: Timing; rawInsert: Timing; storeToRawRatio: number };
};

/** A payload shaped like a real WorkAssigned event, so JSON size and hashing cost are representative. */
function payload(i: number): NewEvent['data'] {
  return {
    assignmentId: `asg-${i}`,
    runId: 'run-bench',
    contributorId: `contrib-${i % 97}`,
    step: i,
    shardId: `shard-${i % 13}`,
    batchIndex: i % 600,
    baseCheckpointDigest: 'ab'.repeat(32),
    seed: String(1_000_000 + i),
    baseRewardMsat: '1000000',
    deadlineMs: 1_700_000_000_000 + i,
    atMs: 1_700_000_000_000,
  };
}

function events(count: number, offset: number): NewEvent[] {
  return Array.from({ length: count }, (_, k) => ({ eventId: randomUUID(), type: 'WorkAssigned', data: payload(offset + k) }));
}

/** One stream per writer-round keeps the benchmark about append cost, not about contention on one row. */
const STREAMS = 64;

export async function runAppendBench(store: PostgresEventStore, db: Kysely<any>, sizes: AppendBenchSizes): Promise<AppendBenchResult> {
  await sql`CREATE TABLE IF NOT EXISTS bench_raw_events (id bigserial PRIMARY KEY, stream_id text NOT NULL, event_id uuid NOT NULL, event_type text NOT NULL, data jsonb NOT NULL)`.execute(db);
  await sql`TRUNCATE bench_raw_events`.execute(db);
  const revisions = new Map<string, number>();
  const appendTo = async (i: number, batch: NewEvent[], prefix: string) => {
    const streamId = `${prefix}-${i % STREAMS}`;
    const expected = revisions.get(streamId);
    const result = await store.append(streamId, batch, { expectedRevision: expected === undefined ? 'no_stream' : expected });
    revisions.set(streamId, result.lastRevision);
  };
  const rawInsert = async (batch: NewEvent[], prefix: string) => {
    const rows = batch.map((e) => sql`(${prefix}, ${e.eventId}::uuid, ${e.type}, ${JSON.stringify(e.data)}::jsonb)`);
    await sql`INSERT INTO bench_raw_events (stream_id, event_id, event_type, data) VALUES ${sql.join(rows)}`.execute(db);
  };

  const single = await timeSequential(sizes.singleAppends, 1, (i) => appendTo(i, events(1, i), 'bench-single'));
  const singleRaw = await timeSequential(sizes.singleAppends, 1, (i) => rawInsert(events(1, i), `raw-single-${i % STREAMS}`));
  const batched = await timeSequential(sizes.batchAppends, sizes.batchSize, (i) => appendTo(i, events(sizes.batchSize, i * sizes.batchSize), 'bench-batch'));
  const batchedRaw = await timeSequential(sizes.batchAppends, sizes.batchSize, (i) => rawInsert(events(sizes.batchSize, i * sizes.batchSize), `raw-batch-${i % STREAMS}`));

  return {
    single: { store: single, rawInsert: singleRaw, storeToRawRatio: round(single.eventsPerSec / singleRaw.eventsPerSec, 3) },
    batched: { store: batched, rawInsert: batchedRaw, storeToRawRatio: round(batched.eventsPerSec / batchedRaw.eventsPerSec, 3) },
  };
}
