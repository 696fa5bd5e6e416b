// LND error mapping over the shapes ln-service really rejects with: [status, name, { err }] arrays wrapping grpc-js ServiceErrors.

import { cancelHodlInvoice, decodePaymentRequest, getInvoice, getPayment, getWalletInfo, settleHodlInvoice, type AuthenticatedLnd } from 'ln-service';
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { LightningError } from '../../domain/ports/lightning.js';
import {
  GRPC_STATUS,
  grpcStatusOf,
  isAlreadyPaying,
  isNotFound,
  paymentFailureFromError,
  toLightningError,
} from '../../adapters/lightning/lnd/lnd-errors.js';

const HASH = 'ab'.repeat(32);

/** A grpc-js ServiceError as LND's answers arrive: message "<code> <NAME>: <details>", plus code and details. */
function serviceError(code: number, details: string): Error & { code: number; details: string } {
  return Object.assign(new Error(`${code} ${details}`), { code, details, metadata: {} });
}

/** The one gRPC method ln-service calls, answering with `error`: a stand-in for LND, which cannot run here. */
function fakeLndAnswering(type: string, method: string, error: Error): AuthenticatedLnd {
  const unary = (_request: unknown, callback: (error: Error) => void) => callback(error);
  const stream = () => {
    const emitter = Object.assign(new EventEmitter(), { cancel: () => undefined });
    setImmediate(() => emitter.emit('error', error));
    return emitter;
  };
  const call = method === 'trackPaymentV2' ? stream : unary;
  return { [type]: { [method]: call } } as unknown as AuthenticatedLnd;
}

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

