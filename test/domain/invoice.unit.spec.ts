// Unit tests for the invoice decider: escrow hold/settle/cancel/expire, payouts sent/failed, idempotent repeats and kind checks.

import { describe, expect, it } from 'vitest';
import {
  type InvoiceCommand,
  invoiceDecider,
  type InvoiceEvent,
  type InvoiceState,
  type InvoiceStatus,
  streamId,
} from '../../domain/invoice/index.js';
import {
  ASSIGNMENT_ID,
  command,
  CONTRIBUTOR_ID,
  ESCROW_HASH,
  ESCROW_PREIMAGE,
  expectCode,
  expectInvariant,
  given,
  hex64,
  INVOICE_EXPIRES_AT_MS,
  openInvoiceData,
  paymentHashOf,
  RUN_ID,
  T0,
} from './fixtures.js';

const PAYOUT_PREIMAGE = hex64('payout-preimage');
const PAYOUT_HASH = paymentHashOf(PAYOUT_PREIMAGE);

const openEscrow = (overrides = {}, nowMs = T0): InvoiceCommand => command('OpenInvoice', openInvoiceData(overrides), nowMs);
const openPayout = (kind: 'bonus' | 'compensation' = 'compensation', overrides = {}): InvoiceCommand =>
  command('OpenInvoice', openInvoiceData({ paymentHash: PAYOUT_HASH, kind, amountMsat: 250_000n, cltvExpiryHeight: null, ...overrides }));
const hold = (paymentHash = ESCROW_HASH): InvoiceCommand => command('MarkInvoiceHeld', { paymentHash }, T0 + 10);
const settle = (paymentHash = ESCROW_HASH, preimageHex = ESCROW_PREIMAGE): InvoiceCommand => command('SettleInvoice', { paymentHash, preimageHex }, T0 + 20);
const cancel = (paymentHash = ESCROW_HASH): InvoiceCommand => command('CancelInvoice', { paymentHash, reason: 'submission rejected' }, T0 + 20);
const expire = (nowMs = INVOICE_EXPIRES_AT_MS, paymentHash = ESCROW_HASH): InvoiceCommand => command('ExpireInvoice', { paymentHash }, nowMs);
const sent = (paymentHash = PAYOUT_HASH, preimageHex = PAYOUT_PREIMAGE): InvoiceCommand => command('RecordPaymentSent', { paymentHash, feeMsat: 12n, preimageHex }, T0 + 30);
const failed = (paymentHash = PAYOUT_HASH): InvoiceCommand => command('RecordPaymentFailed', { paymentHash, failureCode: 'NO_ROUTE' }, T0 + 30);

const release = (preimageHex = ESCROW_PREIMAGE): InvoiceCommand => command('RequestEscrowRelease', { paymentHash: ESCROW_HASH, preimageHex }, T0 + 15);
const requestCancel = (): InvoiceCommand => command('RequestEscrowCancel', { paymentHash: ESCROW_HASH, reason: 'submission rejected' }, T0 + 15);

const ESCROW_PATHS: Partial<Record<InvoiceStatus, InvoiceCommand[]>> = {
  none: [],
  open: [openEscrow()],
  held: [openEscrow(), hold()],
  releasing: [openEscrow(), hold(), release()],
  canceling: [openEscrow(), hold(), requestCancel()],
  settled: [openEscrow(), hold(), settle()],
  canceled: [openEscrow(), cancel()],
  expired: [openEscrow(), hold(), expire()],
};
const PAYOUT_PATHS: Partial<Record<InvoiceStatus, InvoiceCommand[]>> = {
  open: [openPayout()],
  failed: [openPayout(), failed()],
  sent: [openPayout(), sent()],
};

const escrowAt = (status: InvoiceStatus): InvoiceState => given(invoiceDecider, ESCROW_PATHS[status] ?? []).state;
const payoutAt = (status: InvoiceStatus): InvoiceState => given(invoiceDecider, PAYOUT_PATHS[status] ?? []).state;
const ref = (overrides = {}) => ({ paymentHash: ESCROW_HASH, kind: 'escrow', assignmentId: ASSIGNMENT_ID, runId: RUN_ID, contributorId: CONTRIBUTOR_ID, amountMsat: 1_000_000n, ...overrides });

