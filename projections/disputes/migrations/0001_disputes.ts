// Migration 0001 of the disputes projection: one row per rejected assignment, filled in as it is disputed, replayed and resolved.

import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('rejections')
    .addColumn('assignment_id', 'text', (c) => c.primaryKey())
    .addColumn('run_id', 'text', (c) => c.notNull())
    .addColumn('contributor_id', 'text', (c) => c.notNull())
    .addColumn('reason_code', 'text', (c) => c.notNull())
    .addColumn('validator_id', 'text', (c) => c.notNull())
    .addColumn('rejected_at_ms', 'bigint', (c) => c.notNull())
    .addColumn('dispute_id', 'text')
    .addColumn('dispute_reason', 'text')
    .addColumn('disputed_at_ms', 'bigint')
    .addColumn('replay_job_id', 'text')
    .addColumn('replay_outcome', 'text')
    .addColumn('execution_provider', 'text')
    .addColumn('device', 'text')
    .addColumn('replay_duration_ms', 'bigint')
    // JSON as text, written by the projector with JSON.stringify: the same bytes on pg and PGlite, so checksums compare.
    .addColumn('recipe_json', 'text')
    .addColumn('metric_json', 'text')
    .addColumn('tolerance_json', 'text')
    .addColumn('replayed_at_ms', 'bigint')
    .addColumn('resolution', 'text')
    .addColumn('resolved_at_ms', 'bigint')
    .execute();
  // "Recent disputes", over all runs or one.
  await db.schema.createIndex('rejections_by_dispute_time').on('rejections').columns(['disputed_at_ms', 'assignment_id']).execute();
  await db.schema.createIndex('rejections_by_run_dispute_time').on('rejections').columns(['run_id', 'disputed_at_ms', 'assignment_id']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('rejections').execute();
}