describe('the shapes ln-service rejects with (captured from its own code)', () => {
  it('getWalletInfo on a dead socket: [503, FailedToConnectToDaemon] -> NODE_UNAVAILABLE, retryable', async () => {
    const error = await rejectionOf(getWalletInfo({ lnd: fakeLndAnswering('default', 'getInfo', serviceError(GRPC_STATUS.UNAVAILABLE, 'No connection established')) }));
    expect(error).toEqual([503, 'FailedToConnectToDaemon']);
    expect(toLightningError(error, 'read the node info')).toMatchObject({ code: 'NODE_UNAVAILABLE', retryable: true });
  });

  it('decodePaymentRequest of garbage: [503, UnexpectedDecodePaymentRequestError, {err}] -> INVOICE_INVALID, not retryable', async () => {
    const lnd = fakeLndAnswering('default', 'decodePayReq', serviceError(GRPC_STATUS.UNKNOWN, 'checksum failed. Expected 40jxz5, got c3de33.'));
    const error = await rejectionOf(decodePaymentRequest({ lnd, request: 'lnbcrt1garbage' }));
    expect(error).toMatchObject([503, 'UnexpectedDecodePaymentRequestError', { err: { code: 2 } }]);
    const mapped = toLightningError(error, 'decode the payment request');
    expect(mapped).toMatchObject({ code: 'INVOICE_INVALID', retryable: false });
    expect(mapped.message).toContain('checksum failed');
  });

  it('decodePaymentRequest while the node is down stays NODE_UNAVAILABLE, not INVOICE_INVALID', async () => {
    const lnd = fakeLndAnswering('default', 'decodePayReq', serviceError(GRPC_STATUS.UNAVAILABLE, 'failed to connect to all addresses'));
    const error = await rejectionOf(decodePaymentRequest({ lnd, request: 'lnbcrt1x' }));
    expect(toLightningError(error, 'decode')).toMatchObject({ code: 'NODE_UNAVAILABLE', retryable: true });
  });

  it('a refused macaroon is NODE_UNAUTHORIZED and not retryable', async () => {
    const lnd = fakeLndAnswering('default', 'decodePayReq', serviceError(GRPC_STATUS.UNKNOWN, 'verification failed: signature mismatch after caveat verification'));
    const error = await rejectionOf(decodePaymentRequest({ lnd, request: 'lnbcrt1x' }));
    expect(toLightningError(error, 'decode')).toMatchObject({ code: 'NODE_UNAUTHORIZED', retryable: false });
  });

  it("getPayment of a hash never sent: [404, SentPaymentNotFound] -> not found, PAYMENT_NOT_FOUND", async () => {
    const lnd = fakeLndAnswering('router', 'trackPaymentV2', serviceError(GRPC_STATUS.NOT_FOUND, "payment isn't initiated"));
    const error = await rejectionOf(getPayment({ lnd, id: HASH }));
    expect(error).toEqual([404, 'SentPaymentNotFound']);
    expect(isNotFound(error)).toBe(true);
    expect(toLightningError(error, 'read the payment')).toMatchObject({ code: 'PAYMENT_NOT_FOUND', retryable: false });
  });

  it('getInvoice of an unknown hash: [503, UnexpectedLookupInvoiceErr, {err NOT_FOUND}] -> INVOICE_NOT_FOUND', async () => {
    for (const details of ['unable to locate invoice', 'there are no existing invoices']) {
      const error = await rejectionOf(getInvoice({ lnd: fakeLndAnswering('default', 'lookupInvoice', serviceError(GRPC_STATUS.NOT_FOUND, details)), id: HASH }));
      expect(error).toMatchObject([503, 'UnexpectedLookupInvoiceErr', { err: { details } }]);
      expect(isNotFound(error)).toBe(true);
      expect(toLightningError(error, 'look up the invoice')).toMatchObject({ code: 'INVOICE_NOT_FOUND', retryable: false });
    }
  });

  it('settleHodlInvoice: before the HTLC arrives, with an unknown preimage, and on a canceled invoice', async () => {
    const settle = (details: string) => rejectionOf(settleHodlInvoice({ lnd: fakeLndAnswering('invoices', 'settleInvoice', serviceError(GRPC_STATUS.UNKNOWN, details)), secret: HASH }));
    const early = await settle('invoice still open');
    expect(early).toEqual([402, 'CannotSettleHtlcBeforeHtlcReceived']);
    expect(toLightningError(early, 'settle')).toMatchObject({ code: 'HTLC_NOT_HELD', retryable: true });
    const unknown = await settle('unable to locate invoice');
    expect(unknown).toEqual([404, 'SecretDoesNotMatchAnyExistingHodlInvoice']);
    expect(toLightningError(unknown, 'settle')).toMatchObject({ code: 'INVOICE_NOT_FOUND', retryable: false });
    const canceled = await settle('invoice already canceled');
    expect(canceled).toMatchObject([503, 'UnexpectedErrorWhenSettlingHodlInvoice', { err: { details: 'invoice already canceled' } }]);
    expect(toLightningError(canceled, 'settle')).toMatchObject({ code: 'INVOICE_CANCELED', retryable: false });
  });

  it('cancelHodlInvoice on a settled invoice -> INVOICE_SETTLED', async () => {
    const lnd = fakeLndAnswering('invoices', 'cancelInvoice', serviceError(GRPC_STATUS.UNKNOWN, 'invoice already settled'));
    const error = await rejectionOf(cancelHodlInvoice({ lnd, id: HASH }));
    expect(error).toMatchObject([503, 'UnexpectedErrorCancelingHodlInvoice', {}]);
    expect(toLightningError(error, 'cancel')).toMatchObject({ code: 'INVOICE_SETTLED', retryable: false });
  });
});

