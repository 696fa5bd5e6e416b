// The audit-log port (replay/audit/ports.ts) on PostgreSQL and PGlite: keyset pages of the log in audit order, and SQL aggregates over the ledger.

import { sql, type Kysely } from 'kysely';
import { ASSIGNMENT_STREAM_PREFIX } from '../../domain/assignment/index.js';
import { INVOICE_STREAM_PREFIX } from '../../domain/invoice/index.js';
import type { LogPosition, RecordedEvent } from '../../domain/ports/event-store.js';
import type { AuditLog, ChainScan, LedgerTotals, RunFunds, SettlementEvent, StreamCursor, StreamFaults, StreamHead } from '../../replay/audit/ports.js';
import { EVENT_COLUMNS, readAllIn, toRecordedEvent, type EventRow } from './postgres-event-store.js';

/** Largest page any method returns: the audit asks for less, this guards a caller that does not. */
export const MAX_AUDIT_PAGE = 10_000;

function page(limit: number): number {
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_AUDIT_PAGE) throw new RangeError(`audit page size must be 1..${MAX_AUDIT_PAGE}, got ${limit}`);
  return limit;
}

/**
 * Every string comparison happens in SQL, so keyset order is the database's collation, never
 * JavaScript's. Reads are not limited to below pg_snapshot_xmin: an audit reads what is committed.
 */
export class PostgresAuditLog implements AuditLog {
  readonly chainScan: ChainScan;

  constructor(private readonly db: Kysely<any>) {
    this.chainScan = new PostgresChainScan(db);
  }

  async eventsInStreamOrder(after: StreamCursor | null, limit: number): Promise<RecordedEvent[]> {
    const where = after === null ? sql`` : sql`WHERE (stream_id, stream_revision) > (${after.streamId}, ${after.revision}::bigint)`;
    const rows = await sql<EventRow>`SELECT ${EVENT_COLUMNS} FROM events ${where} ORDER BY events.stream_id, events.stream_revision LIMIT ${page(limit)}`.execute(this.db);
    return rows.rows.map(toRecordedEvent);
  }

  async streamHeads(streamIds: readonly string[]): Promise<StreamHead[]> {
    if (streamIds.length === 0) return [];
    const rows = await sql<{ stream_id: string; revision: string; head_hash: string }>`
      SELECT stream_id, revision::text AS revision, head_hash FROM streams WHERE stream_id = ANY(${[...streamIds]}::text[])`.execute(this.db);
    return rows.rows.map((r) => ({ streamId: r.stream_id, revision: Number(r.revision), headHash: r.head_hash }));
  }

  async hasEvent(streamId: string, revision: number): Promise<boolean> {
    const rows = await sql<{ found: boolean }>`
      SELECT EXISTS (SELECT 1 FROM events WHERE stream_id = ${streamId} AND stream_revision = ${revision}::bigint) AS found`.execute(this.db);
    return rows.rows[0]?.found === true;
  }

  async headsWithoutEvents(limit: number): Promise<StreamHead[]> {
    const rows = await sql<{ stream_id: string; revision: string; head_hash: string }>`
      SELECT s.stream_id, s.revision::text AS revision, s.head_hash FROM streams s
      WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.stream_id = s.stream_id) ORDER BY s.stream_id LIMIT ${page(limit)}`.execute(this.db);
    return rows.rows.map((r) => ({ streamId: r.stream_id, revision: Number(r.revision), headHash: r.head_hash }));
  }

  async assignmentIds(afterAssignmentId: string, limit: number): Promise<string[]> {
    const after = afterAssignmentId === '' ? '' : `${ASSIGNMENT_STREAM_PREFIX}${afterAssignmentId}`;
    const rows = await sql<{ stream_id: string }>`
      SELECT stream_id FROM streams WHERE stream_id > ${after} AND stream_id LIKE ${`${ASSIGNMENT_STREAM_PREFIX}%`}
      ORDER BY stream_id LIMIT ${page(limit)}`.execute(this.db);
    return rows.rows.map((r) => r.stream_id.slice(ASSIGNMENT_STREAM_PREFIX.length));
  }

