// The audit-log port (replay/audit/ports.ts) on the split composition: the streams listed by the log catalog in SQL, each read through the plain event-store port.
//
// Why this shape: a log behind the plain port (EventStoreDB) can be read stream by stream and in $all order,
// but it has no ordered list of its streams and no second record of each stream's head. The log catalog
// (projections/catalog/) is both, kept in the read models' SQL database from the log itself. The audit
// catches it up to the log's head first, then walks the catalog's streams in SQL order (the database's
// collation, as on the SQL log) and reads each one through the port, never past the revision the catalog
// recorded: events appended while the audit runs are the next audit's, as they are not in its snapshot.
// What the catalog witnesses: a tail cut from the log after the catalog saw it (STREAM_HEAD_MISMATCH), a
// stream emptied (STREAM_HEAD_MISMATCH, no events), and through the walk itself a missing middle
// (EVENT_REVISION_GAP) and an edited event (EVENT_HASH_MISMATCH). What it cannot witness: events removed
// before it ever read them (the catch-up reads raw events, undecoded, so an edit no projector can decode is
// found rather than stopping the audit). The trial balance and run funds are SQL over the ledger tables.

import type { Kysely } from 'kysely';
import { ASSIGNMENT_STREAM_PREFIX } from '../../domain/assignment/index.js';
import { INVOICE_STREAM_PREFIX } from '../../domain/invoice/index.js';
import type { EventStore, RecordedEvent } from '../../domain/ports/event-store.js';
import { catalogEventCount, catalogHeads, catalogInvoiceStreams, catalogStreams, catchUpCatalogIn, logCatalogProjector, type CatalogStream } from '../../projections/catalog/index.js';
import type { ProjectionLog } from '../../projections/ports/projection-log.js';
import { lockProjection } from '../../projections/runner.js';
import { prepareProjectorSchema } from '../../projections/schemas.js';
import type { AuditLog, LedgerTotals, RunFunds, StreamCursor, StreamHead } from '../../replay/audit/ports.js';
import { EVENT_STORE_LIMITS } from '../event-store/limits.js';
import { MAX_AUDIT_PAGE, PostgresAuditLog } from '../postgres/postgres-audit-log.js';

export const CATALOG_AUDIT_LIMITS = Object.freeze({
  /** Catalog rows per SQL page of the stream walk. */
  streamsPerPage: 500,
  /** Events per catch-up batch of the catalog. */
  catchUpBatch: 1_000,
  /** Stream reads in flight at once while a page or an assignment batch loads (one round trip each on a cluster). */
  readConcurrency: 16,
  /** Empty streams remembered by the walk for headsWithoutEvents: its page bound. */
  maxEmptyStreams: MAX_AUDIT_PAGE,
});

function page(limit: number): number {
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_AUDIT_PAGE) throw new RangeError(`audit page size must be 1..${MAX_AUDIT_PAGE}, got ${limit}`);
  return limit;
}

/** One stream range to read: from `from`, at most `cap` events. */
type Read = { stream: CatalogStream; from: number; cap: number };

const toHead = (s: CatalogStream): StreamHead => ({ streamId: s.streamId, revision: s.lastRevision, headHash: s.lastHash });

export type CatalogAuditLogOptions = Readonly<{ nowMs: () => number }>;

/**
 * One per audit: it remembers, bounded, which catalog streams its walk found empty. Every method first
 * catches the catalog up to the log head as it was at the first call (once), under the projection's lock,
 * so a running server's runner and the audit never apply the same batch twice.
 */
export class CatalogAuditLog implements AuditLog {
  private readonly ledger: PostgresAuditLog;
  private caughtUp: Promise<void> | null = null;
  private readonly emptyStreams: StreamHead[] = [];
  private walkFinished = false;
  /**
   * The catalog rows the last page was planned with, by stream id: streamHeads answers from them and the next
   * page goes on from them, so a head the running projection moves while the audit walks (an append mid-audit)
   * is neither compared with events read against the older head nor read past it. Bounded by one page's streams.
   */
  private pinnedHeads = new Map<string, CatalogStream>();

  constructor(
    /** The log, read through the plain port only. */
    private readonly log: Pick<EventStore, 'readStream' | 'headPosition'>,
    /** The split store's ProjectionLog: the catalog's batches are read from the log and committed with its checkpoint in `projection.db`. */
    private readonly projection: ProjectionLog,
    private readonly options: CatalogAuditLogOptions,
  ) {
    this.ledger = new PostgresAuditLog(projection.db);
  }

