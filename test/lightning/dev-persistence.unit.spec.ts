// Dev network persistence: a reopen restores every invoice and payment state, the keys, the height and the balance.

import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEV_STATE_FILE, DevLightningNetwork } from '../../adapters/lightning/dev/index.js';
import { AMOUNT_MSAT, ManualClock, holdInvoice, openDev, payRequest, secret } from './dev-fixtures.js';

describe('DevLightningNetwork persistence', () => {
  let dataDir: string;
  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'trainledger-devln-persist-'));
  });
  afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

  /** One invoice in every state and one payment in every state, as a restart would find them. */
  async function everyState(network: DevLightningNetwork) {
    const wallet = network.wallet('alice');
    const coordinator = network.coordinator();
    const open = await holdInvoice(wallet, 'p-open');
    const accepted = await holdInvoice(wallet, 'p-accepted');
    const settled = await holdInvoice(wallet, 'p-settled');
    const canceled = await holdInvoice(wallet, 'p-canceled');
    const stuck = await holdInvoice(wallet, 'p-stuck');
    const failed = await holdInvoice(wallet, 'p-failed');
    const plain = await wallet.createInvoice({ amountMsat: AMOUNT_MSAT, expirySec: 600, description: 'p-plain' });
    await coordinator.pay(payRequest(accepted.bolt11, accepted.paymentHash));
    await coordinator.pay(payRequest(settled.bolt11, settled.paymentHash));
    await wallet.settleHoldInvoice(settled.preimageHex);
    await coordinator.pay(payRequest(canceled.bolt11, canceled.paymentHash));
    await wallet.cancelHoldInvoice(canceled.paymentHash);
    network.faults.holdNextPaymentsUnresolved(1);
    await coordinator.pay(payRequest(stuck.bolt11, stuck.paymentHash));
    await coordinator.pay(payRequest(failed.bolt11, failed.paymentHash, { maxFeeMsat: 0n }));
    await coordinator.pay(payRequest(plain.bolt11, plain.paymentHash));
    await network.advanceBlocks(7);
    return [open, accepted, settled, canceled, stuck, failed, plain].map((invoice) => invoice.paymentHash);
  }

  async function snapshot(network: DevLightningNetwork, hashes: string[]) {
    const wallet = network.wallet('alice');
    const coordinator = network.coordinator();
    return {
      coordinatorKey: await coordinator.publicKey(),
      walletKey: await wallet.publicKey(),
      heightBlocks: await network.blockHeight(),
      funds: await network.coordinatorFunds(),
      invoices: await Promise.all(hashes.map((hash) => wallet.holdInvoiceState(hash))),
      payments: await Promise.all(hashes.map((hash) => coordinator.paymentState(hash))),
    };
  }

  it('restores every invoice state, payment state, key, the height and the balance after close and reopen', async () => {
    const clock = new ManualClock();
    const first = await openDev(clock, { dataDir });
    const hashes = await everyState(first);
    const before = await snapshot(first, hashes);
    expect(before.invoices.map((s) => s.status)).toEqual(['open', 'accepted', 'settled', 'canceled', 'open', 'open', 'settled']);
    expect(before.payments.map((s) => s.status)).toEqual(['unknown', 'in_flight', 'succeeded', 'failed', 'in_flight', 'failed', 'succeeded']);
    await first.close();

    const second = await DevLightningNetwork.open({ dataDir, nowMs: clock.read });
    expect(await snapshot(second, hashes)).toEqual(before);

    // What was in flight still works: the held HTLC settles, and the seed still yields the same keys.
    await second.wallet('alice').settleHoldInvoice(secret('p-accepted').preimageHex);
    expect(await second.coordinator().paymentState(hashes[1]!)).toMatchObject({ status: 'succeeded' });
    await second.close();
  });

  it('writes after every change, atomically, with msat as strings and no temp file left behind', async () => {
    const clock = new ManualClock();
    const network = await openDev(clock, { dataDir });
    const path = join(dataDir, DEV_STATE_FILE);
    expect(existsSync(path)).toBe(true);
    const invoice = await holdInvoice(network.wallet('alice'), 'written');
    expect(readFileSync(path, 'utf8')).toContain(invoice.paymentHash);
    await network.coordinator().pay(payRequest(invoice.bolt11, invoice.paymentHash));
    const stored = JSON.parse(readFileSync(path, 'utf8'));
    expect(stored.payments[0]).toMatchObject({ paymentHash: invoice.paymentHash, amountMsat: AMOUNT_MSAT.toString(), status: 'in_flight' });
    expect(typeof stored.balanceMsat).toBe('string');
    expect(readdirSync(dataDir)).toEqual([DEV_STATE_FILE]);
    await network.close();
  });

  it('keeps a wallet created without invoices, and refuses a seed that differs from the stored one', async () => {
    const clock = new ManualClock();
    const first = await DevLightningNetwork.open({ dataDir, nowMs: clock.read });
    const key = await first.wallet('quiet').publicKey();
    await first.close();
    const second = await DevLightningNetwork.open({ dataDir, nowMs: clock.read });
    expect(await second.wallet('quiet').publicKey()).toBe(key);
    await second.close();
    await expect(DevLightningNetwork.open({ dataDir, nowMs: clock.read, seed: new Uint8Array(32) })).rejects.toThrow(/seed/);
  });

  it('applies what happened while closed: time and blocks passing expire on reopen', async () => {
    const clock = new ManualClock();
    const first = await openDev(clock, { dataDir, blockIntervalMs: 600_000 });
    const invoice = await holdInvoice(first.wallet('alice'), 'while-closed', { expirySec: 60 });
    await first.close();
    clock.advance(60_000);
    const second = await DevLightningNetwork.open({ dataDir, nowMs: clock.read, blockIntervalMs: 600_000 });
    expect(await second.wallet('alice').holdInvoiceState(invoice.paymentHash)).toEqual({ status: 'canceled' });
    await second.close();
  });

  it('persists what time changes even during a read-only call, as a crash right after it would find', async () => {
    const clock = new ManualClock();
    const network = await openDev(clock, { dataDir });
    const invoice = await holdInvoice(network.wallet('alice'), 'expires', { expirySec: 60 });
    const before = readFileSync(join(dataDir, DEV_STATE_FILE), 'utf8');
    // A read that changes nothing leaves the file alone.
    expect((await network.wallet('alice').holdInvoiceState(invoice.paymentHash)).status).toBe('open');
    expect(readFileSync(join(dataDir, DEV_STATE_FILE), 'utf8')).toBe(before);
    clock.advance(61_000);
    // This read is the call that finds the invoice expired: the cancellation must reach the disk now, not at close.
    expect((await network.wallet('alice').holdInvoiceState(invoice.paymentHash)).status).toBe('canceled');
    const crashed = await openDev(clock, { dataDir });
    expect((await crashed.wallet('alice').holdInvoiceState(invoice.paymentHash)).status).toBe('canceled');
    await crashed.close();
    await network.close();
  });
});
