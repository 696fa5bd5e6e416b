// Mapping ln-service results to the port's types: getPayment -> PaymentState, getInvoice -> HoldInvoiceState, decode -> DecodedInvoice.

import type { DecodePaymentRequestResult, GetInvoiceResult, GetPaymentResult } from 'ln-service';
import { describe, expect, it } from 'vitest';
import { channelFundsMsat } from '../../adapters/lightning/lnd/lnd-balance.js';
import { decodedInvoiceFrom, networkOfBolt11 } from '../../adapters/lightning/lnd/lnd-decode.js';
import { holdInvoiceStateFrom } from '../../adapters/lightning/lnd/lnd-invoice-state.js';
import { failureCodeFromLnd, paymentStateFromGetPayment } from '../../adapters/lightning/lnd/lnd-payment-state.js';
import { expectLightningError } from '../contract/lightning.contract.js';

const HASH = '7f'.repeat(32);
const PREIMAGE = 'A1'.repeat(32);
const PAYEE = `02${'c4'.repeat(32)}`;
const HEIGHT = 600;

type PaymentPath = NonNullable<GetPaymentResult['payment']>['paths'][number];

/** One direct path as ln-service builds it from LND's route: mtokens include the fee. */
function path(amountMsat: bigint, feeMsat: bigint, timeout: number): PaymentPath {
  const mtokens = (amountMsat + feeMsat).toString();
  const hop = { channel: '600x1x0', fee: Number(feeMsat / 1000n), fee_mtokens: feeMsat.toString(), forward: Number(amountMsat / 1000n), forward_mtokens: amountMsat.toString(), public_key: PAYEE, timeout };
  return { fee: Number(feeMsat / 1000n), fee_mtokens: feeMsat.toString(), hops: [hop], mtokens, payment: 'ee'.repeat(32), timeout, tokens: Number((amountMsat + feeMsat) / 1000n), total_mtokens: amountMsat.toString() };
}

function pendingResult(paths: PaymentPath[], timeout?: number): GetPaymentResult {
  const mtokens = paths.reduce((sum, p) => sum + BigInt(p.mtokens), 0n).toString();
  return {
    is_confirmed: false,
    is_failed: false,
    is_pending: true,
    pending: { created_at: '2026-01-01T00:00:00.000Z', destination: PAYEE, id: HASH, mtokens, paths, safe_tokens: Number(BigInt(mtokens) / 1000n), secret: '', tokens: Number(BigInt(mtokens) / 1000n), ...(timeout === undefined ? {} : { timeout }) },
  };
}

function confirmedResult(amountMsat: bigint, feeMsat: bigint): GetPaymentResult {
  const p = path(amountMsat, feeMsat, HEIGHT + 83);
  return {
    is_confirmed: true,
    is_failed: false,
    is_pending: false,
    payment: { confirmed_at: '2026-01-01T00:00:05.000Z', created_at: '2026-01-01T00:00:00.000Z', destination: PAYEE, fee: Number(feeMsat / 1000n), fee_mtokens: feeMsat.toString(), hops: p.hops, id: HASH, mtokens: p.mtokens, paths: [p], safe_fee: Number(feeMsat / 1000n), safe_tokens: p.tokens, secret: PREIMAGE, timeout: p.timeout, tokens: p.tokens },
  };
}

function failedResult(flags: Partial<NonNullable<GetPaymentResult['failed']>> & { is_canceled?: boolean }): GetPaymentResult {
  const failed = { is_insufficient_balance: false, is_invalid_payment: false, is_pathfinding_timeout: false, is_route_not_found: false, ...flags };
  return { failed, is_confirmed: false, is_failed: true, is_pending: false };
}

