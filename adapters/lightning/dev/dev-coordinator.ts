// The coordinator's simulated node (CoordinatorNode port): decode, pay once per hash, report payments. Never real money.

import { LightningError, type CoordinatorNode, type DecodedInvoice, type PayRequest, type PaymentState, type UpdateListener, type UpdateSubscription } from '../../../domain/ports/lightning.js';
import { decodeRequest } from './bolt11.js';
import { COORDINATOR_NODE } from './dev-faults.js';
import { assertMatches, paymentView, startPayment, validatePayRequest } from './dev-payments.js';
import type { DevAccess, DevRuntime } from './dev-runtime.js';
import type { NodePaymentLedger, NodePaymentPage } from '../../../replay/audit/ports.js';

/** Largest page of listPayments. */
export const DEV_MAX_PAYMENT_PAGE = 10_000;

export class DevCoordinatorNode implements CoordinatorNode, NodePaymentLedger {
  private closed = false;

  constructor(private readonly runtime: DevRuntime) {}

  publicKey(): Promise<string> {
    return this.call(() => this.runtime.keys.coordinator().publicKeyHex, 'read');
  }

  blockHeight(): Promise<number> {
    return this.call(() => this.runtime.state.heightBlocks);
  }

  decodeInvoice(bolt11: string): Promise<DecodedInvoice> {
    return this.call(() => decodeRequest(bolt11), 'read');
  }

  /** Decoding happens inside the exclusive call too, so concurrent pays of one hash see each other. */
  pay(request: PayRequest): Promise<PaymentState> {
    return this.call(async () => {
      validatePayRequest(request);
      const decoded = await decodeRequest(request.bolt11);
      assertMatches(request, decoded);
      const context = {
        state: this.runtime.state,
        faults: this.runtime.faults,
        nowMs: this.runtime.chain.nowMs(),
        walletNameOf: (key: string) => this.runtime.walletNameOf(key),
      };
      return startPayment(context, request, decoded);
    });
  }

  paymentState(paymentHash: string): Promise<PaymentState> {
    return this.call(() => paymentView(this.runtime.state.payments.get(paymentHash)), 'read');
  }

  /** Every payment made, in payment-hash order, after the hash `after`: the node's list the audit walks. */
  listPayments(page: Readonly<{ after: string | null; limit: number }>): Promise<NodePaymentPage> {
    return this.call(() => {
      if (!Number.isSafeInteger(page.limit) || page.limit < 1 || page.limit > DEV_MAX_PAYMENT_PAGE) throw new RangeError(`payment page size must be 1..${DEV_MAX_PAYMENT_PAGE}`);
      const hashes = [...this.runtime.state.payments.keys()].filter((h) => page.after === null || h > page.after).sort();
      const chosen = hashes.slice(0, page.limit);
      const payments = chosen.map((h) => {
        const p = this.runtime.state.payments.get(h)!;
        return { paymentHash: h, status: p.status, amountMsat: p.amountMsat };
      });
      return { payments, next: hashes.length > page.limit ? chosen[chosen.length - 1]! : null };
    }, 'read');
  }

  /** Every change of an outgoing payment: sent (and held, for a hold invoice), succeeded, failed. */
  subscribeToPayments(listener: UpdateListener): Promise<UpdateSubscription> {
    return this.call(() => this.runtime.updates.subscribe({ kind: 'payments' }, listener), 'read');
  }

  /** Closes this handle only; the network (and other handles) stay open. */
  async close(): Promise<void> {
    this.closed = true;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private call<T>(job: () => Promise<T> | T, access: DevAccess = 'write'): Promise<T> {
    if (this.closed) return Promise.reject(new LightningError('NODE_UNAVAILABLE', 'this dev coordinator node handle is closed; take a new one from the network', false));
    return this.runtime.exclusive(COORDINATOR_NODE, job, access);
  }
}
