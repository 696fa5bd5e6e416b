// The command port: how replay's workers read an aggregate's state and have a command decided and appended, without knowing the store.

import type { Command, Decider, Event } from '../../domain/decider.js';

/** A stream's state at its last revision (null: the stream has no events yet). */
export type LoadedAggregate<S> = Readonly<{ state: S; lastRevision: number | null }>;

/** What became of a command: 'duplicate' when its idempotency key had already decided it, 'no-op' when the decider had nothing to add. */
export type HandledCommand<E extends Event> = Readonly<{
  status: 'appended' | 'duplicate' | 'no-op';
  streamId: string;
  events: readonly E[];
  lastRevision: number | null;
}>;

export type CommandOptions = Readonly<{
  /**
   * Same key and same command: the original outcome, never a second append; same key and another command:
   * refused. A worker that restarts over the same log events derives the same key, so it never decides twice.
   */
  idempotencyKey?: string;
}>;

/**
 * The write side over one event store. An implementation chooses the new events' ids, retries a stale
 * expected revision a bounded number of times, and may cache states (a cached state can cost a retry,
 * never a wrong write). The workers' own reads (readAll, checkpoints, readStream) go to that same store.
 */
export interface CommandBus {
  load<C extends Command, E extends Event, S>(decider: Decider<C, E, S>, streamId: string): Promise<LoadedAggregate<S>>;
  handle<C extends Command, E extends Event, S>(decider: Decider<C, E, S>, streamId: string, command: C, options?: CommandOptions): Promise<HandledCommand<E>>;
}
