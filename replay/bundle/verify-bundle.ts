// Audits a bundle offline: record digests, hash chains, run membership, the recorded recipes and digests, settlements, blobs, and chosen replays.

import { createHash } from 'node:crypto';
import { canonicalJson } from '../../domain/codec.js';
import { verifyChain } from '../../domain/hash-chain.js';
import { comparePositions, type RecordedEvent } from '../../domain/ports/event-store.js';
import { reproduceVerdict, type Reproduction } from '../audit/reproduce-verdict.js';
import type { CalibrationFile } from '../compare/calibration.js';
import type { BlobStore } from '../ports/blob-store.js';
import type { ProviderRequest } from '../step/execution-providers.js';
import { BUNDLE_FORMAT, BUNDLE_LIMITS, BUNDLE_VERSION, fromBundleEvent, type BundleRecord, type HeaderRecord, type TrailerRecord } from './bundle-format.js';
import { checkSettlements, type AssignmentSettlement } from './check-settlements.js';
import { MemoryBlobStore } from './memory-blob-store.js';
import { checkedLines, type BundleLocation, type BundleProblem } from './read-bundle.js';
import { derivedRecords, groupByStream } from './write-bundle.js';

export type { BundleProblem } from './read-bundle.js';

export type ReplayChoice = Readonly<{ mode: 'none' } | { mode: 'all' } | { mode: 'sample'; count: number; seed: string }>;

export type VerifyOptions = Readonly<{
  replay: ReplayChoice;
  /** Blobs outside the bundle (--blobs DIR); the bundle's own blobs come first. */
  blobs?: BlobStore | null;
  provider?: ProviderRequest;
  calibration?: CalibrationFile | null;
  onProgress?: (line: string) => void;
}>;

export type ReplayAudit = Readonly<{ assignmentId: string; reproduced: boolean; reproduction: Reproduction | null; error: string | null }>;

export type BundleAudit = Readonly<{
  ok: boolean;
  runId: string | null;
  records: number;
  events: number;
  streams: number;
  blobs: number;
  problems: BundleProblem[];
  /** Problems past BUNDLE_LIMITS.maxProblemsListed, counted only. */
  moreProblems: number;
  settlements: AssignmentSettlement[];
  replays: ReplayAudit[];
  /** The intact events by stream and the bundled blobs, for a caller that goes on to replay from the bundle. */
  contents: Readonly<{ streams: ReadonlyMap<string, readonly RecordedEvent[]>; blobs: MemoryBlobStore }>;
}>;

type Located = { event: RecordedEvent; at: BundleLocation };

/** The bundle as read: only records whose digests hold are trusted; every other line is already a problem. */
type Read = { header: HeaderRecord | null; trailer: TrailerRecord | null; trailerAt: BundleLocation | null; events: Located[]; recipes: BundleRecord[]; digests: BundleRecord | null; blobs: MemoryBlobStore; records: number; problems: BundleProblem[] };

export async function verifyBundle(chunks: AsyncIterable<Uint8Array>, options: VerifyOptions): Promise<BundleAudit> {
  const read = await readRecords(chunks);
  const problems = read.problems;
  const events = read.events;
  checkHeaderAndTrailer(read);
  checkOrder(events, problems);
  const streams = groupByStream(events.map((e) => e.event));
  const where = new Map(events.map((e) => [`${e.event.streamId}\u0000${e.event.revision}`, e.at]));
  checkChains(streams, read, where, problems);
  const runId = read.header?.runId ?? null;
  if (runId !== null) checkMembership(runId, events, problems);
  checkDerived(read, problems);
  const settlement = checkSettlements(streams);
  for (const f of settlement.findings) problems.push({ ...(f.streamId ? where.get(`${f.streamId}\u0000${f.revision}`) ?? {} : {}), ...f });
  const replays = await runReplays(streams, read.blobs, options, problems);
  const listed = problems.slice(0, BUNDLE_LIMITS.maxProblemsListed);
  return {
    ok: problems.length === 0,
    runId,
    records: read.records,
    events: events.length,
    streams: streams.size,
    blobs: read.blobs.size,
    problems: listed,
    moreProblems: problems.length - listed.length,
    settlements: settlement.assignments,
    replays,
    contents: { streams, blobs: read.blobs },
  };
}

