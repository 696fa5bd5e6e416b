// Single-use request-signature nonces: the first claim of (key id, nonce) wins, every replay loses.

import { sql, type Kysely } from 'kysely';
import type { Migration } from 'kysely/migration';
import { migrateToLatest } from '../../postgres/database.js';

/** Expired rows removed per claim: enough to outpace inserts, small enough to keep every claim cheap. */
export const NONCE_PRUNE_BATCH_ROWS = 1000;
export const MAX_NONCE_KEY_ID_CHARS = 200;
export const MAX_NONCE_CHARS = 128;

export type NonceTables = {
  http_signature_nonces: { key_id: string; nonce: string; expires_at_ms: string | number };
};

export const NONCE_STORE_MIGRATIONS: Readonly<Record<string, Migration>> = {
  '0001_http_signature_nonces': {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('http_signature_nonces')
        .addColumn('key_id', 'text', (c) => c.notNull())
        .addColumn('nonce', 'text', (c) => c.notNull())
        .addColumn('expires_at_ms', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('http_signature_nonces_pk', ['key_id', 'nonce'])
        .execute();
      await db.schema.createIndex('http_signature_nonces_by_expiry').on('http_signature_nonces').column('expires_at_ms').execute();
    },
    async down(db: Kysely<any>): Promise<void> {
      await db.schema.dropTable('http_signature_nonces').execute();
    },
  },
};

export class NonceStoreError extends Error {
  override readonly name = 'NonceStoreError';
  readonly code = 'NONCE_INPUT_INVALID';
}

export class NonceStore {
  private readonly db: Kysely<NonceTables>;

  constructor(db: Kysely<any>) {
    this.db = db as Kysely<NonceTables>;
  }

  async prepare(): Promise<void> {
    await migrateToLatest(this.db, NONCE_STORE_MIGRATIONS, 'http_nonce_migrations');
  }

  /**
   * True when this call is the first to claim (keyId, nonce). `expiresAtMs` must outlive the window
   * in which a signature carrying the nonce is still accepted, or a replay after pruning would pass.
   */
  async claim(keyId: string, nonce: string, expiresAtMs: number, nowMs: number): Promise<boolean> {
    checkClaim(keyId, nonce, expiresAtMs, nowMs);
    // One statement prunes a bounded batch of expired rows and claims the nonce: a round trip per
    // signed request, not two. Both parts see the statement's one snapshot, so a nonce equal to an
    // expired row pruned here conflicts and is refused, which is harmless: its signature is stale.
    // Concurrent pruners skip each other's rows instead of queueing.
    const inserted = await sql<{ key_id: string }>`
      WITH pruned AS (
        DELETE FROM http_signature_nonces
        WHERE (key_id, nonce) IN (
          SELECT key_id, nonce FROM http_signature_nonces
          WHERE expires_at_ms <= ${nowMs}
          LIMIT ${NONCE_PRUNE_BATCH_ROWS}
          FOR UPDATE SKIP LOCKED
        )
        RETURNING 1
      )
      INSERT INTO http_signature_nonces (key_id, nonce, expires_at_ms)
      VALUES (${keyId}, ${nonce}, ${expiresAtMs})
      ON CONFLICT (key_id, nonce) DO NOTHING
      RETURNING key_id`.execute(this.db);
    return inserted.rows.length > 0;
  }
}

function checkClaim(keyId: string, nonce: string, expiresAtMs: number, nowMs: number): void {
  if (keyId.length === 0 || keyId.length > MAX_NONCE_KEY_ID_CHARS) throw new NonceStoreError(`keyId must be 1 to ${MAX_NONCE_KEY_ID_CHARS} characters`);
  if (nonce.length === 0 || nonce.length > MAX_NONCE_CHARS) throw new NonceStoreError(`nonce must be 1 to ${MAX_NONCE_CHARS} characters`);
  if (!Number.isSafeInteger(expiresAtMs) || !Number.isSafeInteger(nowMs)) throw new NonceStoreError('expiresAtMs and nowMs must be integers');
}
