// The two engines projection tests run on: in-memory PGlite and a fresh database on the test PostgreSQL server.

import { openEventStore } from '../../adapters/event-store/open-event-store.js';
import { createPostgresDatabase } from '../support/databases.js';

export const PROJECTION_ENGINES = [
  { name: 'pglite', open: () => openEventStore({ engine: 'pglite' }) },
  { name: 'postgres', open: async () => openEventStore({ engine: 'postgres', connectionString: await createPostgresDatabase('projections'), maxConnections: 8 }) },
] as const;
