// The log catalog's ordered migrations; a landed one is never edited.

import type { Migration } from 'kysely/migration';
import * as catalog from './0001_log_catalog.js';

export const LOG_CATALOG_MIGRATIONS: Readonly<Record<string, Migration>> = { '0001_log_catalog': catalog };
