// Table checksums on both SQL engines: the paged MD5 chain equals its definition recomputed here, and every kind of row change moves it.

import { createHash } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LedgerStore } from '../../adapters/event-store/ledger-store.js';
import { CHECKSUM_PAGE_ROWS, checksumTables } from '../../projections/checksum.js';
import { ALL_PROJECTORS } from '../../projections/index.js';
import { metricsProjector } from '../../projections/metrics/metrics-projector.js';
import type { Projector } from '../../projections/projector.js';
import { ProjectionRunner } from '../../projections/runner.js';
import { appendHistory, generateHistory } from './history.js';
import { SQL_PROJECTION_ENGINES } from './sql-engines.js';

const md5 = (text: string) => createHash('md5').update(text, 'utf8').digest('hex');

/** The checksum's definition, from every row's text in key order: c0 = md5(''), c(i+1) = md5(c(i) || md5(page i joined by newlines)). */
async function referenceChecksums(db: Kysely<any>, projector: Projector, pageRows: number) {
  const out = [];
  for (const table of projector.tables) {
    const order = sql.join(table.orderBy.map((c) => sql.ref(`t.${c}`)));
    const lines = (await sql<{ line: string }>`SELECT t::text AS line FROM ${sql.table(`${projector.name}.${table.name}`)} AS t ORDER BY ${order}`.execute(db)).rows.map((r) => r.line);
    let chain = md5('');
    for (let i = 0; i < lines.length; i += pageRows) chain = md5(chain + md5(lines.slice(i, i + pageRows).join('\n')));
    out.push({ table: table.name, rows: lines.length, md5: chain });
  }
  return out;
}

describe.each(SQL_PROJECTION_ENGINES)('projection checksums [$name]', (engine) => {
  let store: LedgerStore;

  beforeAll(async () => {
    store = (await engine.open()).store;
    await appendHistory(store, generateHistory(11, { runs: 3, assignments: 40 }));
    const runner = new ProjectionRunner({ store, projectors: ALL_PROJECTORS });
    await runner.prepare();
    await runner.catchUp();
  });
  afterAll(async () => {
    await store?.close();
  });

  it('is the paged MD5 chain of the rows in key order, for one-column and two-column keys and any page size', async () => {
    const hourly = (await checksumTables(store.db, metricsProjector)).find((c) => c.table === 'hourly')!;
    expect(hourly.rows).toBeGreaterThan(7 * 3);
    for (const pageRows of [1, 7, hourly.rows, CHECKSUM_PAGE_ROWS]) {
      for (const projector of ALL_PROJECTORS) {
        expect(await checksumTables(store.db, projector, projector.name, pageRows), `${projector.name}, pages of ${pageRows}`).toEqual(await referenceChecksums(store.db, projector, pageRows));
      }
    }
  });

  it('moves with one changed cell, a dropped row and an added row, and comes back when they are undone', async () => {
    const before = await checksumTables(store.db, metricsProjector, 'metrics', 5);
    const changed = async (change: () => Promise<unknown>, undo: () => Promise<unknown>) => {
      await change();
      const after = await checksumTables(store.db, metricsProjector, 'metrics', 5);
      await undo();
      expect(await checksumTables(store.db, metricsProjector, 'metrics', 5)).toEqual(before);
      return after.find((c) => c.table === 'hourly')!;
    };
    const original = before.find((c) => c.table === 'hourly')!;
    const row = (await sql<Record<string, unknown>>`SELECT * FROM metrics.hourly ORDER BY run_id, hour_start_ms OFFSET 12 LIMIT 1`.execute(store.db)).rows[0]!;
    const key = sql`run_id = ${row.run_id} AND hour_start_ms = ${row.hour_start_ms}`;
    const edited = await changed(
      () => sql`UPDATE metrics.hourly SET external_revenue_msat = external_revenue_msat + 1 WHERE ${key}`.execute(store.db),
      () => sql`UPDATE metrics.hourly SET external_revenue_msat = external_revenue_msat - 1 WHERE ${key}`.execute(store.db),
    );
    expect(edited.rows).toBe(original.rows);
    expect(edited.md5).not.toBe(original.md5);
    const dropped = await changed(
      () => sql`DELETE FROM metrics.hourly WHERE ${key}`.execute(store.db),
      () => sql`INSERT INTO metrics.hourly SELECT * FROM json_populate_record(NULL::metrics.hourly, ${JSON.stringify(row)}::json)`.execute(store.db),
    );
    expect(dropped.rows).toBe(original.rows - 1);
    expect(dropped.md5).not.toBe(original.md5);
    const added = await changed(
      () => sql`INSERT INTO metrics.hourly SELECT * FROM json_populate_record(NULL::metrics.hourly, ${JSON.stringify({ ...row, run_id: 'zz-extra' })}::json)`.execute(store.db),
      () => sql`DELETE FROM metrics.hourly WHERE run_id = 'zz-extra'`.execute(store.db),
    );
    expect(added.rows).toBe(original.rows + 1);
    expect(added.md5).not.toBe(original.md5);
  });
});
