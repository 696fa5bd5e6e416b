// The Lightning dispatcher's limits, named once with their units.

export type DispatcherLimits = Readonly<{
  /** Routing-fee ceiling per payment: a base plus parts per million of the amount. */
  maxFeeBaseMsat: bigint;
  maxFeePpm: bigint;
  /** No HTLC of ours may time out more than this many blocks ahead: how long funds can stay locked. */
  maxTimeoutBlocks: number;
  /** Payout attempts before a payout is left failed for an operator. */
  maxPayoutAttempts: number;
  /** Unfinished intents handled per pass. */
  batchSize: number;
}>;

export const DEFAULT_DISPATCHER_LIMITS: DispatcherLimits = Object.freeze({
  maxFeeBaseMsat: 5_000n,
  maxFeePpm: 5_000n,
  maxTimeoutBlocks: 2_016,
  maxPayoutAttempts: 5,
  batchSize: 200,
});

export function maxFeeMsat(limits: DispatcherLimits, amountMsat: bigint): bigint {
  return limits.maxFeeBaseMsat + (amountMsat * limits.maxFeePpm) / 1_000_000n;
}
