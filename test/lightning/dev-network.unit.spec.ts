// DevLightningNetwork: escrow timing (auto-cancel, expiry, mined blocks), fee and timeout rules, balance, idempotency.

import { describe, expect, it } from 'vitest';
import { DEV_ROUTE, routingFeeMsat } from '../../adapters/lightning/dev/index.js';
import { expectLightningError } from '../contract/lightning.contract.js';
import { AMOUNT_MSAT, CLTV_DELTA, ManualClock, holdInvoice, openDev, payRequest, secret } from './dev-fixtures.js';

describe('DevLightningNetwork: chain and expiry', () => {
  it('cancels a held HTLC once the chain reaches htlcExpiryHeight - safetyMarginBlocks, failing the payment with TIMEOUT', async () => {
    const network = await openDev(new ManualClock());
    const wallet = network.wallet('alice');
    const coordinator = network.coordinator();
    const invoice = await holdInvoice(wallet, 'auto-cancel');
    const startHeight = await network.blockHeight();
    await coordinator.pay(payRequest(invoice.bolt11, invoice.paymentHash));
    expect(await wallet.holdInvoiceState(invoice.paymentHash)).toEqual({ status: 'accepted', amountMsat: AMOUNT_MSAT, htlcExpiryHeight: startHeight + CLTV_DELTA });

    await network.advanceBlocks(CLTV_DELTA - 10 - 1);
    expect(await wallet.holdInvoiceState(invoice.paymentHash)).toMatchObject({ status: 'accepted' });
    expect((await network.coordinatorFunds()).pendingMsat).toBe(AMOUNT_MSAT + routingFeeMsat(AMOUNT_MSAT));

    expect(await network.advanceBlocks(1)).toBe(startHeight + CLTV_DELTA - 10);
    expect(await wallet.holdInvoiceState(invoice.paymentHash)).toEqual({ status: 'canceled' });
    expect(await coordinator.paymentState(invoice.paymentHash)).toEqual({ status: 'failed', failureCode: 'TIMEOUT' });
    expect((await network.coordinatorFunds()).pendingMsat).toBe(0n);
    await expectLightningError(wallet.settleHoldInvoice(invoice.preimageHex), 'INVOICE_CANCELED');
  });

  it('honours a configured safety margin', async () => {
    const network = await openDev(new ManualClock(), { safetyMarginBlocks: 3 });
    const wallet = network.wallet('alice');
    const invoice = await holdInvoice(wallet, 'margin-3');
    await network.coordinator().pay(payRequest(invoice.bolt11, invoice.paymentHash));
    await network.advanceBlocks(CLTV_DELTA - 4);
    expect(await wallet.holdInvoiceState(invoice.paymentHash)).toMatchObject({ status: 'accepted' });
    await network.advanceBlocks(1);
    expect(await wallet.holdInvoiceState(invoice.paymentHash)).toEqual({ status: 'canceled' });
  });

  it('cancels an open invoice at its expiry time, and a payment of an expired request fails INVOICE_EXPIRED without sending', async () => {
    const clock = new ManualClock();
    const network = await openDev(clock);
    const wallet = network.wallet('alice');
    const invoice = await holdInvoice(wallet, 'expiring', { expirySec: 600 });
    clock.advance(600_000 - 1);
    expect(await wallet.holdInvoiceState(invoice.paymentHash)).toEqual({ status: 'open' });
    clock.advance(1);
    expect(await wallet.holdInvoiceState(invoice.paymentHash)).toEqual({ status: 'canceled' });
    const paid = await network.coordinator().pay(payRequest(invoice.bolt11, invoice.paymentHash));
    expect(paid).toEqual({ status: 'failed', failureCode: 'INVOICE_EXPIRED' });
    expect((await network.coordinatorFunds()).spendableMsat).toBe((await network.coordinatorFunds()).balanceMsat);
  });

  it('mines one block per blockIntervalMs of the injected clock, and expires HTLCs as it goes', async () => {
    const clock = new ManualClock();
    const network = await openDev(clock, { blockIntervalMs: 600_000 });
    const start = await network.blockHeight();
    clock.advance(3 * 600_000 + 599_999);
    expect(await network.blockHeight()).toBe(start + 3);
    clock.advance(1);
    expect(await network.blockHeight()).toBe(start + 4);

    const wallet = network.wallet('alice');
    const invoice = await holdInvoice(wallet, 'mined', { expirySec: 365 * 24 * 3600 });
    await network.coordinator().pay(payRequest(invoice.bolt11, invoice.paymentHash));
    clock.advance((CLTV_DELTA - 10) * 600_000);
    expect(await network.coordinator().paymentState(invoice.paymentHash)).toEqual({ status: 'failed', failureCode: 'TIMEOUT' });
  });
});