describe('invoice: OpenInvoice', () => {
  it('opens an escrow hold invoice with its CLTV expiry', () => {
    expect(invoiceDecider.decide(openEscrow(), escrowAt('none'))).toEqual([{ type: 'InvoiceOpened', data: { ...openInvoiceData(), atMs: T0 } }]);
    expect(escrowAt('open')).toMatchObject({ status: 'open', openedAtMs: T0 });
  });

  it('opens a payout without a CLTV expiry (null or omitted)', () => {
    const [event] = invoiceDecider.decide(openPayout('bonus'), invoiceDecider.initialState());
    expect(event?.data).toMatchObject({ kind: 'bonus', cltvExpiryHeight: null, amountMsat: 250_000n });
    const { cltvExpiryHeight: _omitted, ...withoutCltv } = openInvoiceData({ paymentHash: PAYOUT_HASH, kind: 'compensation' });
    expect(invoiceDecider.decide(command('OpenInvoice', withoutCltv), invoiceDecider.initialState())[0]?.data).toMatchObject({ cltvExpiryHeight: null });
  });

  it('treats an identical repeat as a no-op and refuses a reused payment hash', () => {
    expect(invoiceDecider.decide(openEscrow({}, T0 + 99), escrowAt('settled'))).toEqual([]);
    expectCode(() => invoiceDecider.decide(openEscrow({ amountMsat: 2n }), escrowAt('open')), 'PAYMENT_HASH_REUSED');
    expectCode(() => invoiceDecider.decide(openEscrow({ assignmentId: 'asg-2' }), escrowAt('canceled')), 'PAYMENT_HASH_REUSED');
  });

  it('validates hash, kind, amount, bolt11, expiry and CLTV', () => {
    const none = invoiceDecider.initialState();
    expectCode(() => invoiceDecider.decide(openEscrow({ paymentHash: 'ab' }), none), 'INVALID_PAYMENT_HASH');
    expectCode(() => invoiceDecider.decide(openEscrow({ kind: 'tip' }), none), 'INVALID_OPTION');
    expectCode(() => invoiceDecider.decide(openEscrow({ amountMsat: 0n }), none), 'INVALID_AMOUNT');
    expectCode(() => invoiceDecider.decide(openEscrow({ bolt11: 'bc1qxyz' }), none), 'INVALID_BOLT11');
    expectCode(() => invoiceDecider.decide(openEscrow({ bolt11: `ln${'a'.repeat(2047)}` }), none), 'INVALID_BOLT11');
    expectCode(() => invoiceDecider.decide(openEscrow({ bolt11: 'lnBCrt1' }), none), 'INVALID_BOLT11');
    expect(invoiceDecider.decide(openEscrow({ bolt11: 'LNBCRT10U1PJ' }), none)).toHaveLength(1);
    expectCode(() => invoiceDecider.decide(openEscrow({ expiresAtMs: T0 }), none), 'INVALID_EXPIRY');
    expectCode(() => invoiceDecider.decide(openEscrow({ expiresAtMs: T0 + 31 * 86_400_000 }), none), 'INVALID_EXPIRY');
    expectCode(() => invoiceDecider.decide(openEscrow({ cltvExpiryHeight: null }), none), 'INVALID_CLTV');
    expectCode(() => invoiceDecider.decide(openEscrow({ cltvExpiryHeight: 0 }), none), 'INVALID_CLTV');
    expectCode(() => invoiceDecider.decide(openPayout('bonus', { cltvExpiryHeight: 800_000 }), none), 'INVALID_CLTV');
  });
});

