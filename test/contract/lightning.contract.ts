// The Lightning contract: one suite for CoordinatorNode + ContributorWallet that every node pair must pass (dev now, LND later).

import { createHash, randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isNodePaymentLedger } from '../../replay/audit/ports.js';
import {
  LightningError,
  type ContributorWallet,
  type CoordinatorNode,
  type PayRequest,
  type InvoiceUpdate,
  type PaymentState,
  type UpdateListener,
} from '../../domain/ports/lightning.js';

/** A coordinator node and one contributor wallet that it can route to. */
export type LightningPair = Readonly<{
  coordinator: CoordinatorNode;
  wallet: ContributorWallet;
  /** What the coordinator can still send, msat: in-flight HTLCs already count as spent. */
  spendableMsat(): Promise<bigint>;
  close(): Promise<void>;
}>;

export type LightningContractOptions = Readonly<{
  name: string;
  open: () => Promise<LightningPair>;
  /** How long a real node may take to show a settle or cancel on the payer's side; the dev network needs none. */
  settleWaitMs?: number;
}>;

const AMOUNT_MSAT = 50_000_000n;
const MAX_FEE_MSAT = 50_000n;
const CLTV_DELTA = 80;
const EXPIRY_SEC = 3_600;
/** Generous: the contract checks refusals with a deliberately low limit, not the exact route length. */
const TIMEOUT_ALLOWANCE_BLOCKS = 1_000;

/** Fresh secrets per case: a real node keeps its invoices across runs, so a fixed hash would collide with the last run. */
export function freshSecret(): { preimageHex: string; paymentHash: string } {
  const preimage = randomBytes(32);
  return { preimageHex: preimage.toString('hex'), paymentHash: createHash('sha256').update(preimage).digest('hex') };
}

