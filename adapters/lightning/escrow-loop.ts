// Keeps the escrow engine running in the service: reconcile at start-up, then again after appends or a poll interval.

import { LightningError } from '../../domain/ports/lightning.js';
import type { EventStore } from '../../domain/ports/event-store.js';
import { PassLoop } from '../pass-loop.js';
import type { EscrowEngine } from './escrow-engine.js';

export const DEFAULT_ESCROW_POLL_INTERVAL_MS = 1_000;

export class EscrowLoop {
  private readonly loop: PassLoop;

  /**
   * The first pass is the start-up reconciliation. A node that is down is retried on the next
   * pass (the intents wait in the log); any other error stops the loop.
   */
  constructor(engine: EscrowEngine, store: EventStore, log: (line: string) => void, pollIntervalMs = DEFAULT_ESCROW_POLL_INTERVAL_MS) {
    this.loop = new PassLoop({
      pass: () => engine.runUntilQuiet(),
      store,
      pollIntervalMs,
      onError: (error) => {
        if (!(error instanceof LightningError && error.retryable)) return 'stop';
        log(`escrow: ${error.code}: ${error.message}; retrying`);
        return 'retry';
      },
    });
  }

  start(): Promise<void> {
    return this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }
}