async function readRecords(chunks: AsyncIterable<Uint8Array>): Promise<Read> {
  const read: Read = { header: null, trailer: null, trailerAt: null, events: [], recipes: [], digests: null, blobs: new MemoryBlobStore(BUNDLE_LIMITS.maxBlobBytesTotal), records: 0, problems: [] };
  try {
    for await (const { line, record, problem } of checkedLines(chunks)) {
      read.records = line.record + 1;
      const at: BundleLocation = { record: line.record, byteOffset: line.byteOffset, byteEnd: line.byteEnd };
      if (problem) read.problems.push(problem);
      if (!record || problem) continue;
      if (read.trailer) read.problems.push({ ...at, code: 'BUNDLE_AFTER_TRAILER', message: 'a record follows the trailer' });
      else acceptRecord(read, record, at);
    }
  } catch (error) {
    read.problems.push({ code: 'BUNDLE_TOO_LARGE', message: error instanceof Error ? error.message : String(error) });
  }
  return read;
}

function acceptRecord(read: Read, record: BundleRecord, at: BundleLocation): void {
  const problem = (code: string, message: string, extra: object = {}) => read.problems.push({ ...at, ...extra, code, message });
  if (at.record === 0) {
    if (record.kind !== 'header') return void problem('BUNDLE_HEADER', 'the first record must be the header');
    if (record.format !== BUNDLE_FORMAT || record.version !== BUNDLE_VERSION || typeof record.runId !== 'string') return void problem('BUNDLE_HEADER', `not a ${BUNDLE_FORMAT} version ${BUNDLE_VERSION} header`);
    read.header = record;
    return;
  }
  switch (record.kind) {
    case 'event': {
      const event = parseEvent(record.event);
      if (typeof event === 'string') return void problem('BUNDLE_EVENT_INVALID', event, eventWhere(record.event));
      read.events.push({ event, at: { ...at, streamId: event.streamId, revision: event.revision } });
      return;
    }
    case 'recipe':
      read.recipes.push(record);
      return;
    case 'digests':
      if (read.digests) return void problem('BUNDLE_DUPLICATE_RECORD', 'a second digests record');
      read.digests = record;
      return;
    case 'blob': {
      const bytes = typeof record.base64 === 'string' ? Buffer.from(record.base64, 'base64') : Buffer.alloc(0);
      const digest = createHash('sha256').update(bytes).digest('hex');
      if (digest !== record.digest || bytes.byteLength !== record.sizeBytes) return void problem('BLOB_DIGEST_MISMATCH', `blob record ${String(record.digest)} holds ${bytes.byteLength} bytes hashing to ${digest}`);
      if (!read.blobs.add(digest, bytes)) problem('BUNDLE_TOO_LARGE', `blobs exceed ${BUNDLE_LIMITS.maxBlobBytesTotal} bytes in memory`);
      return;
    }
    case 'trailer':
      read.trailer = record;
      read.trailerAt = at;
      return;
    default:
      problem('BUNDLE_RECORD_MALFORMED', `unknown record kind ${JSON.stringify((record as { kind: unknown }).kind)}`);
  }
}

const HEX64 = /^[0-9a-f]{64}$/;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Every field checked, so nothing later trusts a shape the bundle merely claims. */
function parseEvent(value: unknown): RecordedEvent | string {
  if (!isObject(value)) return 'an event record must hold an object';
  const e = value;
  const position = e.position;
  if (typeof e.streamId !== 'string' || !Number.isSafeInteger(e.revision) || (e.revision as number) < 0) return 'event.streamId or event.revision is malformed';
  if (!isObject(position) || typeof position.transactionId !== 'string' || !/^\d{1,20}$/.test(position.transactionId) || typeof position.globalPosition !== 'string' || !/^\d{1,20}$/.test(position.globalPosition)) return 'event.position is malformed';
  if (typeof e.eventId !== 'string' || typeof e.type !== 'string' || !Number.isSafeInteger(e.schemaVersion) || !isObject(e.data) || !isObject(e.metadata) || typeof e.recordedAtMs !== 'number') return 'event fields are malformed';
  if (typeof e.prevHash !== 'string' || !HEX64.test(e.prevHash) || typeof e.hash !== 'string' || !HEX64.test(e.hash)) return 'event.prevHash or event.hash is malformed';
  return fromBundleEvent(e as never);
}

