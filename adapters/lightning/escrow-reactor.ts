// Runs the pure escrow reactions: assignment and escrow events in, intent commands (open, release, cancel, pay) out.

import { sql, type Kysely, type Migration } from 'kysely';
import { migrateToLatest } from '../postgres/database.js';
import { assignmentDecider, assignmentStreamId, type AssignmentEvent, type AssignmentState } from '../../domain/assignment/index.js';
import { contributorDecider, contributorStreamId } from '../../domain/contributor/index.js';
import type { Command, Decider, Event } from '../../domain/decider.js';
import { DomainError } from '../../domain/errors.js';
import { invoiceDecider, invoiceStreamId, type InvoiceCommand, type InvoiceEvent, type InvoiceState } from '../../domain/invoice/index.js';
import { comparePositions, type EventStore, type RecordedEvent } from '../../domain/ports/event-store.js';
import type { CoordinatorNode } from '../../domain/ports/lightning.js';
import { reactToAssignmentEvent, reactToEscrowEvent, type EscrowReactionContext, type PayoutRequest } from '../../domain/reactions/escrow.js';
import { runDecider, runStreamId } from '../../domain/run/index.js';
import { decodeEvent, handleCommand } from '../commands/command-handler.js';
import type { PostgresEventStore } from '../postgres/postgres-event-store.js';
import { PreimageDeriver } from './preimages.js';
import { verifyEscrowInvoice } from './verify-escrow-invoice.js';

/** Where contributors' invoices come from: the development network asks its wallets; production, the API. */
export interface ContributorInvoiceSource {
  /** The contributor's hold invoice for the escrow's hash, or null while they have not provided one. */
  holdInvoice(request: Readonly<{ assignmentId: string; contributorId: string; paymentHash: string; amountMsat: bigint; expirySec: number; cltvDelta: number }>): Promise<string | null>;
  /** An ordinary invoice for a bonus or compensation, or null while the contributor has not provided one. */
  payoutInvoice(request: PayoutRequest): Promise<string | null>;
}

export type EscrowReactorDeps = Readonly<{
  store: PostgresEventStore;
  node: CoordinatorNode;
  invoices: ContributorInvoiceSource;
  preimages: PreimageDeriver;
  nowMs: () => number;
  newEventId: () => string;
  /** Network name the coordinator's node runs on ('regtest' for the development network). */
  network: string;
  /** Commands the reactions asked for that the deciders refused (races the log already settled). */
  onRefused?: (command: InvoiceCommand, error: DomainError) => void;
}>;

export const ESCROW_REACTOR_SUBSCRIPTION = 'escrow-reactor';
/**
 * The reactor's tables. Contributors' invoices: one per (assignment, kind), ever — a retried
 * reaction gets the invoice the first attempt obtained, so a crash between asking the contributor
 * and logging the invoice can never lead to a second invoice, or a second payment. Deferred
 * reactions: events waiting for an invoice only the contributor can provide, retried every pass.
 */
