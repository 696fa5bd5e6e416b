// Rebuild benchmark: replay a generated log from position zero through each projector, against merely reading it.

import type { PostgresEventStore } from '../../adapters/postgres/postgres-event-store.js';
import { LOG_START } from '../../domain/ports/event-store.js';
import { decodeForProjection } from '../../projections/decode.js';
import type { Projector } from '../../projections/projector.js';
import { ProjectionRunner } from '../../projections/runner.js';
import { generateHistory } from '../projections/history.js';
import { bulkLoad } from './bulk-load.js';
import { round } from './stats.js';

export type RebuildBenchResult = {
  events: number;
  loadMs: number;
  readBaseline: { elapsedMs: number; eventsPerSec: number };
  rebuild: Record<string, { elapsedMs: number; eventsPerSec: number; readShare: number }>;
};

/** Assignments per generated chunk: bounds the generator's memory while the log grows to the target. */
const ASSIGNMENTS_PER_CHUNK = 5_000;
const BATCH_SIZE = 1_000;

export async function runRebuildBench(store: PostgresEventStore, targetEvents: number, projectors: readonly Projector[], log: (line: string) => void): Promise<RebuildBenchResult> {
  const loadStart = performance.now();
  let events = 0;
  for (let chunk = 0; events < targetEvents; chunk += 1) {
    const history = generateHistory(1_000 + chunk, { runs: 5, assignments: ASSIGNMENTS_PER_CHUNK }, { idPrefix: `b${chunk}-` });
    events += await bulkLoad(store.db, history.slice(0, targetEvents - events), Date.UTC(2026, 10, 22));
    log(`  loaded ${events} events`);
  }
  const loadMs = performance.now() - loadStart;

  // Baseline: the same batched reads and decoding the runner does, with no projector work.
  const readStart = performance.now();
  let read = 0;
  for (let after = LOG_START; ; ) {
    const batch = await store.readAll({ after, maxCount: BATCH_SIZE });
    if (batch.length === 0) break;
    batch.forEach(decodeForProjection);
    read += batch.length;
    after = batch[batch.length - 1]!.position;
  }
  const readMs = performance.now() - readStart;
  if (read !== events) throw new Error(`read ${read} events, loaded ${events}`);

  const rebuild: RebuildBenchResult['rebuild'] = {};
  for (const projector of projectors) {
    const runner = new ProjectionRunner({ store, projectors: [projector], batchSize: BATCH_SIZE });
    await runner.prepare();
    const start = performance.now();
    const applied = await runner.catchUp();
    const elapsedMs = performance.now() - start;
    if (applied[projector.name] !== events) throw new Error(`${projector.name} applied ${applied[projector.name]} of ${events}`);
    rebuild[projector.name] = { elapsedMs: round(elapsedMs), eventsPerSec: round((events / elapsedMs) * 1000), readShare: round(readMs / elapsedMs, 3) };
    log(`  ${projector.name}: ${rebuild[projector.name]!.eventsPerSec} events/s`);
  }
  return { events, loadMs: round(loadMs), readBaseline: { elapsedMs: round(readMs), eventsPerSec: round((events / readMs) * 1000) }, rebuild };
}
