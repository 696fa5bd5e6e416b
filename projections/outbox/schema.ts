// Typed kysely schema of the outbox projection (int8 as decimal strings).

import type { ColumnType } from 'kysely';

type Int8 = ColumnType<string, string, string>;

export interface OutboxInvoicesTable {
  payment_hash: string;
  kind: string;
  status: string;
  assignment_id: string;
  run_id: string;
  contributor_id: string;
  amount_msat: Int8;
  bolt11: string;
  expires_at_ms: Int8;
  cltv_expiry_height: ColumnType<string | null, string | null, string | null>;
  was_held: boolean;
  released_preimage_hex: string | null;
  failed_attempts: number;
  updated_at_ms: Int8;
  max_fee_msat: ColumnType<string | null, string | null, string | null>;
}

export interface OutboxTables {
  invoices: OutboxInvoicesTable;
}
