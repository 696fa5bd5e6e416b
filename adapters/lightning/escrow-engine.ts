// Wires the escrow machinery under one single-writer lease: reactions and settlements issue intents, the outbox lists them, the dispatcher performs them.

import type { Kysely } from 'kysely';
import { outboxProjector } from '../../projections/outbox/outbox-projector.js';
import { ProjectionRunner } from '../../projections/runner.js';
import { LightningDispatcher, type DispatcherDeps } from './dispatcher.js';
import { InProcessLease, type SingleWriterLease } from './escrow-lease.js';
import { ESCROW_REACTOR_SUBSCRIPTION, EscrowReactor, type EscrowReactorDeps } from './escrow-reactor.js';

export type EscrowEngineDeps = EscrowReactorDeps &
  Pick<DispatcherDeps, 'contributors' | 'limits' | 'afterEffect'> & {
    /** Only the holder reacts, settles and dispatches; defaults to an in-process lease (one embedded database, one process). */
    lease?: SingleWriterLease;
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
      if (reacted === 0 && recorded === 0 && swept === 0) return { rounds: round, reactedEvents, outcomesRecorded, settled, quiet: true };
    }
    return { rounds: MAX_ESCROW_ROUNDS, reactedEvents, outcomesRecorded, settled, quiet: false };
  }

  /** Hands the lease to the next process (a clean shutdown); a crash hands it over too, when the session ends. */
  async close(): Promise<void> {
    await this.lease.release();
  }

  /** Feeds the reactor the next batch after its checkpoint; the checkpoint moves only after the batch is handled. */
  private async reactOnce(): Promise<number> {
    const { store } = this.deps;
    const batch = await store.readAll({ after: await store.loadCheckpoint(ESCROW_REACTOR_SUBSCRIPTION), maxCount: ESCROW_REACT_BATCH });
    if (batch.length === 0) return 0;
    await this.reactor.handle(batch);
    await store.saveCheckpoint(ESCROW_REACTOR_SUBSCRIPTION, batch[batch.length - 1]!.position);
    return batch.length;
  }
}
