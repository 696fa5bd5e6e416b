// The disputes projection's ordered migrations; a landed one is never edited.

import type { Migration } from 'kysely/migration';
import * as disputes from './0001_disputes.js';

export const DISPUTES_MIGRATIONS: Readonly<Record<string, Migration>> = { '0001_disputes': disputes };
