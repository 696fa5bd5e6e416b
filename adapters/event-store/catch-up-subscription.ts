// A catch-up subscription: reads the log in checkpoint order from a durable checkpoint, never skipping an event.

import {
  type EventStore,
  type LogPosition,
  type RecordedEvent,
} from '../../domain/ports/event-store.js';
import { CheckpointWaiters } from './checkpoint-waiters.js';

export type CatchUpOptions = Readonly<{
  subscriptionId: string;
  /** Handles one batch; the checkpoint is saved only after it resolves (at-least-once). */
  handle: (events: readonly RecordedEvent[]) => Promise<void>;
  batchSize?: number;
  /**
   * How long to wait for a wake-up before polling again. Polling is what finds
   * events written by other processes and events held back behind a transaction
   * that was still open; it is never used to skip anything.
   */
  pollIntervalMs?: number;
}>;

export const DEFAULT_SUBSCRIPTION_BATCH_SIZE = 500;
export const DEFAULT_SUBSCRIPTION_POLL_INTERVAL_MS = 200;

export class CatchUpSubscription {
  private checkpoint: LogPosition | null = null;
  private stopped = false;
  private wake: (() => void) | null = null;
  private readonly waiters: CheckpointWaiters;
  private readonly unsubscribe: () => void;
  /** Settles when the loop ends: resolves on stop(), rejects with the handler's error. */
  readonly done: Promise<void>;

  constructor(private readonly store: EventStore, private readonly options: CatchUpOptions) {
    this.waiters = new CheckpointWaiters(options.subscriptionId);
    this.unsubscribe = store.onAppended(() => this.wake?.());
    this.done = this.run();
    // A failed handler rejects `done`; keep Node from reporting it as unhandled
    // when nobody awaits it, callers who care await `done` themselves.
    this.done.catch(() => {});
  }

  /** The last checkpoint this subscription has durably saved. */
  get position(): LogPosition | null {
    return this.checkpoint;
  }

  /** Resolves once every event up to `target` (in checkpoint order) has been handled. */
  reached(target: LogPosition): Promise<void> {
    return this.waiters.wait(this.checkpoint, target, this.done);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    this.unsubscribe();
    await this.done.catch(() => {});
  }

  private async run(): Promise<void> {
    const batchSize = this.options.batchSize ?? DEFAULT_SUBSCRIPTION_BATCH_SIZE;
    this.checkpoint = await this.store.loadCheckpoint(this.options.subscriptionId);
    while (!this.stopped) {
      const batch = await this.store.readAll({ after: this.checkpoint, maxCount: batchSize });
      if (batch.length === 0) {
        await this.idle();
        continue;
      }
      await this.options.handle(batch);
      const last = batch[batch.length - 1]!.position;
      await this.store.saveCheckpoint(this.options.subscriptionId, last);
      this.checkpoint = last;
      this.settleWaiters();
    }
  }

  private idle(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, this.options.pollIntervalMs ?? DEFAULT_SUBSCRIPTION_POLL_INTERVAL_MS);
      const self = this;
      function done(): void {
        clearTimeout(timer);
        self.wake = null;
        resolve();
      }
      this.wake = done;
      if (this.stopped) done();
    });
  }

  private settleWaiters(): void {
    this.waiters.settle(this.checkpoint!);
  }
}
