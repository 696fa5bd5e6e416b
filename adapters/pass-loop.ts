// Runs a pass (catch up projections, react to escrow, validate, replay) again after each append or a poll interval, until stopped.

import type { EventStore } from '../domain/ports/event-store.js';

/** What to do after a pass threw: try again at the next wake-up, or stop the loop with the error. */
export type PassErrorPolicy = (error: unknown, consecutiveFailures: number) => 'retry' | 'stop';

export const STOP_ON_ERROR: PassErrorPolicy = () => 'stop';

export type PassLoopOptions = Readonly<{
  pass: () => Promise<unknown>;
  store: Pick<EventStore, 'onAppended'>;
  pollIntervalMs: number;
  onError: PassErrorPolicy;
}>;

export class PassLoop {
  private stopped = true;
  private wake: (() => void) | null = null;
  private loop: Promise<void> = Promise.resolve();

  constructor(private readonly options: PassLoopOptions) {}

  /** Resolves when stopped; rejects with the error the policy chose to stop on. */
  start(): Promise<void> {
    if (!this.stopped) throw new Error('pass loop already started');
    this.stopped = false;
    const unsubscribe = this.options.store.onAppended(() => this.wake?.());
    this.loop = (async () => {
      let failures = 0;
      try {
        while (!this.stopped) {
          try {
            await this.options.pass();
            failures = 0;
          } catch (error) {
            failures += 1;
            if (this.options.onError(error, failures) === 'stop') throw error;
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

  /** Wakes early on an append in this process; other writers are seen at the next poll. */
  private idle(): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, this.options.pollIntervalMs);
      this.wake = done;
    });
  }
}
