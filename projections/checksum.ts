// Per-table checksums of a projection: row count plus an MD5 chain over pages of rows' text in key order.

import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { Projector, ProjectionTable } from './projector.js';
import { assertSchemaName } from './schemas.js';
import { invariant } from '../domain/errors.js';

export type TableChecksum = Readonly<{ table: string; rows: number; md5: string }>;

/**
 * Rows hashed per query. One MD5 over a whole table's text (string_agg of every row) held the table
 * in one string in the database backend: memory growing with the table, and a hard stop at
 * PostgreSQL's 1 GiB string limit ("Cannot enlarge string buffer"), which the ledger's transfers
 * (about 380 bytes of text per assignment) reach near 2.8 million assignments; PGlite's WebAssembly
 * heap sooner. A page of 10,000 rows is a few MiB whatever the table's size.
 */
export const CHECKSUM_PAGE_ROWS = 10_000;

const COLUMN_PATTERN = /^[a-z_][a-z0-9_]*$/;

/** MD5 of no text: the checksum of an empty table, and the chain's start. */
const EMPTY_MD5 = 'd41d8cd98f00b204e9800998ecf8427e';

/**
 * Each table's row count and `md5`, defined as a chain over its rows in key order, taken
 * CHECKSUM_PAGE_ROWS at a time: c0 = md5(''), c(i+1) = md5(c(i) || md5(the page's rows' text joined by
 * newlines)); the table's checksum is the last c. Equal tables (same rows, so the same pages) hash
 * equally; a changed, added, dropped or reordered row changes its page's MD5 and so every link after it.
 */
export async function checksumTables(db: Kysely<any>, projector: Projector, schema = projector.name, pageRows = CHECKSUM_PAGE_ROWS): Promise<TableChecksum[]> {
  assertSchemaName(schema);
  const checksums: TableChecksum[] = [];
  for (const table of projector.tables) checksums.push(await checksumTable(db, schema, table, pageRows));
  return checksums;
}

async function checksumTable(db: Kysely<any>, schema: string, table: ProjectionTable, pageRows: number): Promise<TableChecksum> {
  for (const column of table.orderBy) if (!COLUMN_PATTERN.test(column)) throw new Error(`bad order column ${column}`);
  const keys = table.orderBy;
  const orderBy = (alias: string) => sql.join(keys.map((c) => sql.ref(`${alias}.${c}`)));
  let rows = 0;
  let md5 = EMPTY_MD5;
  // Keyset pages on the table's key (its primary key): each page one index range scan, however deep.
  for (let after: unknown[] | null = null; ; ) {
    const from: RawBuilder<unknown> = after === null ? sql`` : sql`WHERE (${sql.join(keys.map((c) => sql.ref(`t.${c}`)))}) > (${sql.join(after)})`;
    // Rows are numbered in key order (on the page's already sorted rows, no second sort by key), and
    // the last row's key comes back with the page (each column as the driver reads it) to start the next.
    const lastKey = sql.join(keys.map((c, i) => sql`(array_agg(${sql.ref(`p.${c}`)} ORDER BY p.rn DESC))[1] AS ${sql.ref(`k${i}`)}`));
    const result = await sql<Record<string, unknown> & { rows: string; md5: string }>`
      SELECT count(*)::text AS rows, md5(${md5} || md5(string_agg(p.line, E'\\n' ORDER BY p.rn))) AS md5, ${lastKey}
      FROM (
        SELECT q.*, row_number() OVER (ORDER BY ${orderBy('q')}) AS rn
        FROM (
          SELECT t::text AS line, ${sql.join(keys.map((c) => sql.ref(`t.${c}`)))}
          FROM ${sql.table(`${schema}.${table.name}`)} AS t ${from}
          ORDER BY ${orderBy('t')}
          LIMIT ${pageRows}
        ) AS q
      ) AS p`.execute(db);
    const page = result.rows[0]!;
    const n = Number(page.rows);
    if (n === 0) break;
    rows += n;
    md5 = page.md5;
    if (n < pageRows) break;
    const next = keys.map((_, i) => page[`k${i}`]);
    // Keys are unique and each page starts after the last one's key, so the key must move on.
    invariant(after === null || JSON.stringify(next) !== JSON.stringify(after), `checksum of ${schema}.${table.name} stopped moving at key ${JSON.stringify(next)}`);
    after = next;
  }
  return { table: table.name, rows, md5 };
}

export function sameChecksums(a: readonly TableChecksum[], b: readonly TableChecksum[]): boolean {
  return a.length === b.length && a.every((x, i) => x.table === b[i]!.table && x.rows === b[i]!.rows && x.md5 === b[i]!.md5);
}
