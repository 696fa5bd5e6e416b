// Creates and migrates a projector's schema; a read model's tables live in a schema named after it.

import { sql, type Kysely } from 'kysely';
import { migrateToLatest } from './migrate.js';
import type { Projector } from './projector.js';

const SCHEMA_NAME_PATTERN = /^[a-z][a-z0-9_]{0,50}$/;

export function assertSchemaName(name: string): void {
  if (!SCHEMA_NAME_PATTERN.test(name)) throw new Error(`projection schema name ${JSON.stringify(name)} must match ${SCHEMA_NAME_PATTERN}`);
}

/** Ensures `schema` exists and holds the projector's tables at their latest migration. */
export async function prepareProjectorSchema(db: Kysely<any>, projector: Projector, schema = projector.name): Promise<void> {
  assertSchemaName(schema);
  await sql`CREATE SCHEMA IF NOT EXISTS ${sql.id(schema)}`.execute(db);
  await migrateToLatest(db.withSchema(schema), projector.migrations, 'projection_migrations', schema);
}
