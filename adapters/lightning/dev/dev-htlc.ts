// The simulated HTLC: moves a payment and the payee's invoice together (deliver, settle, cancel), so they never disagree.

import type { PaymentFailureCode } from '../../../domain/ports/lightning.js';
import type { CancelCause, DevInvoice, DevPayment, DevState } from './dev-state.js';

/**
 * Payment hashes whose payment or invoice changed since the network last looked: every change of
 * either goes through this file (or creates one), so this is where the network learns what to
 * announce to its subscribers, without comparing whole states.
 */
const touchedByState = new WeakMap<DevState, Set<string>>();

export function touch(state: DevState, paymentHash: string): void {
  let touched = touchedByState.get(state);
  if (touched === undefined) touchedByState.set(state, (touched = new Set()));
  touched.add(paymentHash);
}

/** The hashes touched since the last call, in the order they were first touched; forgets them. */
export function drainTouched(state: DevState): string[] {
  const touched = touchedByState.get(state);
  if (touched === undefined || touched.size === 0) return [];
  const hashes = [...touched];
  touched.clear();
  return hashes;
}

/** Money the coordinator has committed to HTLCs still out: it cannot be spent twice. */
export function pendingMsat(state: DevState): bigint {
  let total = 0n;
  for (const payment of state.payments.values()) {
    if (payment.status === 'in_flight') total += payment.amountMsat + payment.feeMsat;
  }
  return total;
}

export function invoiceOf(state: DevState, payment: DevPayment): DevInvoice | undefined {
  return payment.walletName === null ? undefined : state.wallets.get(payment.walletName)?.get(payment.paymentHash);
}

/**
 * The HTLC reaches the payee. A hold invoice accepts and holds it; a plain invoice settles at once,
 * revealing its preimage; anything else (unknown, canceled, already paid) rejects it.
 */
export function deliver(state: DevState, payment: DevPayment, htlcExpiryHeight: number): void {
  payment.delivered = true;
  touch(state, payment.paymentHash);
  const invoice = invoiceOf(state, payment);
  if (!invoice || invoice.status !== 'open' || invoice.amountMsat !== payment.amountMsat) {
    failPayment(state, payment, 'PAYEE_REJECTED');
    return;
  }
  if (invoice.kind === 'plain') {
    invoice.status = 'settled';
    succeedPayment(state, payment, invoice.preimageHex!);
    return;
  }
  invoice.status = 'accepted';
  invoice.htlcExpiryHeight = htlcExpiryHeight;
}

/** The payee settles a held HTLC with the preimage: the coordinator's payment succeeds and its balance moves. */
export function settleHeld(state: DevState, walletName: string, invoice: DevInvoice, preimageHex: string): void {
  const payment = heldPayment(state, walletName, invoice);
  if (!payment) {
    throw new Error(`dev network invariant: held invoice ${invoice.paymentHash} has no delivered in-flight payment`);
  }
  invoice.status = 'settled';
  invoice.preimageHex = preimageHex;
  touch(state, invoice.paymentHash);
  succeedPayment(state, payment, preimageHex);
}

/** Cancels an open or held invoice; a held HTLC fails back to the coordinator (payee rejected, or timed out). */
export function cancelInvoice(state: DevState, walletName: string, invoice: DevInvoice, cause: CancelCause): void {
  const payment = invoice.status === 'accepted' ? heldPayment(state, walletName, invoice) : undefined;
  invoice.status = 'canceled';
  invoice.canceledBecause = cause;
  touch(state, invoice.paymentHash);
  if (payment) {
    failPayment(state, payment, cause === 'htlc_timeout' ? 'TIMEOUT' : 'PAYEE_REJECTED');
  }
}

export function failPayment(state: DevState, payment: DevPayment, code: PaymentFailureCode): void {
  touch(state, payment.paymentHash);
  payment.status = 'failed';
  payment.failureCode = code;
}

/** The coordinator's in-flight payment whose HTLC this wallet holds for `invoice`, if any. */
function heldPayment(state: DevState, walletName: string, invoice: DevInvoice): DevPayment | undefined {
  const payment = state.payments.get(invoice.paymentHash);
  const held = payment?.status === 'in_flight' && payment.delivered && payment.walletName === walletName;
  return held ? payment : undefined;
}

function succeedPayment(state: DevState, payment: DevPayment, preimageHex: string): void {
  touch(state, payment.paymentHash);
  payment.status = 'succeeded';
  payment.preimageHex = preimageHex;
  state.balanceMsat -= payment.amountMsat + payment.feeMsat;
}

/** Stops on a state no real node could be in: spent more than it had, or a held HTLC without its payment. */
export function assertInvariants(state: DevState): void {
  if (state.balanceMsat - pendingMsat(state) < 0n) {
    throw new Error(`dev network invariant: the coordinator's balance ${state.balanceMsat} msat is below its pending HTLCs`);
  }
  for (const [walletName, invoices] of state.wallets) {
    for (const invoice of invoices.values()) {
      if (invoice.status === 'accepted' && !heldPayment(state, walletName, invoice)) {
        throw new Error(`dev network invariant: invoice ${invoice.paymentHash} is accepted without a delivered in-flight payment`);
      }
    }
  }
}
