// Staff API keys: issued once in the clear, stored only as SHA-256, each bound to a role and its scopes.

import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { sql, type Kysely } from 'kysely';
import type { Migration } from 'kysely/migration';
import { migrateToLatest } from '../../postgres/database.js';

export const API_KEY_ROLES = Object.freeze(['coordinator', 'validator', 'analyst', 'auditor'] as const);
export type ApiKeyRole = (typeof API_KEY_ROLES)[number];

export const ROLE_SCOPES: Readonly<Record<ApiKeyRole, readonly string[]>> = Object.freeze({
  coordinator: Object.freeze(['runs:write', 'assignments:write', 'keys:write', 'ledger:read', 'rewards:read', 'metrics:read', 'events:read']),
  validator: Object.freeze(['verdicts:write', 'assignments:read']),
  analyst: Object.freeze(['ledger:read', 'rewards:read', 'metrics:read']),
  auditor: Object.freeze(['ledger:read', 'rewards:read', 'metrics:read', 'events:read']),
});

/** 32 random bytes: brute-forcing a key is as hard as inverting SHA-256. */
export const API_KEY_SECRET_BYTES = 32;
/** base64url of 32 bytes, unpadded. */
export const API_KEY_SECRET_CHARS = 43;
export const MAX_API_KEY_CHARS = 'tl_coordinator_'.length + API_KEY_SECRET_CHARS;
export const MAX_API_KEY_LABEL_CHARS = 200;
export const BOOTSTRAP_KEY_ID = 'bootstrap-coordinator';
export const ADMIN_KEY_FILE_NAME = 'admin-key';
/** Owner read/write only: the file holds a coordinator secret. */
export const ADMIN_KEY_FILE_MODE = 0o600;

const API_KEY_PATTERN = /^tl_(coordinator|validator|analyst|auditor)_([A-Za-z0-9_-]{43})$/;
const API_KEY_ID_PATTERN = /^[A-Za-z0-9._:-]{1,100}$/;

export type ApiKeyErrorCode = 'INVALID_API_KEY_FORMAT' | 'UNKNOWN_ROLE' | 'INVALID_API_KEY_INPUT' | 'API_KEY_ID_TAKEN' | 'BOOTSTRAP_KEY_REVOKED';

export class ApiKeyError extends Error {
  override readonly name = 'ApiKeyError';
  constructor(
    /** Stable, SCREAMING_SNAKE code; callers branch on it, never on the message. */
    readonly code: ApiKeyErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export type ApiKeyTables = {
  api_keys: {
    key_id: string;
    key_hash: string;
    role: string;
    scopes: string;
    label: string;
    created_at_ms: string | number;
    revoked_at_ms: string | number | null;
  };
};

export const API_KEY_MIGRATIONS: Readonly<Record<string, Migration>> = {
  '0001_api_keys': {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('api_keys')
        .addColumn('key_id', 'text', (c) => c.primaryKey())
        .addColumn('key_hash', 'text', (c) => c.notNull().unique())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('scopes', 'text', (c) => c.notNull())
        .addColumn('label', 'text', (c) => c.notNull())
        .addColumn('created_at_ms', 'bigint', (c) => c.notNull())
        .addColumn('revoked_at_ms', 'bigint')
        .execute();
    },
    async down(db: Kysely<any>): Promise<void> {
      await db.schema.dropTable('api_keys').execute();
    },
  },
};

export type AuthenticatedKey = Readonly<{ keyId: string; role: ApiKeyRole; scopes: readonly string[] }>;
export type IssuedKey = AuthenticatedKey & Readonly<{ /** Shown once; only its hash is kept. */ apiKey: string }>;
export type BootstrapResult = Readonly<{ source: 'env' | 'generated' | 'existing' }>;

export function isApiKeyRole(role: string): role is ApiKeyRole {
  return (API_KEY_ROLES as readonly string[]).includes(role);
}

/** The role a well-formed key names, or null for anything malformed. */
export function parseApiKey(apiKey: string): { role: ApiKeyRole } | null {
  if (apiKey.length > MAX_API_KEY_CHARS) return null;
  const match = API_KEY_PATTERN.exec(apiKey);
  if (!match) return null;
  // Only the canonical encoding of 32 bytes: one secret, one spelling, one hash.
  if (Buffer.from(match[2]!, 'base64url').toString('base64url') !== match[2]) return null;
  return { role: match[1] as ApiKeyRole };
}

export function hashApiKey(apiKey: string): string {
  return createHash('sha256').update(apiKey, 'utf8').digest('hex');
}

export function newApiKey(role: ApiKeyRole): string {
  return `tl_${role}_${randomBytes(API_KEY_SECRET_BYTES).toString('base64url')}`;
}

export class ApiKeyStore {
  private readonly db: Kysely<ApiKeyTables>;