describe('DevLightningNetwork: fee, timeout height and balance rules', () => {
  it('charges base 1,000 msat + 1 ppm (rounded down) and refuses with FEE_LIMIT_EXCEEDED above maxFeeMsat; a retry is a new attempt', async () => {
    expect(routingFeeMsat(0n)).toBe(1_000n);
    expect(routingFeeMsat(999_999n)).toBe(1_000n);
    expect(routingFeeMsat(2_500_000_000n)).toBe(3_500n);
    const network = await openDev(new ManualClock());
    const coordinator = network.coordinator();
    const amountMsat = 7_000_000_000n;
    const { bolt11, paymentHash } = await network.wallet('alice').createInvoice({ amountMsat, expirySec: 600, description: 'bonus' });
    const feeMsat = routingFeeMsat(amountMsat);
    expect(feeMsat).toBe(8_000n);
    expect(await coordinator.pay(payRequest(bolt11, paymentHash, { amountMsat, maxFeeMsat: feeMsat - 1n }))).toEqual({ status: 'failed', failureCode: 'FEE_LIMIT_EXCEEDED' });
    expect((await network.coordinatorFunds()).pendingMsat).toBe(0n);
    const paid = await coordinator.pay(payRequest(bolt11, paymentHash, { amountMsat, maxFeeMsat: feeMsat }));
    expect(paid).toMatchObject({ status: 'succeeded', amountMsat, feeMsat });
  });

  it('sets the timeout height to height + cltvDelta + the route delta, and refuses with NO_ROUTE above maxTimeoutHeight', async () => {
    const network = await openDev(new ManualClock());
    const coordinator = network.coordinator();
    const invoice = await holdInvoice(network.wallet('alice'), 'cltv-limit');
    const timeoutHeight = (await coordinator.blockHeight()) + CLTV_DELTA + DEV_ROUTE.cltvDeltaBlocks;
    const refused = await coordinator.pay(payRequest(invoice.bolt11, invoice.paymentHash, { maxTimeoutHeight: timeoutHeight - 1 }));
    expect(refused).toEqual({ status: 'failed', failureCode: 'NO_ROUTE' });
    expect(await network.wallet('alice').holdInvoiceState(invoice.paymentHash)).toEqual({ status: 'open' });
    const sent = await coordinator.pay(payRequest(invoice.bolt11, invoice.paymentHash, { maxTimeoutHeight: timeoutHeight }));
    expect(sent).toEqual({ status: 'in_flight', amountMsat: AMOUNT_MSAT, timeoutHeight });
  });

  it('counts in-flight HTLCs against the balance: INSUFFICIENT_BALANCE until one is released', async () => {
    const perPaymentMsat = AMOUNT_MSAT + routingFeeMsat(AMOUNT_MSAT);
    const network = await openDev(new ManualClock(), { coordinatorBalanceMsat: 2n * perPaymentMsat + 1n });
    const wallet = network.wallet('alice');
    const coordinator = network.coordinator();
    const invoices = [await holdInvoice(wallet, 'b1'), await holdInvoice(wallet, 'b2'), await holdInvoice(wallet, 'b3')];
    const states = [];
    for (const invoice of invoices) states.push(await coordinator.pay(payRequest(invoice.bolt11, invoice.paymentHash)));
    expect(states.map((s) => s.status)).toEqual(['in_flight', 'in_flight', 'failed']);
    expect(states[2]).toEqual({ status: 'failed', failureCode: 'INSUFFICIENT_BALANCE' });
    expect(await wallet.holdInvoiceState(invoices[2]!.paymentHash)).toEqual({ status: 'open' });

    await wallet.cancelHoldInvoice(invoices[0]!.paymentHash);
    expect(await coordinator.pay(payRequest(invoices[2]!.bolt11, invoices[2]!.paymentHash))).toMatchObject({ status: 'in_flight' });
    expect(await network.coordinatorFunds()).toEqual({ balanceMsat: 2n * perPaymentMsat + 1n, pendingMsat: 2n * perPaymentMsat, spendableMsat: 1n });
  });

  it('has no route to a key outside the network', async () => {
    const clock = new ManualClock();
    const network = await openDev(clock);
    const elsewhere = await openDev(clock, { seed: new Uint8Array(32).fill(9) });
    const foreign = await holdInvoice(elsewhere.wallet('stranger'), 'foreign');
    expect(await network.coordinator().pay(payRequest(foreign.bolt11, foreign.paymentHash))).toEqual({ status: 'failed', failureCode: 'NO_ROUTE' });
  });

  it('refuses a malformed pay request with INVALID_REQUEST before anything else', async () => {
    const network = await openDev(new ManualClock());
    const invoice = await holdInvoice(network.wallet('alice'), 'malformed');
    const request = payRequest(invoice.bolt11, invoice.paymentHash);
    for (const bad of [{ maxFeeMsat: -1n }, { amountMsat: 0n }, { paymentHash: 'ABC' }, { maxTimeoutHeight: 1.5 }]) {
      await expectLightningError(network.coordinator().pay({ ...request, ...bad }), 'INVALID_REQUEST');
    }
    expect(await network.coordinator().paymentState(invoice.paymentHash)).toEqual({ status: 'unknown' });
  });
});

