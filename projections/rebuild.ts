// Blue/green rebuild: replay the log from position zero into fresh tables, compare checksums, swap them in.

import { sql, type Kysely } from 'kysely';
import { comparePositions, type LogPosition } from '../domain/ports/event-store.js';
import { invariant } from '../domain/errors.js';
import { checksumTables, sameChecksums, type TableChecksum } from './checksum.js';
import type { ProjectionLog } from './ports/projection-log.js';
import type { Projector } from './projector.js';
import { applyBatchIn, DEFAULT_PROJECTION_BATCH_SIZE, isTransientDatabaseError, lockProjection, projectionCheckpointId } from './runner.js';
import { prepareProjectorSchema } from './schemas.js';

export type RebuildOptions = Readonly<{
  /** The log, in the read models' own database (the PostgreSQL/PGlite event store implements it). */
  store: ProjectionLog;
  projector: Projector;
  /** Swap the rebuilt tables in; otherwise they are compared and dropped. */
  swap: boolean;
  batchSize?: number;
  nowMs?: () => number;
  /** Called after each rebuilt batch with the events applied so far (progress for the CLI). */
  onProgress?: (eventsApplied: number) => void | Promise<void>;
  /**
   * Without swap: called in the cut-over transaction, with both schemas at the same position,
   * before the rebuilt one is dropped, when they differ. The audit names the differing rows here.
   */
  inspectDifference?: (trx: Kysely<any>, liveSchema: string, rebuiltSchema: string) => Promise<void>;
}>;

export type RebuildReport = Readonly<{
  projector: string;
  eventsApplied: number;
  /** The log position the rebuilt tables stand at when compared; the live ones too, unless liveError. */
  position: LogPosition;
  live: TableChecksum[];
  rebuilt: TableChecksum[];
  /** Same rows at the same position; false whenever the live tables could not reach it. */
  identical: boolean;
  swapped: boolean;
  /**
   * Why the live tables could not be brought to the rebuilt position (they fail
   * on an event the rebuild applied: the live read model was corrupt), or null.
   * The live checksums are then those at the live checkpoint; a swap still
   * replaces them, and the live checkpoint moves to `position`, which is what
   * lets a runner that stopped on that event carry on.
   */
  liveError: string | null;
}>;

export function rebuildSchemaName(projector: Projector): string {
  return `${projector.name}_rebuild`;
}

export async function rebuildProjection(options: RebuildOptions): Promise<RebuildReport> {
  const { store: log, projector } = options;
  const db = log.db;
  const target = rebuildSchemaName(projector);
  const batch = { batchSize: options.batchSize ?? DEFAULT_PROJECTION_BATCH_SIZE, nowMs: options.nowMs ?? Date.now };
  await prepareProjectorSchema(db, projector);
  await sql`DROP SCHEMA IF EXISTS ${sql.id(target)} CASCADE`.execute(db);
  await log.deleteCheckpointIn(db, projectionCheckpointId(target));
  await prepareProjectorSchema(db, projector, target);

  // Green phase: replay the whole log into the fresh schema while the live
  // tables keep serving and the live runner keeps applying.
  let eventsApplied = 0;
  for (;;) {
    const n = await db.transaction().execute(async (trx) => {
      await lockProjection(trx, target);
      return applyBatchIn(log, trx, projector, target, batch);
    });
    if (n === 0) break;
    eventsApplied += n;
    await options.onProgress?.(eventsApplied);
  }

  // Cut-over: under the live projection's lock, bring both to the same position,
  // compare row for row, and swap by renaming schemas in one transaction.
  return db.transaction().execute(async (trx) => {
    await lockProjection(trx, projector.name);
    const { position, liveError } = await alignPositions(log, trx, projector, target, batch, (n) => (eventsApplied += n));
    const live = await checksumTables(trx, projector, projector.name);
    const rebuilt = await checksumTables(trx, projector, target);
    const identical = liveError === null && sameChecksums(live, rebuilt);
    if (options.swap) {
      const retired = `${projector.name}_retired`;
      await sql`DROP SCHEMA IF EXISTS ${sql.id(retired)} CASCADE`.execute(trx);
      await sql`ALTER SCHEMA ${sql.id(projector.name)} RENAME TO ${sql.id(retired)}`.execute(trx);
      await sql`ALTER SCHEMA ${sql.id(target)} RENAME TO ${sql.id(projector.name)}`.execute(trx);
      await sql`DROP SCHEMA ${sql.id(retired)} CASCADE`.execute(trx);
      // The swapped-in tables stand at the rebuilt position (the live checkpoint already does, unless liveError).
      await log.saveCheckpointIn(trx, projectionCheckpointId(projector.name), position, new Date(batch.nowMs()));
    } else {
      if (!identical && liveError === null) await options.inspectDifference?.(trx, projector.name, target);
      await sql`DROP SCHEMA ${sql.id(target)} CASCADE`.execute(trx);
    }
    await log.deleteCheckpointIn(trx, projectionCheckpointId(target));
    return { projector: projector.name, eventsApplied, position, live, rebuilt, identical, swapped: options.swap, liveError };
  });
}

/**
 * Advances whichever of live and rebuilt is behind until both stand at the same
 * log position. The rebuilt tables failing is the rebuild failing; the live
 * ones failing for good (not a transient database error) ends the alignment
 * with the live tables left where they were and the reason returned.
 */
async function alignPositions(
  log: ProjectionLog,
  trx: Kysely<any>,
  projector: Projector,
  target: string,
  batch: { batchSize: number; nowMs: () => number },
  countRebuilt: (n: number) => void,
): Promise<{ position: LogPosition; liveError: string | null }> {
  for (let guard = 0; ; guard += 1) {
    invariant(guard < 1_000_000, 'rebuild alignment did not converge');
    const live = await log.loadCheckpointIn(trx, projectionCheckpointId(projector.name));
    const rebuilt = await log.loadCheckpointIn(trx, projectionCheckpointId(target));
    const order = comparePositions(rebuilt, live);
    if (order === 0) return { position: live, liveError: null };
    if (order < 0) {
      const n = await applyBatchIn(log, trx, projector, target, { ...batch, until: live });
      invariant(n > 0, `rebuild of ${projector.name} cannot reach the live position`);
      countRebuilt(n);
    } else {
      // A savepoint, so a live batch that throws halfway leaves none of its writes behind.
      await sql`SAVEPOINT rebuild_live_batch`.execute(trx);
      try {
        const n = await applyBatchIn(log, trx, projector, projector.name, { ...batch, until: rebuilt });
        invariant(n > 0, `live ${projector.name} cannot reach the rebuilt position`);
        await sql`RELEASE SAVEPOINT rebuild_live_batch`.execute(trx);
      } catch (error) {
        if (isTransientDatabaseError(error)) throw error;
        await sql`ROLLBACK TO SAVEPOINT rebuild_live_batch`.execute(trx);
        return { position: rebuilt, liveError: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
      }
    }
  }
}

