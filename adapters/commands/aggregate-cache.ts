// A bounded, per-store cache of aggregate states by stream and revision, so a load folds only the events it has not seen.

import type { Decider } from '../../domain/decider.js';
import type { EventStore } from '../../domain/ports/event-store.js';

/** A stream's state after `revision` (null: no events), and that event's hash, which the next event must link to. */
export type CachedAggregate<S> = Readonly<{ state: S; revision: number | null; hash: string | null }>;

/**
 * Streams kept per store. A run's state with 100,000 open reservations is a few tens of MB, an
 * assignment's a few KB; least recently used streams go first.
 */
export const AGGREGATE_CACHE_MAX_STREAMS = 20_000;

export class AggregateCache {
  private readonly entries = new Map<string, CachedAggregate<unknown>>();
  private readonly deciderIds = new WeakMap<object, number>();
  private nextDeciderId = 0;

  constructor(readonly maxStreams: number = AGGREGATE_CACHE_MAX_STREAMS) {}

  get<S>(decider: Decider<any, any, S>, streamId: string): CachedAggregate<S> | undefined {
    const key = this.keyOf(decider, streamId);
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    // Map keeps insertion order: re-inserting makes this the most recently used.
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry as CachedAggregate<S>;
  }

  put<S>(decider: Decider<any, any, S>, streamId: string, entry: CachedAggregate<S>): void {
    const key = this.keyOf(decider, streamId);
    const current = this.entries.get(key);
    // Two loads may race; the later revision wins, so the cache never moves backwards.
    if (current !== undefined && current.revision !== null && (entry.revision === null || entry.revision < current.revision)) return;
    this.entries.delete(key);
    this.entries.set(key, entry);
    while (this.entries.size > this.maxStreams) this.entries.delete(this.entries.keys().next().value!);
  }

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
  }

  /** The same stream folded by two deciders (a reader's view, say) keeps two states. */
  private keyOf(decider: object, streamId: string): string {
    let id = this.deciderIds.get(decider);
    if (id === undefined) {
      id = this.nextDeciderId++;
      this.deciderIds.set(decider, id);
    }
    return `${id}\u0000${streamId}`;
  }
}

const caches = new WeakMap<EventStore, AggregateCache>();

/** One cache per store object: two stores (two databases) never share states. */
export function aggregateCacheFor(store: EventStore): AggregateCache {
  let cache = caches.get(store);
  if (cache === undefined) {
    cache = new AggregateCache();
    caches.set(store, cache);
  }
  return cache;
}
