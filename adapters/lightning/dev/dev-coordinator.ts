// The coordinator's simulated node (CoordinatorNode port): decode, pay once per hash, report payments. Never real money.

import { LightningError, type CoordinatorNode, type DecodedInvoice, type PayRequest, type PaymentState, type UpdateListener, type UpdateSubscription } from '../../../domain/ports/lightning.js';
import { decodeRequest } from './bolt11.js';
import { COORDINATOR_NODE } from './dev-faults.js';
import { assertMatches, paymentView, startPayment, validatePayRequest } from './dev-payments.js';
import type { DevAccess, DevRuntime } from './dev-runtime.js';

export class DevCoordinatorNode implements CoordinatorNode {
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
