// The escrow process manager: releases and cancels escrows in log order, then settles each touched assignment's money from its latest state.

import type { Kysely } from 'kysely';
import { assignmentDecider, assignmentStreamId, type AssignmentEvent, type AssignmentState } from '../../domain/assignment/index.js';
import { decodeEvent } from '../../domain/codec.js';
import type { Command, Decider, Event } from '../../domain/decider.js';
import { DomainError } from '../../domain/errors.js';
import { invoiceDecider, invoiceStreamId, type InvoiceCommand, type InvoiceEvent } from '../../domain/invoice/index.js';
import { comparePositions, type EventStore, type LogPosition, type RecordedEvent } from '../../domain/ports/event-store.js';
import { IdempotencyKeyReusedError } from '../../domain/ports/event-store-errors.js';
import { impliedSettlement, reactToAssignmentEvent, reactToEscrowEvent, type EscrowReactionContext } from '../../domain/reactions/escrow.js';
import { handleCommand } from '../commands/command-handler.js';
import { migrateToLatest } from '../postgres/database.js';
import { AssignmentSettler, type SettlerDeps } from './assignment-settler.js';
import { ESCROW_REACTOR_MIGRATIONS } from './escrow-migrations.js';

export type { ContributorInvoiceSource } from './contributor-invoice-cache.js';

export type EscrowReactorDeps = SettlerDeps;

export const ESCROW_REACTOR_SUBSCRIPTION = 'escrow-reactor';

export class EscrowReactor {
  readonly settler: AssignmentSettler;

  constructor(private readonly deps: EscrowReactorDeps) {
    this.settler = new AssignmentSettler(deps);
  }

  /** Creates the reactor's tables (escrow-migrations.ts says why each exists). */
  async prepare(): Promise<void> {
    await migrateToLatest(this.deps.store.db as Kysely<any>, ESCROW_REACTOR_MIGRATIONS, 'escrow_reactor_migrations');
  }

  /**
   * Handles one batch of the log: first the escrow reactions, each against the states as of its
   * event; then every assignment the batch touched is settled from its latest state (escrow
   * opening, payouts, deadlines, budget release). Returns how many commands were appended.
   */
  async handle(batch: readonly RecordedEvent[]): Promise<number> {
    let appended = 0;
    const touched = new Set<string>();
    for (const recorded of batch) {
      if (recorded.type === 'BudgetReserved') {
        const { assignmentId, runId } = recorded.data as { assignmentId: string; runId: string };
        await this.settler.trackReservation(assignmentId, runId);
        touched.add(assignmentId);
        continue;
      }
      const assignmentId = assignmentIdOf(recorded);
      if (assignmentId === null) continue;
      touched.add(assignmentId);
      appended += await this.react(recorded);
    }
    for (const assignmentId of touched) appended += await this.settler.settleIsolated(assignmentId);
    return appended;
  }

  /** Settles the pending assignments whose deadline or recheck fell due. */
  sweep(): Promise<number> {
    return this.settler.sweep();
  }

  private async react(recorded: RecordedEvent): Promise<number> {
    if (recorded.streamId.startsWith('assignment-') && recorded.type !== 'WorkAssigned') return this.reactToAssignment(recorded);
    if (recorded.streamId.startsWith('invoice-')) return this.reactToEscrow(recorded);
    return 0;
  }

  private async reactToAssignment(recorded: RecordedEvent): Promise<number> {
    const event = decodeEvent<AssignmentEvent>(recorded);
    const assignment = await stateAsOf(this.deps.store, assignmentDecider, recorded.streamId, recorded, true);
    if (assignment.terms === null) return 0;
    const escrow = await stateAsOf(this.deps.store, invoiceDecider, invoiceStreamId(this.deps.preimages.escrow(assignment.terms.assignmentId).paymentHash), recorded);
    return this.issue(reactToAssignmentEvent(event, assignment, escrow.status === 'none' ? null : escrow, this.context()), recorded);
  }

