// Bench fixture: loads generated histories straight into the log in large statements, chaining hashes as the store does.

import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { toWire } from '../../domain/codec.js';
import type { JsonObject } from '../../domain/ports/event-store.js';
import { GENESIS_HASH, chainHash } from '../../adapters/event-store/hash-chain.js';
import type { HistoryEvent } from '../projections/history.js';

/** Rows per INSERT: large enough to amortise round trips, small enough to bound one statement's memory. */
const ROWS_PER_STATEMENT = 5_000;

/**
 * Appending a million events one command at a time would take the benchmark
 * most of an hour; this writes the same rows (gapless revisions, a valid hash
 * chain, stream heads) in bulk. Only for streams that are new to the log.
 */
export async function bulkLoad(db: Kysely<any>, history: readonly HistoryEvent[], recordedAtMs: number): Promise<number> {
  const heads = new Map<string, { revision: number; hash: string }>();
  for (let start = 0; start < history.length; start += ROWS_PER_STATEMENT) {
    const rows = history.slice(start, start + ROWS_PER_STATEMENT).map(({ streamId, event }) => {
      const head = heads.get(streamId) ?? { revision: -1, hash: GENESIS_HASH };
      const content = { streamId, revision: head.revision + 1, eventId: randomUUID(), type: event.type, schemaVersion: 1, data: JSON.parse(JSON.stringify(toWire(event.data))) as JsonObject, metadata: {}, recordedAtMs };
      const hash = chainHash(head.hash, content);
      heads.set(streamId, { revision: content.revision, hash });
      return { stream_id: streamId, stream_revision: content.revision, event_id: content.eventId, event_type: content.type, schema_version: 1, data: content.data, metadata: {}, recorded_at: new Date(recordedAtMs).toISOString(), prev_hash: head.hash, hash };
    });
    const touched = [...new Set(rows.map((r) => r.stream_id))].map((id) => ({ stream_id: id, revision: heads.get(id)!.revision, head_hash: heads.get(id)!.hash }));
    await db.transaction().execute(async (trx) => {
      await sql`
        INSERT INTO streams (stream_id, revision, head_hash, updated_at)
        SELECT stream_id, revision, head_hash, ${new Date(recordedAtMs)} FROM jsonb_to_recordset(${JSON.stringify(touched)}::jsonb) AS s(stream_id text, revision bigint, head_hash text)
        ON CONFLICT (stream_id) DO UPDATE SET revision = EXCLUDED.revision, head_hash = EXCLUDED.head_hash`.execute(trx);
      await sql`
        INSERT INTO events (stream_id, stream_revision, event_id, event_type, schema_version, data, metadata, recorded_at, prev_hash, hash)
        SELECT * FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS r(
          stream_id text, stream_revision bigint, event_id uuid, event_type text, schema_version integer,
          data jsonb, metadata jsonb, recorded_at timestamptz, prev_hash text, hash text)`.execute(trx);
    });
  }
  return history.length;
}