  constructor(db: Kysely<any>) {
    this.db = db as Kysely<ApiKeyTables>;
  }

  async prepare(): Promise<void> {
    await migrateToLatest(this.db, API_KEY_MIGRATIONS, 'api_key_migrations');
  }

  async issue(input: Readonly<{ role: string; label: string; nowMs: number; keyId?: string }>): Promise<IssuedKey> {
    if (!isApiKeyRole(input.role)) throw new ApiKeyError('UNKNOWN_ROLE', `role must be one of ${API_KEY_ROLES.join(', ')}`);
    const keyId = input.keyId ?? `k-${randomBytes(8).toString('hex')}`;
    if (!API_KEY_ID_PATTERN.test(keyId)) throw new ApiKeyError('INVALID_API_KEY_INPUT', `keyId must match ${API_KEY_ID_PATTERN}`);
    if (input.label.length > MAX_API_KEY_LABEL_CHARS) throw new ApiKeyError('INVALID_API_KEY_INPUT', `label is at most ${MAX_API_KEY_LABEL_CHARS} characters`);
    const apiKey = newApiKey(input.role);
    const scopes = ROLE_SCOPES[input.role];
    const inserted = await this.db
      .insertInto('api_keys')
      .values({ key_id: keyId, key_hash: hashApiKey(apiKey), role: input.role, scopes: scopes.join(' '), label: input.label, created_at_ms: input.nowMs, revoked_at_ms: null })
      .onConflict((oc) => oc.doNothing())
      .returning('key_id')
      .executeTakeFirst();
    if (!inserted) throw new ApiKeyError('API_KEY_ID_TAKEN', `an API key with id ${keyId} already exists`);
    return { keyId, apiKey, role: input.role, scopes };
  }

  /** The key's identity, or null when it is malformed, unknown or revoked. */
  async authenticate(bearer: string): Promise<AuthenticatedKey | null> {
    // Malformed input never reaches the database; lookup is by hash, so no secret is compared byte by byte.
    const parsed = parseApiKey(bearer);
    if (!parsed) return null;
    const row = await this.db
      .selectFrom('api_keys')
      .select(['key_id', 'role', 'scopes'])
      .where('key_hash', '=', hashApiKey(bearer))
      .where('revoked_at_ms', 'is', null)
      .executeTakeFirst();
    if (!row || row.role !== parsed.role || !isApiKeyRole(row.role)) return null;
    return { keyId: row.key_id, role: row.role, scopes: row.scopes.split(' ').filter((s) => s !== '') };
  }

