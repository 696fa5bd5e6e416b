// Typed kysely schema of the ledger projection's tables (int8 columns come back as decimal strings).

import type { ColumnType } from 'kysely';

type Int8 = ColumnType<string, string, string>;
type NullableInt8 = ColumnType<string | null, string | null, string | null>;

export interface LedgerAccountsTable {
  account_id: string;
  kind: string;
  run_id: string | null;
  contributor_id: string | null;
  debits_pending_msat: Int8;
  debits_posted_msat: Int8;
  credits_pending_msat: Int8;
  credits_posted_msat: Int8;
}

export interface LedgerTransfersTable {
  transfer_id: string;
  kind: string;
  debit_account_id: string;
  credit_account_id: string;
  amount_msat: Int8;
  status: string;
  run_id: string;
  assignment_id: string | null;
  payment_hash: string | null;
  created_at_ms: Int8;
  resolved_at_ms: NullableInt8;
}

export interface LedgerInvoicesTable {
  payment_hash: string;
  kind: string;
  run_id: string;
  contributor_id: string;
  assignment_id: string;
  amount_msat: Int8;
}

export interface LedgerTables {
  accounts: LedgerAccountsTable;
  transfers: LedgerTransfersTable;
  invoices: LedgerInvoicesTable;
}