  async assignmentEvents(assignmentIds: readonly string[]): Promise<SettlementEvent[]> {
    if (assignmentIds.length === 0) return [];
    page(assignmentIds.length);
    const streams = assignmentIds.map((id) => `${ASSIGNMENT_STREAM_PREFIX}${id}`);
    // Two statements, each an index scan: the invoice streams through the partial index of migration
    // 0003, then every stream by key. One statement (an OR, or IN over a subquery) lets the planner
    // misjudge the invoice count and answer with a scan of the whole log per batch.
    // The range (the batch's least and greatest id, taken in SQL so in the database's collation, so
    // every id lies inside it) is what keeps that plan: with the ANY list alone the planner guessed
    // from a sampled n_distinct, and on 300,000 bulk-loaded assignments (2.67 million events) it
    // chose a parallel scan of the whole log for every batch of 200 (1.4 s each, measured).
    const ids = [...assignmentIds];
    const invoices = await sql<{ stream_id: string }>`
      SELECT stream_id FROM events WHERE event_type = 'InvoiceOpened'
        AND data->>'assignmentId' BETWEEN (SELECT min(id) FROM unnest(${ids}::text[]) AS id) AND (SELECT max(id) FROM unnest(${ids}::text[]) AS id)
        AND data->>'assignmentId' = ANY(${ids}::text[])`.execute(this.db);
    const all = [...streams, ...invoices.rows.map((r) => r.stream_id)];
    // Only the columns a settlement folds: the hashes, metadata and time are the integrity part's, and parsing them cost a third of this read.
    const rows = await sql<Pick<EventRow, 'stream_id' | 'stream_revision' | 'global_position' | 'transaction_id' | 'event_type' | 'data'>>`
      SELECT stream_id, stream_revision::text AS stream_revision, global_position::text AS global_position, transaction_id::text AS transaction_id, event_type, data
      FROM events WHERE stream_id = ANY(${all}::text[])`.execute(this.db);
    return rows.rows.map((row) => ({
      streamId: row.stream_id,
      revision: Number(row.stream_revision),
      position: { transactionId: BigInt(row.transaction_id), globalPosition: BigInt(row.global_position) },
      type: row.event_type,
      data: row.data,
    }));
  }

  async knownPaymentHashes(paymentHashes: readonly string[]): Promise<Set<string>> {
    if (paymentHashes.length === 0) return new Set();
    page(paymentHashes.length);
    const rows = await sql<{ stream_id: string }>`SELECT stream_id FROM streams WHERE stream_id = ANY(${paymentHashes.map((h) => `${INVOICE_STREAM_PREFIX}${h}`)}::text[])`.execute(this.db);
    return new Set(rows.rows.map((r) => r.stream_id.slice(INVOICE_STREAM_PREFIX.length)));
  }

  async countEvents(): Promise<number> {
    const row = await sql<{ n: string }>`SELECT count(*)::text AS n FROM events`.execute(this.db);
    return Number(row.rows[0]!.n);
  }

  async trialBalance(): Promise<LedgerTotals> {
    const row = await sql<{ dp: string; cp: string; dq: string; cq: string }>`
      SELECT coalesce(sum(debits_pending_msat), 0)::text AS dp, coalesce(sum(credits_pending_msat), 0)::text AS cp,
             coalesce(sum(debits_posted_msat), 0)::text AS dq, coalesce(sum(credits_posted_msat), 0)::text AS cq
      FROM ledger.accounts`.execute(this.db);
    const r = row.rows[0]!;
    return { debitsPendingMsat: BigInt(r.dp), creditsPendingMsat: BigInt(r.cp), debitsPostedMsat: BigInt(r.dq), creditsPostedMsat: BigInt(r.cq) };
  }

