// Migration 0002: the one-call append at a known stream head (see PostgresEventStore.append's fast path).

import { sql, type Kysely } from 'kysely';

/**
 * event_store_append_at_known_head(stream, expected revision (-1: a new stream), expected head hash,
 * events, recorded_at, idempotency key or null, request digest or null) appends events whose hashes
 * the caller chained onto that head, in the caller's (autocommit) transaction, and returns the last
 * event's global position and the transaction id; it returns NO row, and writes nothing, when the
 * head is not exactly the expected one. Each element of `events` is {event_id, event_type,
 * schema_version, data, metadata, hash}; revisions and prev_hash follow from the head and the order.
 *
 * Why a function: its statements' plans are cached per connection, so an append costs the server
 * one trivial parse and plan instead of a four-part data-modifying CTE's, and the wire carries a
 * short call. The semantics are those of the statement it replaces:
 * - the head moves only WHERE revision and head_hash are the expected ones; under READ COMMITTED an
 *   UPDATE that waited on a concurrent writer's row lock re-checks that WHERE on the committed row,
 *   so exactly one of two writers at the same head moves it; a new stream's head row is inserted
 *   ON CONFLICT DO NOTHING, which waits for a concurrent creator and then does nothing;
 * - nothing else is written unless the head moved (IF NOT FOUND THEN RETURN);
 * - a unique violation (an event id already in the stream, an idempotency key already used) fails
 *   the call and with it the transaction: the head, the events and the key all roll back.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE FUNCTION event_store_append_at_known_head(
      p_stream_id text, p_expected_revision bigint, p_expected_hash text, p_events jsonb,
      p_recorded_at timestamptz, p_idempotency_key text, p_request_digest text)
    RETURNS TABLE (appended_position text, appended_transaction text)
    LANGUAGE plpgsql AS $fn$
    DECLARE
      v_count integer := jsonb_array_length(p_events);
      v_last_revision bigint := p_expected_revision + v_count;
      v_last_hash text := p_events -> (v_count - 1) ->> 'hash';
      v_position bigint;
      v_transaction text;
    BEGIN
      IF v_count < 1 THEN
        RAISE EXCEPTION 'event_store_append_at_known_head: no events' USING ERRCODE = 'invalid_parameter_value';
      END IF;
      IF p_expected_revision < 0 THEN
        INSERT INTO streams (stream_id, revision, head_hash, updated_at)
        VALUES (p_stream_id, v_last_revision, v_last_hash, p_recorded_at)
        ON CONFLICT (stream_id) DO NOTHING;
      ELSE
        UPDATE streams SET revision = v_last_revision, head_hash = v_last_hash, updated_at = p_recorded_at
        WHERE streams.stream_id = p_stream_id AND streams.revision = p_expected_revision AND streams.head_hash = p_expected_hash;
      END IF;
      IF NOT FOUND THEN
        RETURN;
      END IF;
      WITH inserted AS (
        INSERT INTO events (stream_id, stream_revision, event_id, event_type, schema_version, data, metadata, recorded_at, prev_hash, hash)
        SELECT p_stream_id, p_expected_revision + e.ord, (e.value ->> 'event_id')::uuid, e.value ->> 'event_type',
          (e.value ->> 'schema_version')::integer, e.value -> 'data', e.value -> 'metadata', p_recorded_at,
          COALESCE(lag(e.value ->> 'hash') OVER (ORDER BY e.ord), p_expected_hash), e.value ->> 'hash'
        FROM jsonb_array_elements(p_events) WITH ORDINALITY AS e(value, ord)
        ORDER BY e.ord
        RETURNING events.global_position
      )
      SELECT max(inserted.global_position) INTO v_position FROM inserted;
      v_transaction := pg_current_xact_id()::text;
      IF p_idempotency_key IS NOT NULL THEN
        INSERT INTO idempotency_keys (idempotency_key, request_digest, stream_id, result, created_at)
        VALUES (p_idempotency_key, p_request_digest, p_stream_id,
          jsonb_build_object('streamId', p_stream_id, 'firstRevision', p_expected_revision + 1, 'lastRevision', v_last_revision,
            'transactionId', v_transaction, 'globalPosition', v_position::text),
          p_recorded_at);
      END IF;
      RETURN QUERY SELECT v_position::text, v_transaction;
    END $fn$`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP FUNCTION event_store_append_at_known_head(text, bigint, text, jsonb, timestamptz, text, text)`.execute(db);
}
