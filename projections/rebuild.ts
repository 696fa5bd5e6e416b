// Blue/green rebuild: replay the log from position zero into fresh tables, compare checksums, swap them in.

import { sql, type Kysely } from 'kysely';
import { comparePositions, LOG_START, type LogPosition } from '../domain/ports/event-store.js';
import { invariant } from '../domain/errors.js';
import { checksumTables, sameChecksums, type TableChecksum } from './checksum.js';
import type { LoggedEvent, ProjectionLog } from './ports/projection-log.js';
import type { ProjectedEvent, Projector } from './projector.js';
import { applyBatchIn, DEFAULT_PROJECTION_BATCH_SIZE, isTransientDatabaseError, lockProjection, projectionCheckpointId } from './runner.js';
import { prepareProjectorSchema } from './schemas.js';
import { decodeForProjection } from './decode.js';

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
  const batch = { batchSize: options.batchSize ?? DEFAULT_PROJECTION_BATCH_SIZE, nowMs: options.nowMs ?? Date.now };
  const [green] = await replayIntoScratch({ store: log, projectors: [projector], ...batch, ...(options.onProgress ? { onProgress: options.onProgress } : {}) });
  if (green!.error !== null) {
    // The CLI's rebuild stops on a projector that refuses the log; its scratch schema goes with it.
    await dropScratch(log, projector);
    throw green!.error;
  }
  return cutOverRebuild({ store: log, projector, swap: options.swap, ...batch, ...(options.inspectDifference ? { inspectDifference: options.inspectDifference } : {}) }, green!.eventsApplied);
}

/** What the green phase left for one projector: events applied to its scratch tables, and the error that stopped it (null when it reached the head). */
export type GreenPhase = Readonly<{ projector: Projector; eventsApplied: number; error: unknown | null }>;

export type ReplayIntoScratchOptions = Readonly<{
  store: ProjectionLog;
  projectors: readonly Projector[];
  batchSize: number;
  nowMs: () => number;
  /** After each shared batch, with the log events read so far (each was offered to every projector still going). */
  onProgress?: (eventsRead: number) => void | Promise<void>;
  /**
   * Scratch tables UNLOGGED (no WAL for their rows and indexes): for a rebuild that only compares and
   * drops them (the audit). cutOverRebuild refuses to swap unlogged tables in, since a crash empties them.
   */
  unloggedScratch?: boolean;
  /**
   * Reads the log's pages in place of `store.readAllIn` (same window, same order, whole events): the audit
   * hashes each page it hands over, so the log is read once for both. Runs on the store's database.
   */
  read?: (after: LogPosition, maxCount: number) => Promise<LoggedEvent[]>;
}>;

/**
 * Green phase for several projectors at once: every scratch schema is made first, one after another
 * (side by side, their migrations raced on PostgreSQL's catalog), then ONE keyset pass over the log
 * feeds each batch, decoded once, to every projector. Each projector applies the batch in its own
 * transaction with its own checkpoint, all of them side by side on their own connections, while the
 * next batch is already being read: so the database writes one projector's rows while JavaScript folds
 * another's, instead of taking turns. A projector that throws (not a transient database error) keeps
 * what it had before that batch and sits out the rest of the pass; the others go on. The read runs
 * outside the projectors' transactions, so each transaction first checks that its checkpoint still
 * stands where the previous batch left it (nothing else moved it). The scratch writes commit with
 * synchronous_commit off: a crash can lose only the last few scratch batches, never a live row, and
 * the next rebuild drops the scratch schema anyway; the cut-over commits as usual, which also flushes
 * everything before it. On PGlite's one connection the transactions and the read simply queue.
 */
