// The audit bundle's framing: one record per line, each line "<sha256 hex> <json>\n" with the digest chained over the previous line's.

import { createHash } from 'node:crypto';
import type { RecordedEvent } from '../../domain/ports/event-store.js';
import type { StepRecipe } from '../recipe.js';
import type { VerdictSource } from '../audit/reproduce-verdict.js';

export const BUNDLE_FORMAT = 'trainledger-audit-bundle';
export const BUNDLE_VERSION = 1;
/** The previous-line digest of the first line. */
export const BUNDLE_GENESIS_DIGEST = '0'.repeat(64);

/** Limits on read (and write): a bundle larger than these is refused, never buffered without bound. */
export const BUNDLE_LIMITS = Object.freeze({
  /** One line: a blob of 64 MiB is about 85 MiB of base64. */
  maxRecordBytes: 96 * 1024 * 1024,
  maxRecords: 5_000_000,
  maxBundleBytes: 8 * 1024 * 1024 * 1024,
  /** Blob bytes one verifier keeps in memory for replays. */
  maxBlobBytesTotal: 2 * 1024 * 1024 * 1024,
  /** Problems listed in full; the rest are counted. */
  maxProblemsListed: 200,
});

/** An event as the bundle holds it: the store's record with its position as decimal strings. */
export type BundleEvent = Omit<RecordedEvent, 'position'> & { position: { transactionId: string; globalPosition: string } };

export type HeaderRecord = { kind: 'header'; format: typeof BUNDLE_FORMAT; version: typeof BUNDLE_VERSION; runId: string; exportedAtMs: number; source: string; withBlobs: boolean };
export type EventRecord = { kind: 'event'; event: BundleEvent };
export type RecipeRecord = { kind: 'recipe'; assignmentId: string; source: VerdictSource; recipe: StepRecipe };
export type DigestsRecord = {
  kind: 'digests';
  stepGraphDigests: string[];
  checkpoints: string[];
  shards: { shardId: string; digest: string }[];
  gradients: { assignmentId: string; digest: string; sizeBytes: number }[];
};
export type BlobRecord = { kind: 'blob'; digest: string; sizeBytes: number; base64: string };
export type TrailerRecord = { kind: 'trailer'; records: number; events: number; streams: { streamId: string; revision: number; headHash: string }[] };
export type BundleRecord = HeaderRecord | EventRecord | RecipeRecord | DigestsRecord | BlobRecord | TrailerRecord;

export function lineDigest(previousDigest: string, json: Uint8Array | string): string {
  return createHash('sha256').update(previousDigest).update(json).digest('hex');
}

/** Writes records as lines, chaining each line's digest over the one before. */
export class BundleEncoder {
  private previous = BUNDLE_GENESIS_DIGEST;
  count = 0;

  line(record: BundleRecord): string {
    const json = JSON.stringify(record);
    const digest = lineDigest(this.previous, json);
    this.previous = digest;
    this.count += 1;
    return `${digest} ${json}\n`;
  }
}

export function toBundleEvent(event: RecordedEvent): BundleEvent {
  return { ...event, position: { transactionId: event.position.transactionId.toString(), globalPosition: event.position.globalPosition.toString() } };
}

export function fromBundleEvent(event: BundleEvent): RecordedEvent {
  return { ...event, position: { transactionId: BigInt(event.position.transactionId), globalPosition: BigInt(event.position.globalPosition) } };
}
