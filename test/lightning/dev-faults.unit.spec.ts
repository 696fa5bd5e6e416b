// Injected faults of the dev network (failed sends, HTLCs that never arrive, nodes down) and the wallet's refusals.

import { describe, expect, it } from 'vitest';
import { DEV_ROUTE } from '../../adapters/lightning/dev/index.js';
import { expectLightningError } from '../contract/lightning.contract.js';
import { CLTV_DELTA, ManualClock, holdInvoice, openDev, payRequest, secret } from './dev-fixtures.js';

describe('DevLightningNetwork faults', () => {
  it('failNextPayments fails the next sends with the given code, nothing reaching the payee; then pays normally', async () => {
    const network = await openDev(new ManualClock());
    const wallet = network.wallet('alice');
    const coordinator = network.coordinator();
    network.faults.failNextPayments(2, 'NO_ROUTE');
    const invoice = await holdInvoice(wallet, 'fail-next');
    const request = payRequest(invoice.bolt11, invoice.paymentHash);
    expect(await coordinator.pay(request)).toEqual({ status: 'failed', failureCode: 'NO_ROUTE' });
    expect(await coordinator.pay(request)).toEqual({ status: 'failed', failureCode: 'NO_ROUTE' });
    expect(await wallet.holdInvoiceState(invoice.paymentHash)).toEqual({ status: 'open' });
    expect((await network.coordinatorFunds()).pendingMsat).toBe(0n);
    expect(await coordinator.pay(request)).toMatchObject({ status: 'in_flight' });
    expect(await wallet.holdInvoiceState(invoice.paymentHash)).toMatchObject({ status: 'accepted' });
  });

  it('holdNextPaymentsUnresolved keeps a payment in flight without reaching the wallet, and never sends it twice', async () => {
    const network = await openDev(new ManualClock());
    const wallet = network.wallet('alice');
    const coordinator = network.coordinator();
    network.faults.holdNextPaymentsUnresolved(1);
    const invoice = await holdInvoice(wallet, 'unresolved-deliver');
    const request = payRequest(invoice.bolt11, invoice.paymentHash);
    const first = await coordinator.pay(request);
    expect(first).toMatchObject({ status: 'in_flight' });
    expect(await coordinator.pay(request)).toEqual(first);
    expect(await wallet.holdInvoiceState(invoice.paymentHash)).toEqual({ status: 'open' });
    await expectLightningError(wallet.settleHoldInvoice(invoice.preimageHex), 'INVOICE_NOT_HELD');

    expect(await network.faults.releaseUnresolved('deliver')).toBe(1);
    expect(await wallet.holdInvoiceState(invoice.paymentHash)).toMatchObject({ status: 'accepted' });
    await wallet.settleHoldInvoice(invoice.preimageHex);
    expect(await coordinator.paymentState(invoice.paymentHash)).toMatchObject({ status: 'succeeded', preimageHex: invoice.preimageHex });
  });

  it('an unresolved payment fails with TIMEOUT when released as failed, or at its timeout height; a retry is then sent', async () => {
    const network = await openDev(new ManualClock());
    const wallet = network.wallet('alice');
    const coordinator = network.coordinator();
    network.faults.holdNextPaymentsUnresolved(2);
    const released = await holdInvoice(wallet, 'unresolved-fail');
    await coordinator.pay(payRequest(released.bolt11, released.paymentHash));
    const stuck = await holdInvoice(wallet, 'unresolved-timeout', { expirySec: 365 * 24 * 3600 });
    const sent = await coordinator.pay(payRequest(stuck.bolt11, stuck.paymentHash));
    if (sent.status !== 'in_flight') throw new Error(`expected in flight, got ${sent.status}`);

    await network.advanceBlocks(CLTV_DELTA + DEV_ROUTE.cltvDeltaBlocks - 1);
    expect(await coordinator.paymentState(stuck.paymentHash)).toMatchObject({ status: 'in_flight' });
    expect(await network.faults.releaseUnresolved('fail')).toBe(2);
    expect(await coordinator.paymentState(released.paymentHash)).toEqual({ status: 'failed', failureCode: 'TIMEOUT' });

    network.faults.holdNextPaymentsUnresolved(1);
    const retried = await coordinator.pay(payRequest(stuck.bolt11, stuck.paymentHash));
    if (retried.status !== 'in_flight') throw new Error(`expected in flight, got ${retried.status}`);
    expect(await network.advanceBlocks(retried.timeoutHeight - (await network.blockHeight()))).toBe(retried.timeoutHeight);
    expect(await coordinator.paymentState(stuck.paymentHash)).toEqual({ status: 'failed', failureCode: 'TIMEOUT' });
    expect(await coordinator.pay(payRequest(stuck.bolt11, stuck.paymentHash))).toMatchObject({ status: 'in_flight' });
    expect(await wallet.holdInvoiceState(stuck.paymentHash)).toMatchObject({ status: 'accepted' });
  });

  it('setUnavailable makes every call to that node throw NODE_UNAVAILABLE (retryable) until lifted', async () => {
    const network = await openDev(new ManualClock());
    const wallet = network.wallet('alice');
    const coordinator = network.coordinator();
    const invoice = await holdInvoice(wallet, 'down');
    network.faults.setUnavailable(true);
    const calls = [coordinator.publicKey(), coordinator.blockHeight(), coordinator.decodeInvoice(invoice.bolt11), coordinator.pay(payRequest(invoice.bolt11, invoice.paymentHash)), coordinator.paymentState(invoice.paymentHash)];
    const errors = await Promise.all(calls.map((call) => expectLightningError(call, 'NODE_UNAVAILABLE')));
    expect(errors.every((error) => error.retryable)).toBe(true);
    expect(await wallet.holdInvoiceState(invoice.paymentHash)).toEqual({ status: 'open' });
    network.faults.setUnavailable(false);
    expect(await coordinator.pay(payRequest(invoice.bolt11, invoice.paymentHash))).toMatchObject({ status: 'in_flight' });

    network.faults.setUnavailable(true, 'alice');
    await expectLightningError(wallet.settleHoldInvoice(invoice.preimageHex), 'NODE_UNAVAILABLE');
    expect(await coordinator.paymentState(invoice.paymentHash)).toMatchObject({ status: 'in_flight' });
    network.faults.setUnavailable(false, 'alice');
    await wallet.settleHoldInvoice(invoice.preimageHex);
  });

  it('refuses calls after close', async () => {
    const network = await openDev(new ManualClock());
    const handle = network.coordinator();
    await handle.close();
    expect((await expectLightningError(handle.blockHeight(), 'NODE_UNAVAILABLE')).retryable).toBe(false);
    expect(await network.coordinator().blockHeight()).toBeGreaterThan(0);
    await network.close();
    await expectLightningError(network.coordinator().blockHeight(), 'NODE_UNAVAILABLE');
  });
});

