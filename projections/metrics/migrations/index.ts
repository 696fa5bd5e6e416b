// The metrics projection's ordered migrations; a landed one is never edited.

import type { Migration } from 'kysely/migration';
import * as metrics from './0001_metrics.js';

export const METRICS_MIGRATIONS: Readonly<Record<string, Migration>> = { '0001_metrics': metrics };