describe('invoice: outbox intents', () => {
  it('logs a release intent for a held escrow, then its settlement; repeats are no-ops', () => {
    expect(invoiceDecider.decide(release(), escrowAt('held'))).toEqual([{ type: 'EscrowReleaseRequested', data: { ...ref(), atMs: T0 + 15, preimageHex: ESCROW_PREIMAGE } }]);
    expect(escrowAt('releasing')).toMatchObject({ status: 'releasing', preimageHex: ESCROW_PREIMAGE });
    expect(invoiceDecider.decide(release(), escrowAt('releasing'))).toEqual([]);
    expectCode(() => invoiceDecider.decide(release(hex64('other')), escrowAt('releasing')), 'PREIMAGE_MISMATCH');
    expect(invoiceDecider.decide(settle(), escrowAt('releasing'))[0]?.type).toBe('InvoiceSettled');
    expect(invoiceDecider.decide(release(), escrowAt('settled'))).toEqual([]);
  });

  it('refuses to release what was never held or is already void, and to cancel what is being released', () => {
    expectCode(() => invoiceDecider.decide(release(), escrowAt('open')), 'ESCROW_NOT_HELD');
    expectCode(() => invoiceDecider.decide(release(), escrowAt('canceled')), 'ESCROW_ALREADY_CANCELED');
    expectCode(() => invoiceDecider.decide(requestCancel(), escrowAt('releasing')), 'ESCROW_RELEASE_REQUESTED');
    expectCode(() => invoiceDecider.decide(requestCancel(), escrowAt('settled')), 'ESCROW_ALREADY_SETTLED');
    const canceledUnheld = given(invoiceDecider, [openEscrow(), requestCancel()]).state;
    expectCode(() => invoiceDecider.decide(release(), canceledUnheld), 'ESCROW_NOT_HELD');
  });

  it('logs a cancel intent, then the cancellation with the HTLC it had; a held one can still be released', () => {
    expect(invoiceDecider.decide(requestCancel(), escrowAt('held'))).toEqual([{ type: 'EscrowCancelRequested', data: { ...ref(), atMs: T0 + 15, reason: 'submission rejected' } }]);
    expect(invoiceDecider.decide(requestCancel(), escrowAt('canceling'))).toEqual([]);
    expect(invoiceDecider.decide(cancel(), escrowAt('canceling'))[0]).toMatchObject({ type: 'InvoiceCanceled', data: { wasHeld: true } });
    expect(invoiceDecider.decide(release(), escrowAt('canceling'))[0]?.type).toBe('EscrowReleaseRequested');
    expectCode(() => invoiceDecider.decide(settle(), escrowAt('canceling')), 'ESCROW_CANCEL_REQUESTED');
    expect(invoiceDecider.decide(hold(), given(invoiceDecider, [openEscrow(), requestCancel()]).state)).toEqual([]);
    expect(invoiceDecider.decide(expire(), escrowAt('releasing'))[0]).toMatchObject({ type: 'InvoiceExpired', data: { wasHeld: true } });
  });
});

