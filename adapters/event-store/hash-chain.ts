// SHA-256 hash chain over each stream: every event's hash covers its content and its predecessor's hash.

import { createHash } from 'node:crypto';
import { canonicalJson } from '../../domain/codec.js';
import type { JsonObject } from '../../domain/ports/event-store.js';

/** The predecessor hash of a stream's first event. */
export const GENESIS_HASH = '0'.repeat(64);

export type ChainedContent = Readonly<{
  streamId: string;
  revision: number;
  eventId: string;
  type: string;
  schemaVersion: number;
  data: JsonObject;
  metadata: JsonObject;
  recordedAtMs: number;
}>;

export function chainHash(prevHash: string, content: ChainedContent): string {
  // Pick the fields explicitly: callers pass richer objects (a RecordedEvent),
  // and only these belong under the hash.
  const covered: ChainedContent = {
    streamId: content.streamId,
    revision: content.revision,
    eventId: content.eventId,
    type: content.type,
    schemaVersion: content.schemaVersion,
    data: content.data,
    metadata: content.metadata,
    recordedAtMs: content.recordedAtMs,
  };
  return createHash('sha256').update(prevHash).update('\n').update(canonicalJson(covered)).digest('hex');
}

/** Whether two appends of the same event id carry the same event (type, version, data, metadata). */
export function sameEventContent(
  a: Pick<ChainedContent, 'type' | 'schemaVersion' | 'data' | 'metadata'>,
  b: Pick<ChainedContent, 'type' | 'schemaVersion' | 'data' | 'metadata'>,
): boolean {
  return (
    a.type === b.type &&
    a.schemaVersion === b.schemaVersion &&
    canonicalJson(a.data) === canonicalJson(b.data) &&
    canonicalJson(a.metadata) === canonicalJson(b.metadata)
  );
}
