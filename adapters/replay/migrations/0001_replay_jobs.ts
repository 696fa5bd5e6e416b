// Replay jobs: one row per dispute replay, with the lease that makes claims durable.

import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('replay_jobs')
    .addColumn('job_id', 'text', (c) => c.primaryKey())
    .addColumn('assignment_id', 'text', (c) => c.notNull())
    .addColumn('dispute_id', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status IN ('queued', 'running', 'done', 'failed')`))
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('lease_owner', 'text')
    .addColumn('lease_expires_at_ms', 'int8')
    .addColumn('enqueued_at_ms', 'int8', (c) => c.notNull())
    .addColumn('finished_at_ms', 'int8')
    .addColumn('last_error', 'text')
    .execute();
  await db.schema.createIndex('replay_jobs_ready').on('replay_jobs').columns(['status', 'enqueued_at_ms']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('replay_jobs').execute();
}