function eventWhere(event: unknown): { streamId?: string; revision?: number } {
  if (!isObject(event)) return {};
  return { ...(typeof event.streamId === 'string' ? { streamId: event.streamId } : {}), ...(typeof event.revision === 'number' ? { revision: event.revision } : {}) };
}

function checkHeaderAndTrailer(read: Read): void {
  if (!read.header && !read.problems.some((p) => p.record === 0)) read.problems.push({ record: 0, code: 'BUNDLE_HEADER', message: 'the bundle has no header' });
  if (!read.trailer) {
    read.problems.push({ record: read.records, code: 'BUNDLE_TRAILER_MISSING', message: 'the bundle ends without a trailer: it was cut short or its trailer was damaged' });
    return;
  }
  const at = read.trailerAt!;
  if (read.trailer.records !== at.record) read.problems.push({ ...at, code: 'BUNDLE_TRAILER_MISMATCH', message: `the trailer counts ${read.trailer.records} records before it, the bundle has ${at.record}` });
  if (read.trailer.events !== read.events.length) read.problems.push({ ...at, code: 'BUNDLE_TRAILER_MISMATCH', message: `the trailer counts ${read.trailer.events} events, the bundle holds ${read.events.length} intact ones` });
}

function checkOrder(events: readonly Located[], problems: BundleProblem[]): void {
  for (let i = 1; i < events.length; i += 1) {
    if (comparePositions(events[i - 1]!.event.position, events[i]!.event.position) >= 0) {
      problems.push({ ...events[i]!.at, code: 'EVENT_ORDER', message: 'events must be in checkpoint order: this position is not after the one before' });
    }
  }
}

function checkChains(streams: ReadonlyMap<string, RecordedEvent[]>, read: Read, where: ReadonlyMap<string, BundleLocation>, problems: BundleProblem[]): void {
  const heads = new Map((read.trailer?.streams ?? []).map((s) => [s.streamId, s]));
  for (const [streamId, events] of streams) {
    const head = heads.get(streamId) ?? null;
    if (read.trailer && !head) problems.push({ ...read.trailerAt!, streamId, code: 'BUNDLE_TRAILER_MISMATCH', message: `the trailer lists no head for ${streamId}` });
    const result = verifyChain(streamId, events, head);
    if (!result.ok) {
      const at = where.get(`${streamId}\u0000${events[Math.min(result.revision, events.length - 1)]?.revision ?? result.revision}`) ?? {};
      const location = result.problem === 'head-mismatch' ? { ...read.trailerAt, streamId } : { ...at, streamId, revision: result.revision };
      problems.push({ ...location, code: 'CHAIN_BROKEN', message: `${result.problem}: ${result.detail}` });
    }
  }
  for (const streamId of heads.keys()) if (!streams.has(streamId)) problems.push({ ...read.trailerAt!, streamId, code: 'BUNDLE_TRAILER_MISMATCH', message: `the trailer names ${streamId}, which has no intact event in the bundle` });
}

/** Every event belongs to the run: its stream, or an assignment or invoice naming it, or a contributor one of them names. */
function checkMembership(runId: string, events: readonly Located[], problems: BundleProblem[]): void {
  const contributors = new Set<string>();
  for (const { event } of events) if ((event.streamId.startsWith('assignment-') || event.streamId.startsWith('invoice-')) && typeof event.data.contributorId === 'string') contributors.add(`contributor-${event.data.contributorId}`);
  for (const { event, at } of events) {
    const ok =
      event.streamId === `run-${runId}` ||
      ((event.streamId.startsWith('assignment-') || event.streamId.startsWith('invoice-')) && event.data.runId === runId) ||
      (event.streamId.startsWith('contributor-') && contributors.has(event.streamId));
    if (!ok) problems.push({ ...at, code: 'EVENT_OUTSIDE_RUN', message: `${event.type} in ${event.streamId} is not part of run ${runId}` });
  }
}

