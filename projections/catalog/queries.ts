// Reads of the log catalog: keyset pages of streams in the database's collation, heads by id, the invoice streams of assignments.

import { sql, type Kysely } from 'kysely';
import { LOG_CATALOG_SCHEMA } from './catalog-projector.js';

export type CatalogStream = Readonly<{ streamId: string; lastRevision: number; lastHash: string }>;

type Row = { stream_id: string; last_revision: string; last_hash: string };

const table = sql.table(`${LOG_CATALOG_SCHEMA}.streams`);
const toStream = (r: Row): CatalogStream => ({ streamId: r.stream_id, lastRevision: Number(r.last_revision), lastHash: r.last_hash });

/**
 * Streams after `afterStreamId` (null: from the first) whose id starts with `prefix`, in stream-id order, at most
 * `limit`. The comparison is SQL's, so the order is the database's collation, as the SQL log's audit pages are.
 */
export async function catalogStreams(db: Kysely<any>, afterStreamId: string | null, limit: number, prefix = ''): Promise<CatalogStream[]> {
  const after = afterStreamId === null ? sql`` : sql`AND stream_id > ${afterStreamId}`;
  const rows = await sql<Row>`
    SELECT stream_id, last_revision::text AS last_revision, last_hash FROM ${table}
    WHERE stream_id LIKE ${`${escapeLike(prefix)}%`} ${after} ORDER BY stream_id LIMIT ${limit}`.execute(db);
  return rows.rows.map(toStream);
}

/** The catalog rows of these streams (those it has). */
export async function catalogHeads(db: Kysely<any>, streamIds: readonly string[]): Promise<CatalogStream[]> {
  if (streamIds.length === 0) return [];
  const rows = await sql<Row>`
    SELECT stream_id, last_revision::text AS last_revision, last_hash FROM ${table} WHERE stream_id = ANY(${[...streamIds]}::text[])`.execute(db);
  return rows.rows.map(toStream);
}

/** The invoice streams opened for these assignments (by their InvoiceOpened), through the catalog's assignment index. */
export async function catalogInvoiceStreams(db: Kysely<any>, assignmentIds: readonly string[]): Promise<CatalogStream[]> {
  if (assignmentIds.length === 0) return [];
  const rows = await sql<Row>`
    SELECT stream_id, last_revision::text AS last_revision, last_hash FROM ${table} WHERE assignment_id = ANY(${[...assignmentIds]}::text[])`.execute(db);
  return rows.rows.map(toStream);
}

/** Events the catalog has counted, over every stream. */
export async function catalogEventCount(db: Kysely<any>): Promise<number> {
  const rows = await sql<{ n: string }>`SELECT coalesce(sum(event_count), 0)::text AS n FROM ${table}`.execute(db);
  return Number(rows.rows[0]!.n);
}

function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}