describe('getPayment -> PaymentState', () => {
  it('succeeded: the amount is what the payee got (mtokens less fee_mtokens), the preimage is `secret` in lowercase', () => {
    expect(paymentStateFromGetPayment(confirmedResult(50_000_000n, 1_234n))).toEqual({ status: 'succeeded', amountMsat: 50_000_000n, feeMsat: 1_234n, preimageHex: PREIMAGE.toLowerCase() });
  });

  it('in flight: the amount excludes the pending fees and the timeout is the latest HTLC height', () => {
    expect(paymentStateFromGetPayment(pendingResult([path(30_000_000n, 300n, HEIGHT + 83), path(20_000_000n, 200n, HEIGHT + 90)], HEIGHT + 90))).toEqual({
      status: 'in_flight',
      amountMsat: 50_000_000n,
      timeoutHeight: HEIGHT + 90,
    });
  });

  it("in flight without a top-level timeout (ln-service's Math.max of nothing is -Infinity) falls back to the paths", () => {
    expect(paymentStateFromGetPayment(pendingResult([path(1_000n, 0n, HEIGHT + 83)], -Infinity))).toMatchObject({ timeoutHeight: HEIGHT + 83 });
  });

  it('in flight with no height anywhere is an unexpected answer, not a zero', async () => {
    const noHeights = pendingResult([{ ...path(1_000n, 0n, 0), timeout: 0 }]);
    await expectLightningError(Promise.resolve().then(() => paymentStateFromGetPayment(noHeights)), 'LND_UNEXPECTED_RESPONSE');
  });

  it('failed: each LND failure reason has its PaymentFailureCode', () => {
    const codeOf = (flags: Parameters<typeof failedResult>[0]) => paymentStateFromGetPayment(failedResult(flags));
    expect(codeOf({ is_route_not_found: true })).toEqual({ status: 'failed', failureCode: 'NO_ROUTE' });
    expect(codeOf({ is_insufficient_balance: true })).toEqual({ status: 'failed', failureCode: 'INSUFFICIENT_BALANCE' });
    expect(codeOf({ is_invalid_payment: true })).toEqual({ status: 'failed', failureCode: 'PAYEE_REJECTED' });
    expect(codeOf({ is_pathfinding_timeout: true })).toEqual({ status: 'failed', failureCode: 'TIMEOUT' });
    expect(codeOf({ is_canceled: true })).toEqual({ status: 'failed', failureCode: 'TIMEOUT' });
    // FAILURE_REASON_ERROR sets no flag.
    expect(codeOf({})).toEqual({ status: 'failed', failureCode: 'NO_ROUTE' });
  });

  it('the cltv-limit failure ln-service synthesises carries only is_route_not_found', () => {
    expect(failureCodeFromLnd({ is_route_not_found: true })).toBe('NO_ROUTE');
  });
});

type InvoicePayment = GetInvoiceResult['payments'][number];

function htlc(overrides: Partial<InvoicePayment>): InvoicePayment {
  return { created_at: '2026-01-01T00:00:01.000Z', created_height: HEIGHT, in_channel: '600x1x0', is_canceled: false, is_confirmed: false, is_held: false, messages: [], mtokens: '0', timeout: HEIGHT + 83, tokens: 0, ...overrides };
}

function invoice(overrides: Partial<GetInvoiceResult>): GetInvoiceResult {
  return {
    cltv_delta: 80, created_at: '2026-01-01T00:00:00.000Z', description: 'escrow', expires_at: '2026-01-01T01:00:00.000Z', features: [], id: HASH,
    is_confirmed: false, is_private: false, payments: [], received: 0, received_mtokens: '0', request: 'lnbcrt500u1...', secret: '00'.repeat(32), tokens: 50_000, ...overrides,
  };
}

describe('getInvoice -> HoldInvoiceState', () => {
  it('open, settled (secret as preimage) and canceled', () => {
    expect(holdInvoiceStateFrom(invoice({}))).toEqual({ status: 'open' });
    expect(holdInvoiceStateFrom(invoice({ is_confirmed: true, secret: PREIMAGE }))).toEqual({ status: 'settled', preimageHex: PREIMAGE.toLowerCase() });
    expect(holdInvoiceStateFrom(invoice({ is_canceled: true }))).toEqual({ status: 'canceled' });
  });

  it('accepted: the held HTLCs amount, and the earliest of their timeouts; canceled HTLCs do not count', () => {
    const payments = [
      htlc({ is_canceled: true, mtokens: '50000000', timeout: HEIGHT + 40 }),
      htlc({ is_held: true, mtokens: '30000000', timeout: HEIGHT + 95 }),
      htlc({ is_held: true, mtokens: '20000000', timeout: HEIGHT + 83 }),
    ];
    expect(holdInvoiceStateFrom(invoice({ is_held: true, payments }))).toEqual({ status: 'accepted', amountMsat: 50_000_000n, htlcExpiryHeight: HEIGHT + 83 });
  });

  it('held with no held HTLC listed is an unexpected answer', async () => {
    await expectLightningError(Promise.resolve().then(() => holdInvoiceStateFrom(invoice({ is_held: true }))), 'LND_UNEXPECTED_RESPONSE');
  });
});

