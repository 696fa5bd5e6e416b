// Maps ln-service's view of an outgoing payment (getPayment, subscribeToPay events) to the PaymentState union.

import type { GetPaymentResult, SubscribeToPayViaRequestConfirmedEvent, SubscribeToPayViaRequestFailedEvent, SubscribeToPayViaRequestPayingEvent } from 'ln-service';
import { LightningError, type PaymentFailureCode, type PaymentState } from '../../../domain/ports/lightning.js';

/** The failure flags ln-service derives from LND's failure_reason; getPayment's typings omit is_canceled, its code sets it. */
export type LndPaymentFailure = Partial<Pick<SubscribeToPayViaRequestFailedEvent, 'is_canceled' | 'is_insufficient_balance' | 'is_invalid_payment' | 'is_pathfinding_timeout' | 'is_route_not_found'>>;

type PendingPayment = Pick<NonNullable<GetPaymentResult['pending']>, 'mtokens' | 'timeout'> & {
  paths: ReadonlyArray<Pick<NonNullable<GetPaymentResult['pending']>['paths'][number], 'fee_mtokens' | 'timeout'>>;
};

type ConfirmedPayment = Pick<NonNullable<GetPaymentResult['payment']>, 'mtokens' | 'fee_mtokens' | 'secret'>;

export function paymentStateFromGetPayment(result: GetPaymentResult): PaymentState {
  if (result.is_confirmed && result.payment) return succeeded(result.payment);
  if (result.is_failed) return failed(result.failed ?? {});
  if (result.is_pending && result.pending) return inFlight(result.pending);
  throw new LightningError('LND_UNEXPECTED_RESPONSE', `LND's payment status has none of confirmed, failed or pending with details: ${JSON.stringify(Object.keys(result))}`, true);
}

export function paymentStateFromPaying(event: SubscribeToPayViaRequestPayingEvent): PaymentState {
  return inFlight(event);
}

export function paymentStateFromConfirmed(event: SubscribeToPayViaRequestConfirmedEvent): PaymentState {
  return succeeded(event);
}

export function paymentStateFromFailed(event: LndPaymentFailure): PaymentState {
  return failed(event);
}

/**
 * LND reports a failed payment by one reason. A route that only fails the fee limit is reported as
 * FAILURE_REASON_NO_ROUTE, so NO_ROUTE covers "no route within max_fee_mtokens" too.
 */
export function failureCodeFromLnd(failure: LndPaymentFailure): PaymentFailureCode {
  if (failure.is_insufficient_balance) return 'INSUFFICIENT_BALANCE';
  // Incorrect payment details: the payee does not know the hash, rejects the amount, or canceled the invoice.
  if (failure.is_invalid_payment) return 'PAYEE_REJECTED';
  if (failure.is_pathfinding_timeout) return 'TIMEOUT';
  // FAILURE_REASON_CANCELED: LND stopped trying because the payment's context ended before an HTLC was out.
  if (failure.is_canceled) return 'TIMEOUT';
  // is_route_not_found, and FAILURE_REASON_ERROR (every flag false): nothing reached the payee.
  return 'NO_ROUTE';
}

function failed(failure: LndPaymentFailure): PaymentState {
  return { status: 'failed', failureCode: failureCodeFromLnd(failure) };
}

/** ln-service's `mtokens` counts routing fees too; the port's amount is what the payee receives. */
function succeeded(payment: ConfirmedPayment): PaymentState {
  const feeMsat = BigInt(payment.fee_mtokens);
  return { status: 'succeeded', amountMsat: BigInt(payment.mtokens) - feeMsat, feeMsat, preimageHex: payment.secret.toLowerCase() };
}

/**
 * In flight: the amount is what the pending HTLCs deliver (their total less their fees), and the timeout is the
 * latest height any of them can lock the coordinator's funds until.
 */
function inFlight(pending: PendingPayment): PaymentState {
  const feesMsat = pending.paths.reduce((sum, path) => sum + BigInt(path.fee_mtokens), 0n);
  // ln-service computes `timeout` as Math.max over the paths, which is -Infinity when none carries one.
  const heights = [pending.timeout, ...pending.paths.map((path) => path.timeout)].filter(isHeight);
  const timeoutHeight = heights.length > 0 ? Math.max(...heights) : null;
  if (timeoutHeight === null) {
    throw new LightningError('LND_UNEXPECTED_RESPONSE', 'LND reported a pending payment without any HTLC timeout height', true);
  }
  return { status: 'in_flight', amountMsat: BigInt(pending.mtokens) - feesMsat, timeoutHeight };
}

function isHeight(height: number | undefined): height is number {
  return Number.isInteger(height) && (height as number) > 0;
}
