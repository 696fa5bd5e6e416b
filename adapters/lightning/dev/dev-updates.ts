// The dev network's update streams: what LND's subscribeToPayments, subscribeToInvoice and subscribeToInvoices deliver, from the hashes each call touched.

import { LightningError, type InvoiceUpdate, type UpdateListener, type UpdateSubscription } from '../../../domain/ports/lightning.js';
import { holdView } from './dev-invoices.js';
import { paymentView } from './dev-payments.js';
import type { DevState } from './dev-state.js';

/** Which stream: the coordinator's payments, one wallet's invoices, or one invoice of one wallet. */
export type DevStream = Readonly<{ kind: 'payments' } | { kind: 'wallet'; walletName: string } | { kind: 'invoice'; walletName: string; paymentHash: string }>;

type Subscriber = { readonly stream: DevStream; readonly listener: UpdateListener; open: boolean };

/**
 * Subscribers by stream. The network publishes after each call, inside it, so by the time a call
 * that changed a payment returns, every subscriber has been told; a listener that throws is its
 * own problem and never reaches the caller who changed the state.
 */
export class DevUpdateHub {
  private readonly subscribers = new Set<Subscriber>();
  /** Updates published, per stream kind: tests read it to see that a stream carried something. */
  published = 0;

  subscribe(stream: DevStream, listener: UpdateListener): UpdateSubscription {
    const subscriber: Subscriber = { stream, listener, open: true };
    this.subscribers.add(subscriber);
    return {
      close: async () => {
        subscriber.open = false;
        this.subscribers.delete(subscriber);
      },
    };
  }

  get size(): number {
    return this.subscribers.size;
  }

  /** Tells each subscriber what changed among `hashes`, as the node now sees it. */
  publish(state: DevState, hashes: readonly string[]): void {
    if (hashes.length === 0 || this.subscribers.size === 0) return;
    for (const paymentHash of hashes) {
      const payment = state.payments.get(paymentHash);
      for (const subscriber of [...this.subscribers]) {
        const { stream } = subscriber;
        if (stream.kind === 'payments') {
          if (payment !== undefined) this.deliver(subscriber, { paymentHash, status: paymentView(payment).status });
          continue;
        }
        if (stream.kind === 'invoice' && stream.paymentHash !== paymentHash) continue;
        const invoice = state.wallets.get(stream.walletName)?.get(paymentHash);
        if (invoice !== undefined) this.deliver(subscriber, { paymentHash, status: holdView(invoice).status });
      }
    }
  }

  /** Ends the streams `which` selects, as a node restart or a lost connection does: each hears onDrop once. */
  drop(which: (stream: DevStream) => boolean, error: LightningError): number {
    let dropped = 0;
    for (const subscriber of [...this.subscribers]) {
      if (!which(subscriber.stream)) continue;
      subscriber.open = false;
      this.subscribers.delete(subscriber);
      dropped += 1;
      try {
        subscriber.listener.onDrop(error);
      } catch {
        // A subscriber's failure is its own.
      }
    }
    return dropped;
  }

  private deliver(subscriber: Subscriber, update: InvoiceUpdate): void {
    if (!subscriber.open) return;
    this.published += 1;
    try {
      subscriber.listener.onUpdate(update);
    } catch {
      // A subscriber's failure is its own.
    }
  }
}

/** The stream a node ref's outage ends. */
export function streamOf(stream: DevStream, node: Readonly<{ kind: 'coordinator' } | { kind: 'wallet'; name: string }>): boolean {
  if (node.kind === 'coordinator') return stream.kind === 'payments';
  return stream.kind !== 'payments' && stream.walletName === node.name;
}
