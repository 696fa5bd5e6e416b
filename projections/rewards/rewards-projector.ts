// The rewards projector: loads the rows a batch touches, folds the batch through RewardsBook, writes the touched rows back.

import type { Insertable, Kysely } from 'kysely';
import type { DomainEvent } from '../../domain/events.js';
import type { InvoiceKind, InvoiceStatus } from '../../domain/invoice/invoice.state.js';
import type { ProjectedEvent, Projector } from '../projector.js';
import { REWARDS_MIGRATIONS } from './migrations/index.js';
import { type AssignmentRecord, type ContributorRewards, type InvoiceRecord, type RunBudget, type Verdict, RewardsBook } from './rewards-book.js';
import { contributorToRow, runToRow, contributorFromRow, runFromRow } from './rows.js';
import type { RewardsTables } from './schema.js';
import { insertRows, keyIn } from '../batch-sql.js';

/** Rows per statement (one JSON parameter each, see batch-sql.ts): bounds the statement's size. */
const WRITE_CHUNK_ROWS = 2_000;
/** Keys per lookup (one array parameter each): bounds the statement's size. */
const READ_CHUNK_KEYS = 5_000;

export const rewardsProjector: Projector = {
  name: 'rewards',
  migrations: REWARDS_MIGRATIONS,
  tables: [
    { name: 'contributors', orderBy: ['contributor_id'] },
    { name: 'runs', orderBy: ['run_id'] },
    { name: 'assignments', orderBy: ['assignment_id'] },
    { name: 'invoices', orderBy: ['payment_hash'] },
  ],
  async apply(db: Kysely<any>, events: readonly ProjectedEvent[]): Promise<void> {
    const rewards = db as Kysely<RewardsTables>;
    const book = await loadBook(rewards, events.map((e) => e.event));
    for (const { event } of events) book.apply(event);
    book.finish();
    await writeBook(rewards, book);
  },
};

type Keys = { contributors: Set<string>; runs: Set<string>; assignments: Set<string>; invoices: Set<string> };

/** Every row an event can touch is named by the ids it carries (events are auditable alone). */
function keysOf(events: readonly DomainEvent[]): Keys {
  const keys: Keys = { contributors: new Set(), runs: new Set(), assignments: new Set(), invoices: new Set() };
  for (const { data } of events) {
    if ('contributorId' in data) keys.contributors.add(data.contributorId);
    if ('runId' in data) keys.runs.add(data.runId);
    if ('assignmentId' in data) keys.assignments.add(data.assignmentId);
    if ('paymentHash' in data) keys.invoices.add(data.paymentHash);
  }
  return keys;
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

async function loadBook(db: Kysely<RewardsTables>, events: readonly DomainEvent[]): Promise<RewardsBook> {
  const keys = keysOf(events);
  const contributors = new Map<string, ContributorRewards>();
  for (const ids of chunks([...keys.contributors], READ_CHUNK_KEYS)) {
    for (const row of await db.selectFrom('contributors').selectAll().where(keyIn('contributor_id', ids)).execute()) contributors.set(row.contributor_id, contributorFromRow(row));
  }
  const runs = new Map<string, RunBudget>();
  for (const ids of chunks([...keys.runs], READ_CHUNK_KEYS)) {
    for (const row of await db.selectFrom('runs').selectAll().where(keyIn('run_id', ids)).execute()) runs.set(row.run_id, runFromRow(row));
  }
  const assignments = new Map<string, AssignmentRecord>();
  for (const ids of chunks([...keys.assignments], READ_CHUNK_KEYS)) {
    for (const row of await db.selectFrom('assignments').selectAll().where(keyIn('assignment_id', ids)).execute()) {
      assignments.set(row.assignment_id, {
        assignmentId: row.assignment_id,
        runId: row.run_id,
        contributorId: row.contributor_id,
        baseRewardMsat: BigInt(row.base_reward_msat),
        verdict: row.verdict as Verdict | null,
        basePaid: row.base_paid,
      });
    }
  }
  const invoices = new Map<string, InvoiceRecord>();
  for (const ids of chunks([...keys.invoices], READ_CHUNK_KEYS)) {
    for (const row of await db.selectFrom('invoices').selectAll().where(keyIn('payment_hash', ids)).execute()) {
      invoices.set(row.payment_hash, {
        paymentHash: row.payment_hash,
        kind: row.kind as InvoiceKind,
        assignmentId: row.assignment_id,
        runId: row.run_id,
        contributorId: row.contributor_id,
        amountMsat: BigInt(row.amount_msat),
        status: row.status as InvoiceStatus,
      });
    }
  }
  return new RewardsBook(contributors, runs, assignments, invoices);
}


/** Inserts or overwrites rows by primary key, in chunks; a batch's rows are final values, not deltas. */
async function upsert<T extends keyof RewardsTables>(db: Kysely<RewardsTables>, table: T, key: string, rows: readonly Insertable<RewardsTables[T]>[]): Promise<void> {
  for (const chunk of chunks(rows, WRITE_CHUNK_ROWS)) {
    const columns = Object.keys(chunk[0]!).filter((column) => column !== key);
    await insertRows(db as Kysely<any>, table, chunk as Record<string, unknown>[])
      .onConflict((oc) => oc.column(key).doUpdateSet(Object.fromEntries(columns.map((c) => [c, (eb: any) => eb.ref(`excluded.${c}`)])) as any))
      .execute();
  }
}

function pick<T>(map: ReadonlyMap<string, T>, ids: ReadonlySet<string>): T[] {
  // Sorted, so the statements (and any lock order between concurrent writers) are deterministic.
  return [...ids].sort().map((id) => map.get(id)!);
}

async function writeBook(db: Kysely<RewardsTables>, book: RewardsBook): Promise<void> {
  await upsert(db, 'contributors', 'contributor_id', pick(book.contributors, book.touched.contributors).map(contributorToRow));
  await upsert(db, 'runs', 'run_id', pick(book.runs, book.touched.runs).map(runToRow));
  await upsert(
    db,
    'assignments',
    'assignment_id',
    pick(book.assignments, book.touched.assignments).map((a) => ({
      assignment_id: a.assignmentId,
      run_id: a.runId,
      contributor_id: a.contributorId,
      base_reward_msat: a.baseRewardMsat.toString(),
      verdict: a.verdict,
      base_paid: a.basePaid,
    })),
  );
  await upsert(
    db,
    'invoices',
    'payment_hash',
    pick(book.invoices, book.touched.invoices).map((i) => ({
      payment_hash: i.paymentHash,
      kind: i.kind,
      assignment_id: i.assignmentId,
      run_id: i.runId,
      contributor_id: i.contributorId,
      amount_msat: i.amountMsat.toString(),
      status: i.status,
    })),
  );
}
