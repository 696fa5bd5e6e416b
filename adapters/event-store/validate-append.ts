// Refuses malformed appends before any SQL runs: ids, sizes and counts against EVENT_STORE_LIMITS.

import type { AppendOptions, NewEvent } from '../../domain/ports/event-store.js';
import { InvalidAppendError } from '../../domain/ports/event-store-errors.js';
import { EVENT_STORE_LIMITS as L } from './limits.js';

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const STREAM_ID_PATTERN = /^[A-Za-z0-9._:-]+$/;
const HEX64_PATTERN = /^[0-9a-f]{64}$/;

export function validateAppend(streamId: string, events: readonly NewEvent[], options: AppendOptions): void {
  if (typeof streamId !== 'string' || streamId.length === 0 || streamId.length > L.maxStreamIdLength || !STREAM_ID_PATTERN.test(streamId)) {
    throw new InvalidAppendError(`stream id must be 1-${L.maxStreamIdLength} characters of [A-Za-z0-9._:-], got ${JSON.stringify(streamId)}`);
  }
  if (!Array.isArray(events) || events.length === 0 || events.length > L.maxEventsPerAppend) {
    throw new InvalidAppendError(`an append carries 1-${L.maxEventsPerAppend} events, got ${Array.isArray(events) ? events.length : 'none'}`);
  }
  validateExpectedRevision(options.expectedRevision);
  const seen = new Set<string>();
  for (const event of events) {
    validateEvent(event);
    const id = event.eventId.toLowerCase();
    if (seen.has(id)) throw new InvalidAppendError(`event id ${id} appears twice in one append`);
    seen.add(id);
  }
  if (options.idempotency) {
    const { key, requestDigest } = options.idempotency;
    if (typeof key !== 'string' || key.length === 0 || key.length > L.maxIdempotencyKeyLength) {
      throw new InvalidAppendError(`idempotency key must be 1-${L.maxIdempotencyKeyLength} characters`);
    }
    if (!HEX64_PATTERN.test(requestDigest)) throw new InvalidAppendError('idempotency request digest must be 64 lowercase hex characters (SHA-256)');
  }
}

function validateExpectedRevision(expected: AppendOptions['expectedRevision']): void {
  if (expected === 'any' || expected === 'no_stream' || expected === 'stream_exists') return;
  if (typeof expected === 'number' && Number.isSafeInteger(expected) && expected >= 0) return;
  throw new InvalidAppendError(`expectedRevision must be 'any', 'no_stream', 'stream_exists' or a revision >= 0, got ${JSON.stringify(expected)}`);
}

function validateEvent(event: NewEvent): void {
  if (typeof event.eventId !== 'string' || !UUID_PATTERN.test(event.eventId)) {
    throw new InvalidAppendError(`event id must be a UUID, got ${JSON.stringify(event.eventId)}`);
  }
  if (typeof event.type !== 'string' || event.type.length === 0 || event.type.length > L.maxEventTypeLength) {
    throw new InvalidAppendError(`event type must be 1-${L.maxEventTypeLength} characters`);
  }
  const version = event.schemaVersion ?? 1;
  if (!Number.isInteger(version) || version < 1 || version > 1_000) throw new InvalidAppendError(`schemaVersion must be an integer from 1 to 1000`);
  if (event.data === null || typeof event.data !== 'object' || Array.isArray(event.data)) {
    throw new InvalidAppendError(`event ${event.eventId} data must be a JSON object`);
  }
  const sizeBytes = Buffer.byteLength(JSON.stringify(event.data)) + Buffer.byteLength(JSON.stringify(event.metadata ?? {}));
  if (sizeBytes > L.maxEventDataBytes) {
    throw new InvalidAppendError(`event ${event.eventId} is ${sizeBytes} bytes of JSON; the limit is ${L.maxEventDataBytes}. Store large payloads as blobs and log their digest`);
  }
}
