// Maps what ln-service rejects with ([status, name, {err}] arrays, or plain Errors) to LightningError with stable codes.

import { LightningError, type PaymentFailureCode } from '../../../domain/ports/lightning.js';

/** ln-service's error shape: an HTTP-like status, a PascalCase name, and often `{ err }`, the raw grpc-js ServiceError. */
export type LnServiceError = readonly [status: number, name: string, details?: unknown];

/** The gRPC status codes LND answers with that change what we do. */
export const GRPC_STATUS = Object.freeze({
  CANCELLED: 1,
  UNKNOWN: 2,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
});

/** The `details` text of LND errors we branch on (lnd's channeldb, invoices and routerrpc packages). */
export const LND_DETAILS = Object.freeze({
  alreadyPaid: 'invoice is already paid',
  paymentInFlight: 'payment is in transition',
  paymentNotInitiated: "payment isn't initiated",
  invoiceNotFound: 'unable to locate invoice',
  noInvoices: 'there are no existing invoices',
  invoiceExists: 'invoice with payment hash already exists',
  invoiceAlreadyCanceled: 'invoice already canceled',
  invoiceAlreadySettled: 'invoice already settled',
  invoiceExpired: 'invoice expired',
});

export function isLnServiceError(value: unknown): value is LnServiceError {
  return Array.isArray(value) && typeof value[0] === 'number' && typeof value[1] === 'string';
}

export type GrpcStatus = Readonly<{ code: number | null; details: string }>;

/** The gRPC status under an ln-service error: `{ err }` in the third slot, or a bare ServiceError. */
export function grpcStatusOf(error: unknown): GrpcStatus {
  const inner = isLnServiceError(error) ? (error[2] as { err?: unknown } | undefined)?.err : error;
  if (typeof inner !== 'object' || inner === null) return { code: null, details: '' };
  const { code, details, message } = inner as { code?: unknown; details?: unknown; message?: unknown };
  return {
    code: typeof code === 'number' ? code : null,
    details: typeof details === 'string' ? details : typeof message === 'string' ? message : '',
  };
}

/** The ln-service name of an error: the array's name, or the message of the plain Errors it throws synchronously. */
export function lnServiceName(error: unknown): string {
  if (isLnServiceError(error)) return error[1];
  return error instanceof Error ? error.message : '';
}

/** Whether LND says it has no record of this payment hash (sent payments or invoices). */
export function isNotFound(error: unknown): boolean {
  const name = lnServiceName(error);
  if (name === 'SentPaymentNotFound' || name === 'SecretDoesNotMatchAnyExistingHodlInvoice') return true;
  const { code, details } = grpcStatusOf(error);
  if (code === GRPC_STATUS.NOT_FOUND) return true;
  return [LND_DETAILS.paymentNotInitiated, LND_DETAILS.invoiceNotFound, LND_DETAILS.noInvoices].some((text) => details.includes(text));
}

/** Whether sendPaymentV2 refused because LND already has a payment for this hash, in flight or succeeded. */
export function isAlreadyPaying(error: unknown): boolean {
  const { details } = grpcStatusOf(error);
  return details.includes(LND_DETAILS.alreadyPaid) || details.includes(LND_DETAILS.paymentInFlight);
}

/**
 * Errors that mean "this payment failed" rather than "the call failed": the caller records a failed
 * PaymentState instead of throwing. null for anything else.
 */
export function paymentFailureFromError(error: unknown): PaymentFailureCode | null {
  const name = lnServiceName(error);
  const { details } = grpcStatusOf(error);
  if (details.includes(LND_DETAILS.invoiceExpired)) return 'INVOICE_EXPIRED';
  // max_timeout_height leaves no room for the payee's final CLTV: no route can ever satisfy it.
  if (name === 'MaxTimeoutTooNearCurrentHeightToMakePayment') return 'NO_ROUTE';
  if (/cltv limit \d+ should be greater than \d+/.test(details)) return 'NO_ROUTE';
  if (details.includes('insufficient local balance')) return 'INSUFFICIENT_BALANCE';
  return null;
}

const UNAVAILABLE_NAMES = new Set(['FailedToConnectToDaemon', 'FailedToConnectToDaemonToGetWalletStatus', 'LndLocked']);
const INVOICE_INVALID_NAMES = new Set([
  'UnexpectedDecodePaymentRequestError',
  'ExpectedPaymentRequest',
  'ExpectedPaymentRequestToDecode',
  'ExpectedPaymentRequestToPayWhenSubscribingToPayment',
  'ExpectedValidPaymentRequestToMakePayment',
  'UnsupportedPaymentFeatureInPayRequest',
]);

