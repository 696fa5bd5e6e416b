// Keeps the escrow engine running in the service: reconcile at start-up, then again after appends or a poll interval.

import { LightningError } from '../../domain/ports/lightning.js';
import type { EventStore } from '../../domain/ports/event-store.js';
import type { EscrowEngine } from './escrow-engine.js';

export const DEFAULT_ESCROW_POLL_INTERVAL_MS = 1_000;

export class EscrowLoop {
  private stopped = false;
  private wake: (() => void) | null = null;
  private loop: Promise<void> = Promise.resolve();

  constructor(
    private readonly engine: EscrowEngine,
    private readonly store: EventStore,
    private readonly log: (line: string) => void,
    private readonly pollIntervalMs = DEFAULT_ESCROW_POLL_INTERVAL_MS,
  ) {}

  /**
   * Starts the loop; the first pass is the start-up reconciliation. A node that is down is
   * retried on the next pass (the intents wait in the log); any other error stops the loop.
   */
  start(): Promise<void> {
    const unsubscribe = this.store.onAppended(() => this.wake?.());
    this.loop = (async () => {
      try {
        while (!this.stopped) {
          try {
            await this.engine.runUntilQuiet();
          } catch (error) {
            if (!(error instanceof LightningError && error.retryable)) throw error;
            this.log(`escrow: ${error.code}: ${error.message}; retrying`);
          }
          if (!this.stopped) await this.idle();
        }
      } finally {
        unsubscribe();
      }
    })();
    return this.loop;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop.catch(() => {});
  }

  private idle(): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, this.pollIntervalMs);
      this.wake = done;
    });
  }
}
