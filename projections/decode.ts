// Turns logged events back into domain events for projectors, refusing types the catalog does not know.

import { fromWire } from '../domain/codec.js';
import { isDomainEventType, type DomainEvent } from '../domain/events.js';
import type { LoggedEvent } from './ports/projection-log.js';
import type { ProjectedEvent } from './projector.js';

export class UnknownEventTypeError extends Error {
  override readonly name = 'UnknownEventTypeError';
  readonly code = 'UNKNOWN_EVENT_TYPE';
}

export function decodeForProjection(recorded: LoggedEvent): ProjectedEvent {
  if (!isDomainEventType(recorded.type)) {
    // A projector that silently skipped an unknown type would drift from the
    // log without anyone noticing; stopping is the honest failure.
    throw new UnknownEventTypeError(`event ${recorded.eventId} at ${recorded.streamId}@${recorded.revision} has type ${recorded.type}, which the catalog does not know`);
  }
  const event = { type: recorded.type, data: fromWire(recorded.data) } as DomainEvent;
  return { streamId: recorded.streamId, revision: recorded.revision, position: recorded.position, hash: recorded.hash, event };
}