  private get db(): Kysely<any> {
    return this.projection.db;
  }

  /** Brings the catalog to the log head (as of this call), once per audit. */
  ready(): Promise<void> {
    this.caughtUp ??= this.catchUp();
    return this.caughtUp;
  }

  private async catchUp(): Promise<void> {
    await prepareProjectorSchema(this.db, logCatalogProjector);
    const until = await this.log.headPosition();
    for (;;) {
      const applied = await this.db.transaction().execute(async (trx) => {
        await lockProjection(trx, logCatalogProjector.name);
        return catchUpCatalogIn(this.projection, trx, { batchSize: CATALOG_AUDIT_LIMITS.catchUpBatch, nowMs: this.options.nowMs, until });
      });
      if (applied === 0) return;
    }
  }

  /**
   * Plans each page from the catalog (every stream's length is its last revision + 1), so the streams of a page
   * are read side by side, each asked for no more than its share of `limit`: a page never holds more than
   * `limit` events, and a page shorter than `limit` means the walk is over, as the SQL log's pages do.
   */
  async eventsInStreamOrder(after: StreamCursor | null, limit: number): Promise<RecordedEvent[]> {
    page(limit);
    await this.ready();
    const out: RecordedEvent[] = [];
    // The rest of the stream the last page ended in, then the catalog's streams after it.
    let pending: Read | null = null;
    const pinned = new Map<string, CatalogStream>();
    if (after !== null) {
      const head = this.pinnedHeads.get(after.streamId) ?? (await catalogHeads(this.db, [after.streamId]))[0];
      if (head) {
        pending = { stream: head, from: after.revision + 1, cap: 0 };
        pinned.set(head.streamId, head);
      }
    }
    const queue: CatalogStream[] = [];
    let streamAfter = after?.streamId ?? null;
    let listed = false;
    while (out.length < limit) {
      const plan: Read[] = [];
      let budget = limit - out.length;
      if (pending !== null) {
        const cap = Math.min(budget, pending.stream.lastRevision - pending.from + 1);
        if (cap > 0) plan.push({ ...pending, cap });
        budget -= Math.max(0, cap);
        pending = null;
      }
      while (budget > 0) {
        if (queue.length === 0 && !listed) {
          const streams = await catalogStreams(this.db, streamAfter, CATALOG_AUDIT_LIMITS.streamsPerPage);
          queue.push(...streams);
          listed = streams.length < CATALOG_AUDIT_LIMITS.streamsPerPage;
          if (streams.length > 0) streamAfter = streams[streams.length - 1]!.streamId;
        }
        const stream = queue.shift();
        if (stream === undefined) break;
        pinned.set(stream.streamId, stream);
        const cap = Math.min(budget, stream.lastRevision + 1);
        plan.push({ stream, from: 0, cap });
        budget -= cap;
      }
      if (plan.length === 0) break;
      const results = await this.readAll(plan);
      plan.forEach((read, i) => {
        const { events } = results[i]!;
        if (read.from === 0 && events.length === 0 && this.emptyStreams.length < CATALOG_AUDIT_LIMITS.maxEmptyStreams) this.emptyStreams.push(toHead(read.stream));
        for (const event of events) out.push(event);
      });
      // The last stream of the plan may have been cut at the page's end: the next round (or page) goes on from there.
      const last = results[results.length - 1]!;
      if (last.next !== null) pending = { stream: plan[plan.length - 1]!.stream, from: last.next, cap: 0 };
    }
    if (out.length < limit) this.walkFinished = true;
    this.pinnedHeads = pinned;
    return out;
  }

