// The command path: load the stream, decide, append with the expected revision; bounded retries and idempotency keys.

import { createHash } from 'node:crypto';
import type { Command, Decider, Event } from '../../domain/decider.js';
import { canonicalJson, decodeEvent, toWire } from '../../domain/codec.js';
import { DomainError } from '../../domain/errors.js';
import type { EventStore, JsonObject, LogPosition, NewEvent } from '../../domain/ports/event-store.js';
import { EventStoreError, IdempotencyKeyReusedError, WrongExpectedRevisionError } from '../../domain/ports/event-store-errors.js';
import { aggregateCacheFor, type CachedAggregate } from './aggregate-cache.js';

export const DEFAULT_MAX_COMMAND_ATTEMPTS = 5;
/** Stream pages read while loading an aggregate. */
const LOAD_PAGE_SIZE = 1_000;

export type HandleOptions = Readonly<{
  /** Same key + same command: the original outcome; same key + another command: IDEMPOTENCY_KEY_REUSED. */
  idempotencyKey?: string;
  /** Injected id source for new event ids (UUIDs). */
  newEventId: () => string;
  maxAttempts?: number;
  /**
   * The stream's state as the caller just loaded it (with loadAggregate), used for the first
   * attempt instead of loading it again; a stale one costs a retry, never a wrong write.
   */
  loaded?: Readonly<{ state: unknown; lastRevision: number | null }>;
}>;

export type CommandOutcome<E extends Event> = Readonly<{
  /** 'no-op': the decider said the command was already satisfied (an idempotent settle, say). */
  status: 'appended' | 'duplicate' | 'no-op';
  streamId: string;
  events: E[];
  lastRevision: number | null;
  position: LogPosition | null;
}>;

export class ConcurrencyConflictError extends EventStoreError {
  override readonly name = 'ConcurrencyConflictError';
  constructor(readonly streamId: string, attempts: number) {
    super('CONCURRENCY_CONFLICT', `stream ${streamId} kept changing under ${attempts} attempts; retry the request later`);
  }
}

/** SHA-256 of the command as the client meant it: type and data, not the server's clock. */
export function commandDigest(command: Command): string {
  return createHash('sha256').update(canonicalJson({ type: command.type, data: toWire(command.data) })).digest('hex');
}

export async function handleCommand<C extends Command, E extends Event, S>(
  store: EventStore,
  decider: Decider<C, E, S>,
  streamId: string,
  command: C,
  options: HandleOptions,
): Promise<CommandOutcome<E>> {
  const claim = options.idempotencyKey ? { key: options.idempotencyKey, requestDigest: commandDigest(command) } : undefined;
  // The key is looked up only when the decision cannot stand on its own: a refusal, a no-op, or an
  // append that collides with the key's row. A retry of a command that committed always lands in
  // one of those (its effect is in the state, or its key row is), so it still gets the original
  // outcome, and a first attempt saves the round trip.
  const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_COMMAND_ATTEMPTS;
  for (let attempt = 1; attempt <= maxAttempts; attempt += 1) {
    const { state, lastRevision } = attempt === 1 && options.loaded ? (options.loaded as { state: S; lastRevision: number | null }) : await loadAggregate(store, decider, streamId);
    let events: E[];
    try {
      events = decider.decide(command, state);
    } catch (error) {
      const replay = claim && error instanceof DomainError ? await replayIdempotent<E>(store, claim) : null;
      if (replay) return replay;
      throw error;
    }
    if (events.length === 0) {
      // A racing request with the same key may have just written what made this a no-op: it owns the answer.
      const replay = claim ? await replayIdempotent<E>(store, claim) : null;
      return replay ?? { status: 'no-op', streamId, events: [], lastRevision, position: null };
    }
    // Fold before writing: an event its own evolve rejects is a decider bug and must never reach the log.
    events.reduce(decider.evolve, state);
    const newEvents: NewEvent[] = events.map((event) => ({
      eventId: options.newEventId(),
      type: event.type,
      data: toWire(event.data) as JsonObject,
      metadata: { commandType: command.type, ...(claim ? { idempotencyKey: claim.key } : {}) },
    }));
    try {
      const result = await store.append(streamId, newEvents, { expectedRevision: lastRevision ?? 'no_stream', ...(claim ? { idempotency: claim } : {}) });
      // Only an idempotency key can make a fresh-id append a duplicate: the key landed between our check and our append.
      if (result.status === 'duplicate' && claim) return (await replayIdempotent<E>(store, claim)) ?? fail(streamId);
      return { status: 'appended', streamId, events, lastRevision: result.lastRevision, position: result.position };
    } catch (error) {
      if (error instanceof WrongExpectedRevisionError) continue;
      // A concurrent request with the same key won the race: answer with its outcome.
      if (claim && isUniqueViolation(error)) {
        const replay = await replayIdempotent<E>(store, claim);
        if (replay) return replay;
      }
      throw error;
    }
  }
  throw new ConcurrencyConflictError(streamId, maxAttempts);
}

