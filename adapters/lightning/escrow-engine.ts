// Wires the escrow machinery under one single-writer lease: reactions and settlements issue intents, the outbox lists them, the dispatcher performs them.

import type { Kysely } from 'kysely';
import { outboxProjector } from '../../projections/outbox/outbox-projector.js';
import { ProjectionRunner } from '../../projections/runner.js';
import type { LightningError, UpdateSubscription } from '../../domain/ports/lightning.js';
import { LightningDispatcher, type DispatcherDeps } from './dispatcher.js';
import { InProcessLease, type SingleWriterLease } from './escrow-lease.js';
import { ESCROW_REACTOR_SUBSCRIPTION, EscrowReactor, type EscrowReactorDeps } from './escrow-reactor.js';

export type EscrowEngineDeps = EscrowReactorDeps &
  Pick<DispatcherDeps, 'contributors' | 'limits' | 'afterEffect' | 'sweep'> & {
    /** Only the holder reacts, settles and dispatches; defaults to an in-process lease (one embedded database, one process). */
    lease?: SingleWriterLease;
    /** Follow the node's payment updates (default true); false leaves held escrows to the sweep alone (tests compare the two). */
    subscribe?: boolean;
  };

export type QuietReport = Readonly<{ rounds: number; reactedEvents: number; outcomesRecorded: number; settled: number; quiet: boolean }>;

/** Upper bound on rounds per pass: each round either makes progress or ends the pass; the next pass goes on where this one stopped. */
export const MAX_ESCROW_ROUNDS = 50;
/** Log events the reactor reads per round. */
export const ESCROW_REACT_BATCH = 200;

export class EscrowEngine {
  readonly reactor: EscrowReactor;
  readonly dispatcher: LightningDispatcher;
  readonly lease: SingleWriterLease;
  private readonly outbox: ProjectionRunner;
  private subscription: UpdateSubscription | null = null;
  /** Bumped on every (re)subscription, so a late onDrop of an old stream cannot end the new one. */
  private generation = 0;
  private readonly wakers = new Set<() => void>();
  /** Streams dropped since start: each was followed by a resubscription at the next pass and a sweep tick at once. */
  drops = 0;

  constructor(private readonly deps: EscrowEngineDeps) {
    this.reactor = new EscrowReactor(deps);
    this.dispatcher = new LightningDispatcher({ ...deps, node: deps.node });
    this.outbox = new ProjectionRunner({ store: deps.store, projectors: [outboxProjector], nowMs: deps.nowMs });
    this.lease = deps.lease ?? new InProcessLease(deps.store.db as Kysely<any>);
  }

  async prepare(): Promise<void> {
    await this.reactor.prepare();
    await this.outbox.prepare();
  }

  /**
   * Takes the lease (waiting while another process holds it), then runs rounds of: react to one
   * bounded batch of new events, settle assignments whose deadline or recheck is due, refresh the
   * outbox, perform the next batch of unfinished intents; until a round changes nothing, the round
   * limit ends the pass, or a stop is requested. Reading, deciding and paying interleave in
   * bounded batches, so under a sustained append rate payments still go out every round instead
   * of waiting for the log to fall quiet. At start-up this is the reconciler: whatever a crash
   * interrupted is asked of the node again and brought to a final state.
   */
  async runUntilQuiet(stopped: () => boolean = () => false): Promise<QuietReport> {
    if (!(await this.lease.acquire(stopped))) return { rounds: 0, reactedEvents: 0, outcomesRecorded: 0, settled: 0, quiet: false };
    await this.follow();
    this.dispatcher.startPass();
    let reactedEvents = 0;
    let outcomesRecorded = 0;
    let settled = 0;
    for (let round = 1; round <= MAX_ESCROW_ROUNDS; round += 1) {
      if (stopped()) return { rounds: round - 1, reactedEvents, outcomesRecorded, settled, quiet: false };
      await this.lease.check();
      const reacted = await this.reactOnce();
      const swept = await this.reactor.sweep();
      await this.outbox.catchUp();
      const recorded = await this.dispatcher.dispatchOnce();
      await this.outbox.catchUp();
      reactedEvents += reacted;
      outcomesRecorded += recorded;
      settled += swept;
      if (reacted === 0 && recorded === 0 && swept === 0 && !this.dispatcher.hasPending) return { rounds: round, reactedEvents, outcomesRecorded, settled, quiet: true };
    }
    return { rounds: MAX_ESCROW_ROUNDS, reactedEvents, outcomesRecorded, settled, quiet: false };
  }

  /** Calls `wake` whenever a node update arrives or a stream drops, so a loop runs a pass without waiting for its poll. */
  onWake(wake: () => void): () => void {
    this.wakers.add(wake);
    return () => this.wakers.delete(wake);
  }

  /** Whether the node's update stream is followed right now. */
  get following(): boolean {
    return this.subscription !== null;
  }

  /** Hands the lease to the next process (a clean shutdown); a crash hands it over too, when the session ends. */
  async close(): Promise<void> {
    this.generation += 1;
    const subscription = this.subscription;
    this.subscription = null;
    await subscription?.close().catch(() => {});
    await this.lease.release();
  }

  /**
   * Follows the node's payment updates unless already following: each names one hash for the
   * dispatcher to look at, nothing more. A stream that drops (the node restarted) is followed again
   * at the next pass, and a sweep tick runs at once; anything it missed in between is the sweep's.
   * A node that refuses to subscribe is tried again next pass: the sweep carries on meanwhile.
   */
  private async follow(): Promise<void> {
    if (this.deps.subscribe === false || this.subscription !== null) return;
    const generation = ++this.generation;
    try {
      const subscription = await this.deps.node.subscribeToPayments({
        onUpdate: (update) => {
          if (generation !== this.generation) return;
          this.dispatcher.hint(update.paymentHash);
          this.wakeAll();
        },
        onDrop: (error: LightningError) => {
          if (generation !== this.generation) return;
          this.subscription = null;
          this.drops += 1;
          this.dispatcher.sweepNow();
          this.deps.log?.(`escrow: the node's payment stream dropped (${error.code}: ${error.message}); following it again at the next pass, and sweeping meanwhile`);
          this.wakeAll();
        },
      });
      if (generation === this.generation) this.subscription = subscription;
      else await subscription.close();
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      this.deps.log?.(`escrow: could not follow the node's payments (${typeof code === 'string' ? code : String(error)}); the sweep covers held escrows until it can`);
      this.dispatcher.sweepNow();
    }
  }

  private wakeAll(): void {
    for (const wake of this.wakers) wake();
  }

  /** Feeds the reactor the next batch after its checkpoint; the checkpoint moves only after the batch is handled. */
  private async reactOnce(): Promise<number> {
    const { store } = this.deps;
    const batch = await store.readAll({ after: await store.loadCheckpoint(ESCROW_REACTOR_SUBSCRIPTION), maxCount: ESCROW_REACT_BATCH });
    if (batch.length === 0) return 0;
    await this.reactor.handle(batch);
    // Each new invoice event may give the dispatcher a step for that one row: it visits those, not every held escrow.
    for (const recorded of batch) if (recorded.streamId.startsWith('invoice-')) this.dispatcher.touch(recorded.streamId.slice('invoice-'.length));
    await store.saveCheckpoint(ESCROW_REACTOR_SUBSCRIPTION, batch[batch.length - 1]!.position);
    return batch.length;
  }
}
