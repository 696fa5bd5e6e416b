// A contributor's simulated wallet (ContributorWallet port): hold and plain invoices signed with its own dev key.

import { createHash } from 'node:crypto';
import { LightningError, type ContributorWallet, type HoldInvoiceState, type UpdateListener, type UpdateSubscription } from '../../../domain/ports/lightning.js';
import { encodeRequest } from './bolt11.js';
import type { DevNodeRef } from './dev-faults.js';
import { touch } from './dev-htlc.js';
import { assertHashUnused, cancel, holdView, requireHash, settle, validateNewInvoice, type NewInvoice } from './dev-invoices.js';
import type { DevRuntime } from './dev-runtime.js';
import type { DevInvoice } from './dev-state.js';

/** min_final_cltv_expiry of plain invoices, which the port lets the wallet choose: LND's default of 80 blocks. */
export const PLAIN_INVOICE_CLTV_DELTA = 80;
const MS_PER_SECOND = 1_000;

export class DevContributorWallet implements ContributorWallet {
  private readonly node: DevNodeRef;

  constructor(
    private readonly runtime: DevRuntime,
    readonly name: string,
  ) {
    this.node = { kind: 'wallet', name };
  }

  publicKey(): Promise<string> {
    return this.runtime.exclusive(this.node, () => this.runtime.keys.wallet(this.name).publicKeyHex, 'read');
  }

  createHoldInvoice(request: Readonly<{ paymentHash: string; amountMsat: bigint; expirySec: number; cltvDelta: number; description: string }>): Promise<string> {
    return this.runtime.exclusive(this.node, () => this.holdInvoiceNow(request));
  }

  /** @internal createHoldInvoice's work, for a caller already inside the network's exclusive call (bulk seeding). */
  async holdInvoiceNow(request: Readonly<{ paymentHash: string; amountMsat: bigint; expirySec: number; cltvDelta: number; description: string }>): Promise<string> {
    requireHash(request.paymentHash);
    validateNewInvoice(request, this.runtime.chain.safetyMarginBlocks);
    assertHashUnused(this.invoices(), request.paymentHash);
    return this.addInvoice('hold', request.paymentHash, null, request);
  }

  /** The preimage comes from the network's seed and a counter, so a run with a fixed seed repeats exactly. */
  createInvoice(request: Readonly<{ amountMsat: bigint; expirySec: number; description: string }>): Promise<{ bolt11: string; paymentHash: string }> {
    return this.runtime.exclusive(this.node, async () => {
      const fields = { ...request, cltvDelta: PLAIN_INVOICE_CLTV_DELTA };
      validateNewInvoice(fields, this.runtime.chain.safetyMarginBlocks);
      const state = this.runtime.state;
      const preimageHex = this.runtime.keys.secretHex(`preimage/${this.name}/${state.plainInvoiceCount}`);
      state.plainInvoiceCount += 1;
      const paymentHash = createHash('sha256').update(Buffer.from(preimageHex, 'hex')).digest('hex');
      assertHashUnused(this.invoices(), paymentHash);
      const bolt11 = await this.addInvoice('plain', paymentHash, preimageHex, fields);
      return { bolt11, paymentHash };
    });
  }

  /** Plain invoices answer too (open, then settled); a hash this wallet never issued is `unknown`. */
  holdInvoiceState(paymentHash: string): Promise<HoldInvoiceState> {
    return this.runtime.exclusive(
      this.node,
      () => {
        requireHash(paymentHash);
        return holdView(this.invoices().get(paymentHash));
      },
      'read',
    );
  }

  settleHoldInvoice(preimageHex: string): Promise<void> {
    return this.runtime.exclusive(this.node, () => settle(this.runtime.state, this.name, preimageHex));
  }

  cancelHoldInvoice(paymentHash: string): Promise<void> {
    return this.runtime.exclusive(this.node, () => cancel(this.runtime.state, this.name, paymentHash));
  }

  /** Every change of one of this wallet's invoices, as LND's SubscribeSingleInvoice: open, accepted, settled, canceled. */
  subscribeToInvoice(paymentHash: string, listener: UpdateListener): Promise<UpdateSubscription> {
    requireHash(paymentHash);
    return this.runtime.exclusive(this.node, () => this.runtime.updates.subscribe({ kind: 'invoice', walletName: this.name, paymentHash }, listener), 'read');
  }

  /** Every change of any of this wallet's invoices (the dev network sends holds and cancels here too; LND does not). */
  subscribeToInvoices(listener: UpdateListener): Promise<UpdateSubscription> {
    return this.runtime.exclusive(this.node, () => this.runtime.updates.subscribe({ kind: 'wallet', walletName: this.name }, listener), 'read');
  }

  /**
   * As LND's DeleteCanceledInvoice: forgets a canceled invoice so its hash can back a fresh one,
   * which is how a contributor replaces a hold invoice the coordinator refused (the escrow's hash is fixed).
   */
  deleteCanceledInvoice(paymentHash: string): Promise<void> {
    return this.runtime.exclusive(this.node, () => {
      requireHash(paymentHash);
      const invoice = this.invoices().get(paymentHash);
      if (invoice === undefined) return;
      if (invoice.status !== 'canceled') throw new LightningError('INVOICE_NOT_CANCELED', `invoice ${paymentHash} is ${invoice.status}; only a canceled invoice can be deleted`, false);
      this.invoices().delete(paymentHash);
    });
  }

  private invoices(): Map<string, DevInvoice> {
    const invoices = this.runtime.state.wallets.get(this.name);
    if (!invoices) throw new Error(`dev wallet ${this.name} is not registered with its network`);
    return invoices;
  }

  /** Signs the request first and records the invoice only once it exists, so a failed signing leaves nothing behind. */
  private async addInvoice(kind: DevInvoice['kind'], paymentHash: string, preimageHex: string | null, request: NewInvoice): Promise<string> {
    const createdAtMs = Math.floor(this.runtime.chain.nowMs() / MS_PER_SECOND) * MS_PER_SECOND;
    const bolt11 = await encodeRequest(
      { ...request, paymentHash, createdAtMs, paymentSecretHex: this.runtime.keys.secretHex(`payment-secret/${this.name}/${paymentHash}`) },
      this.runtime.keys.wallet(this.name),
    );
    this.invoices().set(paymentHash, {
      kind,
      paymentHash,
      bolt11,
      amountMsat: request.amountMsat,
      cltvDelta: request.cltvDelta,
      createdAtMs,
      expiresAtMs: createdAtMs + request.expirySec * MS_PER_SECOND,
      status: 'open',
      preimageHex,
      htlcExpiryHeight: null,
      canceledBecause: null,
    });
    touch(this.runtime.state, paymentHash);
    return bolt11;
  }
}
