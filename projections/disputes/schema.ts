// Typed kysely schema of the disputes projection (int8 columns come back as decimal strings from pg and PGlite alike).

import type { ColumnType } from 'kysely';

type Int8 = ColumnType<string, string, string>;
type NullableInt8 = ColumnType<string | null, string | null, string | null>;

/** A rejection, and the dispute, replay verdict and resolution that followed it, if any. */
export interface DisputesRejectionsTable {
  assignment_id: string;
  run_id: string;
  contributor_id: string;
  reason_code: string;
  validator_id: string;
  rejected_at_ms: Int8;
  dispute_id: string | null;
  dispute_reason: string | null;
  disputed_at_ms: NullableInt8;
  replay_job_id: string | null;
  /** match | mismatch */
  replay_outcome: string | null;
  execution_provider: string | null;
  device: string | null;
  replay_duration_ms: NullableInt8;
  recipe_json: string | null;
  metric_json: string | null;
  tolerance_json: string | null;
  replayed_at_ms: NullableInt8;
  /** upheld | overturned */
  resolution: string | null;
  resolved_at_ms: NullableInt8;
}

export interface DisputesTables {
  rejections: DisputesRejectionsTable;
}
