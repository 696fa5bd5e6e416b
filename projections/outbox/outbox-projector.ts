// The Lightning outbox read model: each invoice's latest status, so the dispatcher finds unfinished intents by index.

import type { Kysely } from 'kysely';
import { invariant } from '../../domain/errors.js';
import type { InvoiceEvent } from '../../domain/invoice/invoice.state.js';
import type { ProjectedEvent, Projector } from '../projector.js';
import { OUTBOX_MIGRATIONS } from './migrations/index.js';
import type { OutboxInvoicesTable, OutboxTables } from './schema.js';

type Row = { [K in keyof OutboxInvoicesTable]: OutboxInvoicesTable[K] extends { __select__: infer S } ? S : OutboxInvoicesTable[K] };

const STATUS_AFTER: Readonly<Record<Exclude<InvoiceEvent['type'], 'InvoiceOpened'>, string>> = {
  InvoiceHeld: 'held',
  EscrowReleaseRequested: 'releasing',
  EscrowCancelRequested: 'canceling',
  InvoiceSettled: 'settled',
  InvoiceCanceled: 'canceled',
  InvoiceExpired: 'expired',
  PaymentSent: 'sent',
  PaymentFailed: 'failed',
  PaymentAbandoned: 'abandoned',
};

export const outboxProjector: Projector = {
  name: 'outbox',
  migrations: OUTBOX_MIGRATIONS,
  tables: [{ name: 'invoices', orderBy: ['payment_hash'] }],
  async apply(db: Kysely<any>, events: readonly ProjectedEvent[]): Promise<void> {
    const outbox = db as Kysely<OutboxTables>;
    const invoiceEvents = events.map((e) => e.event).filter((e): e is InvoiceEvent => e.type in STATUS_AFTER || e.type === 'InvoiceOpened');
    if (invoiceEvents.length === 0) return;
    const hashes = [...new Set(invoiceEvents.map((e) => e.data.paymentHash))];
    const rows = new Map<string, Row>();
    for (const row of await outbox.selectFrom('invoices').selectAll().where('payment_hash', 'in', hashes).execute()) rows.set(row.payment_hash, row as Row);
    for (const event of invoiceEvents) applyEvent(rows, event);
    const changed = [...rows.values()];
    await outbox
      .insertInto('invoices')
      .values(changed)
      .onConflict((oc) =>
        oc.column('payment_hash').doUpdateSet((eb) => ({
          status: eb.ref('excluded.status'),
          was_held: eb.ref('excluded.was_held'),
          released_preimage_hex: eb.ref('excluded.released_preimage_hex'),
          failed_attempts: eb.ref('excluded.failed_attempts'),
          updated_at_ms: eb.ref('excluded.updated_at_ms'),
        })),
      )
      .execute();
  },
};

function applyEvent(rows: Map<string, Row>, event: InvoiceEvent): void {
  const d = event.data;
  if (event.type === 'InvoiceOpened') {
    invariant(!rows.has(d.paymentHash), `outbox: payment hash ${d.paymentHash} opened twice`);
    rows.set(d.paymentHash, {
      payment_hash: d.paymentHash,
      kind: d.kind,
      status: 'open',
      assignment_id: d.assignmentId,
      run_id: d.runId,
      contributor_id: d.contributorId,
      amount_msat: d.amountMsat.toString(),
      bolt11: event.data.bolt11,
      expires_at_ms: String(event.data.expiresAtMs),
      cltv_expiry_height: event.data.cltvExpiryHeight === null ? null : String(event.data.cltvExpiryHeight),
      was_held: false,
      released_preimage_hex: null,
      failed_attempts: 0,
      updated_at_ms: String(d.atMs),
      max_fee_msat: event.data.maxFeeMsat === undefined ? null : event.data.maxFeeMsat.toString(),
    });
    return;
  }
  const row = rows.get(d.paymentHash);
  invariant(row !== undefined, `outbox: ${event.type} for ${d.paymentHash}, which was never opened`);
  row.status = STATUS_AFTER[event.type];
  row.updated_at_ms = String(d.atMs);
  if (event.type === 'InvoiceHeld') row.was_held = true;
  if (event.type === 'EscrowReleaseRequested') row.released_preimage_hex = event.data.preimageHex;
  if (event.type === 'PaymentFailed') row.failed_attempts += 1;
}
