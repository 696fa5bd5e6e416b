// Per-suite databases: each test file gets a fresh PostgreSQL database on the shared server, or a fresh PGlite.

import { inject } from 'vitest';
import { createDatabaseOn } from './postgres-cluster.js';

/** Creates an empty database on the test server and returns its URL. */
export async function createPostgresDatabase(prefix: string): Promise<string> {
  return createDatabaseOn(inject('postgresAdminUrl'), prefix);
}