/** One command of an atomic multi-stream step: its decider, its stream and its own idempotency key. */
export type AtomicPart = Readonly<{ decider: Decider<any, any, any>; streamId: string; command: Command; idempotencyKey?: string; loaded?: HandleOptions['loaded'] }>;

/**
 * Decides several commands, each against its own stream, and appends what they decide in one
 * transaction when the store can (PostgreSQL, PGlite): either every stream changes or none does,
 * so a crash can never leave one half (a reservation without its assignment, say). Parts whose
 * key already recorded an outcome answer with it; the rest are decided and appended together.
 * Without `appendAtomically` (EventStoreDB) the parts are handled one after another, in order.
 */
export async function handleCommandsAtomically(store: EventStore, parts: readonly AtomicPart[], options: Omit<HandleOptions, 'idempotencyKey'>): Promise<CommandOutcome<Event>[]> {
  if (!store.appendAtomically) {
    const outcomes: CommandOutcome<Event>[] = [];
    for (const part of parts) outcomes.push(await handleCommand(store, part.decider, part.streamId, part.command, { ...options, ...(part.idempotencyKey ? { idempotencyKey: part.idempotencyKey } : {}) }));
    return outcomes;
  }
  const claims = parts.map((part) => (part.idempotencyKey ? { key: part.idempotencyKey, requestDigest: commandDigest(part.command) } : undefined));
  const replays = await Promise.all(claims.map((claim) => (claim ? replayIdempotent<Event>(store, claim) : null)));
  if (replays.every((r) => r !== null)) return replays as CommandOutcome<Event>[];
  const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_COMMAND_ATTEMPTS;
  for (let attempt = 1; attempt <= maxAttempts; attempt += 1) {
    const decided = await Promise.all(parts.map(async (part, index) => (replays[index] ? null : decidePart(store, part, options, claims[index], attempt === 1 ? part.loaded : undefined))));
    const pending = decided.flatMap((d, index) => (d !== null && d.append !== null ? [{ index, d }] : []));
    try {
      const results = pending.length === 0 ? [] : await store.appendAtomically(pending.map(({ d }) => d.append!));
      const outcomes = parts.map((part, index): CommandOutcome<Event> => {
        const replay = replays[index];
        if (replay) return replay;
        const d = decided[index]!;
        const at = pending.findIndex((p) => p.index === index);
        if (at < 0) return { status: 'no-op', streamId: part.streamId, events: [], lastRevision: d.lastRevision, position: null };
        const result = results[at]!;
        return { status: result.status === 'duplicate' ? 'duplicate' : 'appended', streamId: part.streamId, events: d.events, lastRevision: result.lastRevision, position: result.position };
      });
      return outcomes;
    } catch (error) {
      if (error instanceof WrongExpectedRevisionError) continue;
      // A concurrent request with the same keys won the race: answer with its outcomes.
      if (isUniqueViolation(error)) {
        const again = await Promise.all(claims.map((claim) => (claim ? replayIdempotent<Event>(store, claim) : null)));
        if (again.every((r) => r !== null)) return again as CommandOutcome<Event>[];
      }
      throw error;
    }
  }
  throw new ConcurrencyConflictError(parts.map((p) => p.streamId).join('+'), maxAttempts);
}

type DecidedPart = { events: Event[]; lastRevision: number | null; append: { streamId: string; events: NewEvent[]; options: { expectedRevision: number | 'no_stream'; idempotency?: { key: string; requestDigest: string } } } | null };

