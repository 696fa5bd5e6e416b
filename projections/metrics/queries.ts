// Typed reads of the metrics projection: hourly facts rolled up per hour, day or week (UTC), or per run over all time.

import { type Kysely, type RawBuilder, sql } from 'kysely';
import type { MetricsTables } from './schema.js';

export type Granularity = 'hour' | 'day' | 'week';
export const GRANULARITIES: readonly Granularity[] = ['hour', 'day', 'week'];

/**
 * Every figure of one period (or one run over all time). Money is exact bigint msat.
 * Ratios are IEEE-754 doubles computed from the exact sums as Number(numerator) /
 * Number(denominator) (each conversion exact below 2^53 msat, about 90,000 BTC; the
 * division rounds to nearest), and null when the denominator is 0.
 */
export type Figures = {
  externalRevenueMsat: bigint;
  subsidyFundingMsat: bigint;
  rewardsPaidMsat: bigint;
  rewardsPaidFromSubsidyMsat: bigint;
  feesMsat: bigint;
  /** revenue - rewards paid; negative when rewards exceed revenue. */
  earningsMsat: bigint;
  /** rewards paid out of subsidy / external revenue. */
  subsidyRatio: number | null;
  /** (revenue - rewards paid) / revenue. */
  takeRate: number | null;
  /** rewards paid / accepted count, msat as a double. */
  costPerAcceptedStepMsat: number | null;
  /** Escrow locked minus released, cumulated over all time up to the period's end (all time for a run). */
  escrowOutstandingMsat: bigint;
  acceptedCount: number;
  rejectedCount: number;
  disputedCount: number;
  resolvedCount: number;
  overturnedCount: number;
  /** accepted / (accepted + rejected). */
  acceptanceRate: number | null;
  /** disputed / rejected, both counted in the period (so it can exceed 1). */
  disputeRate: number | null;
  /** overturned / resolved. */
  overturnRate: number | null;
  /**
   * Median of settled_at - assigned_at over the assignments whose base reward was first paid
   * in the period, as PostgreSQL's percentile_cont(0.5): the mean of the two middle values
   * for an even count; null when none settled.
   */
  medianSettlementMs: number | null;
  replayComputeMs: number;
  claimedComputeMs: number;
  /** replay compute ms / claimed compute ms. */
  verificationOverhead: number | null;
};

export type PeriodMetrics = Figures & {
  /** Start of the UTC period in ms since the epoch (weeks start on Monday, as date_trunc does). */
  periodStartMs: number;
  /** The run asked for, or null for the sum over all runs. */
  runId: string | null;
};

export type RunMetrics = Figures & { runId: string };

export type PeriodQuery = Readonly<{
  granularity: Granularity;
  runId?: string;
  /** Whole periods overlapping [fromMs, toMs) are returned; both bounds optional. */
  fromMs?: number;
  toMs?: number;
}>;

/** Sums as text: sum(int8) is numeric, which must not pass through a float on the way out. */
type SummedRow = {
  external_revenue_msat: string;
  subsidy_funding_msat: string;
  rewards_paid_msat: string;
  rewards_paid_from_subsidy_msat: string;
  fees_msat: string;
  accepted_count: string;
  rejected_count: string;
  disputed_count: string;
  resolved_count: string;
  overturned_count: string;
  replay_compute_ms: string;
  claimed_compute_ms: string;
  escrow_outstanding_msat: string;
  median_settlement_ms: number | string | null;
};

const SUMMED = [
  'external_revenue_msat',
  'subsidy_funding_msat',
  'rewards_paid_msat',
  'rewards_paid_from_subsidy_msat',
  'fees_msat',
  'accepted_count',
  'rejected_count',
  'disputed_count',
  'resolved_count',
  'overturned_count',
  'replay_compute_ms',
  'claimed_compute_ms',
] as const;

/** The UTC period (timestamp without time zone) an int8 ms column falls in, independent of the session TimeZone; whole seconds suffice for truncation. */
function periodOf(granularity: Granularity, msColumn: string): RawBuilder<string> {
  if (!GRANULARITIES.includes(granularity)) throw new Error(`granularity must be one of ${GRANULARITIES.join(', ')}; got ${String(granularity)}`);
  return sql<string>`date_trunc(${sql.lit(granularity)}, to_timestamp(${sql.ref(msColumn)} / 1000) AT TIME ZONE 'UTC')`;
}

function ratio(numerator: bigint, denominator: bigint): number | null {
  return denominator === 0n ? null : Number(numerator) / Number(denominator);
}

function figuresOf(row: SummedRow): Figures {
  const money = (column: (typeof SUMMED)[number] | 'escrow_outstanding_msat'): bigint => BigInt(row[column]);
  const revenue = money('external_revenue_msat');
  const paid = money('rewards_paid_msat');
  const fromSubsidy = money('rewards_paid_from_subsidy_msat');
  const accepted = money('accepted_count');
  const rejected = money('rejected_count');
  const resolved = money('resolved_count');
  const replay = money('replay_compute_ms');
  const claimed = money('claimed_compute_ms');
  return {
    externalRevenueMsat: revenue,
    subsidyFundingMsat: money('subsidy_funding_msat'),
    rewardsPaidMsat: paid,
    rewardsPaidFromSubsidyMsat: fromSubsidy,
    feesMsat: money('fees_msat'),
    earningsMsat: revenue - paid,
    subsidyRatio: ratio(fromSubsidy, revenue),
    takeRate: ratio(revenue - paid, revenue),
    costPerAcceptedStepMsat: ratio(paid, accepted),
    escrowOutstandingMsat: money('escrow_outstanding_msat'),
    acceptedCount: Number(accepted),
    rejectedCount: Number(rejected),
    disputedCount: Number(money('disputed_count')),
    resolvedCount: Number(resolved),
    overturnedCount: Number(money('overturned_count')),
    acceptanceRate: ratio(accepted, accepted + rejected),
    disputeRate: ratio(money('disputed_count'), rejected),
    overturnRate: ratio(money('overturned_count'), resolved),
    medianSettlementMs: row.median_settlement_ms === null ? null : Number(row.median_settlement_ms),
    replayComputeMs: Number(replay),
    claimedComputeMs: Number(claimed),
    verificationOverhead: ratio(replay, claimed),
  };
}