  /** Reads each planned stream range, at most readConcurrency at once, results in plan order. */
  private async readAll(plan: readonly Read[]): Promise<{ events: RecordedEvent[]; next: number | null }[]> {
    const results: { events: RecordedEvent[]; next: number | null }[] = plan.map(() => ({ events: [], next: null }));
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < plan.length; i = next++) {
        const read = plan[i]!;
        results[i]!.next = await this.readInto(results[i]!.events, read.stream, read.from, read.cap);
      }
    };
    await Promise.all(Array.from({ length: Math.min(CATALOG_AUDIT_LIMITS.readConcurrency, plan.length) }, worker));
    return results;
  }

  /**
   * Appends the stream's events from `fromRevision` up to the catalog's last revision, until `out` holds
   * `limit`; returns the revision to go on from, or null once the catalog's range is read. An empty page
   * does not end the read: a store may read a window of revisions (the SQL store does), and a missing
   * middle leaves that window empty; the next window starts after it.
   */
  private async readInto(out: RecordedEvent[], stream: CatalogStream, fromRevision: number, limit: number): Promise<number | null> {
    let from = fromRevision;
    while (from <= stream.lastRevision && out.length < limit) {
      const want = Math.min(limit - out.length, EVENT_STORE_LIMITS.maxReadCount, stream.lastRevision - from + 1);
      const read = await this.log.readStream(stream.streamId, { fromRevision: from, maxCount: want });
      let next = from + want;
      for (const event of read) {
        if (event.revision < from || event.revision > stream.lastRevision || out.length >= limit) continue;
        out.push(event);
        next = event.revision + 1;
      }
      from = next;
    }
    return from <= stream.lastRevision ? from : null;
  }

  async streamHeads(streamIds: readonly string[]): Promise<StreamHead[]> {
    await this.ready();
    const unpinned = streamIds.filter((id) => !this.pinnedHeads.has(id));
    const fresh = await catalogHeads(this.db, unpinned);
    return [...streamIds.flatMap((id) => (this.pinnedHeads.has(id) ? [this.pinnedHeads.get(id)!] : [])), ...fresh].map(toHead);
  }

  async hasEvent(streamId: string, revision: number): Promise<boolean> {
    const [event] = await this.log.readStream(streamId, { fromRevision: revision, maxCount: 1 });
    return event?.revision === revision;
  }

  async headsWithoutEvents(limit: number): Promise<StreamHead[]> {
    page(limit);
    await this.ready();
    if (this.walkFinished) return this.emptyStreams.slice(0, limit);
    // Asked without a finished walk: probe each catalog stream for its newest event.
    const found: StreamHead[] = [];
    for (let after: string | null = null; found.length < limit; ) {
      const streams = await catalogStreams(this.db, after, CATALOG_AUDIT_LIMITS.streamsPerPage);
      for (const stream of streams) {
        const [newest] = await this.log.readStream(stream.streamId, { direction: 'backwards', maxCount: 1 });
        if (newest === undefined && found.length < limit) found.push(toHead(stream));
      }
      if (streams.length < CATALOG_AUDIT_LIMITS.streamsPerPage) break;
      after = streams[streams.length - 1]!.streamId;
    }
    return found;
  }

  async assignmentIds(afterAssignmentId: string, limit: number): Promise<string[]> {
    await this.ready();
    const after = afterAssignmentId === '' ? null : `${ASSIGNMENT_STREAM_PREFIX}${afterAssignmentId}`;
    const streams = await catalogStreams(this.db, after, page(limit), ASSIGNMENT_STREAM_PREFIX);
    return streams.map((s) => s.streamId.slice(ASSIGNMENT_STREAM_PREFIX.length));
  }

  async assignmentEvents(assignmentIds: readonly string[]): Promise<RecordedEvent[]> {
    if (assignmentIds.length === 0) return [];
    page(assignmentIds.length);
    await this.ready();
    const streams = [
      ...(await catalogHeads(this.db, assignmentIds.map((id) => `${ASSIGNMENT_STREAM_PREFIX}${id}`))),
      ...(await catalogInvoiceStreams(this.db, assignmentIds)),
    ];
    // Every event of these streams is returned, as on the SQL log; the caller bounds the assignments per batch.
    const results = await this.readAll(streams.map((stream) => ({ stream, from: 0, cap: stream.lastRevision + 1 })));
    return results.flatMap((r) => r.events);
  }

  async knownPaymentHashes(paymentHashes: readonly string[]): Promise<Set<string>> {
    if (paymentHashes.length === 0) return new Set();
    page(paymentHashes.length);
    await this.ready();
    const heads = await catalogHeads(this.db, paymentHashes.map((h) => `${INVOICE_STREAM_PREFIX}${h}`));
    return new Set(heads.map((s) => s.streamId.slice(INVOICE_STREAM_PREFIX.length)));
  }

  async countEvents(): Promise<number> {
    await this.ready();
    return catalogEventCount(this.db);
  }

  trialBalance(): Promise<LedgerTotals> {
    return this.ledger.trialBalance();
  }

  runFunds(afterRunId: string, limit: number): Promise<RunFunds[]> {
    return this.ledger.runFunds(afterRunId, limit);
  }
}
