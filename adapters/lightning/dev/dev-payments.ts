// The coordinator's side of a simulated payment: request checks, the fee and timeout rules, idempotent sends.

import { LightningError, type DecodedInvoice, type PayRequest, type PaymentFailureCode, type PaymentState } from '../../../domain/ports/lightning.js';
import type { DevFaults, UnresolvedOutcome } from './dev-faults.js';
import { deliver, failPayment, pendingMsat, touch } from './dev-htlc.js';
import type { DevPayment, DevState } from './dev-state.js';

/**
 * The one simulated route to every wallet, as if through a single forwarding hop: it charges
 * base + amount × ppm / 10^6 (rounded down, as BOLT07 fees are) and adds its CLTV delta on top of
 * the payee's. Exported so tests and docs quote the rule rather than repeat the numbers.
 */
export const DEV_ROUTE = Object.freeze({ baseFeeMsat: 1_000n, feeRatePpm: 1n, cltvDeltaBlocks: 40 });

export function routingFeeMsat(amountMsat: bigint): bigint {
  return DEV_ROUTE.baseFeeMsat + (amountMsat * DEV_ROUTE.feeRatePpm) / 1_000_000n;
}

/** The first hop's HTLC expiry: current height + the payee's min_final_cltv_expiry + the route's delta. */
export function paymentTimeoutHeight(heightBlocks: number, cltvDelta: number): number {
  return heightBlocks + cltvDelta + DEV_ROUTE.cltvDeltaBlocks;
}

export type PayContext = Readonly<{
  state: DevState;
  faults: DevFaults;
  nowMs: number;
  /** The dev wallet holding this node key, or null when no wallet in this network does (no route). */
  walletNameOf: (publicKeyHex: string) => string | null;
}>;

const HASH_PATTERN = /^[0-9a-f]{64}$/;

/** Refuses malformed requests before anything else: these are caller bugs, so not retryable. */
export function validatePayRequest(request: PayRequest): void {
  const problems: string[] = [];
  if (typeof request.paymentHash !== 'string' || !HASH_PATTERN.test(request.paymentHash)) problems.push('paymentHash must be 64 lowercase hex');
  if (typeof request.amountMsat !== 'bigint' || request.amountMsat <= 0n) problems.push('amountMsat must be a positive bigint');
  if (typeof request.maxFeeMsat !== 'bigint' || request.maxFeeMsat < 0n) problems.push('maxFeeMsat must be a bigint >= 0');
  if (!Number.isSafeInteger(request.maxTimeoutHeight) || request.maxTimeoutHeight < 0) problems.push('maxTimeoutHeight must be a whole block height');
  if (problems.length > 0) throw new LightningError('INVALID_REQUEST', `pay() was called with a malformed request: ${problems.join('; ')}`, false);
}

/** The node pays only what the caller meant: the request's own hash and amount must be the ones asked for. */
export function assertMatches(request: PayRequest, decoded: DecodedInvoice): void {
  if (decoded.paymentHash !== request.paymentHash) {
    throw new LightningError('INVOICE_MISMATCH', `the payment request is for hash ${decoded.paymentHash}, not ${request.paymentHash}; nothing was sent`, false);
  }
  if (decoded.amountMsat !== request.amountMsat) {
    const asked = decoded.amountMsat === null ? 'no amount' : `${decoded.amountMsat} msat`;
    throw new LightningError('INVOICE_MISMATCH', `the payment request asks for ${asked}, not ${request.amountMsat} msat; nothing was sent`, false);
  }
}

/**
 * Sends once per hash: a payment in flight or succeeded is returned as it is; a failed one may be
 * tried again as a new attempt. Local refusals are recorded as failed payments, nothing sent.
 */
export function startPayment(context: PayContext, request: PayRequest, decoded: DecodedInvoice): PaymentState {
  const { state, faults } = context;
  const existing = state.payments.get(request.paymentHash);
  if (existing && existing.status !== 'failed') return paymentView(existing);
  const payment: DevPayment = {
    paymentHash: request.paymentHash,
    bolt11: decoded.bolt11,
    walletName: context.walletNameOf(decoded.destination),
    amountMsat: request.amountMsat,
    feeMsat: routingFeeMsat(request.amountMsat),
    timeoutHeight: paymentTimeoutHeight(state.heightBlocks, decoded.cltvDelta),
    attempt: (existing?.attempt ?? 0) + 1,
    status: 'in_flight',
    delivered: false,
    failureCode: null,
    preimageHex: null,
  };
  const refusal = localRefusal(context, request, decoded, payment) ?? faults.takeFailure();
  state.payments.set(payment.paymentHash, payment);
  touch(state, payment.paymentHash);
  if (refusal !== null) {
    failPayment(state, payment, refusal);
  } else if (!faults.takeUnresolved()) {
    deliver(state, payment, payment.timeoutHeight - DEV_ROUTE.cltvDeltaBlocks);
  }
  return paymentView(payment);
}

/** What the node refuses before any HTLC leaves it, in the order a real node finds out. */
function localRefusal(context: PayContext, request: PayRequest, decoded: DecodedInvoice, payment: DevPayment): PaymentFailureCode | null {
  if (context.nowMs >= decoded.expiresAtMs) return 'INVOICE_EXPIRED';
  // As LND: a CLTV limit that every route exceeds leaves no route.
  if (payment.walletName === null || payment.timeoutHeight > request.maxTimeoutHeight) return 'NO_ROUTE';
  if (payment.feeMsat > request.maxFeeMsat) return 'FEE_LIMIT_EXCEEDED';
  const spendableMsat = context.state.balanceMsat - pendingMsat(context.state);
  if (payment.amountMsat + payment.feeMsat > spendableMsat) return 'INSUFFICIENT_BALANCE';
  return null;
}

export function paymentView(payment: DevPayment | undefined): PaymentState {
  if (!payment) return { status: 'unknown' };
  switch (payment.status) {
    case 'in_flight':
      return { status: 'in_flight', amountMsat: payment.amountMsat, timeoutHeight: payment.timeoutHeight };
    case 'succeeded':
      return { status: 'succeeded', amountMsat: payment.amountMsat, feeMsat: payment.feeMsat, preimageHex: payment.preimageHex! };
    case 'failed':
      return { status: 'failed', failureCode: payment.failureCode! };
    default: {
      const unreachable: never = payment.status;
      throw new Error(`unknown dev payment status ${String(unreachable)}`);
    }
  }
}

/** Ends payments a fault kept from the payee: delivered late (the payee's HTLC expiry fixed when sent) or failed. */
export function releaseUnresolved(state: DevState, outcome: UnresolvedOutcome): number {
  let released = 0;
  for (const payment of state.payments.values()) {
    if (payment.status !== 'in_flight' || payment.delivered) continue;
    if (outcome === 'deliver') deliver(state, payment, payment.timeoutHeight - DEV_ROUTE.cltvDeltaBlocks);
    else failPayment(state, payment, 'TIMEOUT');
    released += 1;
  }
  return released;
}
