// SHA-256 hash chain over each stream: every event's hash covers its content and its predecessor's hash (pure, so an offline verifier can use it).

import { hash as cryptoHash } from 'node:crypto';
import { canonicalJson } from './codec.js';
import type { ChainVerification, JsonObject, RecordedEvent } from './ports/event-store.js';

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
  return sha256Hex(`${prevHash}\n${coveredJson(content)}`);
}

/**
 * canonicalJson of the covered fields, written out in their sorted order rather than built as an
 * object and sorted per event: the audit hashes every event of the log through here. Only these
 * fields belong under the hash (callers pass richer objects, a RecordedEvent). A field that is
 * undefined (canonicalJson leaves it out) takes the general path, so the text is always the same.
 */
function coveredJson(c: ChainedContent): string {
  if (c.streamId === undefined || c.revision === undefined || c.eventId === undefined || c.type === undefined || c.schemaVersion === undefined || c.data === undefined || c.metadata === undefined || c.recordedAtMs === undefined) {
    const covered = { streamId: c.streamId, revision: c.revision, eventId: c.eventId, type: c.type, schemaVersion: c.schemaVersion, data: c.data, metadata: c.metadata, recordedAtMs: c.recordedAtMs };
    return canonicalJson(covered);
  }
  return `{"data":${canonicalJson(c.data)},"eventId":${canonicalJson(c.eventId)},"metadata":${canonicalJson(c.metadata)},"recordedAtMs":${canonicalJson(c.recordedAtMs)},"revision":${canonicalJson(c.revision)},"schemaVersion":${canonicalJson(c.schemaVersion)},"streamId":${canonicalJson(c.streamId)},"type":${canonicalJson(c.type)}}`;
}

/** One-shot digest (node:crypto hash, Node 20.12+; engines ask for 24): no Hash object per event. Same bytes, same digest as createHash. */
function sha256Hex(text: string): string {
  return cryptoHash('sha256', text, 'hex');
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

/** Re-derives a stream's hash chain from its events (revision order) and reports the first link that does not hold. */
export function verifyChain(
  streamId: string,
  events: readonly RecordedEvent[],
  head: { revision: number; headHash: string } | null,
): ChainVerification {
  let prevHash = GENESIS_HASH;
  for (const [index, event] of events.entries()) {
    if (event.revision !== index) {
      return { ok: false, streamId, revision: index, problem: 'revision-gap', detail: `expected revision ${index}, found ${event.revision}` };
    }
    if (event.prevHash !== prevHash) {
      return { ok: false, streamId, revision: index, problem: 'broken-link', detail: `prev_hash ${event.prevHash} does not equal the predecessor's hash ${prevHash}` };
    }
    const recomputed = chainHash(prevHash, event);
    if (recomputed !== event.hash) {
      return { ok: false, streamId, revision: index, problem: 'hash-mismatch', detail: `stored hash ${event.hash}, content hashes to ${recomputed}` };
    }
    prevHash = event.hash;
  }
  const lastRevision = events.length - 1;
  if (head && (head.revision !== lastRevision || (events.length > 0 && head.headHash !== prevHash))) {
    return { ok: false, streamId, revision: lastRevision, problem: 'head-mismatch', detail: `stream head says revision ${head.revision} hash ${head.headHash}, events end at ${lastRevision} hash ${prevHash}` };
  }
  return { ok: true, streamsChecked: 1, eventsChecked: events.length };
}
