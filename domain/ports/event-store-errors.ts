// Typed event-store errors, each with a stable code that HTTP and the CLI pass through unchanged.

import type { ExpectedRevision } from './event-store.js';

export class EventStoreError extends Error {
  override readonly name: string = 'EventStoreError';
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

export class WrongExpectedRevisionError extends EventStoreError {
  override readonly name = 'WrongExpectedRevisionError';
  constructor(readonly streamId: string, readonly expected: ExpectedRevision, readonly actual: number | 'no_stream') {
    super('WRONG_EXPECTED_REVISION', `stream ${streamId} is at revision ${String(actual)}, but the append expected ${String(expected)}; reload the stream and decide again`);
  }
}

export class EventIdConflictError extends EventStoreError {
  override readonly name = 'EventIdConflictError';
  constructor(readonly streamId: string, readonly eventId: string, reason: string) {
    super('EVENT_ID_CONFLICT', `event ${eventId} in stream ${streamId}: ${reason}; use a fresh event id for a different event`);
  }
}

export class IdempotencyKeyReusedError extends EventStoreError {
  override readonly name = 'IdempotencyKeyReusedError';
  constructor(readonly key: string) {
    super('IDEMPOTENCY_KEY_REUSED', `idempotency key ${key} was already used for a different request; send a new key for a new request`);
  }
}

export class InvalidAppendError extends EventStoreError {
  override readonly name = 'InvalidAppendError';
  constructor(message: string) {
    super('INVALID_APPEND', message);
  }
}
