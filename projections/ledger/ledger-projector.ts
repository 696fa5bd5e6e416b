// The ledger projector: loads what a batch touches, applies it through LedgerBook, writes back, checks balance.

import type { Kysely } from 'kysely';
import type { DomainEvent } from '../../domain/events.js';
import type { ProjectedEvent, Projector } from '../projector.js';
import { LEDGER_MIGRATIONS } from './migrations/index.js';
import { type Account, type AccountBalances, type AccountKind, type LedgerInvoice, type Transfer, LedgerBook, balanceChange, balancesOf, contributorAccountId, runAccountId } from './ledger-book.js';
import type { LedgerTables } from './schema.js';
import { insertRows, keyIn } from '../batch-sql.js';

/** Rows per statement (one JSON parameter each, see batch-sql.ts): bounds the statement's size. */
const WRITE_CHUNK_ROWS = 2_000;

export const ledgerProjector: Projector = {
  name: 'ledger',
  migrations: LEDGER_MIGRATIONS,
  tables: [
    { name: 'accounts', orderBy: ['account_id'] },
    { name: 'transfers', orderBy: ['transfer_id'] },
    { name: 'invoices', orderBy: ['payment_hash'] },
  ],
  async apply(db: Kysely<any>, events: readonly ProjectedEvent[]): Promise<void> {
    const ledger = db as Kysely<LedgerTables>;
    const domainEvents = events.map((e) => e.event);
    const book = await loadBook(ledger, domainEvents);
    const opening = new Map([...book.accounts].map(([id, a]) => [id, balancesOf(a)]));
    for (const event of domainEvents) book.apply(event);
    const written = await writeBook(ledger, book);
    // Per-transfer symmetry is asserted in the book; this re-checks the account rows as written. Their change
    // must balance: the table balanced before the batch (every batch since the empty table was checked the
    // same way), so it balances after. Not a sum over the whole table: that costs O(accounts) per batch, an
    // O(n^2) fold over a growing network (at 300,000 assignments, 50,000 accounts summed 535 times in the
    // audit's rebuild). A row changed outside the projector is the audit's to find (ledger and rebuild parts).
    LedgerBook.assertBalanced(balanceChange(opening, written));
  },
};

function paymentHashOf(event: DomainEvent): string | null {
  return 'paymentHash' in event.data ? (event.data as { paymentHash: string }).paymentHash : null;
}

/** Loads every invoice, account and transfer the batch can touch, in three queries. */
async function loadBook(db: Kysely<LedgerTables>, events: readonly DomainEvent[]): Promise<LedgerBook> {
  const hashes = [...new Set(events.map(paymentHashOf).filter((h): h is string => h !== null))];
  const invoices = new Map<string, LedgerInvoice>();
  if (hashes.length > 0) {
    for (const row of await db.selectFrom('invoices').selectAll().where(keyIn('payment_hash', hashes)).execute()) {
      invoices.set(row.payment_hash, { paymentHash: row.payment_hash, kind: row.kind, runId: row.run_id, contributorId: row.contributor_id, assignmentId: row.assignment_id, amountMsat: BigInt(row.amount_msat) });
    }
  }
  const accountIds = new Set<string>(['customer-revenue', 'subsidy-pool', 'routing-fees']);
  const transferIds = new Set<string>();
  for (const event of events) {
    if ('runId' in event.data) accountIds.add(runAccountId((event.data as { runId: string }).runId));
    if ('contributorId' in event.data) accountIds.add(contributorAccountId((event.data as { contributorId: string }).contributorId));
    const hash = paymentHashOf(event);
    if (hash) transferIds.add(`escrow:${hash}`).add(`payout:${hash}`).add(`fee:${hash}`);
  }
  const accounts = new Map<string, Account>();
  for (const row of await db.selectFrom('accounts').selectAll().where(keyIn('account_id', [...accountIds])).execute()) {
    accounts.set(row.account_id, {
      accountId: row.account_id,
      kind: row.kind as AccountKind,
      runId: row.run_id,
      contributorId: row.contributor_id,
      debitsPendingMsat: BigInt(row.debits_pending_msat),
      debitsPostedMsat: BigInt(row.debits_posted_msat),
      creditsPendingMsat: BigInt(row.credits_pending_msat),
      creditsPostedMsat: BigInt(row.credits_posted_msat),
    });
  }
  const transfers = new Map<string, Transfer>();
  if (transferIds.size > 0) {
    for (const row of await db.selectFrom('transfers').selectAll().where(keyIn('transfer_id', [...transferIds])).execute()) {
      transfers.set(row.transfer_id, transferFromRow(row));
    }
  }
  return new LedgerBook(accounts, transfers, invoices);
}

