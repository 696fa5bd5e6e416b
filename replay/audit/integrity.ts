// Integrity part of the audit: every stream's hash chain, gapless revisions, head, and checkpoint order, one stream in memory at a time.

import { comparePositions, type LogPosition, type RecordedEvent } from '../../domain/ports/event-store.js';
import { evidenceOf, type Discrepancy } from './catalog.js';
import type { AuditLog, StreamHead } from './ports.js';

/** The hash of an event's content chained to its predecessor's (the store's own function, injected: hashing is not a domain rule). */
export type ChainHash = (prevHash: string, event: RecordedEvent) => string;

export type IntegrityOptions = Readonly<{
  log: AuditLog;
  chainHash: ChainHash;
  genesisHash: string;
  pageSize: number;
  onFinding: (finding: Discrepancy) => void;
  onEvents: (n: number) => void;
}>;

export type IntegrityStats = { streams: number; events: number };

type StreamWalk = { streamId: string; nextRevision: number; prevHash: string; lastPosition: LogPosition | null; broken: boolean; last: RecordedEvent | null; head: StreamHead | null };

export async function checkIntegrity(options: IntegrityOptions): Promise<IntegrityStats> {
  const { log, pageSize } = options;
  const stats: IntegrityStats = { streams: 0, events: 0 };
  let walk: StreamWalk | null = null;
  for (let after: { streamId: string; revision: number } | null = null; ; ) {
    const page = await log.eventsInStreamOrder(after, pageSize);
    // Heads are looked up per page, never compared in JavaScript: string order is the database's collation.
    const heads = new Map((await log.streamHeads([...new Set(page.map((e) => e.streamId))])).map((h) => [h.streamId, h]));
    for (const event of page) {
      if (walk === null || walk.streamId !== event.streamId) {
        if (walk !== null) await finishStream(walk, options);
        walk = { streamId: event.streamId, nextRevision: 0, prevHash: options.genesisHash, lastPosition: null, broken: false, last: null, head: heads.get(event.streamId) ?? null };
        stats.streams += 1;
      }
      checkEvent(walk, event, options);
    }
    stats.events += page.length;
    options.onEvents(page.length);
    if (page.length < pageSize) break;
    const last = page[page.length - 1]!;
    after = { streamId: last.streamId, revision: last.revision };
  }
  if (walk !== null) await finishStream(walk, options);
  for (const head of await log.headsWithoutEvents(pageSize)) {
    options.onFinding({ code: 'STREAM_HEAD_MISMATCH', subject: head.streamId, explanation: `stream ${head.streamId} has a head at revision ${head.revision} but no events`, events: [], details: { headRevision: head.revision } });
  }
  return stats;
}

function checkEvent(walk: StreamWalk, event: RecordedEvent, options: IntegrityOptions): void {
  const evidence = [evidenceOf(event)];
  if (!walk.broken) {
    if (event.revision !== walk.nextRevision) {
      options.onFinding({ code: 'EVENT_REVISION_GAP', subject: walk.streamId, explanation: `stream ${walk.streamId} jumps from revision ${walk.nextRevision - 1} to ${event.revision}: ${event.revision - walk.nextRevision} event(s) missing`, events: evidence, details: { expectedRevision: walk.nextRevision } });
      walk.broken = true;
    } else if (event.prevHash !== walk.prevHash) {
      options.onFinding({ code: 'CHAIN_BROKEN_LINK', subject: walk.streamId, explanation: `${walk.streamId}@${event.revision}: prev_hash does not equal the hash of revision ${event.revision - 1}`, events: evidence });
      walk.broken = true;
    } else if (options.chainHash(walk.prevHash, event) !== event.hash) {
      options.onFinding({ code: 'EVENT_HASH_MISMATCH', subject: walk.streamId, explanation: `${walk.streamId}@${event.revision}: the stored hash does not match the event's content; it was edited after it was written`, events: evidence });
      walk.broken = true;
    } else if (walk.lastPosition !== null && comparePositions(walk.lastPosition, event.position) >= 0) {
      options.onFinding({ code: 'GLOBAL_ORDER_VIOLATION', subject: walk.streamId, explanation: `${walk.streamId}@${event.revision} sits before its predecessor in the log's checkpoint order`, events: evidence });
      walk.broken = true;
    }
  }
  walk.nextRevision = event.revision + 1;
  walk.prevHash = event.hash;
  walk.lastPosition = event.position;
  walk.last = event;
}

async function finishStream(walk: StreamWalk, options: IntegrityOptions): Promise<void> {
  const head = walk.head;
  const last = walk.last!;
  // A head ahead of the events read is a tail cut off, or an append that landed after the page was read and
  // before its heads were (the audit runs beside a live server): only the first is a finding.
  if (head !== null && !walk.broken && head.revision > last.revision && (await options.log.hasEvent(walk.streamId, last.revision + 1))) return;
  if (head === null) {
    options.onFinding({ code: 'STREAM_HEAD_MISMATCH', subject: walk.streamId, explanation: `stream ${walk.streamId} has events but no head row`, events: [evidenceOf(last)] });
  } else if (!walk.broken && (head.revision !== last.revision || head.headHash !== last.hash)) {
    options.onFinding({
      code: 'STREAM_HEAD_MISMATCH',
      subject: walk.streamId,
      explanation: `stream ${walk.streamId}: its head says revision ${head.revision}, its events end at revision ${last.revision}${head.revision > last.revision ? ` (${head.revision - last.revision} trailing event(s) missing)` : ''}`,
      events: [evidenceOf(last)],
      details: { headRevision: head.revision, lastRevision: last.revision },
    });
  }
}
