// The ledger projection's ordered migrations; a landed one is never edited.

import type { Migration } from 'kysely/migration';
import * as ledger from './0001_ledger.js';

export const LEDGER_MIGRATIONS: Readonly<Record<string, Migration>> = { '0001_ledger': ledger };
