// The dev network's update streams: what a restart or an outage does to them, and the LND stream relay's mapping and end.

import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { DevLightningNetwork } from '../../adapters/lightning/dev/index.js';
import { invoiceUpdateFrom, paymentUpdateFrom, relay } from '../../adapters/lightning/lnd/lnd-updates.js';
import { LightningError } from '../../domain/ports/lightning.js';
import { expectLightningError, freshSecret, updateCollector } from '../contract/lightning.contract.js';

const START_MS = Date.UTC(2026, 0, 1);

async function heldEscrow(network: DevLightningNetwork, walletName: string) {
  const secret = freshSecret();
  const bolt11 = await network.wallet(walletName).createHoldInvoice({ paymentHash: secret.paymentHash, amountMsat: 1_000_000n, expirySec: 3_600, cltvDelta: 40, description: 'escrow' });
  const height = await network.blockHeight();
  await network.coordinator().pay({ bolt11, paymentHash: secret.paymentHash, amountMsat: 1_000_000n, maxFeeMsat: 10_000n, maxTimeoutHeight: height + 500 });
  return secret;
}

describe('dev network update streams', () => {
  it('drops every stream on a restart; a resubscribed stream carries what changes after, and a lookup tells what changed before', async () => {
    const network = await DevLightningNetwork.open({ nowMs: () => START_MS });
    const first = updateCollector(1_000);
    await network.coordinator().subscribeToPayments(first.listener);
    const missed = await heldEscrow(network, 'w1');
    expect(network.faults.dropSubscriptions()).toBe(1);
    expect(first.dropped).toMatchObject({ code: 'NODE_UNAVAILABLE' });
    // Changed while nobody listened: no stream says so, the node's answer does.
    await network.wallet('w1').cancelHoldInvoice(missed.paymentHash);
    expect(first.updates.filter((u) => u.status === 'failed')).toEqual([]);
    const second = updateCollector(1_000);
    await network.coordinator().subscribeToPayments(second.listener);
    const later = await heldEscrow(network, 'w1');
    await second.until(second.saw(later.paymentHash, 'in_flight'), 'update after resubscribing');
    expect(second.updates.some((u) => u.paymentHash === missed.paymentHash)).toBe(false);
    expect(await network.coordinator().paymentState(missed.paymentHash)).toEqual({ status: 'failed', failureCode: 'PAYEE_REJECTED' });
    await network.close();
  });

  it('ends a node\'s streams while it is down and refuses new ones until it is back; other nodes keep theirs', async () => {
    const network = await DevLightningNetwork.open({ nowMs: () => START_MS });
    const payments = updateCollector(1_000);
    const invoices = updateCollector(1_000);
    await network.coordinator().subscribeToPayments(payments.listener);
    await network.wallet('w1').subscribeToInvoices(invoices.listener);
    network.faults.setUnavailable(true);
    expect(payments.dropped).toMatchObject({ code: 'NODE_UNAVAILABLE', retryable: true });
    expect(invoices.dropped).toBeNull();
    await expectLightningError(network.coordinator().subscribeToPayments(updateCollector(1_000).listener), 'NODE_UNAVAILABLE');
    network.faults.setUnavailable(false);
    const again = updateCollector(1_000);
    await network.coordinator().subscribeToPayments(again.listener);
    const secret = await heldEscrow(network, 'w1');
    await again.until(again.saw(secret.paymentHash, 'in_flight'), 'payment update once the node is back');
    await invoices.until(invoices.saw(secret.paymentHash, 'accepted'), 'the wallet stream, which never dropped');
    await network.close();
    expect(again.dropped).toMatchObject({ code: 'NODE_UNAVAILABLE' });
  });

  it('reports HTLC timeouts and expiries that height and time cause, not only calls', async () => {
    const network = await DevLightningNetwork.open({ nowMs: () => START_MS });
    const payments = updateCollector(1_000);
    await network.coordinator().subscribeToPayments(payments.listener);
    const secret = await heldEscrow(network, 'w1');
    await network.advanceBlocks(1_000);
    await payments.until(payments.saw(secret.paymentHash, 'failed'), 'timed-out payment update');
    expect(await network.coordinator().paymentState(secret.paymentHash)).toEqual({ status: 'failed', failureCode: 'TIMEOUT' });
    await network.close();
  });
});

describe('LND stream relay', () => {
  const hash = 'ab'.repeat(32);

  it("maps ln-service's invoice and payment events to the port's statuses, dropping events without a usable hash", () => {
    expect(invoiceUpdateFrom({ id: hash.toUpperCase(), is_confirmed: false, is_held: true })).toEqual({ paymentHash: hash, status: 'accepted' });
    expect(invoiceUpdateFrom({ id: hash, is_confirmed: true })).toEqual({ paymentHash: hash, status: 'settled' });
    expect(invoiceUpdateFrom({ id: hash, is_canceled: true })).toEqual({ paymentHash: hash, status: 'canceled' });
    expect(invoiceUpdateFrom({ id: hash })).toEqual({ paymentHash: hash, status: 'open' });
    expect(invoiceUpdateFrom({ id: 'nope' })).toBeNull();
    expect(paymentUpdateFrom('paying', { id: hash })).toEqual({ paymentHash: hash, status: 'in_flight' });
    expect(paymentUpdateFrom('confirmed', { id: hash })).toEqual({ paymentHash: hash, status: 'succeeded' });
    expect(paymentUpdateFrom('failed', { id: hash })).toEqual({ paymentHash: hash, status: 'failed' });
    expect(paymentUpdateFrom('failed', {})).toBeNull();
  });

  it('ends on the first error or end with one onDrop, removes its listeners (which cancels the gRPC stream), and ignores what follows', async () => {
    const emitter = new EventEmitter();
    const seen = updateCollector(1_000);
    relay(emitter, { confirmed: (event: { id?: unknown }) => paymentUpdateFrom('confirmed', event) }, seen.listener, 'follow the payments');
    emitter.emit('confirmed', { id: hash });
    emitter.emit('error', [503, 'UnexpectedPaymentsSubErr', { err: new Error('socket closed') }]);
    emitter.emit('error', [503, 'again']);
    emitter.emit('confirmed', { id: 'cd'.repeat(32) });
    expect(seen.updates).toEqual([{ paymentHash: hash, status: 'succeeded' }]);
    expect(seen.dropped).toBeInstanceOf(LightningError);
    expect(emitter.listenerCount('confirmed')).toBe(0);

    const closed = new EventEmitter();
    const quiet = updateCollector(1_000);
    const subscription = relay(closed, { confirmed: (event: { id?: unknown }) => paymentUpdateFrom('confirmed', event) }, quiet.listener, 'follow the payments');
    await subscription.close();
    closed.emit('end');
    expect(quiet.dropped).toBeNull();
    expect(closed.listenerCount('confirmed')).toBe(0);
  });
});
