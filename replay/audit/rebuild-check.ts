// Rebuild part of the audit: each projection rebuilt into a scratch schema and compared with the live one by checksum, naming differing rows.

import { sql, type Kysely } from 'kysely';
import type { LogPosition } from '../../domain/ports/event-store.js';
import type { LoggedEvent, ProjectionLog } from '../../projections/ports/projection-log.js';
import type { Projector } from '../../projections/projector.js';
import { cutOverRebuild, dropScratch, replayIntoScratch } from '../../projections/rebuild.js';
import { isTransientDatabaseError } from '../../projections/runner.js';
import { assertSchemaName } from '../../projections/schemas.js';
import type { Discrepancy } from './catalog.js';

/** Log events per shared rebuild batch: ten times the runner's, so each projector loads and writes its touched rows a tenth as often. */
export const AUDIT_REBUILD_BATCH_SIZE = 5_000;

export type RowDifference = Readonly<{ key: Readonly<Record<string, unknown>>; live: 'missing' | 'differs' | 'extra' }>;

export type RebuildCheckOptions = Readonly<{
  log: ProjectionLog;
  projectors: readonly Projector[];
  /** Differing rows named per table, at most. */
  maxRowDiffs: number;
  onFinding: (finding: Discrepancy) => void;
  onEvents: (n: number) => void;
  /** Reads the log's pages for the shared pass (see replayIntoScratch's `read`). */
  read?: (after: LogPosition, maxCount: number) => Promise<LoggedEvent[]>;
}>;

export type RebuildCheckStats = Record<string, { eventsApplied: number; identical: boolean; tables: number }>;

export async function checkRebuild(options: RebuildCheckOptions): Promise<RebuildCheckStats> {
  const stats: RebuildCheckStats = {};
  const batch = { batchSize: AUDIT_REBUILD_BATCH_SIZE, nowMs: Date.now };
  let reported = 0;
  // One read of the log feeds every projector's scratch schema (see replayIntoScratch).
  const green = await replayIntoScratch({
    store: options.log,
    projectors: options.projectors,
    ...batch,
    // Compared, then dropped: the scratch rows need no WAL.
    unloggedScratch: true,
    ...(options.read ? { read: options.read } : {}),
    onProgress: (eventsRead) => {
      // Progress counts each event once per projector, as the audit's total does.
      options.onEvents((eventsRead - reported) * options.projectors.length);
      reported = eventsRead;
    },
  });
  // The projectors' cut-overs run side by side (checksums of live and rebuilt tables are one backend's work
  // each, so one after another left a core idle); findings are reported in projector order all the same.
  const outcomes = await Promise.allSettled(green.map(async ({ projector, eventsApplied, error }) => {
    const findings: Discrepancy[] = [];
    try {
      if (error !== null) throw error;
      await compareOne(projector, eventsApplied, batch, { ...options, onFinding: (f) => findings.push(f) }, stats);
    } catch (failure) {
      // One projector refusing the log must not stop the audit: it is a finding, and the scratch schema goes.
      if (isTransientDatabaseError(failure) || (failure instanceof Error && failure.name === 'AuditStopped')) throw failure;
      await dropScratch(options.log, projector);
      stats[projector.name] = { eventsApplied, identical: false, tables: projector.tables.length };
      findings.push({ code: 'PROJECTION_REBUILD_FAILED', subject: projector.name, explanation: `rebuilding ${projector.name} from the log fails after ${eventsApplied} events: ${failure instanceof Error ? failure.message : String(failure)}`, events: [] });
    }
    return findings;
  }));
  for (const outcome of outcomes) if (outcome.status === 'rejected') throw outcome.reason;
  for (const outcome of outcomes) if (outcome.status === 'fulfilled') for (const finding of outcome.value) options.onFinding(finding);
  return stats;
}

async function compareOne(projector: Projector, eventsApplied: number, batch: { batchSize: number; nowMs: () => number }, options: RebuildCheckOptions, stats: RebuildCheckStats): Promise<void> {
  const diffs: Record<string, RowDifference[]> = {};
  const report = await cutOverRebuild(
    {
      store: options.log,
      projector,
      swap: false,
      ...batch,
      inspectDifference: async (trx, live, rebuilt) => {
        for (const table of projector.tables) diffs[table.name] = await differingRows(trx, live, rebuilt, table, options.maxRowDiffs);
      },
    },
    eventsApplied,
  );
  stats[projector.name] = { eventsApplied: report.eventsApplied, identical: report.identical, tables: report.live.length };
  if (report.liveError !== null) {
    options.onFinding({ code: 'PROJECTION_LIVE_BROKEN', subject: projector.name, explanation: `the live ${projector.name} projection cannot apply the log the rebuild applied: ${report.liveError}`, events: [], details: { position: report.position.globalPosition.toString() } });
    return;
  }
  for (const [i, live] of report.live.entries()) {
    const rebuilt = report.rebuilt[i]!;
    if (live.md5 === rebuilt.md5 && live.rows === rebuilt.rows) continue;
    const rows = diffs[live.table] ?? [];
    options.onFinding({
      code: 'PROJECTION_MISMATCH',
      subject: `${projector.name}.${live.table}`,
      explanation: `${projector.name}.${live.table} has ${live.rows} live rows, ${rebuilt.rows} rebuilt from the log, and their checksums differ; first differing keys: ${rows.map((r) => `${JSON.stringify(r.key)} (${r.live})`).join(', ') || 'none found'}`,
      events: [],
      details: { liveRows: live.rows, rebuiltRows: rebuilt.rows, liveMd5: live.md5, rebuiltMd5: rebuilt.md5, rows },
    });
  }
}

/** Per-row digests joined on the table's key, in SQL: only the first `limit` differing keys come back. */
async function differingRows(db: Kysely<any>, liveSchema: string, rebuiltSchema: string, table: Projector['tables'][number], limit: number): Promise<RowDifference[]> {
  assertSchemaName(liveSchema);
  assertSchemaName(rebuiltSchema);
  for (const column of table.orderBy) if (!/^[a-z_][a-z0-9_]*$/.test(column)) throw new Error(`bad key column ${column}`);
  const keys = sql.join(table.orderBy.map((c) => sql.ref(c)));
  const liveTable = sql.table(`${liveSchema}.${table.name}`);
  const rebuiltTable = sql.table(`${rebuiltSchema}.${table.name}`);
  const result = await sql<Record<string, unknown> & { live_md5: string | null; rebuilt_md5: string | null }>`
    SELECT ${keys}, l.row_md5 AS live_md5, r.row_md5 AS rebuilt_md5
    FROM (SELECT ${keys}, md5(t::text) AS row_md5 FROM ${liveTable} AS t) AS l
    FULL JOIN (SELECT ${keys}, md5(t::text) AS row_md5 FROM ${rebuiltTable} AS t) AS r USING (${keys})
    WHERE l.row_md5 IS DISTINCT FROM r.row_md5
    ORDER BY ${keys}
    LIMIT ${limit}`.execute(db);
  return result.rows.map((row) => {
    const key = Object.fromEntries(table.orderBy.map((c) => [c, row[c]]));
    return { key, live: row.live_md5 === null ? 'missing' : row.rebuilt_md5 === null ? 'extra' : 'differs' };
  });
}
