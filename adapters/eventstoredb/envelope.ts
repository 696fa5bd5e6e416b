// How a chained event is laid out in EventStoreDB: the domain data as the event's JSON data, chain and version in its metadata.

import { jsonEvent, type EventData, type ResolvedEvent } from '@eventstore/db-client';
import { canonicalJson } from '../../domain/codec.js';
import { GENESIS_HASH, chainHash } from '../event-store/hash-chain.js';
import type { JsonObject, NewEvent, RecordedEvent } from '../../domain/ports/event-store.js';
import { EventStoreError } from '../../domain/ports/event-store-errors.js';
import { hasLogPosition, toLogPosition } from './positions.js';
import { fromClientRevision, type StreamHeadRevision } from './revisions.js';

/**
 * The metadata of every event this store writes. The data stays the plain domain payload, so tools that
 * read EventStoreDB directly (the web UI, a projection in JavaScript) see the events as they are; what
 * only TrainLedger needs (the chain, the schema version, the time the hash covers) sits under one key.
 */
export type StoredMetadata = {
  /**
   * writeId: a random id per append attempt, outside the hashed content. Two writers racing the same
   * batch both send the same event ids at the same expected revision and the server answers both with
   * success (the second as an idempotent no-op); reading the events back and comparing writeIds is how
   * each learns whether its own attempt wrote them. Absent on events written before it existed.
   */
  trainledger: { schemaVersion: number; recordedAtMs: number; prevHash: string; hash: string; writeId?: string };
  metadata: JsonObject;
};

/** A new event normalized as the chain hashes it: lower-case id, JSON round-tripped through canonical form. */
export type NormalizedEvent = Readonly<{ eventId: string; type: string; schemaVersion: number; data: JsonObject; metadata: JsonObject }>;

export function normalizeEvent(event: NewEvent): NormalizedEvent {
  return {
    eventId: event.eventId.toLowerCase(),
    type: event.type,
    schemaVersion: event.schemaVersion ?? 1,
    data: JSON.parse(canonicalJson(event.data)) as JsonObject,
    metadata: JSON.parse(canonicalJson(event.metadata ?? {})) as JsonObject,
  };
}

export type ChainedEvent = NormalizedEvent & Readonly<{ streamId: string; revision: number; recordedAtMs: number; prevHash: string; hash: string }>;

/** Chains a batch onto the head the append read (null: a new stream), all at one recorded time. */
export function chainEvents(
  streamId: string,
  events: readonly NormalizedEvent[],
  head: { revision: StreamHeadRevision; hash: string | null },
  recordedAtMs: number,
): ChainedEvent[] {
  let prevHash = head.revision === null ? GENESIS_HASH : head.hash!;
  const first = head.revision === null ? 0 : head.revision + 1;
  return events.map((event, index) => {
    const content = { ...event, streamId, revision: first + index, recordedAtMs };
    const hash = chainHash(prevHash, content);
    const chained: ChainedEvent = { ...content, prevHash, hash };
    prevHash = hash;
    return chained;
  });
}

export function toEventData(event: ChainedEvent, writeId: string): EventData {
  const metadata: StoredMetadata = {
    trainledger: { schemaVersion: event.schemaVersion, recordedAtMs: event.recordedAtMs, prevHash: event.prevHash, hash: event.hash, writeId },
    metadata: event.metadata,
  };
  return jsonEvent({ id: event.eventId, type: event.type, data: event.data, metadata });
}

/** One resolved event read back from EventStoreDB as the port's RecordedEvent; refuses events this store did not write. */
export function fromResolvedEvent(resolved: ResolvedEvent): RecordedEvent {
  const event = resolved.event;
  if (!event) throw new EventStoreError('EVENT_STORE_FOREIGN_EVENT', 'a link to a deleted event was read; TrainLedger streams hold no links');
  if (!event.isJson) throw new EventStoreError('EVENT_STORE_FOREIGN_EVENT', `event ${event.id} in ${event.streamId} is binary; TrainLedger writes JSON only`);
  const meta = event.metadata as Partial<StoredMetadata> | undefined;
  const chain = meta?.trainledger;
  if (!chain || typeof chain.hash !== 'string' || typeof chain.prevHash !== 'string' || typeof chain.recordedAtMs !== 'number' || typeof chain.schemaVersion !== 'number') {
    throw new EventStoreError('EVENT_STORE_FOREIGN_EVENT', `event ${event.id} in ${event.streamId} carries no TrainLedger chain metadata; was it written by another tool?`);
  }
  if (!hasLogPosition(event.position)) throw unsupportedServer(`event ${event.id} in ${event.streamId} came back without its $all position`);
  return {
    streamId: event.streamId,
    revision: fromClientRevision(event.revision),
    position: toLogPosition(event.position),
    eventId: event.id.toLowerCase(),
    type: event.type,
    schemaVersion: chain.schemaVersion,
    data: event.data as JsonObject,
    metadata: (meta.metadata ?? {}) as JsonObject,
    recordedAtMs: chain.recordedAtMs,
    prevHash: chain.prevHash,
    hash: chain.hash,
  };
}

/** The append attempt that wrote this event (StoredMetadata.trainledger.writeId), or null when it carries none. */
export function writeIdOf(resolved: ResolvedEvent): string | null {
  const writeId = (resolved.event?.metadata as Partial<StoredMetadata> | undefined)?.trainledger?.writeId;
  return typeof writeId === 'string' ? writeId : null;
}

/**
 * Stream reads without $all positions (servers before 21.10, which send 2^64 - 1) are refused: every
 * append result, dedupe answer and checkpoint here is a position read from a stream. The start-up probe
 * checks for it too, where it can read a stream.
 */
export function unsupportedServer(detail: string): EventStoreError {
  return new EventStoreError('EVENT_STORE_UNSUPPORTED_SERVER', `${detail}: the EventStoreDB server is older than this adapter supports (stream reads must carry $all positions, EventStoreDB 21.10 or later / KurrentDB)`);
}