describe('DevLightningNetwork: one send per hash', () => {
  it('sends once under many concurrent pay() calls for one hash (hold and plain)', async () => {
    const network = await openDev(new ManualClock());
    const wallet = network.wallet('alice');
    const coordinator = network.coordinator();
    const feeMsat = routingFeeMsat(AMOUNT_MSAT);
    const invoice = await holdInvoice(wallet, 'concurrent');
    const request = payRequest(invoice.bolt11, invoice.paymentHash);
    const states = await Promise.all(Array.from({ length: 25 }, () => coordinator.pay(request)));
    expect(new Set(states.map((s) => JSON.stringify(s, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)))).size).toBe(1);
    expect((await network.coordinatorFunds()).pendingMsat).toBe(AMOUNT_MSAT + feeMsat);

    const before = (await network.coordinatorFunds()).balanceMsat;
    const plain = await wallet.createInvoice({ amountMsat: AMOUNT_MSAT, expirySec: 600, description: 'bonus' });
    const plainRequest = payRequest(plain.bolt11, plain.paymentHash);
    const paid = await Promise.all(Array.from({ length: 25 }, () => coordinator.pay(plainRequest)));
    expect(paid.every((s) => s.status === 'succeeded')).toBe(true);
    expect(before - (await network.coordinatorFunds()).balanceMsat).toBe(AMOUNT_MSAT + feeMsat);
  });

  it('pays again after a failure as a new attempt, but never after success', async () => {
    const network = await openDev(new ManualClock());
    const wallet = network.wallet('alice');
    const coordinator = network.coordinator();
    const invoice = await holdInvoice(wallet, 'retry');
    await coordinator.pay(payRequest(invoice.bolt11, invoice.paymentHash, { maxFeeMsat: 0n }));
    expect(await coordinator.paymentState(invoice.paymentHash)).toEqual({ status: 'failed', failureCode: 'FEE_LIMIT_EXCEEDED' });
    expect(await coordinator.pay(payRequest(invoice.bolt11, invoice.paymentHash))).toMatchObject({ status: 'in_flight' });
    await wallet.settleHoldInvoice(invoice.preimageHex);
    const balance = (await network.coordinatorFunds()).balanceMsat;
    expect(await coordinator.pay(payRequest(invoice.bolt11, invoice.paymentHash))).toMatchObject({ status: 'succeeded', preimageHex: invoice.preimageHex });
    expect((await network.coordinatorFunds()).balanceMsat).toBe(balance);
  });
});

describe('DevLightningNetwork: bulk seeding of held escrows (benchmarks)', () => {
  it('leaves each invoice and payment exactly as createHoldInvoice then pay would, and the escrow settles', async () => {
    const seeded = await openDev(new ManualClock());
    const stepwise = await openDev(new ManualClock());
    const labels = ['seed-a', 'seed-b', 'seed-c'];
    const requests = labels.map((label, i) => ({ walletName: i === 1 ? 'bob' : 'alice', paymentHash: secret(label).paymentHash, amountMsat: AMOUNT_MSAT, expirySec: 600, cltvDelta: CLTV_DELTA, description: `escrow ${label}` }));
    const results = await seeded.seedHeldInvoices(requests);
    expect(results.map((r) => r.status)).toEqual(['in_flight', 'in_flight', 'in_flight']);
    for (const [i, request] of requests.entries()) {
      const bolt11 = await stepwise.wallet(request.walletName).createHoldInvoice(request);
      expect(results[i]!.bolt11).toBe(bolt11);
      await stepwise.coordinator().pay(payRequest(bolt11, request.paymentHash, { maxFeeMsat: routingFeeMsat(AMOUNT_MSAT), maxTimeoutHeight: Number.MAX_SAFE_INTEGER }));
      expect(await seeded.wallet(request.walletName).holdInvoiceState(request.paymentHash)).toEqual(await stepwise.wallet(request.walletName).holdInvoiceState(request.paymentHash));
      expect(await seeded.coordinator().paymentState(request.paymentHash)).toEqual(await stepwise.coordinator().paymentState(request.paymentHash));
    }
    expect(await seeded.coordinatorFunds()).toEqual(await stepwise.coordinatorFunds());
    await seeded.wallet('alice').settleHoldInvoice(secret('seed-a').preimageHex);
    expect(await seeded.coordinator().paymentState(requests[0]!.paymentHash)).toMatchObject({ status: 'succeeded' });
    await seeded.close();
    await stepwise.close();
  });

  it('refuses a payment hash already used, like createHoldInvoice', async () => {
    const network = await openDev(new ManualClock());
    const request = { walletName: 'alice', paymentHash: secret('dup').paymentHash, amountMsat: AMOUNT_MSAT, expirySec: 600, cltvDelta: CLTV_DELTA, description: 'escrow dup' };
    await network.seedHeldInvoices([request]);
    await expect(network.seedHeldInvoices([request])).rejects.toThrow();
    await network.close();
  });
});
