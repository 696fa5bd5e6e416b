// The decider shape every aggregate follows: decide(command, state) -> events, evolve(state, event) -> state.

/** A domain event as code sees it: `type` plus a plain data object (amounts are bigint msat). */
export type Event<Type extends string = string, Data extends object = object> = Readonly<{
  type: Type;
  data: Readonly<Data>;
}>;

/** Time and caller identity travel with every command; the domain never reads a clock. */
export type CommandMetadata = Readonly<{
  /** Milliseconds since the Unix epoch, from the injected clock. */
  nowMs: number;
}>;

export type Command<Type extends string = string, Data extends object = object> = Readonly<{
  type: Type;
  data: Readonly<Data>;
  metadata: CommandMetadata;
}>;

export type Decider<C extends Command, E extends Event, S> = Readonly<{
  /** Returns the events the command causes; throws DomainError when the command is illegal in `state`. */
  decide: (command: C, state: S) => E[];
  /** Folds one event into state; throws InvariantViolation for an event that cannot follow `state`. */
  evolve: (state: S, event: E) => S;
  initialState: () => S;
}>;

/** Folds events from the initial state. */
export function foldEvents<C extends Command, E extends Event, S>(decider: Decider<C, E, S>, events: Iterable<E>): S {
  let state = decider.initialState();
  for (const event of events) state = decider.evolve(state, event);
  return state;
}