describe('invoice: escrow flow', () => {
  it('marks an open escrow held; a repeat is a no-op', () => {
    expect(invoiceDecider.decide(hold(), escrowAt('open'))).toEqual([{ type: 'InvoiceHeld', data: { ...ref(), atMs: T0 + 10 } }]);
    expect(invoiceDecider.decide(hold(), escrowAt('held'))).toEqual([]);
    expectCode(() => invoiceDecider.decide(hold(), escrowAt('settled')), 'ESCROW_ALREADY_SETTLED');
    expectCode(() => invoiceDecider.decide(hold(), escrowAt('canceled')), 'ESCROW_ALREADY_CANCELED');
  });

  it('settles a held escrow with the preimage; settling again is a no-op', () => {
    expect(invoiceDecider.decide(settle(), escrowAt('held'))).toEqual([{ type: 'InvoiceSettled', data: { ...ref(), atMs: T0 + 20, preimageHex: ESCROW_PREIMAGE, feeMsat: 0n } }]);
    expect(escrowAt('settled')).toMatchObject({ status: 'settled', preimageHex: ESCROW_PREIMAGE, finishedAtMs: T0 + 20 });
    expect(invoiceDecider.decide(settle(), escrowAt('settled'))).toEqual([]);
    expectCode(() => invoiceDecider.decide(settle(ESCROW_HASH, hex64('other')), escrowAt('settled')), 'PREIMAGE_MISMATCH');
  });

  it('refuses to settle an escrow that is not held, canceled or expired, or with a malformed preimage', () => {
    expectCode(() => invoiceDecider.decide(settle(), escrowAt('open')), 'ESCROW_NOT_HELD');
    expectCode(() => invoiceDecider.decide(settle(), escrowAt('canceled')), 'ESCROW_ALREADY_CANCELED');
    expectCode(() => invoiceDecider.decide(settle(), escrowAt('expired')), 'ESCROW_ALREADY_CANCELED');
    expectCode(() => invoiceDecider.decide(settle(), escrowAt('none')), 'INVOICE_NOT_FOUND');
    expectCode(() => invoiceDecider.decide(settle(ESCROW_HASH, 'zz'), escrowAt('held')), 'INVALID_PREIMAGE');
  });

  it('cancels an open or held escrow, recording whether the HTLC was held', () => {
    expect(invoiceDecider.decide(cancel(), escrowAt('open'))).toEqual([{ type: 'InvoiceCanceled', data: { ...ref(), atMs: T0 + 20, reason: 'submission rejected', wasHeld: false } }]);
    expect(invoiceDecider.decide(cancel(), escrowAt('held'))[0]?.data).toMatchObject({ wasHeld: true });
    expect(invoiceDecider.decide(cancel(), escrowAt('canceled'))).toEqual([]);
    expect(invoiceDecider.decide(cancel(), escrowAt('expired'))).toEqual([]);
    expectCode(() => invoiceDecider.decide(cancel(), escrowAt('settled')), 'ESCROW_ALREADY_SETTLED');
  });

  it('expires an open or held escrow at or after its expiry, never before', () => {
    expect(invoiceDecider.decide(expire(), escrowAt('open'))).toEqual([
      { type: 'InvoiceExpired', data: { ...ref(), atMs: INVOICE_EXPIRES_AT_MS, expiresAtMs: INVOICE_EXPIRES_AT_MS, wasHeld: false } },
    ]);
    expect(invoiceDecider.decide(expire(), escrowAt('held'))[0]?.data).toMatchObject({ wasHeld: true });
    expectCode(() => invoiceDecider.decide(expire(INVOICE_EXPIRES_AT_MS - 1), escrowAt('held')), 'NOT_YET_EXPIRED');
    expect(invoiceDecider.decide(expire(), escrowAt('canceled'))).toEqual([]);
    expect(invoiceDecider.decide(expire(), escrowAt('expired'))).toEqual([]);
    expectCode(() => invoiceDecider.decide(expire(), escrowAt('settled')), 'ESCROW_ALREADY_SETTLED');
  });
});

describe('invoice: payout flow', () => {
  const payoutRef = ref({ paymentHash: PAYOUT_HASH, kind: 'compensation', amountMsat: 250_000n });

  it('records a sent payout with fee and preimage; a repeat is a no-op', () => {
    expect(invoiceDecider.decide(sent(), payoutAt('open'))).toEqual([{ type: 'PaymentSent', data: { ...payoutRef, atMs: T0 + 30, feeMsat: 12n, preimageHex: PAYOUT_PREIMAGE } }]);
    expect(invoiceDecider.decide(sent(), payoutAt('failed'))).toHaveLength(1);
    expect(invoiceDecider.decide(sent(), payoutAt('sent'))).toEqual([]);
    expectCode(() => invoiceDecider.decide(sent(PAYOUT_HASH, hex64('x')), payoutAt('sent')), 'PREIMAGE_MISMATCH');
    const negativeFee = command<InvoiceCommand>('RecordPaymentSent', { paymentHash: PAYOUT_HASH, feeMsat: -1n, preimageHex: PAYOUT_PREIMAGE });
    expectCode(() => invoiceDecider.decide(negativeFee, payoutAt('open')), 'INVALID_AMOUNT');
  });

  it('records every failed attempt (they bound retries); a failure after success is refused', () => {
    expect(invoiceDecider.decide(failed(), payoutAt('open'))).toEqual([{ type: 'PaymentFailed', data: { ...payoutRef, atMs: T0 + 30, failureCode: 'NO_ROUTE' } }]);
    expect(payoutAt('failed')).toMatchObject({ status: 'failed', lastFailureCode: 'NO_ROUTE' });
    expect(invoiceDecider.decide(failed(), payoutAt('failed'))).toEqual([{ type: 'PaymentFailed', data: { ...payoutRef, atMs: T0 + 30, failureCode: 'NO_ROUTE' } }]);
    expectCode(() => invoiceDecider.decide(failed(), payoutAt('sent')), 'PAYMENT_ALREADY_SENT');
    const badCode = command<InvoiceCommand>('RecordPaymentFailed', { paymentHash: PAYOUT_HASH, failureCode: 'no route' });
    expectCode(() => invoiceDecider.decide(badCode, payoutAt('open')), 'INVALID_CODE');
  });
});