  /** True when this call revoked the key; false when it was unknown or already revoked. */
  async revoke(keyId: string, nowMs: number): Promise<boolean> {
    const result = await this.db
      .updateTable('api_keys')
      .set({ revoked_at_ms: nowMs })
      .where('key_id', '=', keyId)
      .where('revoked_at_ms', 'is', null)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  /**
   * A first coordinator key, so a fresh install can be administered at all. TRAINLEDGER_ADMIN_KEY
   * (`envKey`) wins and is (re)installed on every start; without it a key is generated once, written
   * to `<dataDir>/admin-key` (mode 0600) and printed once; while any coordinator key is live, nothing happens.
   */
  async ensureBootstrapCoordinatorKey(
    input: Readonly<{ dataDir: string; envKey: string | undefined; nowMs: number; log: (message: string) => void }>,
  ): Promise<BootstrapResult> {
    if (input.envKey !== undefined) return this.installEnvKey(input.envKey, input.nowMs, input.log);
    const live = await this.db
      .selectFrom('api_keys')
      .select('key_id')
      .where('role', '=', 'coordinator')
      .where('revoked_at_ms', 'is', null)
      .limit(1)
      .executeTakeFirst();
    if (live) return { source: 'existing' };
    return this.generateBootstrapKey(input.dataDir, input.nowMs, input.log);
  }

  private async installEnvKey(envKey: string, nowMs: number, log: (message: string) => void): Promise<BootstrapResult> {
    const parsed = parseApiKey(envKey);
    if (parsed?.role !== 'coordinator') {
      throw new ApiKeyError('INVALID_API_KEY_FORMAT', `TRAINLEDGER_ADMIN_KEY must be a coordinator key: tl_coordinator_ followed by ${API_KEY_SECRET_CHARS} base64url characters`);
    }
    const keyHash = hashApiKey(envKey);
    const elsewhere = await this.db.selectFrom('api_keys').select(['key_id', 'revoked_at_ms']).where('key_hash', '=', keyHash).executeTakeFirst();
    if (elsewhere && elsewhere.key_id !== BOOTSTRAP_KEY_ID) {
      if (elsewhere.revoked_at_ms !== null) throw new ApiKeyError('BOOTSTRAP_KEY_REVOKED', `TRAINLEDGER_ADMIN_KEY is key ${elsewhere.key_id}, which was revoked; set a new key`);
      log(`TrainLedger: TRAINLEDGER_ADMIN_KEY is the live coordinator key ${elsewhere.key_id}`);
      return { source: 'env' };
    }
    await this.upsertBootstrapKey(keyHash, 'bootstrap (TRAINLEDGER_ADMIN_KEY)', nowMs, 'always');
    log(`TrainLedger: coordinator key ${BOOTSTRAP_KEY_ID} set from TRAINLEDGER_ADMIN_KEY`);
    return { source: 'env' };
  }

  private async generateBootstrapKey(dataDir: string, nowMs: number, log: (message: string) => void): Promise<BootstrapResult> {
    const apiKey = newApiKey('coordinator');
    const keyHash = hashApiKey(apiKey);
    // Two processes starting at once on one database: only one takes the row, the other finds it live.
    const claimed = await this.upsertBootstrapKey(keyHash, 'bootstrap (generated)', nowMs, 'only-if-revoked');
    if (!claimed) return { source: 'existing' };
    const path = join(dataDir, ADMIN_KEY_FILE_NAME);
    try {
      await writeSecretFile(path, `${apiKey}\n`);
    } catch (error) {
      // Nobody can learn a key whose file was never written: revoke it so the next start generates again.
      await this.db.updateTable('api_keys').set({ revoked_at_ms: nowMs }).where('key_hash', '=', keyHash).execute();
      throw error;
    }
    log(
      `TrainLedger: generated the first coordinator API key (shown once; also stored in ${path}, mode 0600):\n` +
        `  ${apiKey}\n` +
        `Keep it secret; set TRAINLEDGER_ADMIN_KEY to use a key of your own instead.`,
    );
    return { source: 'generated' };
  }

  /** Writes the bootstrap row; with 'only-if-revoked' an existing live row is left alone and false returned. */
  private async upsertBootstrapKey(keyHash: string, label: string, nowMs: number, replace: 'always' | 'only-if-revoked'): Promise<boolean> {
    const row = await this.db
      .insertInto('api_keys')
      .values({ key_id: BOOTSTRAP_KEY_ID, key_hash: keyHash, role: 'coordinator', scopes: ROLE_SCOPES.coordinator.join(' '), label, created_at_ms: nowMs, revoked_at_ms: null })
      .onConflict((oc) => {
        const update = oc.column('key_id').doUpdateSet({
          key_hash: (eb) => eb.ref('excluded.key_hash'),
          role: (eb) => eb.ref('excluded.role'),
          scopes: (eb) => eb.ref('excluded.scopes'),
          label: (eb) => eb.ref('excluded.label'),
          // Restarting with the same key keeps its original creation time.
          created_at_ms: sql`CASE WHEN api_keys.key_hash = excluded.key_hash THEN api_keys.created_at_ms ELSE excluded.created_at_ms END`,
          revoked_at_ms: null,
        });
        return replace === 'always' ? update : update.where('api_keys.revoked_at_ms', 'is not', null);
      })
      .returning('key_id')
      .executeTakeFirst();
    return row !== undefined;
  }
}

async function writeSecretFile(path: string, contents: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const handle = await open(path, 'w', ADMIN_KEY_FILE_MODE);
  try {
    // A file left by an earlier run may be wider open: narrow it before the secret goes in.
    await handle.chmod(ADMIN_KEY_FILE_MODE);
    await handle.writeFile(contents, 'utf8');
  } finally {
    await handle.close();
  }
}