export async function replayIntoScratch(options: ReplayIntoScratchOptions): Promise<GreenPhase[]> {
  const { store: log, projectors } = options;
  const db = log.db;
  for (const projector of projectors) {
    await prepareProjectorSchema(db, projector);
    await sql`DROP SCHEMA IF EXISTS ${sql.id(rebuildSchemaName(projector))} CASCADE`.execute(db);
    await log.deleteCheckpointIn(db, projectionCheckpointId(rebuildSchemaName(projector)));
    await prepareProjectorSchema(db, projector, rebuildSchemaName(projector));
    if (options.unloggedScratch) {
      const tables = await sql<{ tablename: string }>`SELECT tablename FROM pg_tables WHERE schemaname = ${rebuildSchemaName(projector)} ORDER BY tablename`.execute(db);
      for (const { tablename } of tables.rows) await sql`ALTER TABLE ${sql.table(`${rebuildSchemaName(projector)}.${tablename}`)} SET UNLOGGED`.execute(db);
    }
  }
  const states: ScratchState[] = projectors.map((projector) => ({ projector, target: rebuildSchemaName(projector), eventsApplied: 0, error: null }));
  const read = options.read ? (after: LogPosition) => options.read!(after, options.batchSize) : (after: LogPosition) => log.readAllIn(db, { after, maxCount: options.batchSize });
  // Every scratch checkpoint was just deleted, so each stands at the log's start.
  let after: LogPosition = LOG_START;
  let eventsRead = 0;
  let next: Promise<LoggedEvent[]> | null = read(after);
  try {
    for (;;) {
      const recorded: LoggedEvent[] = await next!;
      next = null;
      const going = states.filter((s) => s.error === null);
      if (going.length === 0 || recorded.length === 0) break;
      let events: ProjectedEvent[];
      try {
        events = recorded.map(decodeForProjection);
      } catch (error) {
        // An event no projector can decode stops every one of them, as it would stop each alone.
        for (const s of going) s.error = error;
        eventsRead += recorded.length;
        await options.onProgress?.(eventsRead);
        break;
      }
      const last = events[events.length - 1]!.position;
      invariant(comparePositions(last, after) > 0, 'a rebuild would move its checkpoint backwards');
      next = read(last);
      const outcomes = await Promise.allSettled(going.map((s) => applyScratchBatch(log, s, events, after, last, options.nowMs)));
      // A transient database error ends the pass (the caller may try again); every transaction has settled by now.
      const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
      if (failed) throw failed.reason;
      after = last;
      eventsRead += events.length;
      await options.onProgress?.(eventsRead);
    }
  } finally {
    // Never leave a read in flight behind a pass that stopped: the caller may drop the schemas next.
    await next?.catch(() => {});
  }
  return states.map((s) => ({ projector: s.projector, eventsApplied: s.eventsApplied, error: s.error }));
}

type ScratchState = { projector: Projector; target: string; eventsApplied: number; error: unknown };

/** One projector's share of a shared batch, in a transaction of its own; a refusal is recorded on `s`, a transient error thrown. */
async function applyScratchBatch(log: ProjectionLog, s: ScratchState, events: readonly ProjectedEvent[], after: LogPosition, last: LogPosition, nowMs: () => number): Promise<void> {
  try {
    await log.db.transaction().execute(async (trx) => {
      await sql`SET LOCAL synchronous_commit TO off`.execute(trx);
      await lockProjection(trx, s.target);
      const checkpoint = await log.loadCheckpointIn(trx, projectionCheckpointId(s.target));
      invariant(comparePositions(checkpoint, after) === 0, `the scratch checkpoint of ${s.projector.name} moved while the rebuild read the log`);
      await s.projector.apply(trx.withSchema(s.target), events);
      await log.saveCheckpointIn(trx, projectionCheckpointId(s.target), last, new Date(nowMs()));
    });
    s.eventsApplied += events.length;
  } catch (error) {
    if (isTransientDatabaseError(error)) throw error;
    s.error = error;
  }
}

/** Drops a projector's scratch schema and its checkpoint (after a failed green phase). */
export async function dropScratch(log: ProjectionLog, projector: Projector): Promise<void> {
  await sql`DROP SCHEMA IF EXISTS ${sql.id(rebuildSchemaName(projector))} CASCADE`.execute(log.db);
  await log.deleteCheckpointIn(log.db, projectionCheckpointId(rebuildSchemaName(projector)));
}

export type CutOverOptions = Readonly<Pick<RebuildOptions, 'store' | 'projector' | 'swap' | 'inspectDifference'> & { batchSize: number; nowMs: () => number }>;

/**
 * Cut-over after a green phase: under the live projection's lock, bring both to the same position,
 * compare row for row, and swap by renaming schemas in one transaction (or drop the scratch schema).
 */
export async function cutOverRebuild(options: CutOverOptions, eventsAppliedBefore: number): Promise<RebuildReport> {
  const { store: log, projector } = options;
  const target = rebuildSchemaName(projector);
  const batch = { batchSize: options.batchSize, nowMs: options.nowMs };
  let eventsApplied = eventsAppliedBefore;
  return log.db.transaction().execute(async (trx) => {
    await lockProjection(trx, projector.name);
    if (options.swap) {
      const unlogged = await sql<{ n: string }>`SELECT count(*)::text AS n FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace WHERE ns.nspname = ${target} AND c.relpersistence = 'u'`.execute(trx);
      invariant(unlogged.rows[0]!.n === '0', `the scratch tables of ${projector.name} are unlogged; they are for comparing, never for swapping in`);
    }
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