describe('invoice: kinds do not mix', () => {
  it.each([hold(PAYOUT_HASH), settle(PAYOUT_HASH), cancel(PAYOUT_HASH), expire(INVOICE_EXPIRES_AT_MS, PAYOUT_HASH)])('refuses escrow command $type on a payout', (cmd) => {
    expectCode(() => invoiceDecider.decide(cmd, payoutAt('open')), 'WRONG_INVOICE_KIND');
  });
  it.each([sent(ESCROW_HASH), failed(ESCROW_HASH)])('refuses payout command $type on an escrow', (cmd) => {
    expectCode(() => invoiceDecider.decide(cmd, escrowAt('held')), 'WRONG_INVOICE_KIND');
  });
  it('refuses commands on an unknown invoice', () => {
    expectCode(() => invoiceDecider.decide(sent(), invoiceDecider.initialState()), 'INVOICE_NOT_FOUND');
  });
});

describe('invoice: evolve refuses events that cannot follow', () => {
  const at = { atMs: T0 + 50 };
  it('refuses transitions out of terminal states and across kinds', () => {
    const settled: InvoiceEvent = { type: 'InvoiceSettled', data: { ...ref(), ...at, preimageHex: ESCROW_PREIMAGE, feeMsat: 0n } } as InvoiceEvent;
    expectInvariant(() => invoiceDecider.evolve(escrowAt('open'), settled));
    expectInvariant(() => invoiceDecider.evolve(escrowAt('canceled'), settled));
    expectInvariant(() => invoiceDecider.evolve(escrowAt('none'), settled));
    const paid = { type: 'PaymentSent', data: { ...ref(), ...at, feeMsat: 0n, preimageHex: ESCROW_PREIMAGE } } as InvoiceEvent;
    expectInvariant(() => invoiceDecider.evolve(escrowAt('open'), paid));
    expectInvariant(() => invoiceDecider.evolve(escrowAt('open'), { type: 'InvoiceOpened', data: { ...openInvoiceData(), ...at } } as InvoiceEvent));
  });

  it('refuses events with other terms, early expiry, wrong wasHeld and unknown types', () => {
    const held = { type: 'InvoiceHeld', data: { ...ref({ amountMsat: 1n }), ...at } } as InvoiceEvent;
    expectInvariant(() => invoiceDecider.evolve(escrowAt('open'), held));
    const early = { type: 'InvoiceExpired', data: { ...ref(), ...at, expiresAtMs: INVOICE_EXPIRES_AT_MS, wasHeld: false } } as InvoiceEvent;
    expectInvariant(() => invoiceDecider.evolve(escrowAt('open'), early));
    const lying = { type: 'InvoiceCanceled', data: { ...ref(), ...at, reason: 'x', wasHeld: true } } as InvoiceEvent;
    expectInvariant(() => invoiceDecider.evolve(escrowAt('open'), lying));
    const payoutWithCltv = { type: 'InvoiceOpened', data: { ...openInvoiceData({ kind: 'bonus' }), ...at } } as InvoiceEvent;
    expectInvariant(() => invoiceDecider.evolve(invoiceDecider.initialState(), payoutWithCltv));
    expectInvariant(() => invoiceDecider.evolve(escrowAt('open'), { type: 'constructor', data: {} } as unknown as InvoiceEvent));
  });
});

describe('invoice: streamId', () => {
  it('names the stream invoice-<paymentHash>', () => {
    expect(streamId(ESCROW_HASH)).toBe(`invoice-${ESCROW_HASH}`);
    expectCode(() => streamId('abc'), 'INVALID_PAYMENT_HASH');
  });
});
