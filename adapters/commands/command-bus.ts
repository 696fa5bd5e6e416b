// The command port of replay/ports/commands.ts over an event store: load and handle as the command path does them (command-handler.ts).

import type { Command, Decider, Event } from '../../domain/decider.js';
import type { EventStore } from '../../domain/ports/event-store.js';
import type { CommandBus, CommandOptions, HandledCommand, LoadedAggregate } from '../../replay/ports/commands.js';
import { handleCommand, loadAggregate, type HandleOptions } from './command-handler.js';

export type EventStoreCommandBusOptions = Readonly<{
  /** Injected id source for new event ids (UUIDs), as HandleOptions takes it. */
  newEventId: () => string;
  maxAttempts?: number;
}>;

/**
 * Bound to one store, because the aggregate cache is per store and the workers read the log from the
 * same one: pass the store the workers are given, or their checkpoints and their commands part ways.
 */
export class EventStoreCommandBus implements CommandBus {
  constructor(
    private readonly store: EventStore,
    private readonly options: EventStoreCommandBusOptions,
  ) {}

  load<C extends Command, E extends Event, S>(decider: Decider<C, E, S>, streamId: string): Promise<LoadedAggregate<S>> {
    return loadAggregate(this.store, decider, streamId);
  }

  handle<C extends Command, E extends Event, S>(decider: Decider<C, E, S>, streamId: string, command: C, options: CommandOptions = {}): Promise<HandledCommand<E>> {
    const handleOptions: HandleOptions = {
      newEventId: this.options.newEventId,
      ...(this.options.maxAttempts !== undefined ? { maxAttempts: this.options.maxAttempts } : {}),
      ...(options.idempotencyKey !== undefined ? { idempotencyKey: options.idempotencyKey } : {}),
    };
    return handleCommand(this.store, decider, streamId, command, handleOptions);
  }
}