async function decidePart(
  store: EventStore,
  part: AtomicPart,
  options: Omit<HandleOptions, 'idempotencyKey'>,
  claim: { key: string; requestDigest: string } | undefined,
  loaded: HandleOptions['loaded'],
): Promise<DecidedPart> {
  const { state, lastRevision } = loaded ?? (await loadAggregate(store, part.decider, part.streamId));
  const events = part.decider.decide(part.command, state) as Event[];
  if (events.length === 0) return { events, lastRevision, append: null };
  // Fold before writing: an event its own evolve rejects is a decider bug and must never reach the log.
  events.reduce(part.decider.evolve, state);
  const newEvents: NewEvent[] = events.map((event) => ({
    eventId: options.newEventId(),
    type: event.type,
    data: toWire(event.data) as JsonObject,
    metadata: { commandType: part.command.type, ...(claim ? { idempotencyKey: claim.key } : {}) },
  }));
  return { events, lastRevision, append: { streamId: part.streamId, events: newEvents, options: { expectedRevision: lastRevision ?? 'no_stream', ...(claim ? { idempotency: claim } : {}) } } };
}

/**
 * The state of `streamId` at its last revision. Folds only what is new since the last load in this
 * process: a stream is append-only, so the state at revision r is a pure function of events 0..r
 * and never changes; the cache (per store, bounded, see aggregate-cache.ts) keeps it, and each load
 * reads from r + 1. The cached prefix is tied to the log by hash: the first new event must link to
 * the cached revision's hash, or the whole stream is folded again. A state a command decides on is
 * still checked against the log's head by the append's expected revision, so a stale cache can
 * cost a retry, never a wrong write.
 */
export async function loadAggregate<C extends Command, E extends Event, S>(
  store: EventStore,
  decider: Decider<C, E, S>,
  streamId: string,
): Promise<{ state: S; lastRevision: number | null }> {
  const cache = aggregateCacheFor(store);
  const cached = cache.get(decider, streamId);
  const folded = cached ? await foldFrom(store, decider, streamId, cached) : null;
  const result = folded ?? (await foldFrom(store, decider, streamId, { state: decider.initialState(), revision: null, hash: null }))!;
  if (result.revision !== null && result.revision !== cached?.revision) cache.put(decider, streamId, result);
  return { state: result.state, lastRevision: result.revision };
}

/** Folds the events after `from` into its state; null when the first of them does not link to `from`'s hash. */
async function foldFrom<S>(store: EventStore, decider: Decider<any, any, S>, streamId: string, from: CachedAggregate<S>): Promise<CachedAggregate<S> | null> {
  let { state, revision, hash } = from;
  for (let first = true; ; first = false) {
    const page = await store.readStream(streamId, { fromRevision: revision === null ? 0 : revision + 1, maxCount: LOAD_PAGE_SIZE });
    if (first && from.hash !== null && page.length > 0 && page[0]!.prevHash !== from.hash) return null;
    for (const recorded of page) {
      state = decider.evolve(state, decodeEvent(recorded));
      revision = recorded.revision;
      hash = recorded.hash;
    }
    if (page.length < LOAD_PAGE_SIZE) return { state, revision, hash };
  }
}

async function replayIdempotent<E extends Event>(
  store: EventStore,
  claim: { key: string; requestDigest: string },
): Promise<CommandOutcome<E> | null> {
  const seen = await store.lookupIdempotencyKey(claim.key);
  if (!seen) return null;
  if (seen.requestDigest !== claim.requestDigest) throw new IdempotencyKeyReusedError(claim.key);
  const { result } = seen;
  const recorded = await store.readStream(result.streamId, { fromRevision: result.firstRevision, maxCount: result.lastRevision - result.firstRevision + 1 });
  return { status: 'duplicate', streamId: result.streamId, events: recorded.map((r) => decodeEvent<E>(r)), lastRevision: result.lastRevision, position: result.position };
}

function isUniqueViolation(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === '23505';
}

function fail(streamId: string): never {
  throw new Error(`append to ${streamId} reported a duplicate but no idempotency record exists`);
}
