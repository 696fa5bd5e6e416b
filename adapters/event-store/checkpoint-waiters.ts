// Callers waiting for a subscription's saved checkpoint to reach a position: shared by every catch-up subscription.

import { comparePositions, type LogPosition } from '../../domain/ports/event-store.js';

export class CheckpointWaiters {
  private readonly waiting: { target: LogPosition; resolve: () => void }[] = [];

  constructor(private readonly subscriptionId: string) {}

  /** Resolves once `settle` is given a checkpoint at or past `target`; rejects if the subscription's loop (`ended`) ends first. */
  wait(checkpoint: LogPosition | null, target: LogPosition, ended: Promise<void>): Promise<void> {
    if (checkpoint && comparePositions(checkpoint, target) >= 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiting.push({ target, resolve });
      ended.then(() => reject(new Error(`subscription ${this.subscriptionId} stopped before reaching the target`)), reject);
    });
  }

  /** Resolves every waiter whose target the newly saved checkpoint has reached. */
  settle(checkpoint: LogPosition): void {
    for (let i = this.waiting.length - 1; i >= 0; i -= 1) {
      const waiter = this.waiting[i]!;
      if (comparePositions(checkpoint, waiter.target) >= 0) {
        this.waiting.splice(i, 1);
        waiter.resolve();
      }
    }
  }
}
