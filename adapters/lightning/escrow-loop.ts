// Keeps the escrow engine running in the service: reconcile at start-up, then again after appends or a poll interval.

import { InvariantViolation } from '../../domain/errors.js';
import type { EventStore } from '../../domain/ports/event-store.js';
import { PassLoop } from '../../projections/pass-loop.js';
import type { EscrowEngine } from './escrow-engine.js';

export const DEFAULT_ESCROW_POLL_INTERVAL_MS = 1_000;

export class EscrowLoop {
  private readonly loop: PassLoop;
  private stopping = false;

  /**
   * The first pass is the start-up reconciliation. A bad input about one assignment is recorded
   * where its owner sees it and never reaches here; what does (a node or database that is down)
   * is logged and retried on the next pass, while the intents wait in the log. Only a broken
   * invariant stops the loop: escrow then halts visibly instead of paying from a state it cannot trust.
   */
  constructor(private readonly engine: EscrowEngine, store: EventStore, log: (line: string) => void, pollIntervalMs = DEFAULT_ESCROW_POLL_INTERVAL_MS) {
    this.loop = new PassLoop({
      pass: () => engine.runUntilQuiet(() => this.stopping),
      // Woken by an append in this process, and by the node's updates: a settled or canceled escrow is seen at once, not at the next poll.
      store: {
        onAppended: (listener) => {
          const appended = store.onAppended(listener);
          const woken = engine.onWake(() => listener());
          return () => {
            appended();
            woken();
          };
        },
      },
      pollIntervalMs,
      onError: (error, failures) => {
        if (error instanceof InvariantViolation) return 'stop';
        const code = (error as { code?: unknown }).code;
        log(`escrow: ${typeof code === 'string' ? `${code}: ` : ''}${error instanceof Error ? error.message : String(error)}; retrying (${failures} in a row)`);
        return 'retry';
      },
    });
  }

  start(): Promise<void> {
    return this.loop.start();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.loop.stop();
    await this.engine.close();
  }
}
