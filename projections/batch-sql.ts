// Set-at-a-time SQL for the projectors' batches: many rows as one JSON parameter, many keys as one array parameter.

import { sql, type Expression, type Kysely, type RawBuilder, type SqlBool } from 'kysely';

/**
 * The SELECT of an `INSERT INTO <table> (<columns>) SELECT ...` that writes `rows`: they travel as one
 * JSON parameter, typed by the table's own row type (json_populate_recordset), instead of a multi-row
 * VALUES list with a parameter per cell. For 200,000 upserts of 11 columns in statements of 2,000 rows
 * that took half the time in the database and 40% of the JavaScript time (kysely compiling the list,
 * pg serialising 22,000 parameters), and every batch sends the same statement text whatever its size.
 *
 * Cells must be what JSON carries and the column's input function reads: bigint and numeric columns as
 * decimal strings (how the projectors write them), null for NULL. Columns left out of `columns` take
 * their defaults. `table` is resolved like any table of the query, so db.withSchema applies to it.
 */
export function rowsFromJson(table: string, columns: readonly string[], rows: readonly object[]): RawBuilder<unknown> {
  for (const column of columns) if (!/^[a-z_][a-z0-9_]*$/.test(column)) throw new Error(`bad column name ${column}`);
  return sql`SELECT ${sql.join(columns.map((c) => sql.ref(c)))} FROM json_populate_recordset(NULL::${sql.table(table)}, ${JSON.stringify(rows)}::json)`;
}

/**
 * `<column> IN (SELECT unnest($1::text[]))`: a key lookup with the keys as one array parameter, planned
 * as one index probe per key. Not `= ANY($1)` nor `IN ($1, $2, ...)`: on a table without fresh
 * statistics (a rebuild's scratch tables, filled from empty within seconds) PostgreSQL answers those
 * with a scan of the whole table, so every batch of a rebuild cost more than the one before (the
 * rebuild's transfers lookup at 100k assignments: a sequential scan of 20-60 ms per batch at the end,
 * 12-17 ms for the same 4,540 keys probed).
 */
export function keyIn(column: string, keys: readonly string[]): Expression<SqlBool> {
  return sql<SqlBool>`${sql.ref(column)} IN (SELECT unnest(${[...keys]}::text[]))`;
}

/**
 * `INSERT INTO <table> (<the rows' keys>) SELECT ... FROM json_populate_recordset(...)` for rows that all
 * carry the same keys (the first row's name the columns); chain onConflict as on any insert.
 */
export function insertRows(db: Kysely<any>, table: string, rows: readonly Record<string, unknown>[]) {
  if (rows.length === 0) throw new Error(`insertRows into ${table} needs at least one row`);
  const columns = Object.keys(rows[0]!);
  // json_populate_recordset would silently drop a key the first row lacks: every row must name the same columns.
  for (const row of rows) if (Object.keys(row).length !== columns.length || columns.some((c) => !(c in row))) throw new Error(`insertRows into ${table}: every row must carry the columns ${columns.join(', ')}`);
  return db.insertInto(table).columns(columns).expression(rowsFromJson(table, columns, rows));
}
