// Applies one ordered set of kysely migrations to a database (or one schema of it), naming the migration that failed.
// Driver-agnostic (kysely's Migrator over whatever Kysely it is given), so it lives with the read models' migrations
// and the inner rings use it without an adapter; adapters/postgres/database.ts re-exports it for the adapters' tables.

import type { Kysely } from 'kysely';
import { Migrator, type Migration } from 'kysely/migration';

/** Applies every pending migration of one migration set; throws with the failing migration's name. */
export async function migrateToLatest(
  db: Kysely<any>,
  migrations: Readonly<Record<string, Migration>>,
  migrationTableName: string,
  migrationTableSchema?: string,
): Promise<void> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => ({ ...migrations }) },
    migrationTableName,
    migrationLockTableName: `${migrationTableName}_lock`,
    ...(migrationTableSchema ? { migrationTableSchema } : {}),
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new Error(`migration ${failed} failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}