describe('decodePaymentRequest -> DecodedInvoice', () => {
  const decoded: DecodePaymentRequestResult & { created_at: string } = {
    chain_address: '', cltv_delta: 80, created_at: '2026-01-01T00:00:00.000Z', description: 'escrow asg-1', description_hash: '', destination: PAYEE.toUpperCase(),
    expires_at: '2026-01-01T01:00:00.000Z', features: [], id: HASH.toUpperCase(), mtokens: '50000000', routes: [], safe_tokens: 50_000, tokens: 50_000,
  };

  it('maps every field, msat as bigint, hex in lowercase', () => {
    expect(decodedInvoiceFrom('lnbcrt500u1pxyz', decoded)).toEqual({
      bolt11: 'lnbcrt500u1pxyz', paymentHash: HASH, amountMsat: 50_000_000n, destination: PAYEE, createdAtMs: Date.UTC(2026, 0, 1),
      expiresAtMs: Date.UTC(2026, 0, 1, 1), cltvDelta: 80, network: 'regtest', description: 'escrow asg-1',
    });
  });

  it('an amountless request (LND says 0 msat) has amountMsat null; a missing cltv is BOLT 11 default 18', () => {
    const { cltv_delta: _omitted, ...noCltv } = decoded;
    expect(decodedInvoiceFrom('lnbcrt1pxyz', { ...noCltv, mtokens: '0', tokens: 0 })).toMatchObject({ amountMsat: null, cltvDelta: 18 });
  });

  it('names the network from the prefix, with or without an amount', () => {
    expect(networkOfBolt11('lnbc1pxyz')).toBe('bitcoin');
    expect(networkOfBolt11('lnbc2500u1pxyz')).toBe('bitcoin');
    expect(networkOfBolt11('LNTB10N1PXYZ')).toBe('testnet');
    expect(networkOfBolt11('lntbs1m1pxyz')).toBe('signet');
    expect(networkOfBolt11('lnbcrt1pxyz')).toBe('regtest');
    expect(networkOfBolt11('lnbcrt500u1pxyz')).toBe('regtest');
    expect(networkOfBolt11('lnsb1pxyz')).toBe('simnet');
  });

  it('refuses a prefix that names no network', async () => {
    await expectLightningError(Promise.resolve().then(() => networkOfBolt11('lnxx1pxyz')), 'INVOICE_INVALID');
  });
});

describe('channel funds', () => {
  const CAPACITY = 1_000_000;
  const opened = (local: number, remote: number, feeAndAnchors: number, htlcs: number[]) => {
    expect(local + remote + feeAndAnchors + htlcs.reduce((a, b) => a + b, 0)).toBe(CAPACITY);
    return { capacity: CAPACITY, local_balance: local, remote_balance: remote, is_partner_initiated: false, pending_payments: htlcs.map((tokens) => ({ tokens })) };
  };
  const theirs = { capacity: 500_000, local_balance: 10_000, remote_balance: 487_000, is_partner_initiated: true, pending_payments: [] };

  it("moves by exactly what is sent while the opener's commitment fee and anchors change under it", () => {
    const before = channelFundsMsat([opened(997_000, 0, 3_000, []), theirs]);
    // A 50,000 sat HTLC adds an output: the fee grows by 700 sat and the peer's anchor (330 sat) appears, all from our side.
    const held = channelFundsMsat([opened(997_000 - 50_000 - 1_030, 0, 4_030, [50_000]), theirs]);
    // Settled: the HTLC is the peer's now, and the fee and anchor fall back.
    const settled = channelFundsMsat([opened(947_000, 50_000, 3_000, []), theirs]);
    expect(before).toBe(1_010_000_000n);
    expect(before - held).toBe(50_000_000n);
    expect(before - settled).toBe(50_000_000n);
  });
});