/** The recipe and digest records must be exactly what the events imply: they are conveniences, never a second source of truth. */
function checkDerived(read: Read, problems: BundleProblem[]): void {
  let derived: ReturnType<typeof derivedRecords>;
  try {
    derived = derivedRecords(read.events.map((e) => e.event));
  } catch (error) {
    problems.push({ code: 'EVENT_INVALID', message: `the events do not fold: ${error instanceof Error ? error.message : String(error)}` });
    return;
  }
  const at = read.trailerAt ?? {};
  if (canonicalJson(derived.recipes) !== canonicalJson(read.recipes)) problems.push({ ...at, code: 'RECIPE_RECORDS_MISMATCH', message: 'the recipe records are not the recipes the verdict events hold' });
  if (!read.digests || canonicalJson(derived.digests) !== canonicalJson(read.digests)) problems.push({ ...at, code: 'DIGESTS_RECORD_MISMATCH', message: 'the digests record is not what the events name' });
  if (read.header?.withBlobs) {
    for (const digest of new Set([...derived.digests.checkpoints, ...derived.digests.gradients.map((g) => g.digest)])) {
      if (!read.blobs.hasSync(digest)) problems.push({ code: 'BLOB_MISSING', message: `the header says the bundle holds its blobs, but blob ${digest} is not in it` });
    }
  }
}

async function runReplays(streams: ReadonlyMap<string, RecordedEvent[]>, bundled: MemoryBlobStore, options: VerifyOptions, problems: BundleProblem[]): Promise<ReplayAudit[]> {
  if (options.replay.mode === 'none') return [];
  const withRecipes = derivedRecords([...streams.values()].flat().sort((a, b) => comparePositions(a.position, b.position))).recipes.map((r) => r.assignmentId);
  const chosen = options.replay.mode === 'all' ? withRecipes : sample(withRecipes, options.replay.count, options.replay.seed);
  const runEvents = [...streams].find(([id]) => id.startsWith('run-'))?.[1] ?? [];
  const blobs = options.blobs ? bundled.withFallback(options.blobs) : bundled;
  const audits: ReplayAudit[] = [];
  for (const assignmentId of chosen) {
    options.onProgress?.(`replaying ${assignmentId} (${audits.length + 1}/${chosen.length})`);
    try {
      const reproduction = await reproduceVerdict({ assignmentEvents: streams.get(`assignment-${assignmentId}`) ?? [], runEvents }, { blobs, calibration: options.calibration ?? null, provider: options.provider ?? 'cpu' });
      audits.push({ assignmentId, reproduced: reproduction.reproduced, reproduction, error: null });
      if (!reproduction.reproduced) problems.push({ assignmentId, streamId: `assignment-${assignmentId}`, code: 'REPLAY_NOT_REPRODUCED', message: `recorded ${reproduction.recorded.outcome}${reproduction.recorded.reasonCode ? ` (${reproduction.recorded.reasonCode})` : ''}, re-run gives ${reproduction.outcome}${reproduction.reasonCode ? ` (${reproduction.reasonCode})` : ''}` });
    } catch (error) {
      const code = (error as { code?: string }).code ?? 'REPLAY_FAILED';
      audits.push({ assignmentId, reproduced: false, reproduction: null, error: `${code}: ${error instanceof Error ? error.message : String(error)}` });
      problems.push({ assignmentId, streamId: `assignment-${assignmentId}`, code: 'REPLAY_FAILED', message: `${code}: ${error instanceof Error ? error.message : String(error)}` });
    }
  }
  return audits;
}

/** A seeded choice, so two auditors with the same seed replay the same assignments. */
function sample(ids: readonly string[], count: number, seed: string): string[] {
  const key = (id: string) => createHash('sha256').update(`${seed}\n${id}`).digest('hex');
  return [...ids].sort((a, b) => (key(a) < key(b) ? -1 : 1)).slice(0, count);
}