/**
 * `action` finishes the sentence "LND could not ..." so the message says what was being done.
 * A LightningError passes through unchanged.
 */
export function toLightningError(error: unknown, action: string): LightningError {
  if (error instanceof LightningError) return error;
  const name = lnServiceName(error);
  const status = isLnServiceError(error) ? error[0] : 400;
  const { details } = grpcStatusOf(error);
  const what = `LND could not ${action}: ${[name, details].filter(Boolean).join(': ') || String(error)}`;
  return transportError(error, what) ?? requestError(name, details, isNotFound(error), what) ?? new LightningError(status >= 500 ? 'LND_ERROR' : 'LND_REQUEST_REJECTED', what, status >= 500);
}

/** Connection, authentication and deadline failures: the same for every call. */
function transportError(error: unknown, what: string): LightningError | null {
  const name = lnServiceName(error);
  const { code, details } = grpcStatusOf(error);
  const unavailable =
    UNAVAILABLE_NAMES.has(name) ||
    code === GRPC_STATUS.UNAVAILABLE ||
    code === GRPC_STATUS.CANCELLED ||
    /no connection established|connect failed|failed to connect|ECONNREFUSED|wallet locked|in the process of starting|not yet ready/i.test(details);
  if (unavailable) return new LightningError('NODE_UNAVAILABLE', `${what}; check that lnd is running, unlocked and reachable at the configured socket, then retry`, true);
  if (code === GRPC_STATUS.DEADLINE_EXCEEDED) return new LightningError('TIMEOUT', `${what}; the call ran past its deadline, retry`, true);
  const unauthorized = code === GRPC_STATUS.UNAUTHENTICATED || code === GRPC_STATUS.PERMISSION_DENIED || /verification failed|permission denied|macaroon/i.test(details);
  if (unauthorized) return new LightningError('NODE_UNAUTHORIZED', `${what}; the macaroon was refused: check LND_MACAROON (it needs invoice and offchain permissions, admin.macaroon has them)`, false);
  return null;
}

/** Failures that belong to what was asked for: a bad invoice, a reused hash, a settle that cannot happen. */
function requestError(name: string, details: string, notFound: boolean, what: string): LightningError | null {
  if (INVOICE_INVALID_NAMES.has(name)) return new LightningError('INVOICE_INVALID', `${what}; ask the payee for a valid BOLT11 payment request for this node's network`, false);
  if (name === 'InvoiceWithGivenHashAlreadyExists' || details.includes(LND_DETAILS.invoiceExists)) {
    return new LightningError('PAYMENT_HASH_REUSED', `${what}; a payment hash is used once, derive a new one`, false);
  }
  if (notFound) {
    // The same NOT_FOUND answers both lookups; ln-service's name says which one was asked.
    return /Payment/.test(name)
      ? new LightningError('PAYMENT_NOT_FOUND', `${what}; this node never sent a payment with that hash`, false)
      : new LightningError('INVOICE_NOT_FOUND', `${what}; no invoice on this node has that payment hash`, false);
  }
  if (name === 'CannotSettleHtlcBeforeHtlcReceived') return new LightningError('HTLC_NOT_HELD', `${what}; the payer's HTLC has not arrived yet, retry once the invoice is accepted`, true);
  if (details.includes(LND_DETAILS.invoiceAlreadyCanceled)) return new LightningError('INVOICE_CANCELED', `${what}; the invoice was canceled and can no longer be settled`, false);
  if (details.includes(LND_DETAILS.invoiceAlreadySettled)) return new LightningError('INVOICE_SETTLED', `${what}; the invoice is already settled and can no longer be canceled`, false);
  if (details.includes(LND_DETAILS.alreadyPaid)) return new LightningError('ALREADY_PAID', `${what}; read the payment's state instead of paying again`, false);
  if (details.includes(LND_DETAILS.paymentInFlight)) return new LightningError('PAYMENT_IN_FLIGHT', `${what}; read the payment's state instead of paying again`, false);
  if (name === 'UnknownStatusOfPayment') return new LightningError('PAYMENT_STATUS_UNKNOWN', `${what}; LND ended the status stream without a status, retry`, true);
  return null;
}