/**
 * Hourly rows rolled up per period, for one run or summed over all runs. Only periods
 * with at least one hourly row appear. Escrow outstanding is cumulated over every period
 * before the window too, so a window never starts from zero.
 */
export async function metricsByPeriod(db: Kysely<any>, query: PeriodQuery): Promise<PeriodMetrics[]> {
  const { granularity, runId } = query;
  const metrics = db as Kysely<MetricsTables>;
  const rows = await metrics
    .with('periods', (qb) =>
      qb
        .selectFrom('hourly')
        .select(periodOf(granularity, 'hour_start_ms').as('period'))
        .select((eb) => SUMMED.map((c) => eb.fn.sum(c).as(c)))
        .select(sql<string>`sum(escrow_locked_msat - escrow_released_msat)`.as('escrow_net'))
        .$if(runId !== undefined, (q) => q.where('run_id', '=', runId!))
        .groupBy('period'),
    )
    .with('rolled', (qb) =>
      qb
        .selectFrom('periods')
        .selectAll()
        .select(sql<string>`sum(escrow_net) OVER (ORDER BY period)`.as('escrow_outstanding')),
    )
    .with('latency', (qb) =>
      qb
        .selectFrom('settlements')
        .select(periodOf(granularity, 'settled_at_ms').as('period'))
        .select(sql<number>`percentile_cont(0.5) WITHIN GROUP (ORDER BY settled_at_ms - assigned_at_ms)`.as('median'))
        .where('settled_at_ms', 'is not', null)
        .where('assigned_at_ms', 'is not', null)
        .$if(runId !== undefined, (q) => q.where('run_id', '=', runId!))
        .groupBy('period'),
    )
    .selectFrom('rolled')
    // A settlement pays a reward, which adds an hourly row in the same run and hour, so every latency period is in `rolled`.
    .leftJoin('latency', 'latency.period', 'rolled.period')
    .select(sql<string>`(extract(epoch FROM rolled.period) * 1000)::int8::text`.as('period_start_ms'))
    .select(SUMMED.map((c) => sql<string>`${sql.ref(`rolled.${c}`)}::text`.as(c)))
    .select([sql<string>`rolled.escrow_outstanding::text`.as('escrow_outstanding_msat'), sql<number | null>`latency.median`.as('median_settlement_ms')])
    .$if(query.toMs !== undefined, (q) => q.where(sql<boolean>`rolled.period < to_timestamp(${query.toMs! / 1000}) AT TIME ZONE 'UTC'`))
    .$if(query.fromMs !== undefined, (q) =>
      q.where(sql<boolean>`rolled.period + ${sql.lit(`1 ${granularity}`)}::interval > to_timestamp(${query.fromMs! / 1000}) AT TIME ZONE 'UTC'`),
    )
    .orderBy('rolled.period')
    .execute();
  return rows.map((row) => ({ periodStartMs: Number(row.period_start_ms), runId: runId ?? null, ...figuresOf(row as unknown as SummedRow) }));
}

/** The same figures per run over all time, ordered by run id; escrow outstanding is what is locked now. */
export async function metricsByRun(db: Kysely<any>): Promise<RunMetrics[]> {
  const metrics = db as Kysely<MetricsTables>;
  const rows = await metrics
    .with('runs', (qb) =>
      qb
        .selectFrom('hourly')
        .select('run_id')
        .select((eb) => SUMMED.map((c) => eb.fn.sum(c).as(c)))
        .select(sql<string>`sum(escrow_locked_msat - escrow_released_msat)`.as('escrow_outstanding'))
        .groupBy('run_id'),
    )
    .with('latency', (qb) =>
      qb
        .selectFrom('settlements')
        .select('run_id')
        .select(sql<number>`percentile_cont(0.5) WITHIN GROUP (ORDER BY settled_at_ms - assigned_at_ms)`.as('median'))
        .where('settled_at_ms', 'is not', null)
        .where('assigned_at_ms', 'is not', null)
        .groupBy('run_id'),
    )
    .selectFrom('runs')
    .leftJoin('latency', 'latency.run_id', 'runs.run_id')
    .select('runs.run_id')
    .select(SUMMED.map((c) => sql<string>`${sql.ref(`runs.${c}`)}::text`.as(c)))
    .select([sql<string>`runs.escrow_outstanding::text`.as('escrow_outstanding_msat'), sql<number | null>`latency.median`.as('median_settlement_ms')])
    .orderBy('runs.run_id')
    .execute();
  return rows.map((row) => ({ runId: row.run_id, ...figuresOf(row as unknown as SummedRow) }));
}
