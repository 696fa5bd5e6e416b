// The ordered event-store migrations. A landed migration is never edited; a change is a new file.

import type { Migration } from 'kysely/migration';
import * as eventLog from './0001_event_log.js';
import * as appendAtKnownHead from './0002_append_at_known_head.js';
import * as invoicesByAssignment from './0003_invoices_by_assignment.js';

export const EVENT_STORE_MIGRATIONS: Readonly<Record<string, Migration>> = {
  '0001_event_log': eventLog,
  '0002_append_at_known_head': appendAtKnownHead,
  '0003_invoices_by_assignment': invoicesByAssignment,
};
