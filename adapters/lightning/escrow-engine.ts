// Wires the escrow machinery: reactions issue intents, the outbox projection lists them, the dispatcher performs them.

import { invariant } from '../../domain/errors.js';
import { outboxProjector } from '../../projections/outbox/outbox-projector.js';
import { ProjectionRunner } from '../../projections/runner.js';
import { LightningDispatcher, type DispatcherDeps } from './dispatcher.js';
import { ESCROW_REACTOR_SUBSCRIPTION, EscrowReactor, type EscrowReactorDeps } from './escrow-reactor.js';

export type EscrowEngineDeps = EscrowReactorDeps & Pick<DispatcherDeps, 'contributors' | 'limits' | 'afterEffect'>;

export type QuietReport = Readonly<{ rounds: number; reactedEvents: number; outcomesRecorded: number }>;

/** Upper bound on rounds per run: each round either makes progress or ends the run. */
export const MAX_ESCROW_ROUNDS = 50;

export class EscrowEngine {
  readonly reactor: EscrowReactor;
  readonly dispatcher: LightningDispatcher;
  private readonly outbox: ProjectionRunner;

  constructor(private readonly deps: EscrowEngineDeps) {
    this.reactor = new EscrowReactor(deps);
    this.dispatcher = new LightningDispatcher({ ...deps, node: deps.node });
    this.outbox = new ProjectionRunner({ store: deps.store, projectors: [outboxProjector], nowMs: deps.nowMs });
  }

  async prepare(): Promise<void> {
    await this.reactor.prepare();
    await this.outbox.prepare();
  }

  /**
   * Reacts to every new event, refreshes the outbox, and performs every unfinished intent,
   * round after round until a round changes nothing. At start-up this is the reconciler:
   * whatever a crash interrupted is asked of the node again and brought to a final state.
   */
  async runUntilQuiet(): Promise<QuietReport> {
    let reactedEvents = 0;
    let outcomesRecorded = 0;
    for (let round = 1; round <= MAX_ESCROW_ROUNDS; round += 1) {
      const reacted = (await this.react()) + (await this.reactor.retryDeferred());
      await this.outbox.catchUp();
      const recorded = await this.dispatcher.dispatchOnce();
      await this.outbox.catchUp();
      reactedEvents += reacted;
      outcomesRecorded += recorded;
      if (reacted === 0 && recorded === 0) return { rounds: round, reactedEvents, outcomesRecorded };
    }
    invariant(false, `escrow engine still busy after ${MAX_ESCROW_ROUNDS} rounds`);
    throw new Error('unreachable');
  }

  /** Feeds the reactor every event after its checkpoint; the checkpoint moves only after a batch is handled. */
  private async react(): Promise<number> {
    const { store } = this.deps;
    let handled = 0;
    for (let after = await store.loadCheckpoint(ESCROW_REACTOR_SUBSCRIPTION); ; ) {
      const batch = await store.readAll({ after, maxCount: 200 });
      if (batch.length === 0) return handled;
      await this.reactor.handle(batch);
      after = batch[batch.length - 1]!.position;
      await store.saveCheckpoint(ESCROW_REACTOR_SUBSCRIPTION, after);
      handled += batch.length;
    }
  }
}