export async function expectLightningError(promise: Promise<unknown>, code: string): Promise<LightningError> {
  const error = await promise.then(
    () => {
      throw new Error(`expected the call to fail with ${code}, but it succeeded`);
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(LightningError);
  expect(error).toMatchObject({ code });
  return error as LightningError;
}

/** Collects one stream's updates; `until` resolves on the first moment a condition holds, failing after `withinMs`. */
export function updateCollector(withinMs: number) {
  const updates: InvoiceUpdate[] = [];
  let dropped: LightningError | null = null;
  const waiters = new Set<() => void>();
  const listener: UpdateListener = {
    onUpdate: (update) => {
      updates.push(update);
      for (const wake of [...waiters]) wake();
    },
    onDrop: (error) => {
      dropped = error;
      for (const wake of [...waiters]) wake();
    },
  };
  const until = (condition: (seen: readonly InvoiceUpdate[]) => boolean, what: string): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (!condition(updates)) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no ${what} within ${withinMs} ms; saw ${JSON.stringify(updates)}${dropped ? `, dropped: ${dropped.message}` : ''}`));
      }, withinMs);
      waiters.add(check);
      check();
    });
  const saw = (paymentHash: string, status: InvoiceUpdate['status']) => (seen: readonly InvoiceUpdate[]) => seen.some((u) => u.paymentHash === paymentHash && u.status === status);
  return { listener, updates, until, saw, get dropped() { return dropped; } };
}

export function describeLightningContract(options: LightningContractOptions): void {
  describe(`lightning contract [${options.name}]`, () => {
    let pair: LightningPair;
    let coordinator: CoordinatorNode;
    let wallet: ContributorWallet;

    beforeEach(async () => {
      pair = await options.open();
      coordinator = pair.coordinator;
      wallet = pair.wallet;
    });
    afterEach(async () => {
      await pair?.close();
    });

    async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
      const deadline = Date.now() + (options.settleWaitMs ?? 0);
      for (;;) {
        const value = await read();
        if (done(value) || Date.now() >= deadline) return value;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }

    async function holdInvoice(amountMsat = AMOUNT_MSAT) {
      const secret = freshSecret();
      const bolt11 = await wallet.createHoldInvoice({ paymentHash: secret.paymentHash, amountMsat, expirySec: EXPIRY_SEC, cltvDelta: CLTV_DELTA, description: 'contract escrow' });
      return { ...secret, bolt11 };
    }

    async function payRequest(bolt11: string, paymentHash: string, amountMsat = AMOUNT_MSAT): Promise<PayRequest> {
      const maxTimeoutHeight = (await coordinator.blockHeight()) + TIMEOUT_ALLOWANCE_BLOCKS;
      return { bolt11, paymentHash, amountMsat, maxFeeMsat: MAX_FEE_MSAT, maxTimeoutHeight };
    }

    async function payHeld() {
      const invoice = await holdInvoice();
      const state = await coordinator.pay(await payRequest(invoice.bolt11, invoice.paymentHash));
      expect(state.status).toBe('in_flight');
      return invoice;
    }

    it('decodes a real request: destination, amount, hash, expiry and cltv', async () => {
      const { bolt11, paymentHash } = await holdInvoice(12_345_678n);
      const decoded = await coordinator.decodeInvoice(bolt11);
      expect(decoded).toMatchObject({ bolt11, paymentHash, amountMsat: 12_345_678n, cltvDelta: CLTV_DELTA, description: 'contract escrow' });
      expect(decoded.destination).toBe(await wallet.publicKey());
      expect(decoded.destination).toMatch(/^0[23][0-9a-f]{64}$/);
      expect(decoded.expiresAtMs - decoded.createdAtMs).toBe(EXPIRY_SEC * 1_000);
      expect(decoded.network.length).toBeGreaterThan(0);
    });

    it('refuses garbage with INVOICE_INVALID', async () => {
      await expectLightningError(coordinator.decodeInvoice('lnbcrt1garbage'), 'INVOICE_INVALID');
      await expectLightningError(coordinator.decodeInvoice('not a payment request'), 'INVOICE_INVALID');
    });

    it('holds a paid hold invoice until the wallet settles with the preimage, then the payment succeeds with it', async () => {
      const heightBlocks = await coordinator.blockHeight();
      const invoice = await holdInvoice();
      const request = await payRequest(invoice.bolt11, invoice.paymentHash);
      const sent = await coordinator.pay(request);
      expect(sent).toMatchObject({ status: 'in_flight', amountMsat: AMOUNT_MSAT });
      if (sent.status !== 'in_flight') throw new Error('unreachable');
      expect(sent.timeoutHeight).toBeGreaterThanOrEqual(heightBlocks + CLTV_DELTA);
      expect(sent.timeoutHeight).toBeLessThanOrEqual(request.maxTimeoutHeight);

      const held = await eventually(() => wallet.holdInvoiceState(invoice.paymentHash), (s) => s.status === 'accepted');
      expect(held).toMatchObject({ status: 'accepted', amountMsat: AMOUNT_MSAT });
      if (held.status !== 'accepted') throw new Error('unreachable');
      expect(held.htlcExpiryHeight).toBeGreaterThanOrEqual(heightBlocks + CLTV_DELTA);
      expect(await coordinator.paymentState(invoice.paymentHash)).toMatchObject({ status: 'in_flight' });

      await wallet.settleHoldInvoice(invoice.preimageHex);
      const settled = await eventually(() => coordinator.paymentState(invoice.paymentHash), (s) => s.status !== 'in_flight');
      expect(settled).toMatchObject({ status: 'succeeded', amountMsat: AMOUNT_MSAT, preimageHex: invoice.preimageHex });
      if (settled.status !== 'succeeded') throw new Error('unreachable');
      expect(settled.feeMsat).toBeGreaterThanOrEqual(0n);
      expect(settled.feeMsat).toBeLessThanOrEqual(MAX_FEE_MSAT);
      expect(await wallet.holdInvoiceState(invoice.paymentHash)).toEqual({ status: 'settled', preimageHex: invoice.preimageHex });
    });

    it('fails the payment when the wallet cancels the held invoice', async () => {
      const invoice = await payHeld();
      await eventually(() => wallet.holdInvoiceState(invoice.paymentHash), (s) => s.status === 'accepted');
      await wallet.cancelHoldInvoice(invoice.paymentHash);
      expect(await wallet.holdInvoiceState(invoice.paymentHash)).toEqual({ status: 'canceled' });
      const failed = await eventually(() => coordinator.paymentState(invoice.paymentHash), (s) => s.status !== 'in_flight');
      expect(failed).toEqual({ status: 'failed', failureCode: 'PAYEE_REJECTED' });
    });

    it('pays a hash once: a second pay returns the same state and the money moves once', async () => {
      const before = await pair.spendableMsat();
      const invoice = await holdInvoice();
      const request = await payRequest(invoice.bolt11, invoice.paymentHash);
      const [first, second] = await Promise.all([coordinator.pay(request), coordinator.pay(request)]);
      expect(second).toEqual(first);
      expect(await coordinator.pay(request)).toEqual(first);
      const held = await eventually(() => wallet.holdInvoiceState(invoice.paymentHash), (s) => s.status === 'accepted');
      expect(held).toMatchObject({ status: 'accepted', amountMsat: AMOUNT_MSAT });
      const lockedMsat = before - (await pair.spendableMsat());
      expect(lockedMsat).toBeGreaterThanOrEqual(AMOUNT_MSAT);
      expect(lockedMsat).toBeLessThanOrEqual(AMOUNT_MSAT + MAX_FEE_MSAT);

      await wallet.settleHoldInvoice(invoice.preimageHex);
      const settled = await eventually(() => coordinator.paymentState(invoice.paymentHash), (s) => s.status === 'succeeded');
      expect(await coordinator.pay(request)).toEqual(settled);
      if (settled.status !== 'succeeded') throw new Error(`expected success, got ${settled.status}`);
      expect(before - (await pair.spendableMsat())).toBe(AMOUNT_MSAT + settled.feeMsat);
    });

    it('settles twice and cancels twice as no-ops, and refuses to cross settle and cancel', async () => {
      const settledOne = await payHeld();
      await eventually(() => wallet.holdInvoiceState(settledOne.paymentHash), (s) => s.status === 'accepted');
      await wallet.settleHoldInvoice(settledOne.preimageHex);
      await wallet.settleHoldInvoice(settledOne.preimageHex);
      expect(await wallet.holdInvoiceState(settledOne.paymentHash)).toEqual({ status: 'settled', preimageHex: settledOne.preimageHex });
      await expect(wallet.cancelHoldInvoice(settledOne.paymentHash)).rejects.toBeInstanceOf(LightningError);

      const canceledOne = await payHeld();
      await eventually(() => wallet.holdInvoiceState(canceledOne.paymentHash), (s) => s.status === 'accepted');
      await wallet.cancelHoldInvoice(canceledOne.paymentHash);
      await wallet.cancelHoldInvoice(canceledOne.paymentHash);
      expect(await wallet.holdInvoiceState(canceledOne.paymentHash)).toEqual({ status: 'canceled' });
      await expect(wallet.settleHoldInvoice(canceledOne.preimageHex)).rejects.toBeInstanceOf(LightningError);
      await expect(wallet.settleHoldInvoice(freshSecret().preimageHex)).rejects.toBeInstanceOf(LightningError);
    });

    it('refuses a request whose hash or amount is not the one asked for, with INVOICE_MISMATCH, and sends nothing', async () => {
      const invoice = await holdInvoice();
      const request = await payRequest(invoice.bolt11, invoice.paymentHash);
      const otherHash = freshSecret().paymentHash;
      const wrongHash = await expectLightningError(coordinator.pay({ ...request, paymentHash: otherHash }), 'INVOICE_MISMATCH');
      expect(wrongHash.retryable).toBe(false);
      await expectLightningError(coordinator.pay({ ...request, amountMsat: AMOUNT_MSAT + 1n }), 'INVOICE_MISMATCH');
      expect(await coordinator.paymentState(invoice.paymentHash)).toEqual({ status: 'unknown' });
      expect(await coordinator.paymentState(otherHash)).toEqual({ status: 'unknown' });
      expect(await wallet.holdInvoiceState(invoice.paymentHash)).toEqual({ status: 'open' });
    });

    it('pays a plain invoice at once, within maxFeeMsat, and the preimage opens the hash', async () => {
      const before = await pair.spendableMsat();
      const { bolt11, paymentHash } = await wallet.createInvoice({ amountMsat: AMOUNT_MSAT, expirySec: EXPIRY_SEC, description: 'contract bonus' });
      const decoded = await coordinator.decodeInvoice(bolt11);
      expect(decoded).toMatchObject({ paymentHash, amountMsat: AMOUNT_MSAT, description: 'contract bonus' });
      const request = await payRequest(bolt11, paymentHash);
      const first = await coordinator.pay(request);
      const paid = first.status === 'succeeded' ? first : await eventually(() => coordinator.paymentState(paymentHash), (s) => s.status === 'succeeded');
      if (paid.status !== 'succeeded') throw new Error(`expected success, got ${JSON.stringify(paid, bigintJson)}`);
      expect(paid.feeMsat).toBeLessThanOrEqual(MAX_FEE_MSAT);
      expect(createHash('sha256').update(Buffer.from(paid.preimageHex, 'hex')).digest('hex')).toBe(paymentHash);
      expect(await coordinator.pay(request)).toEqual(paid);
      expect(before - (await pair.spendableMsat())).toBe(AMOUNT_MSAT + paid.feeMsat);
    });

    it('refuses before sending when every route would end later than maxTimeoutHeight', async () => {
      const invoice = await holdInvoice();
      const request = await payRequest(invoice.bolt11, invoice.paymentHash);
      const heightBlocks = await coordinator.blockHeight();
      const refused = await coordinator.pay({ ...request, maxTimeoutHeight: heightBlocks + CLTV_DELTA - 1 });
      expect(refused).toEqual({ status: 'failed', failureCode: 'NO_ROUTE' } satisfies PaymentState);
      expect(await wallet.holdInvoiceState(invoice.paymentHash)).toEqual({ status: 'open' });
    });

    /** How long a stream may take to carry an update: a real node's commitment round trips, or the dev network's none. */
    const streamWaitMs = Math.max(options.settleWaitMs ?? 0, 5_000);

    it('streams each escrow change: the payer sees its payment held then succeeded, the payee its invoice accepted then settled', async () => {
      const payments = updateCollector(streamWaitMs);
      const invoiceStream = updateCollector(streamWaitMs);
      const paymentSub = await coordinator.subscribeToPayments(payments.listener);
      const invoice = await holdInvoice();
      const invoiceSub = await wallet.subscribeToInvoice(invoice.paymentHash, invoiceStream.listener);
      try {
        await coordinator.pay(await payRequest(invoice.bolt11, invoice.paymentHash));
        await payments.until(payments.saw(invoice.paymentHash, 'in_flight'), 'in-flight payment update');
        await invoiceStream.until(invoiceStream.saw(invoice.paymentHash, 'accepted'), 'accepted invoice update');
        await wallet.settleHoldInvoice(invoice.preimageHex);
        await payments.until(payments.saw(invoice.paymentHash, 'succeeded'), 'succeeded payment update');
        await invoiceStream.until(invoiceStream.saw(invoice.paymentHash, 'settled'), 'settled invoice update');
        // An update is a hint: the node's answer for that one hash is what a decision reads.
        expect(await coordinator.paymentState(invoice.paymentHash)).toMatchObject({ status: 'succeeded', preimageHex: invoice.preimageHex });
        expect(invoiceStream.updates.every((u) => u.paymentHash === invoice.paymentHash)).toBe(true);
        expect(payments.dropped).toBeNull();
      } finally {
        await paymentSub.close();
        await invoiceSub.close();
      }
    });

    it('streams a canceled escrow: the payment fails and the invoice shows canceled', async () => {
      const payments = updateCollector(streamWaitMs);
      const paymentSub = await coordinator.subscribeToPayments(payments.listener);
      const invoice = await holdInvoice();
      const invoiceStream = updateCollector(streamWaitMs);
      const invoiceSub = await wallet.subscribeToInvoice(invoice.paymentHash, invoiceStream.listener);
      try {
        await coordinator.pay(await payRequest(invoice.bolt11, invoice.paymentHash));
        await invoiceStream.until(invoiceStream.saw(invoice.paymentHash, 'accepted'), 'accepted invoice update');
        await wallet.cancelHoldInvoice(invoice.paymentHash);
        await payments.until(payments.saw(invoice.paymentHash, 'failed'), 'failed payment update');
        await invoiceStream.until(invoiceStream.saw(invoice.paymentHash, 'canceled'), 'canceled invoice update');
        expect(await coordinator.paymentState(invoice.paymentHash)).toEqual({ status: 'failed', failureCode: 'PAYEE_REJECTED' });
      } finally {
        await paymentSub.close();
        await invoiceSub.close();
      }
    });

    it("streams the wallet's new and settled invoices on subscribeToInvoices, and a closed stream carries nothing more", async () => {
      const all = updateCollector(streamWaitMs);
      const closedEarly = updateCollector(streamWaitMs);
      const sub = await wallet.subscribeToInvoices(all.listener);
      const early = await wallet.subscribeToInvoices(closedEarly.listener);
      await early.close();
      await early.close();
      try {
        const { bolt11, paymentHash } = await wallet.createInvoice({ amountMsat: AMOUNT_MSAT, expirySec: EXPIRY_SEC, description: 'contract stream' });
        await all.until(all.saw(paymentHash, 'open'), 'new invoice update');
        await coordinator.pay(await payRequest(bolt11, paymentHash));
        await all.until(all.saw(paymentHash, 'settled'), 'settled invoice update');
        expect(closedEarly.updates).toEqual([]);
        expect(closedEarly.dropped).toBeNull();
      } finally {
        await sub.close();
      }
    });

    it('lists every payment it made, page by page, with its status (the audit walks this list)', async () => {
      if (!isNodePaymentLedger(coordinator)) throw new Error(`the ${options.name} coordinator node cannot list its payments`);
      const plain = await wallet.createInvoice({ amountMsat: AMOUNT_MSAT, expirySec: EXPIRY_SEC, description: 'contract listed' });
      const paid = await coordinator.pay(await payRequest(plain.bolt11, plain.paymentHash));
      if (paid.status !== 'succeeded') await eventually(() => coordinator.paymentState(plain.paymentHash), (s) => s.status === 'succeeded');
      const held = await payHeld();
      const listed = new Map<string, string>();
      let pages = 0;
      for (let after: string | null = null; ; pages += 1) {
        expect(pages).toBeLessThan(100_000);
        const page = await coordinator.listPayments({ after, limit: 1 });
        expect(page.payments.length).toBeLessThanOrEqual(1);
        for (const payment of page.payments) listed.set(payment.paymentHash, payment.status);
        if (page.next === null) break;
        after = page.next;
      }
      expect(listed.get(plain.paymentHash)).toBe('succeeded');
      expect(listed.get(held.paymentHash)).toBe('in_flight');
      expect(pages).toBeGreaterThanOrEqual(1);
      await wallet.cancelHoldInvoice(held.paymentHash);
      const unknown = freshSecret();
      expect(listed.has(unknown.paymentHash)).toBe(false);
    });

    it('knows nothing of hashes it never saw', async () => {
      const { paymentHash } = freshSecret();
      expect(await coordinator.paymentState(paymentHash)).toEqual({ status: 'unknown' });
      expect(await wallet.holdInvoiceState(paymentHash)).toEqual({ status: 'unknown' });
    });
  });
}

function bigintJson(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}