describe('error arrays as ln-service documents them', () => {
  const cases: ReadonlyArray<[string, unknown, string, boolean]> = [
    ['locked wallet', [503, 'LndLocked'], 'NODE_UNAVAILABLE', true],
    ['no connection', [503, 'FailedToConnectToDaemon'], 'NODE_UNAVAILABLE', true],
    ['deadline', [503, 'UnexpectedLookupInvoiceErr', { err: serviceError(GRPC_STATUS.DEADLINE_EXCEEDED, 'Deadline exceeded') }], 'TIMEOUT', true],
    ['starting up', [503, 'UnexpectedLookupInvoiceErr', { err: serviceError(GRPC_STATUS.UNKNOWN, 'the RPC server is in the process of starting up, but not yet ready to accept calls') }], 'NODE_UNAVAILABLE', true],
    ['empty request', [400, 'ExpectedPaymentRequest'], 'INVOICE_INVALID', false],
    ['unsupported feature', [501, 'UnsupportedPaymentFeatureInPayRequest', { bit: 30 }], 'INVOICE_INVALID', false],
    ['hash reused (createInvoice)', [409, 'InvoiceWithGivenHashAlreadyExists'], 'PAYMENT_HASH_REUSED', false],
    ['hash reused (createHodlInvoice)', [503, 'UnexpectedAddHodlInvoiceError', { err: serviceError(GRPC_STATUS.ALREADY_EXISTS, 'invoice with payment hash already exists') }], 'PAYMENT_HASH_REUSED', false],
    ['status stream ended', [503, 'UnknownStatusOfPayment'], 'PAYMENT_STATUS_UNKNOWN', true],
    ['unknown server error', [503, 'UnexpectedPaymentError', { err: serviceError(GRPC_STATUS.UNKNOWN, 'something new') }], 'LND_ERROR', true],
    ['unknown request error', [400, 'ExpectedSomethingElse'], 'LND_REQUEST_REJECTED', false],
    ['synchronous throw of a bad request', new Error('ExpectedValidPaymentRequestToMakePayment'), 'INVOICE_INVALID', false],
  ];
  for (const [label, error, code, retryable] of cases) {
    it(`${label} -> ${code}`, () => {
      const mapped = toLightningError(error, 'do it');
      expect(mapped).toBeInstanceOf(LightningError);
      expect(mapped).toMatchObject({ code, retryable });
      expect(mapped.message).toMatch(/^LND could not do it: /);
    });
  }

  it('passes a LightningError through unchanged', () => {
    const original = new LightningError('INVOICE_MISMATCH', 'no', false);
    expect(toLightningError(original, 'pay')).toBe(original);
  });

  it('reads the gRPC status from the wrapped or the bare ServiceError, and nothing from other values', () => {
    expect(grpcStatusOf([503, 'X', { err: serviceError(14, 'down') }])).toEqual({ code: 14, details: 'down' });
    expect(grpcStatusOf(serviceError(5, 'gone'))).toEqual({ code: 5, details: 'gone' });
    expect(grpcStatusOf([503, 'X'])).toEqual({ code: null, details: '' });
    expect(grpcStatusOf('text')).toEqual({ code: null, details: '' });
  });
});

describe('payment errors that are outcomes, not call failures', () => {
  it('recognises a second payment for a hash LND already has', () => {
    expect(isAlreadyPaying([503, 'UnexpectedPaymentError', { err: serviceError(GRPC_STATUS.ALREADY_EXISTS, 'invoice is already paid') }])).toBe(true);
    expect(isAlreadyPaying([503, 'UnexpectedPaymentError', { err: serviceError(GRPC_STATUS.ALREADY_EXISTS, 'payment is in transition') }])).toBe(true);
    expect(isAlreadyPaying([503, 'UnexpectedPaymentError', { err: serviceError(GRPC_STATUS.UNKNOWN, 'other') }])).toBe(false);
  });

  it('maps an expired request, an impossible CLTV limit and a lack of balance to failure codes', () => {
    const expired = [503, 'UnexpectedPaymentError', { err: serviceError(GRPC_STATUS.UNKNOWN, 'invoice expired. Valid until 2026-01-01 00:00:00 +0000 UTC') }];
    expect(paymentFailureFromError(expired)).toBe('INVOICE_EXPIRED');
    expect(paymentFailureFromError([400, 'MaxTimeoutTooNearCurrentHeightToMakePayment', { last_cltv: 80, max_delta: 79 }])).toBe('NO_ROUTE');
    expect(paymentFailureFromError([503, 'UnexpectedPaymentError', { err: serviceError(GRPC_STATUS.UNKNOWN, 'cltv limit 40 should be greater than 83') }])).toBe('NO_ROUTE');
    expect(paymentFailureFromError([503, 'FailedToConnectToDaemon'])).toBeNull();
  });
});