const ESCROW_REACTOR_MIGRATIONS: Readonly<Record<string, Migration>> = {
  '0001_escrow_reactor': {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('lightning_contributor_invoices')
        .addColumn('assignment_id', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('bolt11', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('lightning_contributor_invoices_pk', ['assignment_id', 'kind'])
        .execute();
      await db.schema
        .createTable('lightning_deferred_reactions')
        .addColumn('stream_id', 'text', (c) => c.notNull())
        .addColumn('revision', 'integer', (c) => c.notNull())
        .addColumn('deferred_at_ms', 'int8', (c) => c.notNull())
        .addPrimaryKeyConstraint('lightning_deferred_reactions_pk', ['stream_id', 'revision'])
        .execute();
    },
  },
};

/** Stands in for a payout invoice the contributor has not posted yet; a command naming it is held back. */
const AWAITED_INVOICE = Object.freeze({ paymentHash: '0'.repeat(64), bolt11: 'awaited', expiresAtMs: 0 });

type Reaction = Readonly<{ ready: readonly { command: InvoiceCommand; index: number }[]; waiting: boolean }>;

function awaitsInvoice(command: InvoiceCommand): boolean {
  return command.type === 'OpenInvoice' && command.data.paymentHash === AWAITED_INVOICE.paymentHash;
}

/** Set-aside reactions retried per pass: bounds the work a pile of absent contributors can cause. */
export const MAX_DEFERRED_PER_PASS = 200;

export class EscrowReactor {
  constructor(private readonly deps: EscrowReactorDeps) {}

  /** Creates the reactor's tables (ESCROW_REACTOR_MIGRATIONS says why each exists). */
  async prepare(): Promise<void> {
    await migrateToLatest(this.deps.store.db as Kysely<any>, ESCROW_REACTOR_MIGRATIONS, 'escrow_reactor_migrations');
  }

  /**
   * Handles one batch of the log (the CatchUpSubscription handler). A reaction that needs an
   * invoice the contributor has not provided yet is set aside, not retried in place: one
   * contributor's missing invoice must not hold up everyone else's escrow.
   */
  async handle(batch: readonly RecordedEvent[]): Promise<void> {
    for (const recorded of batch) {
      if ((await this.react(recorded)) === 'waiting') {
        await sql`INSERT INTO lightning_deferred_reactions (stream_id, revision, deferred_at_ms)
          VALUES (${recorded.streamId}, ${recorded.revision}, ${String(this.deps.nowMs())}) ON CONFLICT DO NOTHING`.execute(this.deps.store.db);
      }
    }
  }

  /** Reacts again to each set-aside event whose invoice may have arrived; returns how many went through. */
  async retryDeferred(): Promise<number> {
    const db = this.deps.store.db as Kysely<any>;
    const rows = await sql<{ stream_id: string; revision: number }>`SELECT stream_id, revision FROM lightning_deferred_reactions
      ORDER BY deferred_at_ms, stream_id, revision LIMIT ${MAX_DEFERRED_PER_PASS}`.execute(db);
    let done = 0;
    for (const row of rows.rows) {
      const [recorded] = await this.deps.store.readStream(row.stream_id, { fromRevision: row.revision, maxCount: 1 });
      if (recorded && (await this.react(recorded)) === 'waiting') continue;
      await sql`DELETE FROM lightning_deferred_reactions WHERE stream_id = ${row.stream_id} AND revision = ${row.revision}`.execute(db);
      done += 1;
    }
    return done;
  }

  private async react(recorded: RecordedEvent): Promise<'done' | 'waiting'> {
    if (recorded.type === 'WorkAssigned') return this.openEscrow(recorded);
    if (recorded.streamId.startsWith('assignment-')) return this.reactToAssignment(recorded);
    if (recorded.streamId.startsWith('invoice-')) return this.reactToEscrow(recorded);
    return 'done';
  }

  /** Work assigned: fetch the contributor's hold invoice for the derived hash, verify it, log it as the escrow to pay. */
  private async openEscrow(recorded: RecordedEvent): Promise<'done' | 'waiting'> {
    const terms = decodeEvent<AssignmentEvent>(recorded);
    if (terms.type !== 'WorkAssigned') return 'done';
    const { assignmentId, contributorId, runId, baseRewardMsat } = terms.data;
    const run = await stateAsOf(this.deps.store, runDecider, runStreamId(runId), recorded);
    const contributor = await stateAsOf(this.deps.store, contributorDecider, contributorStreamId(contributorId), recorded);
    const policy = run.status === 'none' ? null : run.escrowPolicy;
    const nodeKey = contributor.status === 'none' ? null : contributor.lightningNodePubkeyHex;
    if (!policy || !nodeKey) return 'done';
    const { paymentHash } = this.deps.preimages.escrow(assignmentId);
    if ((await this.deps.store.readStream(invoiceStreamId(paymentHash), { maxCount: 1 })).length > 0) return 'done';
    const request = { assignmentId, contributorId, paymentHash, amountMsat: baseRewardMsat, expirySec: policy.invoiceExpirySec, cltvDelta: policy.cltvDeltaBlocks };
    const bolt11 = await this.cachedInvoice(assignmentId, 'escrow', () => this.deps.invoices.holdInvoice(request));
    if (bolt11 === null) return 'waiting';
    const decoded = await this.deps.node.decodeInvoice(bolt11);
    const nowMs = this.deps.nowMs();
    verifyEscrowInvoice(decoded, { paymentHash, amountMsat: baseRewardMsat, destination: nodeKey, nowMs, minRemainingMs: 60_000, maxCltvDelta: policy.cltvDeltaBlocks, network: this.deps.network });
    const height = await this.deps.node.blockHeight();
    const command: InvoiceCommand = {
      type: 'OpenInvoice',
      data: { paymentHash, kind: 'escrow', assignmentId, runId, contributorId, amountMsat: baseRewardMsat, bolt11, expiresAtMs: decoded.expiresAtMs, cltvExpiryHeight: height + decoded.cltvDelta },
      metadata: { nowMs },
    };
    await this.issue([command], recorded);
    return 'done';
  }

  private async reactToAssignment(recorded: RecordedEvent): Promise<'done' | 'waiting'> {
    const event = decodeEvent<AssignmentEvent>(recorded);
    const assignment = await stateAsOf(this.deps.store, assignmentDecider, recorded.streamId, recorded, true);
    if (assignment.terms === null) return 'done';
    const escrowHash = this.deps.preimages.escrow(assignment.terms.assignmentId).paymentHash;
    const escrow = await this.escrowAsOf(escrowHash, recorded);
    const reaction = await this.withPayoutInvoices((ctx) => reactToAssignmentEvent(event, assignment, escrow, ctx));
    await this.issueIndexed(reaction.ready, recorded);
    return reaction.waiting ? 'waiting' : 'done';
  }

  private async reactToEscrow(recorded: RecordedEvent): Promise<'done' | 'waiting'> {
    const event = decodeEvent<InvoiceEvent>(recorded);
    if (event.data.kind !== 'escrow') return 'done';
    const escrow = await stateAsOf(this.deps.store, invoiceDecider, recorded.streamId, recorded, true);
    const assignment = await stateAsOf(this.deps.store, assignmentDecider, assignmentStreamId(event.data.assignmentId), recorded);
    const reaction = await this.withPayoutInvoices((ctx) => reactToEscrowEvent(event, escrow, assignment, ctx));
    await this.issueIndexed(reaction.ready, recorded);
    return reaction.waiting ? 'waiting' : 'done';
  }

  private async escrowAsOf(paymentHash: string, recorded: RecordedEvent): Promise<InvoiceState | null> {
    const escrow = await stateAsOf(this.deps.store, invoiceDecider, invoiceStreamId(paymentHash), recorded);
    return escrow.status === 'none' ? null : escrow;
  }

  /**
   * The reactions are pure and want payout invoices synchronously: run them once to learn which
   * (assignment, kind) invoices they need, fetch those through the durable cache, and run again.
   */
  private async withPayoutInvoices(react: (ctx: EscrowReactionContext) => InvoiceCommand[]): Promise<Reaction> {
    const wanted: PayoutRequest[] = [];
    react(this.context(() => AWAITED_INVOICE, wanted));
    const known = new Map<string, { paymentHash: string; bolt11: string; expiresAtMs: number }>();
    for (const request of wanted) known.set(`${request.assignmentId}:${request.kind}`, (await this.cachedPayoutInvoice(request)) ?? AWAITED_INVOICE);
    const commands = react(this.context((r) => known.get(`${r.assignmentId}:${r.kind}`)!, []));
    // A payout whose invoice the contributor has not posted waits; everything else (a release, say) goes now.
    // Indices stay those of the full list, so a later retry re-issues the rest under the same idempotency keys.
    const ready = commands.map((command, index) => ({ command, index })).filter(({ command }) => !awaitsInvoice(command));
    return { ready, waiting: ready.length < commands.length };
  }

  private context(lookup: EscrowReactionContext['payoutInvoice'], wanted: PayoutRequest[]): EscrowReactionContext {
    return {
      nowMs: this.deps.nowMs(),
      escrowPreimageHex: (assignmentId) => this.deps.preimages.escrow(assignmentId).preimageHex,
      payoutInvoice: (request) => {
        wanted.push(request);
        return lookup(request);
      },
    };
  }

  /** One invoice per (assignment, kind), ever: a second request gets the first invoice, so nothing is paid twice. */
  private async cachedPayoutInvoice(request: PayoutRequest): Promise<{ paymentHash: string; bolt11: string; expiresAtMs: number } | null> {
    const bolt11 = await this.cachedInvoice(request.assignmentId, request.kind, () => this.deps.invoices.payoutInvoice(request));
    if (bolt11 === null) return null;
    const decoded = await this.deps.node.decodeInvoice(bolt11);
    if (decoded.amountMsat !== request.amountMsat) throw new DomainError('PAYOUT_INVOICE_MISMATCH', `payout invoice for ${request.assignmentId}/${request.kind} asks ${String(decoded.amountMsat)} msat, expected ${request.amountMsat}`);
    return { paymentHash: decoded.paymentHash, bolt11, expiresAtMs: decoded.expiresAtMs };
  }

  private async cachedInvoice(assignmentId: string, kind: string, obtain: () => Promise<string | null>): Promise<string | null> {
    const db = this.deps.store.db as Kysely<any>;
    const find = async () => (await sql<{ bolt11: string }>`SELECT bolt11 FROM lightning_contributor_invoices WHERE assignment_id = ${assignmentId} AND kind = ${kind}`.execute(db)).rows[0]?.bolt11;
    const cached = await find();
    if (cached !== undefined) return cached;
    const bolt11 = await obtain();
    if (bolt11 === null) return null;
    // A racing reactor may have stored one first: the first one stored wins for everyone.
    await sql`INSERT INTO lightning_contributor_invoices (assignment_id, kind, bolt11) VALUES (${assignmentId}, ${kind}, ${bolt11}) ON CONFLICT DO NOTHING`.execute(db);
    return (await find())!;
  }

  private issue(commands: readonly InvoiceCommand[], cause: RecordedEvent): Promise<void> {
    return this.issueIndexed(commands.map((command, index) => ({ command, index })), cause);
  }

  /** Issues the commands with idempotency keys tied to the reacting event, so a redelivered event issues nothing new. */
  private async issueIndexed(commands: readonly { command: InvoiceCommand; index: number }[], cause: RecordedEvent): Promise<void> {
    for (const { command, index } of commands) {
      try {
        await handleCommand(this.deps.store, invoiceDecider, invoiceStreamId(command.data.paymentHash), command, {
          newEventId: this.deps.newEventId,
          idempotencyKey: `reaction:${cause.eventId}:${index}`,
        });
      } catch (error) {
        if (!(error instanceof DomainError)) throw error;
        // The log moved on (a contributor canceled first, say): the decider's refusal is the answer.
        this.deps.onRefused?.(command, error);
      }
    }
  }
}

/** An aggregate's state as of a logged event: the event itself included or not, and only what precedes it in checkpoint order. */
export async function stateAsOf<C extends Command, E extends Event, S>(
  store: EventStore,
  decider: Decider<C, E, S>,
  streamId: string,
  at: RecordedEvent,
  inclusive = false,
): Promise<S> {
  let state = decider.initialState();
  for (let from = 0; ; ) {
    const page = await store.readStream(streamId, { fromRevision: from, maxCount: 1_000 });
    for (const recorded of page) {
      const order = comparePositions(recorded.position, at.position);
      if (order > 0 || (order === 0 && !inclusive)) return state;
      state = decider.evolve(state, decodeEvent<E>(recorded));
    }
    if (page.length < 1_000) return state;
    from = page[page.length - 1]!.revision + 1;
  }
}

export type { AssignmentState };
