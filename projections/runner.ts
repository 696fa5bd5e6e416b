// The projection runner: applies log batches to each projector with its checkpoint in the same transaction.

import { sql, type Kysely } from 'kysely';
import { comparePositions, type LogPosition } from '../domain/ports/event-store.js';
import { invariant } from '../domain/errors.js';
import {
  loadCheckpointIn,
  readAllIn,
  saveCheckpointIn,
  type PostgresEventStore,
} from '../adapters/postgres/postgres-event-store.js';
import { decodeForProjection } from './decode.js';
import type { ProjectedEvent, Projector } from './projector.js';
import { prepareProjectorSchema } from './schemas.js';
import { PassLoop, STOP_ON_ERROR } from '../adapters/pass-loop.js';

export const DEFAULT_PROJECTION_BATCH_SIZE = 500;
export const DEFAULT_PROJECTION_POLL_INTERVAL_MS = 200;

export type ProjectionLag = Readonly<{ projector: string; checkpoint: LogPosition; lagEvents: number; lagSeconds: number }>;

export type RunnerOptions = Readonly<{
  store: PostgresEventStore;
  projectors: readonly Projector[];
  batchSize?: number;
  pollIntervalMs?: number;
  nowMs?: () => number;
  /**
   * Fault injection: runs inside the batch transaction after the read-model
   * writes and the checkpoint, just before commit. Throwing here is a crash at
   * the worst moment; the transaction must roll back whole.
   */
  beforeCommit?: (projector: string, batch: readonly ProjectedEvent[]) => void | Promise<void>;
}>;

/** The checkpoint of a projector's tables in `schema`; live tables use the projector's own name. */
export function projectionCheckpointId(schema: string): string {
  return `projection:${schema}`;
}

/** Serialises every writer of one projection (runner batches, a rebuild's swap) across processes. */
export async function lockProjection(trx: Kysely<any>, schema: string): Promise<void> {
  await sql`SELECT pg_advisory_xact_lock(hashtext(${`trainledger:${projectionCheckpointId(schema)}`}))`.execute(trx);
}

/**
 * Applies at most `batchSize` events after the checkpoint (and not beyond
 * `until`, when given) to the projector's tables in `schema`, inside `trx`.
 * Returns how many events it applied.
 */
export async function applyBatchIn(
  trx: Kysely<any>,
  projector: Projector,
  schema: string,
  options: { batchSize: number; nowMs: () => number; until?: LogPosition; beforeCommit?: RunnerOptions['beforeCommit'] },
): Promise<number> {
  const checkpointId = projectionCheckpointId(schema);
  const checkpoint = await loadCheckpointIn(trx, checkpointId);
  let recorded = await readAllIn(trx, { after: checkpoint, maxCount: options.batchSize });
  if (options.until) recorded = recorded.filter((e) => comparePositions(e.position, options.until!) <= 0);
  if (recorded.length === 0) return 0;
  const events = recorded.map(decodeForProjection);
  await projector.apply(trx.withSchema(schema), events);
  const last = events[events.length - 1]!.position;
  invariant(comparePositions(last, checkpoint) > 0, `projection ${schema} would move its checkpoint backwards`);
  await saveCheckpointIn(trx, checkpointId, last, new Date(options.nowMs()));
  await options.beforeCommit?.(projector.name, events);
  return events.length;
}

export class ProjectionRunner {
  private loop: PassLoop | null = null;
  private readonly batchSize: number;
  private readonly nowMs: () => number;

  constructor(private readonly options: RunnerOptions) {
    this.batchSize = options.batchSize ?? DEFAULT_PROJECTION_BATCH_SIZE;
    this.nowMs = options.nowMs ?? Date.now;
    const names = new Set(options.projectors.map((p) => p.name));
    invariant(names.size === options.projectors.length, 'projector names must be unique');
  }

  private get db(): Kysely<any> {
    return this.options.store.db as Kysely<any>;
  }

  /** Creates each projector's schema and runs its migrations. */
  async prepare(): Promise<void> {
    for (const projector of this.options.projectors) await prepareProjectorSchema(this.db, projector);
  }

  /** One batch for one projector, in its own transaction. */
  async step(projector: Projector): Promise<number> {
    return this.db.transaction().execute(async (trx) => {
      await lockProjection(trx, projector.name);
      return applyBatchIn(trx, projector, projector.name, {
        batchSize: this.batchSize,
        nowMs: this.nowMs,
        ...(this.options.beforeCommit ? { beforeCommit: this.options.beforeCommit } : {}),
      });
    });
  }

  /** Applies everything visible now to every projector; returns the events applied per projector. */
  async catchUp(): Promise<Record<string, number>> {
    const applied: Record<string, number> = {};
    for (const projector of this.options.projectors) {
      applied[projector.name] = 0;
      for (let n = await this.step(projector); n > 0; n = await this.step(projector)) applied[projector.name]! += n;
    }
    return applied;
  }

  /** Runs until stop(): catches up, then waits for an append in this process or the poll interval. A projector that throws stops it. */
  start(): Promise<void> {
    invariant(this.loop === null, 'projection runner already started');
    this.loop = new PassLoop({ pass: () => this.catchUp(), store: this.options.store, pollIntervalMs: this.options.pollIntervalMs ?? DEFAULT_PROJECTION_POLL_INTERVAL_MS, onError: STOP_ON_ERROR });
    return this.loop.start();
  }

  /** Stops after the batch in progress; the runner may be started again. */
  async stop(): Promise<void> {
    const loop = this.loop;
    this.loop = null;
    await loop?.stop();
  }

  /** How far each projector trails the log: events not yet applied, and the age of the oldest of them. */
  async lag(): Promise<ProjectionLag[]> {
    const lags: ProjectionLag[] = [];
    for (const projector of this.options.projectors) {
      const checkpoint = await loadCheckpointIn(this.db, projectionCheckpointId(projector.name));
      const result = await sql<{ events: string; oldest_ms: string | null }>`
        SELECT count(*)::text AS events, (extract(epoch FROM min(recorded_at)) * 1000)::bigint::text AS oldest_ms FROM events
        WHERE (transaction_id, global_position) > (${checkpoint.transactionId.toString()}::xid8, ${checkpoint.globalPosition.toString()}::bigint)
          AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())`.execute(this.db);
      const row = result.rows[0]!;
      const lagSeconds = row.oldest_ms === null ? 0 : Math.max(0, (this.nowMs() - Number(row.oldest_ms)) / 1000);
      lags.push({ projector: projector.name, checkpoint, lagEvents: Number(row.events), lagSeconds });
    }
    return lags;
  }
}
