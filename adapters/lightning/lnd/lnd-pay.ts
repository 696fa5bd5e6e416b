// Starts one payment with subscribeToPayViaRequest and waits for its first decisive event: in flight, succeeded or failed.

import type { EventEmitter } from 'node:events';
import { subscribeToPayViaRequest, type AuthenticatedLnd, type SubscribeToPayViaRequestConfirmedEvent, type SubscribeToPayViaRequestPayingEvent } from 'ln-service';
import type { PaymentState } from '../../../domain/ports/lightning.js';
import { isAlreadyPaying, paymentFailureFromError, toLightningError } from './lnd-errors.js';
import { paymentStateFromConfirmed, paymentStateFromFailed, paymentStateFromPaying, type LndPaymentFailure } from './lnd-payment-state.js';

export type StartPayment = Readonly<{
  bolt11: string;
  maxFeeMsat: bigint;
  maxTimeoutHeight: number;
  /** How long LND keeps trying new routes (it never cancels HTLCs already out). */
  pathfindingTimeoutMs: number;
  /** How long to wait here for the first decisive event before asking LND for the payment's state instead. */
  waitMs: number;
}>;

/**
 * `state`: what the payment became. `already_paying`: LND refused a second payment for the hash (in flight or
 * succeeded), so the caller reads that payment's state. `no_answer`: nothing decisive within waitMs.
 */
export type PaymentStart = Readonly<{ kind: 'state'; state: PaymentState }> | Readonly<{ kind: 'already_paying' }> | Readonly<{ kind: 'no_answer' }>;

/**
 * Resolves on the first of: 'paying' (HTLCs out, which for a hold invoice is where it stays until released),
 * 'confirmed', 'failed', an error, or waitMs. Then it stops listening; LND keeps the payment going regardless.
 */
export function startPayment(lnd: AuthenticatedLnd, request: StartPayment): Promise<PaymentStart> {
  return new Promise<PaymentStart>((resolve, reject) => {
    let subscription: EventEmitter;
    try {
      subscription = subscribeToPayViaRequest({
        lnd,
        request: request.bolt11,
        // Both bounds go to LND on every payment: fees and how long an HTLC may lock the coordinator's funds.
        max_fee_mtokens: request.maxFeeMsat.toString(),
        max_timeout_height: request.maxTimeoutHeight,
        pathfinding_timeout: request.pathfindingTimeoutMs,
      });
    } catch (error) {
      reject(toLightningError(error, 'start the payment'));
      return;
    }
    let settled = false;
    const timer = setTimeout(() => settle(() => resolve({ kind: 'no_answer' })), request.waitMs);
    function settle(finish: () => void): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      subscription.removeAllListeners();
      finish();
    }
    const resolveWith = (toState: () => PaymentState) => settle(() => {
      try {
        resolve({ kind: 'state', state: toState() });
      } catch (error) {
        reject(toLightningError(error, 'read the payment'));
      }
    });
    subscription.on('paying', (event: SubscribeToPayViaRequestPayingEvent) => resolveWith(() => paymentStateFromPaying(event)));
    subscription.on('confirmed', (event: SubscribeToPayViaRequestConfirmedEvent) => resolveWith(() => paymentStateFromConfirmed(event)));
    subscription.on('failed', (event: LndPaymentFailure) => resolveWith(() => paymentStateFromFailed(event)));
    subscription.on('error', (error: unknown) => settle(() => onError(error, resolve, reject)));
  });
}

function onError(error: unknown, resolve: (start: PaymentStart) => void, reject: (error: unknown) => void): void {
  if (isAlreadyPaying(error)) return resolve({ kind: 'already_paying' });
  const failureCode = paymentFailureFromError(error);
  if (failureCode !== null) return resolve({ kind: 'state', state: { status: 'failed', failureCode } });
  reject(toLightningError(error, 'pay the invoice'));
}
