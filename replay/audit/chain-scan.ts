// Integrity part on a log whose database checks the chains' structure (ChainScan): content hashes recomputed on pages in checkpoint order, the rebuild's own read when it runs, structure from one SQL pass, merged into the walk's findings.

import { comparePositions, LOG_START, type LogPosition, type RecordedEvent } from '../../domain/ports/event-store.js';
import { invariant } from '../../domain/errors.js';
import type { Discrepancy } from './catalog.js';
import {
  brokenLinkFinding,
  checkIntegrity,
  hashMismatchFinding,
  headMismatchFinding,
  headWithoutEventsFinding,
  missingHeadFinding,
  orderFinding,
  revisionGapFinding,
  type ChainHash,
  type FaultyEvent,
  type IntegrityStats,
} from './integrity.js';
import type { AuditLog, ChainFault, ChainScan, StreamFaults } from './ports.js';

/**
 * Streams with an edited event kept in memory, at most. Past it (a log rewritten wholesale) the scan
 * gives up its merge and the audit walks the log the classic way: same findings, bounded memory.
 */
export const MAX_HASH_MISMATCH_STREAMS = 10_000;

type Mismatch = { revision: number; event: FaultyEvent };

/**
 * Hashes every event once, in checkpoint order, each against its own stored prev_hash: whether that
 * prev_hash is the predecessor's hash is the structure's question (ChainScan), so no per-stream state
 * is carried from one page to the next and any read in checkpoint order can feed it.
 */
export class HashPass {
  private readonly firstMismatch = new Map<string, Mismatch>();
  private lastPosition: LogPosition = LOG_START;
  private hashed = 0;
  private overflow = false;

  constructor(
    private readonly chainHash: ChainHash,
    private readonly maxMismatchStreams = MAX_HASH_MISMATCH_STREAMS,
  ) {}

  /** Where the pass stands: the next page is read after this position. */
  get after(): LogPosition {
    return this.lastPosition;
  }

  get events(): number {
    return this.hashed;
  }

  get overflowed(): boolean {
    return this.overflow;
  }

  /** One page of the log, after the last fed (the rebuild's keyset pages, then the scan's own). */
  feed(page: readonly RecordedEvent[]): void {
    for (const event of page) {
      invariant(comparePositions(event.position, this.lastPosition) > 0, 'the hash pass was fed a page out of checkpoint order');
      if (this.chainHash(event.prevHash, event) !== event.hash) this.recordMismatch(event);
      this.lastPosition = event.position;
    }
    this.hashed += page.length;
  }

  /** The stream's first edited event, taken out of the pass (each stream is merged once). */
  take(streamId: string): Mismatch | undefined {
    const found = this.firstMismatch.get(streamId);
    this.firstMismatch.delete(streamId);
    return found;
  }

  /** Edited events in streams the structure found nothing wrong with. */
  rest(): IterableIterator<Mismatch> {
    return this.firstMismatch.values();
  }

  private recordMismatch(event: RecordedEvent): void {
    const known = this.firstMismatch.get(event.streamId);
    // Checkpoint order is revision order unless the order itself is broken: keep the lowest revision.
    if (known !== undefined) {
      if (event.revision < known.revision) this.firstMismatch.set(event.streamId, { revision: event.revision, event });
      return;
    }
    if (this.firstMismatch.size >= this.maxMismatchStreams) {
      this.overflow = true;
      return;
    }
    this.firstMismatch.set(event.streamId, { revision: event.revision, event });
  }
}

export type ChainScanOptions = Readonly<{
  log: AuditLog;
  scan: ChainScan;
  pass: HashPass;
  chainHash: ChainHash;
  genesisHash: string;
  pageSize: number;
  /** Settles when the rebuild's read, which fed `pass`, is over (null: no rebuild runs, the scan reads everything). */
  fedUntilDone: Promise<unknown> | null;
  onFinding: (finding: Discrepancy) => void;
  onEvents: (n: number) => void;
}>;

/**
 * The integrity part through ChainScan. Findings are exactly the walk's (checkIntegrity): per stream the
 * first fault in revision order, a gap or a broken link before an edited event at the same revision,
 * an edited event before an order violation, and a head compared only on a stream with no fault.
 */
export async function scanIntegrity(options: ChainScanOptions): Promise<IntegrityStats> {
  const { scan, pass, pageSize } = options;
  // The structure's first page and the totals are asked for now, while the rebuild still reads: the
  // database has a core to spare then, and each page is one statement, consistent on its own.
  const firstFaults = scan.streamFaults(options.genesisHash, null, pageSize);
  const totals = scan.totals();
  // Neither may go unhandled if the wait below ends the audit first.
  firstFaults.catch(() => {});
  totals.catch(() => {});
  // The rebuild may stop early (a projector refusing the log stops its read): the scan hashes the rest itself.
  await options.fedUntilDone?.then(
    () => {},
    () => {},
  );
  for (;;) {
    const page = await scan.eventsInLogOrder(pass.after, pageSize, false);
    pass.feed(page);
    options.onEvents(page.length);
    if (page.length < pageSize) break;
  }
  if (pass.overflowed) {
    // Too many edited streams to merge in memory: walk the log in stream order instead (nothing reported yet).
    await Promise.all([firstFaults, totals]);
    return checkIntegrity({ log: options.log, chainHash: options.chainHash, genesisHash: options.genesisHash, pageSize, onFinding: options.onFinding, onEvents: () => {} });
  }
  for (let faults = await firstFaults; ; ) {
    for (const stream of faults) reportStream(stream, pass.take(stream.streamId), options.onFinding);
    if (faults.length < pageSize) break;
    faults = await scan.streamFaults(options.genesisHash, faults[faults.length - 1]!.streamId, pageSize);
  }
  for (const mismatch of pass.rest()) options.onFinding(hashMismatchFinding(mismatch.event));
  for (const head of await options.log.headsWithoutEvents(pageSize)) options.onFinding(headWithoutEventsFinding(head));
  return { streams: (await totals).streams, events: pass.events };
}

function reportStream(stream: StreamFaults, mismatch: Mismatch | undefined, onFinding: (finding: Discrepancy) => void): void {
  const fault = stream.fault;
  const editedFirst = mismatch !== undefined && (fault === null || mismatch.revision < fault.revision || (mismatch.revision === fault.revision && fault.code === 'GLOBAL_ORDER_VIOLATION'));
  if (editedFirst) onFinding(hashMismatchFinding(mismatch.event));
  else if (fault !== null) onFinding(structuralFinding(fault));
  const broken = editedFirst || fault !== null;
  const tail = stream.headFault;
  if (tail === null) return;
  const last = { streamId: tail.streamId, revision: tail.lastRevision, type: tail.type, position: { globalPosition: tail.globalPosition } };
  // As in the walk: a missing head row is always reported, a disagreeing one only on a stream with no fault.
  if (tail.head === null) onFinding(missingHeadFinding(last));
  else if (!broken) onFinding(headMismatchFinding(last, tail.head));
}

function structuralFinding(fault: ChainFault): Discrepancy {
  const event = { streamId: fault.streamId, revision: fault.revision, type: fault.type, position: { globalPosition: fault.globalPosition } };
  switch (fault.code) {
    case 'EVENT_REVISION_GAP':
      return revisionGapFinding(event, fault.expectedRevision);
    case 'CHAIN_BROKEN_LINK':
      return brokenLinkFinding(event);
    case 'GLOBAL_ORDER_VIOLATION':
      return orderFinding(event);
  }
}
