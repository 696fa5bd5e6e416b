// Runs a worker's pass (validate, feed replays, drain replay jobs) again after each append or a poll interval, until stopped.

import type { EventStore } from '../../domain/ports/event-store.js';

export const DEFAULT_PASS_INTERVAL_MS = 1_000;
/** Consecutive failed passes after which the loop stops instead of retrying forever. */
export const MAX_CONSECUTIVE_FAILURES = 20;

export class PassLoop {
  private stopped = false;
  private wake: (() => void) | null = null;
  private loop: Promise<void> = Promise.resolve();

  constructor(
    private readonly name: string,
    private readonly pass: () => Promise<void>,
    private readonly store: EventStore,
    private readonly log: (line: string) => void,
    private readonly pollIntervalMs = DEFAULT_PASS_INTERVAL_MS,
  ) {}

  /** A failing pass is logged and retried on the next wake-up; too many in a row stop the loop, loudly. */
  start(): Promise<void> {
    const unsubscribe = this.store.onAppended(() => this.wake?.());
    this.loop = (async () => {
      let failures = 0;
      try {
        while (!this.stopped) {
          try {
            await this.pass();
            failures = 0;
          } catch (error) {
            failures += 1;
            this.log(`${this.name}: pass failed (${failures}/${MAX_CONSECUTIVE_FAILURES}): ${error instanceof Error ? error.message : String(error)}`);
            if (failures >= MAX_CONSECUTIVE_FAILURES) throw error;
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
