// Rebuild part of the audit: each projection rebuilt into a scratch schema and compared with the live one by checksum, naming differing rows.

import { sql, type Kysely } from 'kysely';
import type { ProjectionLog } from '../../projections/ports/projection-log.js';
import type { Projector } from '../../projections/projector.js';
import { rebuildProjection, rebuildSchemaName } from '../../projections/rebuild.js';
import { isTransientDatabaseError, projectionCheckpointId } from '../../projections/runner.js';
import { assertSchemaName } from '../../projections/schemas.js';
import type { Discrepancy } from './catalog.js';

export type RowDifference = Readonly<{ key: Readonly<Record<string, unknown>>; live: 'missing' | 'differs' | 'extra' }>;

export type RebuildCheckOptions = Readonly<{
  log: ProjectionLog;
  projectors: readonly Projector[];
  /** Differing rows named per table, at most. */
  maxRowDiffs: number;
  onFinding: (finding: Discrepancy) => void;
  onEvents: (n: number) => void;
}>;

export type RebuildCheckStats = Record<string, { eventsApplied: number; identical: boolean; tables: number }>;

export async function checkRebuild(options: RebuildCheckOptions): Promise<RebuildCheckStats> {
  const stats: RebuildCheckStats = {};
  // One projector after another: side by side, their schema migrations raced on the catalog
  // (an intermittent false PROJECTION_REBUILD_FAILED on PostgreSQL).
  for (const projector of options.projectors) await checkOne(projector, options, stats);
  return stats;
}

async function checkOne(projector: Projector, options: RebuildCheckOptions, stats: RebuildCheckStats): Promise<void> {
  let reported = 0;
  const diffs: Record<string, RowDifference[]> = {};
  let report: Awaited<ReturnType<typeof rebuildProjection>>;
  try {
    report = await rebuildProjection({
      store: options.log,
      projector,
      swap: false,
      onProgress: (n) => {
        options.onEvents(n - reported);
        reported = n;
      },
      inspectDifference: async (trx, live, rebuilt) => {
        for (const table of projector.tables) diffs[table.name] = await differingRows(trx, live, rebuilt, table, options.maxRowDiffs);
      },
    });
  } catch (error) {
    // One projector refusing the log must not stop the audit: it is a finding, and the scratch schema goes.
    if (isTransientDatabaseError(error) || (error instanceof Error && error.name === 'AuditStopped')) throw error;
    await sql`DROP SCHEMA IF EXISTS ${sql.id(rebuildSchemaName(projector))} CASCADE`.execute(options.log.db);
    await options.log.deleteCheckpointIn(options.log.db, projectionCheckpointId(rebuildSchemaName(projector)));
    stats[projector.name] = { eventsApplied: reported, identical: false, tables: projector.tables.length };
    options.onFinding({ code: 'PROJECTION_REBUILD_FAILED', subject: projector.name, explanation: `rebuilding ${projector.name} from the log fails after ${reported} events: ${error instanceof Error ? error.message : String(error)}`, events: [] });
    return;
  }
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
