// The Lightning dispatcher's limits, named once with their units.

import { DEFAULT_MAX_FEE_BASE_MSAT, DEFAULT_MAX_FEE_PPM, routingFeeLimitMsat } from '../../domain/money.js';

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
  maxFeeBaseMsat: DEFAULT_MAX_FEE_BASE_MSAT,
  maxFeePpm: DEFAULT_MAX_FEE_PPM,
  maxTimeoutBlocks: 2_016,
  maxPayoutAttempts: 5,
  batchSize: 200,
});

export function maxFeeMsat(limits: DispatcherLimits, amountMsat: bigint): bigint {
  return routingFeeLimitMsat(amountMsat, limits.maxFeeBaseMsat, limits.maxFeePpm);
}
