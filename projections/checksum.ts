// Per-table checksums of a projection: row count plus an MD5 over every row's text in a total order.

import { sql, type Kysely } from 'kysely';
import type { Projector } from './projector.js';
import { assertSchemaName } from './schemas.js';

export type TableChecksum = Readonly<{ table: string; rows: number; md5: string }>;

const COLUMN_PATTERN = /^[a-z_][a-z0-9_]*$/;

export async function checksumTables(db: Kysely<any>, projector: Projector, schema = projector.name): Promise<TableChecksum[]> {
  assertSchemaName(schema);
  const checksums: TableChecksum[] = [];
  for (const table of projector.tables) {
    for (const column of table.orderBy) if (!COLUMN_PATTERN.test(column)) throw new Error(`bad order column ${column}`);
    const orderBy = sql.join(table.orderBy.map((c) => sql.ref(`t.${c}`)));
    // The row's text form covers every column; a total order makes equal tables hash equally.
    const result = await sql<{ rows: string; md5: string }>`
      SELECT count(*)::text AS rows, md5(coalesce(string_agg(t::text, E'\\n' ORDER BY ${orderBy}), '')) AS md5
      FROM ${sql.table(`${schema}.${table.name}`)} AS t`.execute(db);
    const row = result.rows[0]!;
    checksums.push({ table: table.name, rows: Number(row.rows), md5: row.md5 });
  }
  return checksums;
}

export function sameChecksums(a: readonly TableChecksum[], b: readonly TableChecksum[]): boolean {
  return a.length === b.length && a.every((x, i) => x.table === b[i]!.table && x.rows === b[i]!.rows && x.md5 === b[i]!.md5);
}
