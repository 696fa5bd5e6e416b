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
  for (const head of await log.headsWithoutEvents(pageSize)) options.onFinding(headWithoutEventsFinding(head));
  return stats;
}

function checkEvent(walk: StreamWalk, event: RecordedEvent, options: IntegrityOptions): void {
  if (!walk.broken) {
    const finding =
      event.revision !== walk.nextRevision
        ? revisionGapFinding(event, walk.nextRevision)
        : event.prevHash !== walk.prevHash
          ? brokenLinkFinding(event)
          : options.chainHash(walk.prevHash, event) !== event.hash
            ? hashMismatchFinding(event)
            : walk.lastPosition !== null && comparePositions(walk.lastPosition, event.position) >= 0
              ? orderFinding(event)
              : null;
    if (finding !== null) {
      options.onFinding(finding);
      walk.broken = true;
    }
  }
  walk.nextRevision = event.revision + 1;
  walk.prevHash = event.hash;
  walk.lastPosition = event.position;
  walk.last = event;
}

/** What names an event in a finding (the evidence), whichever walk found it. */
export type FaultyEvent = Parameters<typeof evidenceOf>[0];

// One constructor per integrity code, shared by this walk and the chain scan (chain-scan.ts), so both explain alike.
export function revisionGapFinding(event: FaultyEvent, expectedRevision: number): Discrepancy {
  return { code: 'EVENT_REVISION_GAP', subject: event.streamId, explanation: `stream ${event.streamId} jumps from revision ${expectedRevision - 1} to ${event.revision}: ${event.revision - expectedRevision} event(s) missing`, events: [evidenceOf(event)], details: { expectedRevision } };
}

export function brokenLinkFinding(event: FaultyEvent): Discrepancy {
  return { code: 'CHAIN_BROKEN_LINK', subject: event.streamId, explanation: `${event.streamId}@${event.revision}: prev_hash does not equal the hash of revision ${event.revision - 1}`, events: [evidenceOf(event)] };
}

export function hashMismatchFinding(event: FaultyEvent): Discrepancy {
  return { code: 'EVENT_HASH_MISMATCH', subject: event.streamId, explanation: `${event.streamId}@${event.revision}: the stored hash does not match the event's content; it was edited after it was written`, events: [evidenceOf(event)] };
}

export function orderFinding(event: FaultyEvent): Discrepancy {
  return { code: 'GLOBAL_ORDER_VIOLATION', subject: event.streamId, explanation: `${event.streamId}@${event.revision} sits before its predecessor in the log's checkpoint order`, events: [evidenceOf(event)] };
}

export function missingHeadFinding(last: FaultyEvent): Discrepancy {
  return { code: 'STREAM_HEAD_MISMATCH', subject: last.streamId, explanation: `stream ${last.streamId} has events but no head row`, events: [evidenceOf(last)] };
}

export function headMismatchFinding(last: FaultyEvent, head: StreamHead): Discrepancy {
  return {
    code: 'STREAM_HEAD_MISMATCH',
    subject: last.streamId,
    explanation: `stream ${last.streamId}: its head says revision ${head.revision}, its events end at revision ${last.revision}${head.revision > last.revision ? ` (${head.revision - last.revision} trailing event(s) missing)` : ''}`,
    events: [evidenceOf(last)],
    details: { headRevision: head.revision, lastRevision: last.revision },
  };
}

export function headWithoutEventsFinding(head: StreamHead): Discrepancy {
  return { code: 'STREAM_HEAD_MISMATCH', subject: head.streamId, explanation: `stream ${head.streamId} has a head at revision ${head.revision} but no events`, events: [], details: { headRevision: head.revision } };
}

async function finishStream(walk: StreamWalk, options: IntegrityOptions): Promise<void> {
  const head = walk.head;
  const last = walk.last!;
  // A head ahead of the events read is a tail cut off, or an append that landed after the page was read and
  // before its heads were (the audit runs beside a live server): only the first is a finding.
  if (head !== null && !walk.broken && head.revision > last.revision && (await options.log.hasEvent(walk.streamId, last.revision + 1))) return;
  if (head === null) options.onFinding(missingHeadFinding(last));
  else if (!walk.broken && (head.revision !== last.revision || head.headHash !== last.hash)) options.onFinding(headMismatchFinding(last, head));
}