  async runFunds(afterRunId: string, limit: number): Promise<RunFunds[]> {
    // Each side of a transfer is joined on its own equality (a hash join: one scan of the transfers per
    // page of runs). One join on `debit = account OR credit = account` is a nested loop, every run against
    // every transfer: at 300,000 assignments (300 runs) it took 11.7 s, six times the 100,000 figure.
    // Funding is counted on the credit side, the rest on the debit side, as before.
    const rows = await sql<Record<string, string>>`
      WITH runs AS (
        SELECT account_id, run_id, credits_posted_msat, debits_posted_msat, debits_pending_msat FROM ledger.accounts
        WHERE kind = 'run_budget' AND run_id > ${afterRunId} ORDER BY run_id LIMIT ${page(limit)}
      ), debits AS (
        SELECT t.debit_account_id AS account_id,
          sum(t.amount_msat) FILTER (WHERE t.kind IN ('escrow', 'bonus', 'compensation') AND t.status = 'posted') AS paid,
          sum(t.amount_msat) FILTER (WHERE t.status = 'pending') AS held,
          sum(t.amount_msat) FILTER (WHERE t.kind = 'fee' AND t.status = 'posted') AS fees
        FROM ledger.transfers t WHERE t.debit_account_id IN (SELECT account_id FROM runs) GROUP BY t.debit_account_id
      ), credits AS (
        SELECT t.credit_account_id AS account_id, sum(t.amount_msat) FILTER (WHERE t.kind = 'funding' AND t.status = 'posted') AS funding
        FROM ledger.transfers t WHERE t.credit_account_id IN (SELECT account_id FROM runs) GROUP BY t.credit_account_id
      )
      SELECT r.run_id, r.credits_posted_msat::text AS acp, r.debits_posted_msat::text AS adp, r.debits_pending_msat::text AS adq,
        coalesce(c.funding, 0)::text AS funding, coalesce(d.paid, 0)::text AS paid, coalesce(d.held, 0)::text AS held, coalesce(d.fees, 0)::text AS fees
      FROM runs r LEFT JOIN debits d ON d.account_id = r.account_id LEFT JOIN credits c ON c.account_id = r.account_id
      ORDER BY r.run_id`.execute(this.db);
    return rows.rows.map((r) => ({
      runId: r.run_id!,
      accountCreditsPostedMsat: BigInt(r.acp!),
      accountDebitsPostedMsat: BigInt(r.adp!),
      accountDebitsPendingMsat: BigInt(r.adq!),
      fundingMsat: BigInt(r.funding!),
      paidMsat: BigInt(r.paid!),
      heldMsat: BigInt(r.held!),
      feesMsat: BigInt(r.fees!),
    }));
  }
}

type FaultRow = {
  stream_id: string;
  fault_code: 'EVENT_REVISION_GAP' | 'CHAIN_BROKEN_LINK' | 'GLOBAL_ORDER_VIOLATION' | null;
  fault_revision: string | null;
  fault_type: string | null;
  fault_position: string | null;
  expected_revision: string | null;
  last_revision: string | null;
  last_hash: string | null;
  last_type: string | null;
  last_position: string | null;
  has_head: boolean | null;
  head_revision: string | null;
  head_hash: string | null;
};

/**
 * The chains' structure in SQL (ChainScan): one pass over the (stream_id, stream_revision) order with
 * window functions, returning only the streams that are wrong. JavaScript then never reads the log in
 * stream order, which was a whole second read of it beside the rebuild's.
 */
class PostgresChainScan implements ChainScan {
  constructor(private readonly db: Kysely<any>) {}

