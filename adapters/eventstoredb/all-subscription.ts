// A catch-up subscription on $all, pushed by the server from a (commit, prepare) checkpoint, filtered to domain streams; the checkpoint is saved after each batch.

import { streamNameFilter, type AllStreamResolvedEvent, type AllStreamSubscription } from '@eventstore/db-client';
import { comparePositions, type LogPosition, type RecordedEvent } from '../../domain/ports/event-store.js';
import { DEFAULT_SUBSCRIPTION_BATCH_SIZE, type CatchUpOptions } from '../event-store/catch-up-subscription.js';
import { CheckpointWaiters } from '../event-store/checkpoint-waiters.js';
import { fromResolvedEvent } from './envelope.js';
import { DOMAIN_STREAMS_REGEX, isDomainEvent, type EsdbEventStore } from './esdb-event-store.js';
import { mapClientError } from './errors.js';
import { readFrom, toLogPosition } from './positions.js';

/**
 * The same contract as the polling CatchUpSubscription (at-least-once, in $all order, checkpoint after
 * the handler resolves), without polling: the server streams history from the checkpoint, then live
 * events. The server-side filter drops system ('$') and internal ('#') streams before they travel.
 * Backpressure: the stream is paused while a full batch is handled, so at most one batch waits in memory
 * besides the client's read buffer.
 */
export class EsdbCatchUpSubscription {
  private checkpoint: LogPosition | null = null;
  private stopped = false;
  private subscription: AllStreamSubscription | null = null;
  private readonly waiters: CheckpointWaiters;
  readonly done: Promise<void>;

  constructor(private readonly store: EsdbEventStore, private readonly options: CatchUpOptions) {
    this.waiters = new CheckpointWaiters(options.subscriptionId);
    this.done = this.run();
    this.done.catch(() => {});
  }

  get position(): LogPosition | null {
    return this.checkpoint;
  }

  reached(target: LogPosition): Promise<void> {
    return this.waiters.wait(this.checkpoint, target, this.done);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.subscription?.unsubscribe().catch(() => {});
    await this.done.catch(() => {});
  }

  private async run(): Promise<void> {
    const batchSize = this.options.batchSize ?? DEFAULT_SUBSCRIPTION_BATCH_SIZE;
    const start = await this.store.loadCheckpoint(this.options.subscriptionId);
    this.checkpoint = start;
    if (this.stopped) return;
    const subscription = this.store.client.subscribeToAll({ fromPosition: readFrom(start), filter: streamNameFilter({ regex: DOMAIN_STREAMS_REGEX }) });
    this.subscription = subscription;
    const buffer: RecordedEvent[] = [];
    try {
      // The iterator pulls one event at a time and the handler runs inside the loop: the stream waits
      // while a batch is handled. A batch goes out when full, or when nothing more is buffered right now.
      const iterator = subscription[Symbol.asyncIterator]() as AsyncIterator<AllStreamResolvedEvent>;
      // One next() in flight at a time: when a flush wins the race, the same pending next() is awaited after it.
      let pending: Promise<IteratorResult<AllStreamResolvedEvent>> | null = null;
      for (;;) {
        pending ??= iterator.next();
        const next = buffer.length === 0 ? await pending : await Promise.race([pending, nextTick()]);
        if (next === 'flush') {
          await this.flush(buffer.splice(0));
          continue;
        }
        pending = null;
        if (next.done || this.stopped) break;
        const event = next.value.event;
        if (!event) continue;
        // fromPosition is inclusive: the checkpoint's own event was handled already.
        if (comparePositions(toLogPosition(event.position), start) <= 0 || !isDomainEvent(event.streamId, event.type)) continue;
        buffer.push(fromResolvedEvent(next.value));
        if (buffer.length >= batchSize) await this.flush(buffer.splice(0));
      }
      if (!this.stopped && buffer.length > 0) await this.flush(buffer.splice(0));
    } catch (error) {
      if (this.stopped) return;
      throw mapClientError(error, { streamId: '$all' });
    } finally {
      await subscription.unsubscribe().catch(() => {});
    }
  }

  private async flush(batch: RecordedEvent[]): Promise<void> {
    if (batch.length === 0 || this.stopped) return;
    await this.options.handle(batch);
    const last = batch[batch.length - 1]!.position;
    await this.store.saveCheckpoint(this.options.subscriptionId, last);
    this.checkpoint = last;
    this.waiters.settle(last);
  }
}

/** Resolves after the events already buffered by the client have been delivered: then a partial batch goes out. */
function nextTick(): Promise<'flush'> {
  return new Promise((resolve) => setImmediate(() => resolve('flush')));
}
