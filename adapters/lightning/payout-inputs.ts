// Loads what the payout state machine needs for one assignment, from the log: its escrow and each payout kind's invoice attempts.

import { sql, type Kysely } from 'kysely';
import type { AssignmentState } from '../../domain/assignment/index.js';
import { invoiceDecider, invoiceStreamId, type InvoiceState, type PayoutKind } from '../../domain/invoice/index.js';
import type { EventStore } from '../../domain/ports/event-store.js';
import type { PayoutInputs } from '../../domain/reactions/payouts.js';
import { loadAggregate } from '../commands/command-handler.js';

/**
 * One reader for the settler and the API, so both count the same attempts. Only this
 * assignment's own escrow and invoices of the right kind count, whatever else a stream under
 * a hash may hold; a cached invoice not logged yet is the next attempt, not one of these.
 */
export async function loadPayoutInputs(store: EventStore, db: Kysely<any>, assignment: AssignmentState, escrowHash: string): Promise<PayoutInputs> {
  const assignmentId = assignment.terms?.assignmentId ?? '';
  const escrowState = (await loadAggregate(store, invoiceDecider, invoiceStreamId(escrowHash))).state;
  const isEscrow = escrowState.terms?.kind === 'escrow' && escrowState.terms.assignmentId === assignmentId;
  const attempts = { bonus: await attemptsOf(store, db, assignmentId, 'bonus'), compensation: await attemptsOf(store, db, assignmentId, 'compensation') };
  return { assignment, escrow: isEscrow ? escrowState : null, attempts };
}

async function attemptsOf(store: EventStore, db: Kysely<any>, assignmentId: string, kind: PayoutKind): Promise<InvoiceState[]> {
  const rows = await sql<{ payment_hash: string }>`SELECT payment_hash FROM lightning_contributor_invoices
    WHERE assignment_id = ${assignmentId} AND kind = ${kind} AND payment_hash IS NOT NULL ORDER BY attempt`.execute(db);
  const states: InvoiceState[] = [];
  for (const row of rows.rows) {
    const { state } = await loadAggregate(store, invoiceDecider, invoiceStreamId(row.payment_hash));
    if (state.terms?.kind === kind && state.terms.assignmentId === assignmentId) states.push(state);
  }
  return states;
}
