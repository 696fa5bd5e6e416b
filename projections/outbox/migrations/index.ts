// The outbox projection's ordered migrations; a landed one is never edited.

import type { Migration } from 'kysely/migration';
import * as outbox from './0001_outbox.js';
import * as feeCeiling from './0002_fee_ceiling.js';

export const OUTBOX_MIGRATIONS: Readonly<Record<string, Migration>> = { '0001_outbox': outbox, '0002_fee_ceiling': feeCeiling };