describe('dev wallet refusals', () => {
  it('refuses to settle or cancel what it cannot, with stable codes', async () => {
    const network = await openDev(new ManualClock());
    const wallet = network.wallet('alice');
    const coordinator = network.coordinator();
    await expectLightningError(wallet.settleHoldInvoice(secret('never').preimageHex), 'INVOICE_NOT_FOUND');
    await expectLightningError(wallet.cancelHoldInvoice(secret('never').paymentHash), 'INVOICE_NOT_FOUND');
    await expectLightningError(wallet.settleHoldInvoice('zz'), 'INVALID_REQUEST');

    const open = await holdInvoice(wallet, 'open');
    expect((await expectLightningError(wallet.settleHoldInvoice(open.preimageHex), 'INVOICE_NOT_HELD')).retryable).toBe(true);
    await wallet.cancelHoldInvoice(open.paymentHash);
    await expectLightningError(wallet.settleHoldInvoice(open.preimageHex), 'INVOICE_CANCELED');
    expect(await coordinator.pay(payRequest(open.bolt11, open.paymentHash))).toEqual({ status: 'failed', failureCode: 'PAYEE_REJECTED' });

    const settled = await holdInvoice(wallet, 'settled');
    await coordinator.pay(payRequest(settled.bolt11, settled.paymentHash));
    await wallet.settleHoldInvoice(settled.preimageHex);
    await expectLightningError(wallet.cancelHoldInvoice(settled.paymentHash), 'INVOICE_ALREADY_SETTLED');
  });

  it('refuses a reused hash and malformed invoice parameters', async () => {
    const network = await openDev(new ManualClock());
    const wallet = network.wallet('alice');
    await holdInvoice(wallet, 'once');
    await expectLightningError(holdInvoice(wallet, 'once'), 'PAYMENT_HASH_REUSED');
    expect(await holdInvoice(network.wallet('bob'), 'once')).toMatchObject({ paymentHash: secret('once').paymentHash });
    for (const bad of [{ amountMsat: 0n }, { expirySec: 0 }, { cltvDelta: 10 }, { cltvDelta: 5_000 }]) {
      await expectLightningError(holdInvoice(wallet, `bad-${JSON.stringify(bad, (_k, v) => String(v))}`, bad), 'INVALID_REQUEST');
    }
    await expectLightningError(wallet.holdInvoiceState('not-a-hash'), 'INVALID_REQUEST');
    expect(() => network.wallet('')).toThrow(/wallet name/);
  });
});