function transferFromRow(row: LedgerTables['transfers'] extends infer T ? { [K in keyof T]: any } : never): Transfer {
  return {
    transferId: row.transfer_id,
    kind: row.kind,
    debitAccountId: row.debit_account_id,
    creditAccountId: row.credit_account_id,
    amountMsat: BigInt(row.amount_msat),
    status: row.status,
    runId: row.run_id,
    assignmentId: row.assignment_id,
    paymentHash: row.payment_hash,
    createdAtMs: Number(row.created_at_ms),
    resolvedAtMs: row.resolved_at_ms === null ? null : Number(row.resolved_at_ms),
  };
}

/** Writes what the batch changed; returns the account rows written, their balances read back from the rows themselves. */
async function writeBook(db: Kysely<LedgerTables>, book: LedgerBook): Promise<Map<string, AccountBalances>> {
  const invoices = [...book.newInvoices].map((h) => book.invoices.get(h)!);
  for (const chunk of chunks(invoices)) {
    await insertRows(db, 'invoices', chunk.map((i) => ({ payment_hash: i.paymentHash, kind: i.kind, run_id: i.runId, contributor_id: i.contributorId, assignment_id: i.assignmentId, amount_msat: i.amountMsat.toString() }))).execute();
  }
  const accounts = [...book.dirtyAccounts].map((id) => book.accounts.get(id)!);
  const written = new Map<string, AccountBalances>();
  for (const chunk of chunks(accounts)) {
    const rows = chunk.map(accountRow);
    for (const row of rows) {
      written.set(row.account_id, { debitsPendingMsat: BigInt(row.debits_pending_msat), debitsPostedMsat: BigInt(row.debits_posted_msat), creditsPendingMsat: BigInt(row.credits_pending_msat), creditsPostedMsat: BigInt(row.credits_posted_msat) });
    }
    await insertRows(db, 'accounts', rows)
      .onConflict((oc) =>
        oc.column('account_id').doUpdateSet((eb) => ({
          debits_pending_msat: eb.ref('excluded.debits_pending_msat'),
          debits_posted_msat: eb.ref('excluded.debits_posted_msat'),
          credits_pending_msat: eb.ref('excluded.credits_pending_msat'),
          credits_posted_msat: eb.ref('excluded.credits_posted_msat'),
        })),
      )
      .execute();
  }
  const transfers = [...book.dirtyTransfers].map((id) => book.transfers.get(id)!);
  for (const chunk of chunks(transfers)) {
    await insertRows(db, 'transfers', chunk.map(transferRow))
      .onConflict((oc) => oc.column('transfer_id').doUpdateSet((eb) => ({ status: eb.ref('excluded.status'), resolved_at_ms: eb.ref('excluded.resolved_at_ms') })))
      .execute();
  }
  return written;
}

function accountRow(a: Account) {
  return {
    account_id: a.accountId,
    kind: a.kind,
    run_id: a.runId,
    contributor_id: a.contributorId,
    debits_pending_msat: a.debitsPendingMsat.toString(),
    debits_posted_msat: a.debitsPostedMsat.toString(),
    credits_pending_msat: a.creditsPendingMsat.toString(),
    credits_posted_msat: a.creditsPostedMsat.toString(),
  };
}

function transferRow(t: Transfer) {
  return {
    transfer_id: t.transferId,
    kind: t.kind,
    debit_account_id: t.debitAccountId,
    credit_account_id: t.creditAccountId,
    amount_msat: t.amountMsat.toString(),
    status: t.status,
    run_id: t.runId,
    assignment_id: t.assignmentId,
    payment_hash: t.paymentHash,
    created_at_ms: String(t.createdAtMs),
    resolved_at_ms: t.resolvedAtMs === null ? null : String(t.resolvedAtMs),
  };
}

function* chunks<T>(items: readonly T[]): Generator<T[]> {
  for (let i = 0; i < items.length; i += WRITE_CHUNK_ROWS) yield items.slice(i, i + WRITE_CHUNK_ROWS);
}
