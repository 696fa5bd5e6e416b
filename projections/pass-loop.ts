// Runs a pass (catch up projections, react to escrow, validate, replay) again after each append or a poll interval, until stopped.
// It lives in projections/, the innermost ring that runs one, because it does no I/O of its own: timers, and the
// store's onAppended (a port) as its wake-up; adapters/ run their loops (escrow, verification) on it too.

import type { EventStore } from '../domain/ports/event-store.js';

/** What to do after a pass threw: try again at the next wake-up, or stop the loop with the error. */
export type PassErrorPolicy = (error: unknown, consecutiveFailures: number) => 'retry' | 'stop';

export const STOP_ON_ERROR: PassErrorPolicy = () => 'stop';

/** True once a stop was requested: a long pass checks it between bounded batches and returns early. */
export type StopRequested = () => boolean;

export type PassLoopOptions = Readonly<{
  /**
   * One pass. A pass that can run long (many batches, many items) must check
   * `stopped()` between them and return, so stop() waits for one batch at most.
   */
  pass: (stopped: StopRequested) => Promise<unknown>;
  store: Pick<EventStore, 'onAppended'>;
  pollIntervalMs: number;
  onError: PassErrorPolicy;
  /** Requests the stop as stop() does (a process shutting down tells every loop at once); stop() still waits. */
  signal?: AbortSignal;
}>;

export class PassLoop {
  private stopped = true;
  private wake: (() => void) | null = null;
  private loop: Promise<void> = Promise.resolve();
  private readonly stopRequested: StopRequested = () => this.stopped;

  constructor(private readonly options: PassLoopOptions) {}

  /** Resolves when stopped; rejects with the error the policy chose to stop on. */
  start(): Promise<void> {
    if (!this.stopped) throw new Error('pass loop already started');
    if (this.options.signal?.aborted) return Promise.resolve();
    this.stopped = false;
    const unsubscribe = this.options.store.onAppended(() => this.wake?.());
    const onAbort = (): void => this.requestStop();
    this.options.signal?.addEventListener('abort', onAbort, { once: true });
    this.loop = (async () => {
      let failures = 0;
      try {
        while (!this.stopped) {
          try {
            await this.options.pass(this.stopRequested);
            failures = 0;
          } catch (error) {
            failures += 1;
            if (this.options.onError(error, failures) === 'stop') throw error;
          }
          if (!this.stopped) await this.idle();
        }
      } finally {
        this.options.signal?.removeEventListener('abort', onAbort);
        unsubscribe();
      }
    })();
    return this.loop;
  }

  /** Asks the running pass to return at its next check and the loop not to start another; returns at once. */
  requestStop(): void {
    this.stopped = true;
    this.wake?.();
  }

  /** Requests the stop and waits for the running pass, which returns after the batch it is in. */
  async stop(): Promise<void> {
    this.requestStop();
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
