// The client's errors as the port's typed errors, each with a stable code; anything unknown keeps its message under EVENT_STORE_FAILED.

import { ErrorType, type CurrentRevision } from '@eventstore/db-client';
import { EventStoreError, InvalidAppendError, WrongExpectedRevisionError } from '../../domain/ports/event-store-errors.js';
import type { ExpectedRevision } from '../../domain/ports/event-store.js';
import { fromClientCurrentRevision } from './revisions.js';

/** No node answered in time, or none could take the request (no leader, node shutting down). Retrying later may work. */
export class EventStoreUnavailableError extends EventStoreError {
  override readonly name = 'EventStoreUnavailableError';
  constructor(detail: string) {
    super('EVENT_STORE_UNAVAILABLE', `the EventStoreDB cluster did not answer: ${detail}; check that a leader is up and reachable`);
  }
}

/** The start-up probe found no cluster: `trainledger start` exits with this code and the URL (without credentials). */
export class EventStoreUnreachableError extends EventStoreError {
  override readonly name = 'EventStoreUnreachableError';
  constructor(readonly url: string, readonly deadlineMs: number, detail: string) {
    super('EVENT_STORE_UNREACHABLE', `no EventStoreDB/KurrentDB cluster answered at ${url}: ${detail} (probe deadline ${deadlineMs} ms); check ESDB_URL, that the nodes are up, and tls=`);
  }
}

/** The client's error shape this module reads: its `type` tag (ErrorType) and, for WrongExpectedVersion, the versions. */
type ClientErrorLike = {
  type?: unknown;
  message?: unknown;
  streamName?: unknown;
  actualVersion?: CurrentRevision;
};

function asClientError(error: unknown): ClientErrorLike | null {
  if (typeof error !== 'object' || error === null) return null;
  const type = (error as ClientErrorLike).type;
  return typeof type === 'string' && (Object.values(ErrorType) as string[]).includes(type) ? (error as ClientErrorLike) : null;
}

export function isWrongExpectedVersion(error: unknown): boolean {
  return asClientError(error)?.type === ErrorType.WRONG_EXPECTED_VERSION;
}

export function isStreamNotFound(error: unknown): boolean {
  const type = asClientError(error)?.type;
  return type === ErrorType.STREAM_NOT_FOUND || type === ErrorType.NO_STREAM;
}

export type ErrorContext = Readonly<{ streamId?: string; expected?: ExpectedRevision }>;

/**
 * One client error as the port's: the port's own errors pass through unchanged; client errors get a
 * typed port error with a stable code; anything else (a bug, a broken invariant) is rethrown as is, so
 * it keeps its stack and is never disguised as a store condition.
 */
export function mapClientError(error: unknown, context: ErrorContext = {}): unknown {
  if (error instanceof EventStoreError) return error;
  const client = asClientError(error);
  if (!client) return error;
  const message = typeof client.message === 'string' ? client.message : String(client.type);
  const streamId = context.streamId ?? (typeof client.streamName === 'string' ? client.streamName : 'unknown');
  switch (client.type) {
    case ErrorType.WRONG_EXPECTED_VERSION:
      return new WrongExpectedRevisionError(streamId, context.expected ?? 'any', fromClientCurrentRevision(client.actualVersion));
    case ErrorType.TIMEOUT:
    case ErrorType.DEADLINE_EXCEEDED:
    case ErrorType.UNAVAILABLE:
    case ErrorType.NOT_LEADER:
    case ErrorType.CANCELLED:
      return new EventStoreUnavailableError(`${client.type}: ${message}`);
    case ErrorType.ACCESS_DENIED:
      return new EventStoreError('EVENT_STORE_ACCESS_DENIED', `the cluster refused the credentials in ESDB_URL for ${streamId}: ${message}`);
    case ErrorType.STREAM_DELETED:
      return new EventStoreError('STREAM_DELETED', `stream ${streamId} was deleted (tombstoned) in EventStoreDB and can never be written again: ${message}`);
    case ErrorType.MAXIMUM_APPEND_SIZE_EXCEEDED:
      return new InvalidAppendError(`the append to ${streamId} is larger than the cluster's MaxAppendSize: ${message}; append fewer events at once`);
    case ErrorType.INVALID_ARGUMENT:
      return new InvalidAppendError(`the cluster refused the request for ${streamId}: ${message}`);
    default:
      return new EventStoreError('EVENT_STORE_FAILED', `EventStoreDB ${String(client.type)} on ${streamId}: ${message}`);
  }
}