  private async reactToEscrow(recorded: RecordedEvent): Promise<number> {
    const event = decodeEvent<InvoiceEvent>(recorded);
    if (event.data.kind !== 'escrow') return 0;
    const escrow = await stateAsOf(this.deps.store, invoiceDecider, recorded.streamId, recorded, true);
    const { state: assignment, payingVerdictAt } = await assignmentWithPayingVerdict(this.deps.store, assignmentStreamId(event.data.assignmentId), recorded);
    const [opened] = await this.deps.store.readStream(recorded.streamId, { fromRevision: 0, maxCount: 1 });
    // Log order, not clocks: the escrow settles only if its InvoiceOpened precedes the verdict that pays.
    const openedBefore = opened !== undefined && payingVerdictAt !== null && comparePositions(opened.position, payingVerdictAt) < 0;
    return this.issue(reactToEscrowEvent(event, escrow, assignment, openedBefore, this.context()), recorded);
  }

  private context(): EscrowReactionContext {
    return {
      nowMs: this.deps.nowMs(),
      escrowPreimageHex: (assignmentId) => this.deps.preimages.escrow(assignmentId).preimageHex,
      payoutInvoice: () => {
        throw new Error('escrow reactions ask for no payout invoice; payouts are settled by the AssignmentSettler');
      },
    };
  }

  /** Issues the commands with idempotency keys tied to the reacting event, so a redelivered event issues nothing new. */
  private async issue(commands: readonly InvoiceCommand[], cause: RecordedEvent): Promise<number> {
    let appended = 0;
    for (const [index, command] of commands.entries()) {
      try {
        const outcome = await handleCommand(this.deps.store, invoiceDecider, invoiceStreamId(command.data.paymentHash), command, {
          newEventId: this.deps.newEventId,
          idempotencyKey: `reaction:${cause.eventId}:${index}`,
        });
        if (outcome.status === 'appended') appended += 1;
      } catch (error) {
        // Another escrow process reacted to this event first (its clock differed): its command stands.
        if (error instanceof IdempotencyKeyReusedError) continue;
        if (!(error instanceof DomainError)) throw error;
        // The log moved on (a contributor canceled first, say): the decider's refusal is the answer.
        this.deps.onRefused?.(command, error);
      }
    }
    return appended;
  }
}

/** The assignment an event concerns: its own stream's, or the one an invoice event names. */
function assignmentIdOf(recorded: RecordedEvent): string | null {
  if (recorded.streamId.startsWith('assignment-')) return recorded.streamId.slice('assignment-'.length);
  if (recorded.streamId.startsWith('invoice-')) {
    const assignmentId = (recorded.data as { assignmentId?: unknown }).assignmentId;
    return typeof assignmentId === 'string' ? assignmentId : null;
  }
  return null;
}

/** An aggregate's state as of a logged event: the event itself included or not, and only what precedes it in checkpoint order. */
export async function stateAsOf<C extends Command, E extends Event, S>(
  store: EventStore,
  decider: Decider<C, E, S>,
  streamId: string,
  at: RecordedEvent,
  inclusive = false,
  visit: (state: S, position: LogPosition) => void = () => {},
): Promise<S> {
  let state = decider.initialState();
  for (let from = 0; ; ) {
    const page = await store.readStream(streamId, { fromRevision: from, maxCount: 1_000 });
    for (const recorded of page) {
      const order = comparePositions(recorded.position, at.position);
      if (order > 0 || (order === 0 && !inclusive)) return state;
      state = decider.evolve(state, decodeEvent<E>(recorded));
      visit(state, recorded.position);
    }
    if (page.length < 1_000) return state;
    from = page[page.length - 1]!.revision + 1;
  }
}

/** The assignment as of `at`, and the position of the event that made its settlement 'pay' (acceptance or overturn), if any. */
async function assignmentWithPayingVerdict(store: EventStore, streamId: string, at: RecordedEvent): Promise<{ state: AssignmentState; payingVerdictAt: LogPosition | null }> {
  let payingVerdictAt: LogPosition | null = null;
  let paid = false;
  const state = await stateAsOf(store, assignmentDecider, streamId, at, false, (s, position) => {
    const pays = impliedSettlement(s) === 'pay';
    if (pays && !paid) payingVerdictAt = position;
    paid = pays;
  });
  return { state, payingVerdictAt };
}

export type { AssignmentState };
