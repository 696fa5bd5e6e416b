// Builds a run's audit bundle: picks the run's whole streams from the log, then writes header, events, recipes, digests, blobs, trailer.

import { ASSIGNMENT_STREAM_PREFIX } from '../../domain/assignment/index.js';
import { CONTRIBUTOR_STREAM_PREFIX } from '../../domain/contributor/index.js';
import { INVOICE_STREAM_PREFIX } from '../../domain/invoice/index.js';
import type { RecordedEvent } from '../../domain/ports/event-store.js';
import { runStreamId } from '../../domain/run/index.js';
import { foldAssignment, recordedVerdictOf, runCheckpointDigests } from '../audit/reproduce-verdict.js';
import type { BlobStore } from '../ports/blob-store.js';
import { BUNDLE_FORMAT, BUNDLE_LIMITS, BUNDLE_VERSION, BundleEncoder, toBundleEvent, type DigestsRecord, type RecipeRecord } from './bundle-format.js';

export class BundleExportError extends Error {
  override readonly name = 'BundleExportError';
  constructor(
    readonly code: 'RUN_NOT_FOUND' | 'BUNDLE_TOO_LARGE' | 'BLOB_MISSING',
    message: string,
  ) {
    super(message);
  }
}

/**
 * The run's streams, whole (from revision 0, so every chain can be checked), in checkpoint order: the run
 * stream, the assignments and invoices whose first event names the run, and the contributors they touch.
 * One pass over the log: contributor streams are kept aside until the end shows which ones the run touches.
 */
export async function selectRunEvents(log: AsyncIterable<RecordedEvent>, runId: string): Promise<RecordedEvent[]> {
  const runStream = runStreamId(runId);
  const member = new Set<string>([runStream]);
  const contributors = new Set<string>();
  const picked: { index: number; event: RecordedEvent }[] = [];
  const contributorEvents = new Map<string, { index: number; event: RecordedEvent }[]>();
  let index = 0;
  for await (const event of log) {
    index += 1;
    const { streamId } = event;
    if (streamId.startsWith(CONTRIBUTOR_STREAM_PREFIX)) {
      const list = contributorEvents.get(streamId) ?? [];
      list.push({ index, event });
      contributorEvents.set(streamId, list);
      continue;
    }
    if (event.revision === 0 && (streamId.startsWith(ASSIGNMENT_STREAM_PREFIX) || streamId.startsWith(INVOICE_STREAM_PREFIX)) && event.data.runId === runId) {
      member.add(streamId);
      if (typeof event.data.contributorId === 'string') contributors.add(`${CONTRIBUTOR_STREAM_PREFIX}${event.data.contributorId}`);
    }
    if (member.has(streamId)) picked.push({ index, event });
    if (picked.length > BUNDLE_LIMITS.maxRecords) throw new BundleExportError('BUNDLE_TOO_LARGE', `run ${runId} has more than ${BUNDLE_LIMITS.maxRecords} events`);
  }
  if (!picked.some((p) => p.event.streamId === runStream)) throw new BundleExportError('RUN_NOT_FOUND', `no run ${runId} in the log (no ${runStream} stream)`);
  for (const id of contributors) picked.push(...(contributorEvents.get(id) ?? []));
  return picked.sort((a, b) => a.index - b.index).map((p) => p.event);
}

/** What the verifier re-derives and compares: the recipes each verdict rests on, and every digest the run's events name. */
export function derivedRecords(events: readonly RecordedEvent[]): { recipes: RecipeRecord[]; digests: DigestsRecord } {
  const byStream = groupByStream(events);
  const recipes: RecipeRecord[] = [];
  const gradients: DigestsRecord['gradients'] = [];
  const checkpoints = new Set<string>();
  const stepGraphDigests = new Set<string>();
  const shards: DigestsRecord['shards'] = [];
  for (const [streamId, stream] of byStream) {
    if (streamId.startsWith('run-')) {
      for (const e of stream) {
        if (e.type === 'RunOpened') {
          stepGraphDigests.add(String(e.data.stepGraphDigest));
          for (const shard of (e.data.shards as { shardId: string; digest: string }[]) ?? []) shards.push({ shardId: shard.shardId, digest: shard.digest });
        }
      }
      for (const digest of runCheckpointDigests(stream)) checkpoints.add(digest);
    }
    if (!streamId.startsWith(ASSIGNMENT_STREAM_PREFIX)) continue;
    const assignment = foldAssignment(stream);
    if (!assignment.terms) continue;
    checkpoints.add(assignment.terms.baseCheckpointDigest);
    if (assignment.submission) gradients.push({ assignmentId: assignment.terms.assignmentId, digest: assignment.submission.gradientDigest, sizeBytes: assignment.submission.sizeBytes });
    const recorded = safeRecordedVerdict(assignment);
    if (recorded) recipes.push({ kind: 'recipe', assignmentId: assignment.terms.assignmentId, source: recorded.source, recipe: recorded.recipe });
  }
  return { recipes, digests: { kind: 'digests', stepGraphDigests: [...stepGraphDigests], checkpoints: [...checkpoints], shards, gradients } };
}

/** A verdict whose recipe does not parse has no recipe record; the verifier reports it when it replays. */
function safeRecordedVerdict(assignment: ReturnType<typeof foldAssignment>) {
  try {
    return recordedVerdictOf(assignment);
  } catch {
    return null;
  }
}

export function groupByStream(events: readonly RecordedEvent[]): Map<string, RecordedEvent[]> {
  const streams = new Map<string, RecordedEvent[]>();
  for (const event of events) {
    const list = streams.get(event.streamId) ?? [];
    list.push(event);
    streams.set(event.streamId, list);
  }
  return streams;
}

export type BundleInput = Readonly<{
  runId: string;
  events: readonly RecordedEvent[];
  exportedAtMs: number;
  /** Where the events came from, for the reader (a data dir, a database, a server URL). */
  source: string;
  /** The blobs to embed (checkpoints and gradients), or null for a bundle of digests only. */
  blobs: BlobStore | null;
}>;

/** The bundle's lines in order; a caller streams them to a file. */
export async function* bundleLines(input: BundleInput): AsyncGenerator<string> {
  const encoder = new BundleEncoder();
  yield encoder.line({ kind: 'header', format: BUNDLE_FORMAT, version: BUNDLE_VERSION, runId: input.runId, exportedAtMs: input.exportedAtMs, source: input.source, withBlobs: input.blobs !== null });
  const heads = new Map<string, { revision: number; headHash: string }>();
  for (const event of input.events) {
    heads.set(event.streamId, { revision: event.revision, headHash: event.hash });
    yield encoder.line({ kind: 'event', event: toBundleEvent(event) });
  }
  const { recipes, digests } = derivedRecords(input.events);
  for (const recipe of recipes) yield encoder.line(recipe);
  yield encoder.line(digests);
  if (input.blobs) {
    for (const digest of new Set([...digests.checkpoints, ...digests.gradients.map((g) => g.digest)])) {
      const bytes = await input.blobs.get(digest);
      // A bundle --with-blobs promises every blob its events name: a missing one is said at export, not found out at audit.
      if (!bytes) throw new BundleExportError('BLOB_MISSING', `blob ${digest} named by run ${input.runId} is not in the blob folder`);
      yield encoder.line({ kind: 'blob', digest, sizeBytes: bytes.byteLength, base64: Buffer.from(bytes).toString('base64') });
    }
  }
  const streams = [...heads].map(([streamId, head]) => ({ streamId, ...head }));
  yield encoder.line({ kind: 'trailer', records: encoder.count, events: input.events.length, streams });
}
