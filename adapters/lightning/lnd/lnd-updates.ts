// LND's update streams (ln-service subscribeToPayments, subscribeToInvoice, subscribeToInvoices) as the port's hints, and their end as one onDrop.

import type { EventEmitter } from 'node:events';
import { LightningError, type HoldInvoiceState, type InvoiceUpdate, type UpdateListener, type UpdateSubscription } from '../../../domain/ports/lightning.js';
import { toLightningError } from './lnd-errors.js';

/** The fields of ln-service's invoice_updated event that say the invoice's state. */
export type LndInvoiceUpdate = Readonly<{ id?: unknown; is_confirmed?: unknown; is_canceled?: unknown; is_held?: unknown }>;

/** The invoice's state as the update claims it; `null` for an event without a usable hash (it is dropped). */
export function invoiceUpdateFrom(event: LndInvoiceUpdate): InvoiceUpdate | null {
  const paymentHash = hashOf(event.id);
  if (paymentHash === null) return null;
  const status: HoldInvoiceState['status'] = event.is_confirmed === true ? 'settled' : event.is_canceled === true ? 'canceled' : event.is_held === true ? 'accepted' : 'open';
  return { paymentHash, status };
}

/** A payment event of subscribeToPayments: 'paying' (HTLCs out), 'confirmed', 'failed'. */
export function paymentUpdateFrom(kind: 'paying' | 'confirmed' | 'failed', event: Readonly<{ id?: unknown }>): InvoiceUpdate | null {
  const paymentHash = hashOf(event.id);
  if (paymentHash === null) return null;
  return { paymentHash, status: kind === 'paying' ? 'in_flight' : kind === 'confirmed' ? 'succeeded' : 'failed' };
}

function hashOf(id: unknown): string | null {
  if (typeof id !== 'string') return null;
  const hash = id.toLowerCase();
  return /^[0-9a-f]{64}$/.test(hash) ? hash : null;
}

/**
 * Relays one ln-service subscription emitter. Its first 'error' or 'end' ends it for good: the
 * listeners are removed (which cancels the gRPC stream and stops ln-service's own restart loop),
 * and the subscriber hears onDrop once, so resubscribing stays the subscriber's one decision.
 */
export function relay(emitter: EventEmitter, events: Readonly<Record<string, (event: any) => InvoiceUpdate | null>>, listener: UpdateListener, action: string): UpdateSubscription {
  let open = true;
  const end = (error: LightningError | null) => {
    if (!open) return;
    open = false;
    emitter.removeAllListeners();
    // ln-service emits 'error' on an emitter with no listener left, which would throw: keep one that swallows it.
    emitter.on('error', () => {});
    if (error !== null) listener.onDrop(error);
  };
  for (const [name, map] of Object.entries(events)) {
    emitter.on(name, (event: unknown) => {
      if (!open) return;
      const update = map(event);
      if (update !== null) listener.onUpdate(update);
    });
  }
  emitter.on('error', (error: unknown) => end(toLightningError(error, action)));
  emitter.on('end', () => end(new LightningError('NODE_UNAVAILABLE', `LND ended the stream while we tried to ${action}; subscribe again`, true)));
  return { close: async () => end(null) };
}
