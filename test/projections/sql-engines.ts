// The SQL log alone (the log in the read models' own database, PGlite or PostgreSQL): for what needs its tables, as the audit log does.

import { openEventStore } from '../../adapters/event-store/open-event-store.js';
import { createPostgresDatabase } from '../support/databases.js';

export const SQL_PROJECTION_ENGINES = [
  { name: 'pglite', open: () => openEventStore({ engine: 'pglite' }) },
  { name: 'postgres', open: async () => openEventStore({ engine: 'postgres', connectionString: await createPostgresDatabase('projections'), maxConnections: 8 }) },
] as const;