  async streamFaults(genesisHash: string, afterStreamId: string | null, limit: number): Promise<StreamFaults[]> {
    const after = afterStreamId === null ? sql`` : sql`WHERE e.stream_id > ${afterStreamId}`;
    // Each event against its predecessor: gap first, then link, then order (the walk's priority, so the
    // same event gets the same code). Only faulty events and bad tails come out of `hits`, so `w` is
    // never materialized; the head row rides on every event by key, and only a stream's last is compared.
    const rows = await sql<FaultRow>`
      WITH w AS (
        SELECT e.stream_id, e.stream_revision, e.transaction_id, e.global_position, e.event_type, e.prev_hash, e.hash,
          coalesce(lag(e.stream_revision) OVER s + 1, 0) AS expected_revision,
          coalesce(lag(e.hash) OVER s, ${genesisHash}) AS expected_prev_hash,
          lag(e.transaction_id) OVER s AS prev_transaction_id, lag(e.global_position) OVER s AS prev_global_position,
          lead(e.stream_revision) OVER s IS NULL AS is_last,
          h.stream_id IS NOT NULL AS has_head, h.revision AS head_revision, h.head_hash
        FROM events e LEFT JOIN streams h ON h.stream_id = e.stream_id ${after}
        WINDOW s AS (PARTITION BY e.stream_id ORDER BY e.stream_revision)
      ), hits AS MATERIALIZED (
        SELECT *,
          CASE WHEN stream_revision <> expected_revision THEN 'EVENT_REVISION_GAP'
               WHEN prev_hash <> expected_prev_hash THEN 'CHAIN_BROKEN_LINK'
               WHEN (prev_transaction_id, prev_global_position) >= (transaction_id, global_position) THEN 'GLOBAL_ORDER_VIOLATION' END AS code,
          is_last AND (NOT has_head OR head_revision <> stream_revision OR head_hash <> hash) AS bad_tail
        FROM w
        WHERE stream_revision <> expected_revision OR prev_hash <> expected_prev_hash
          OR (prev_transaction_id, prev_global_position) >= (transaction_id, global_position)
          OR (is_last AND (NOT has_head OR head_revision <> stream_revision OR head_hash <> hash))
      )
      SELECT coalesce(f.stream_id, t.stream_id) AS stream_id,
        f.code AS fault_code, f.stream_revision::text AS fault_revision, f.event_type AS fault_type, f.global_position::text AS fault_position, f.expected_revision::text AS expected_revision,
        t.stream_revision::text AS last_revision, t.hash AS last_hash, t.event_type AS last_type, t.global_position::text AS last_position,
        t.has_head, t.head_revision::text AS head_revision, t.head_hash
      FROM (SELECT DISTINCT ON (stream_id) * FROM hits WHERE code IS NOT NULL ORDER BY stream_id, stream_revision) AS f
      FULL JOIN (SELECT * FROM hits WHERE bad_tail) AS t ON t.stream_id = f.stream_id
      ORDER BY 1 LIMIT ${page(limit)}`.execute(this.db);
    return rows.rows.map((r) => ({
      streamId: r.stream_id,
      fault:
        r.fault_code === null
          ? null
          : { code: r.fault_code, streamId: r.stream_id, revision: Number(r.fault_revision), type: r.fault_type!, globalPosition: BigInt(r.fault_position!), expectedRevision: Number(r.expected_revision) },
      headFault:
        r.last_revision === null
          ? null
          : {
              streamId: r.stream_id,
              lastRevision: Number(r.last_revision),
              lastHash: r.last_hash!,
              type: r.last_type!,
              globalPosition: BigInt(r.last_position!),
              head: r.has_head ? { streamId: r.stream_id, revision: Number(r.head_revision), headHash: r.head_hash! } : null,
            },
    }));
  }

  async totals(): Promise<{ streams: number; events: number }> {
    const row = await sql<{ streams: string; events: string }>`SELECT count(DISTINCT stream_id)::text AS streams, count(*)::text AS events FROM events`.execute(this.db);
    return { streams: Number(row.rows[0]!.streams), events: Number(row.rows[0]!.events) };
  }

  async eventsInLogOrder(after: LogPosition, limit: number, settledOnly: boolean): Promise<RecordedEvent[]> {
    if (settledOnly) return readAllIn(this.db, { after, maxCount: page(limit) });
    const rows = await sql<EventRow>`
      SELECT ${EVENT_COLUMNS} FROM events
      WHERE (transaction_id, global_position) > (${after.transactionId.toString()}::xid8, ${after.globalPosition.toString()}::bigint)
      ORDER BY events.transaction_id, events.global_position LIMIT ${page(limit)}`.execute(this.db);
    return rows.rows.map(toRecordedEvent);
  }
}
