// The event catalog: every domain event type, the aggregate that emits it, its schema version and what it records.

import type { AssignmentEvent } from './assignment/assignment.state.js';
import type { ContributorEvent } from './contributor/contributor.state.js';
import type { InvoiceEvent } from './invoice/invoice.state.js';
import type { RunEvent } from './run/run.state.js';

export type DomainEvent = RunEvent | ContributorEvent | AssignmentEvent | InvoiceEvent;
export type DomainEventType = DomainEvent['type'];
export type AggregateName = 'run' | 'contributor' | 'assignment' | 'invoice';

export type EventCatalogEntry = Readonly<{ aggregate: AggregateName; schemaVersion: 1; description: string }>;

/** Typed as a full record, so adding an event without cataloguing it fails to compile. */
export const EVENT_CATALOG: Readonly<Record<DomainEventType, EventCatalogEntry>> = Object.freeze({
  RunOpened: { aggregate: 'run', schemaVersion: 1, description: 'A coordinator opened a run: step graph, initial checkpoint, shards and the reward, verification and escrow policies.' },
  RunFunded: { aggregate: 'run', schemaVersion: 1, description: 'Money entered the run budget from a customer (revenue) or a subsidy pool.' },
  BudgetReserved: { aggregate: 'run', schemaVersion: 1, description: 'Part of the uncommitted budget was set aside for an assignment (pending transfer).' },
  BudgetReleased: { aggregate: 'run', schemaVersion: 1, description: 'A reservation closed: the spent part was paid out, the rest returned to the budget.' },
  CheckpointPublished: { aggregate: 'run', schemaVersion: 1, description: 'A new model checkpoint (digest) was published at a higher step.' },
  RunClosed: { aggregate: 'run', schemaVersion: 1, description: 'The run stopped taking funding, reservations and checkpoints; open reservations may still be released.' },
  ContributorRegistered: { aggregate: 'contributor', schemaVersion: 1, description: 'A contributor registered an ed25519 signing key and a Lightning node key.' },
  ContributorSuspended: { aggregate: 'contributor', schemaVersion: 1, description: 'A contributor was suspended, with the reason.' },
  WorkAssigned: { aggregate: 'assignment', schemaVersion: 1, description: 'Work was assigned: run, step, shard, batch, base checkpoint, seed, base reward, bonus bound, per-payment fee ceiling, deadline and dispute window.' },
  GradientSubmitted: { aggregate: 'assignment', schemaVersion: 1, description: 'The assignee submitted a gradient: digest, size, encoding, claimed loss and compute time.' },
  SubmissionAccepted: { aggregate: 'assignment', schemaVersion: 1, description: 'A validator accepted the submission with a quality score, a bonus and evidence.' },
  SubmissionRejected: { aggregate: 'assignment', schemaVersion: 1, description: 'A validator rejected the submission with a reason code and evidence; the dispute window opens.' },
  RejectionDisputed: { aggregate: 'assignment', schemaVersion: 1, description: 'The assignee disputed the rejection within the dispute window.' },
  ReplayRequested: { aggregate: 'assignment', schemaVersion: 1, description: 'A replay job was requested to re-run the disputed step.' },
  ReplayVerdictRecorded: { aggregate: 'assignment', schemaVersion: 1, description: 'The replay job reported match or mismatch with its recipe, metric, tolerance, provider, device and duration.' },
  DisputeResolved: { aggregate: 'assignment', schemaVersion: 1, description: 'The dispute was resolved as the verdict implies: overturned on a match (paid), upheld on a mismatch.' },
  AssignmentExpired: { aggregate: 'assignment', schemaVersion: 1, description: 'The deadline passed with no submission; the assignment can no longer be paid.' },
  RejectionFinalized: { aggregate: 'assignment', schemaVersion: 1, description: 'The dispute window of a rejection closed with no dispute: the rejection is final and the reward forfeited.' },
  ContributorInvoiceRefused: { aggregate: 'assignment', schemaVersion: 1, description: "A contributor's hold or payout invoice failed the coordinator's check (kind, code and reason); it was set aside and they may post a fresh one." },
  PayoutAbandoned: { aggregate: 'assignment', schemaVersion: 1, description: 'A bonus or compensation payout was given up for good (unclaimed, or every invoice failed); its budget is released.' },
  InvoiceOpened: { aggregate: 'invoice', schemaVersion: 1, description: 'An invoice was recorded for a payment hash: an escrow hold invoice or a bonus/compensation payout.' },
  InvoiceHeld: { aggregate: 'invoice', schemaVersion: 1, description: "The coordinator's payment to an escrow hold invoice is locked in the HTLC (pending transfer)." },
  EscrowReleaseRequested: { aggregate: 'invoice', schemaVersion: 1, description: 'Outbox intent: the verdict pays, so the preimage is released to the contributor to settle the held HTLC.' },
  EscrowCancelRequested: { aggregate: 'invoice', schemaVersion: 1, description: "Outbox intent: the verdict forfeits, so the contributor's node is asked to cancel the hold invoice." },
  InvoiceSettled: { aggregate: 'invoice', schemaVersion: 1, description: 'The escrow was settled with the released preimage (posted transfer), with the routing fee paid.' },
  InvoiceCanceled: { aggregate: 'invoice', schemaVersion: 1, description: 'The escrow was canceled before settlement (voided transfer).' },
  InvoiceExpired: { aggregate: 'invoice', schemaVersion: 1, description: 'The escrow expired before settlement (voided transfer).' },
  PaymentSent: { aggregate: 'invoice', schemaVersion: 1, description: 'A bonus or compensation payout succeeded, with its routing fee and preimage.' },
  PaymentFailed: { aggregate: 'invoice', schemaVersion: 1, description: 'A bonus or compensation payout attempt failed, with the failure code; it may be retried.' },
  PaymentAbandoned: { aggregate: 'invoice', schemaVersion: 1, description: 'A payout invoice will never be paid (expired, or its attempts ran out); the payout needs a fresh invoice.' },
});

export function isDomainEventType(type: unknown): type is DomainEventType {
  return typeof type === 'string' && Object.hasOwn(EVENT_CATALOG, type);
}

export const DOMAIN_EVENT_TYPES: readonly DomainEventType[] = Object.freeze(Object.keys(EVENT_CATALOG) as DomainEventType[]);
