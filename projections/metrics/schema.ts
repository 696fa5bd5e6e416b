// Typed kysely schema of the metrics projection's tables (int8 columns come back as decimal strings from pg and PGlite alike).

import type { ColumnType } from 'kysely';

type Int8 = ColumnType<string, string, string>;
type NullableInt8 = ColumnType<string | null, string | null, string | null>;

/** Additive facts per run and UTC hour; every period figure is a sum of these rows. */
export interface MetricsHourlyTable {
  run_id: string;
  /** The event's atMs floored to the UTC hour, in ms since the epoch. */
  hour_start_ms: Int8;
  external_revenue_msat: Int8;
  subsidy_funding_msat: Int8;
  rewards_paid_msat: Int8;
  rewards_paid_from_subsidy_msat: Int8;
  fees_msat: Int8;
  accepted_count: Int8;
  rejected_count: Int8;
  disputed_count: Int8;
  resolved_count: Int8;
  overturned_count: Int8;
  replay_compute_ms: Int8;
  claimed_compute_ms: Int8;
  escrow_locked_msat: Int8;
  escrow_released_msat: Int8;
}

/** When each assignment was handed out and when its base reward was first paid. */
export interface MetricsSettlementsTable {
  assignment_id: string;
  run_id: string;
  assigned_at_ms: NullableInt8;
  settled_at_ms: NullableInt8;
}

/** Helper: each run's cumulative funding by source, for the subsidy attribution of payments. */
export interface MetricsRunFundingTable {
  run_id: string;
  customer_msat: Int8;
  subsidy_msat: Int8;
}

export interface MetricsTables {
  hourly: MetricsHourlyTable;
  settlements: MetricsSettlementsTable;
  run_funding: MetricsRunFundingTable;
}
