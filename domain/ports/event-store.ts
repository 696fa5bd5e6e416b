// The event-store port: append with optimistic concurrency, read streams and the log, durable checkpoints, tamper checks.

/** JSON as it is stored: msat amounts are already decimal strings here (see domain/codec.ts). */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/**
 * What the caller expects the stream's last revision to be. Revisions count from 0,
 * so 'no_stream' is "no revision yet" and a number is the revision of the last event.
 */
export type ExpectedRevision = 'any' | 'no_stream' | 'stream_exists' | number;

export type NewEvent = Readonly<{
  /** A UUID chosen by the writer; re-appending the same id to the same stream is a no-op. */
  eventId: string;
  type: string;
  schemaVersion?: number;
  data: JsonObject;
  metadata?: JsonObject;
}>;

/**
 * A point in the log, in checkpoint order. Ordering by transaction first is what
 * makes reading below the oldest open transaction safe: positions are allocated
 * before commit, so a lower position can commit later than a higher one.
 */
export type LogPosition = Readonly<{ transactionId: bigint; globalPosition: bigint }>;

export const LOG_START: LogPosition = Object.freeze({ transactionId: 0n, globalPosition: 0n });

export type RecordedEvent = Readonly<{
  streamId: string;
  revision: number;
  position: LogPosition;
  eventId: string;
  type: string;
  schemaVersion: number;
  data: JsonObject;
  metadata: JsonObject;
  recordedAtMs: number;
  prevHash: string;
  hash: string;
}>;

export type AppendResult = Readonly<{
  /** 'duplicate' means every event id was already in the stream (or the idempotency key was seen): nothing was written. */
  status: 'appended' | 'duplicate';
  streamId: string;
  firstRevision: number;
  /** The revision of the stream's last event: pass it as the next expectedRevision. */
  lastRevision: number;
  /** The position of the last event of this append. */
  position: LogPosition;
}>;

export type IdempotencyClaim = Readonly<{
  key: string;
  /** SHA-256 of the canonical request; the same key with another digest is refused. */
  requestDigest: string;
}>;

export type AppendOptions = Readonly<{
  expectedRevision: ExpectedRevision;
  /** Recorded in the same transaction as the events, so a retried command can never apply twice. */
  idempotency?: IdempotencyClaim;
}>;

export type ReadStreamOptions = Readonly<{
  direction?: 'forwards' | 'backwards';
  /** Inclusive; defaults to the first (forwards) or last (backwards) revision. */
  fromRevision?: number;
  maxCount?: number;
}>;

export type ReadAllOptions = Readonly<{
  /** Exclusive: events strictly after this position in checkpoint order. */
  after?: LogPosition;
  maxCount?: number;
}>;

export type StoredIdempotentResult = Readonly<{ requestDigest: string; result: AppendResult }>;

export type ChainVerification =
  | Readonly<{ ok: true; streamsChecked: number; eventsChecked: number }>
  | Readonly<{
      ok: false;
      streamId: string;
      revision: number;
      problem: 'hash-mismatch' | 'broken-link' | 'revision-gap' | 'head-mismatch';
      detail: string;
    }>;

/** One stream's part of an atomic multi-stream append. */
export type StreamAppend = Readonly<{ streamId: string; events: readonly NewEvent[]; options: AppendOptions }>;

export interface EventStore {
  append(streamId: string, events: readonly NewEvent[], options: AppendOptions): Promise<AppendResult>;
  /**
   * Appends to several streams in one transaction: all commit or none do, each with its own
   * expected revision and idempotency claim. Optional: a store without multi-stream
   * transactions (EventStoreDB) leaves it out, and callers fall back to one append per stream
   * with a recovery reaction for what a crash between them leaves half done.
   */
  appendAtomically?(appends: readonly StreamAppend[]): Promise<AppendResult[]>;
  readStream(streamId: string, options?: ReadStreamOptions): Promise<RecordedEvent[]>;
  /** Reads committed events in checkpoint order, never past the oldest in-progress writer. */
  readAll(options?: ReadAllOptions): Promise<RecordedEvent[]>;
  /** The position of the last event a reader may safely see now. */
  headPosition(): Promise<LogPosition>;
  loadCheckpoint(subscriptionId: string): Promise<LogPosition>;
  saveCheckpoint(subscriptionId: string, position: LogPosition): Promise<void>;
  lookupIdempotencyKey(key: string): Promise<StoredIdempotentResult | null>;
  verifyStream(streamId: string): Promise<ChainVerification>;
  verifyAll(): Promise<ChainVerification>;
  /** Calls `listener` after each append this process commits; returns an unsubscribe function. */
  onAppended(listener: () => void): () => void;
  close(): Promise<void>;
}

export function comparePositions(a: LogPosition, b: LogPosition): number {
  if (a.transactionId !== b.transactionId) return a.transactionId < b.transactionId ? -1 : 1;
  if (a.globalPosition !== b.globalPosition) return a.globalPosition < b.globalPosition ? -1 : 1;
  return 0;
}
