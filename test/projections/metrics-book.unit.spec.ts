// MetricsBook's rules in isolation: UTC hour buckets, the floor-rounded subsidy attribution, and first-settlement-wins.

import { describe, expect, it } from 'vitest';
import type { DomainEvent } from '../../domain/index.js';
import { hourStartMs, MetricsBook, subsidyShareMsat } from '../../projections/metrics/metrics-book.js';

const HOUR = 3_600_000;

describe('MetricsBook', () => {
  it('floors event times to the UTC hour', () => {
    expect(hourStartMs(5 * HOUR)).toBe(5 * HOUR);
    expect(hourStartMs(5 * HOUR + HOUR - 1)).toBe(5 * HOUR);
  });

  it('attributes payments pro rata to the funding mix so far, rounding down, and 0 with no funding', () => {
    expect(subsidyShareMsat(10n, { runId: 'r', customerMsat: 2n, subsidyMsat: 1n })).toBe(3n);
    expect(subsidyShareMsat(10n, { runId: 'r', customerMsat: 0n, subsidyMsat: 7n })).toBe(10n);
    expect(subsidyShareMsat(10n, { runId: 'r', customerMsat: 0n, subsidyMsat: 0n })).toBe(0n);
  });

  it('uses the mix at the moment of payment, not the final one', () => {
    const book = new MetricsBook(new Map());
    const ref = { paymentHash: 'h'.repeat(64), kind: 'bonus' as const, assignmentId: 'a', runId: 'r', contributorId: 'c', amountMsat: 100n };
    const events: DomainEvent[] = [
      { type: 'RunFunded', data: { runId: 'r', fundingId: 'f1', source: 'customer', amountMsat: 300n, atMs: 10 } },
      { type: 'RunFunded', data: { runId: 'r', fundingId: 'f2', source: 'subsidy', amountMsat: 100n, atMs: 20 } },
      { type: 'PaymentSent', data: { ...ref, feeMsat: 2n, preimageHex: '1'.repeat(64), atMs: 30 } },
      { type: 'RunFunded', data: { runId: 'r', fundingId: 'f3', source: 'subsidy', amountMsat: 600n, atMs: 40 } },
    ];
    for (const event of events) book.apply(event);
    const facts = book.hourly.get(`r\u00000`)!.facts;
    expect(facts).toMatchObject({ rewardsPaidMsat: 100n, rewardsPaidFromSubsidyMsat: 25n, feesMsat: 2n, externalRevenueMsat: 300n, subsidyFundingMsat: 700n });
  });

  it('keeps the first settlement of an assignment', () => {
    const book = new MetricsBook(new Map());
    const ref = { assignmentId: 'a', runId: 'r', contributorId: 'c' };
    const escrow = { ...ref, paymentHash: 'e'.repeat(64), kind: 'escrow' as const, amountMsat: 5n };
    const compensation = { ...ref, paymentHash: 'f'.repeat(64), kind: 'compensation' as const, amountMsat: 5n };
    book.apply({ type: 'InvoiceSettled', data: { ...escrow, preimageHex: '1'.repeat(64), feeMsat: 0n, atMs: 50 } });
    book.apply({ type: 'PaymentSent', data: { ...compensation, feeMsat: 0n, preimageHex: '2'.repeat(64), atMs: 70 } });
    expect(book.settlements.get('a')).toEqual({ assignmentId: 'a', runId: 'r', assignedAtMs: null, settledAtMs: 50 });
  });
});
