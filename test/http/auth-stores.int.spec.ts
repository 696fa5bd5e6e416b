// NonceStore and ApiKeyStore against both engines: single-use nonces under concurrency, hashed keys, scopes, revocation, bootstrap.

import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEventStore, type OpenedEventStore } from '../../adapters/event-store/open-event-store.js';
import {
  ADMIN_KEY_FILE_NAME,
  ApiKeyError,
  ApiKeyStore,
  BOOTSTRAP_KEY_ID,
  ROLE_SCOPES,
  hashApiKey,
  newApiKey,
} from '../../adapters/http/auth/api-keys.js';
import { NONCE_PRUNE_BATCH_ROWS, NonceStore } from '../../adapters/http/auth/nonce-store.js';
import { createPostgresDatabase } from '../support/databases.js';

const NOW_MS = 1_700_000_000_000;
const NONCE_TTL_MS = 600_000;
const PARALLEL_CLAIMS = 20;

type Engine = { name: string; open: () => Promise<OpenedEventStore> };

const ENGINES: Engine[] = [
  { name: 'PGlite', open: () => openEventStore({ engine: 'pglite' }) },
  {
    name: 'PostgreSQL',
    open: async () => openEventStore({ engine: 'postgres', connectionString: await createPostgresDatabase('auth_stores'), maxConnections: 24 }),
  },
];

describe.each(ENGINES)('auth stores on $name', ({ open }) => {
  let opened: OpenedEventStore;
  let db: Kysely<any>;
  let nonces: NonceStore;
  let keys: ApiKeyStore;
  const dataDirs: string[] = [];

  beforeAll(async () => {
    opened = await open();
    db = opened.db as Kysely<any>;
    nonces = new NonceStore(db);
    keys = new ApiKeyStore(db);
    await nonces.prepare();
    await keys.prepare();
    // Preparing twice is a no-op: every process start calls it.
    await nonces.prepare();
    await keys.prepare();
  });

  afterAll(async () => {
    await opened?.store.close();
    for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
  });

  function freshDataDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'trainledger-auth-'));
    dataDirs.push(dir);
    return dir;
  }

  function recordingLog(): { lines: string[]; log: (message: string) => void } {
    const lines: string[] = [];
    return { lines, log: (message) => lines.push(message) };
  }

  describe('NonceStore', () => {
    it('lets a nonce be claimed once per key', async () => {
      expect(await nonces.claim('k1', 'nonce-once-0000000', NOW_MS + NONCE_TTL_MS, NOW_MS)).toBe(true);
      expect(await nonces.claim('k1', 'nonce-once-0000000', NOW_MS + NONCE_TTL_MS, NOW_MS)).toBe(false);
      // The same nonce under another key is someone else's.
      expect(await nonces.claim('k2', 'nonce-once-0000000', NOW_MS + NONCE_TTL_MS, NOW_MS)).toBe(true);
    });

    it('gives exactly one of 20 parallel claims the nonce', async () => {
      const results = await Promise.all(
        Array.from({ length: PARALLEL_CLAIMS }, () => nonces.claim('k-race', 'nonce-race-0000000', NOW_MS + NONCE_TTL_MS, NOW_MS)),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
    });

    it('prunes expired nonces in bounded batches, keeping live ones', async () => {
      const expiredRows = NONCE_PRUNE_BATCH_ROWS + 200;
      await sql`
        INSERT INTO http_signature_nonces (key_id, nonce, expires_at_ms)
        SELECT 'k-old', 'old-' || n, ${NOW_MS - 1} FROM generate_series(1, ${expiredRows}) AS n`.execute(db);
      expect(await nonces.claim('k-live', 'nonce-live-0000000', NOW_MS + NONCE_TTL_MS, NOW_MS)).toBe(true);
      expect(await countNonces(db, 'k-old')).toBe(expiredRows - NONCE_PRUNE_BATCH_ROWS);
      expect(await nonces.claim('k-live', 'nonce-live-0000001', NOW_MS + NONCE_TTL_MS, NOW_MS)).toBe(true);
      expect(await countNonces(db, 'k-old')).toBe(0);
      expect(await countNonces(db, 'k-live')).toBe(2);
      // Once it has expired (and the signature carrying it is stale), a nonce's row goes too.
      const later = NOW_MS + NONCE_TTL_MS;
      expect(await nonces.claim('k-later', 'nonce-later-000000', later + NONCE_TTL_MS, later)).toBe(true);
      expect(await countNonces(db, 'k-live')).toBe(0);
    });
  });

  describe('ApiKeyStore', () => {
    it('stores only the hash: the raw key appears nowhere in the table', async () => {
      const issued = await keys.issue({ role: 'analyst', label: 'dashboards', nowMs: NOW_MS, keyId: 'analyst-1' });
      expect(issued.apiKey).toMatch(/^tl_analyst_[A-Za-z0-9_-]{43}$/);
      const rows = await db.selectFrom('api_keys').selectAll().execute();
      const dump = JSON.stringify(rows);
      expect(dump).not.toContain(issued.apiKey);
      expect(dump).not.toContain(issued.apiKey.slice('tl_analyst_'.length));
      expect(rows.find((r) => r.key_id === 'analyst-1')).toMatchObject({ key_hash: hashApiKey(issued.apiKey), role: 'analyst', revoked_at_ms: null });
    });

    it('authenticates a key to its role and scopes', async () => {
      for (const role of ['coordinator', 'validator', 'analyst', 'auditor'] as const) {
        const issued = await keys.issue({ role, label: `${role} key`, nowMs: NOW_MS });
        expect(issued.scopes).toEqual(ROLE_SCOPES[role]);
        expect(await keys.authenticate(issued.apiKey)).toEqual({ keyId: issued.keyId, role, scopes: ROLE_SCOPES[role] });
      }
    });

    it('refuses revoked, malformed and unknown keys', async () => {
      const issued = await keys.issue({ role: 'validator', label: 'validator', nowMs: NOW_MS, keyId: 'validator-revoked' });
      expect(await keys.revoke('validator-revoked', NOW_MS + 1)).toBe(true);
      expect(await keys.revoke('validator-revoked', NOW_MS + 2)).toBe(false);
      expect(await keys.authenticate(issued.apiKey)).toBeNull();
      expect(await keys.authenticate(newApiKey('validator'))).toBeNull();
      const secret = issued.apiKey.slice('tl_validator_'.length);
      for (const malformed of ['', 'tl_validator_', `tl_root_${secret}`, `tl_validator_${secret}x`, `tl_validator_${secret.slice(1)}`, `tl_validator_${secret.slice(0, 42)}*`]) {
        expect(await keys.authenticate(malformed)).toBeNull();
      }
      // The role in the prefix must be the stored role: a key cannot promote itself by renaming.
      const analyst = await keys.issue({ role: 'analyst', label: 'a', nowMs: NOW_MS });
      expect(await keys.authenticate(analyst.apiKey.replace('tl_analyst_', 'tl_coordinator_'))).toBeNull();
    });

    it('refuses unknown roles, bad key ids and a key id already taken', async () => {
      await expect(keys.issue({ role: 'root', label: 'x', nowMs: NOW_MS })).rejects.toMatchObject({ code: 'UNKNOWN_ROLE' });
      await expect(keys.issue({ role: 'analyst', label: 'x', nowMs: NOW_MS, keyId: 'bad id' })).rejects.toMatchObject({ code: 'INVALID_API_KEY_INPUT' });
      await keys.issue({ role: 'analyst', label: 'x', nowMs: NOW_MS, keyId: 'taken' });
      await expect(keys.issue({ role: 'analyst', label: 'y', nowMs: NOW_MS, keyId: 'taken' })).rejects.toMatchObject({ code: 'API_KEY_ID_TAKEN' });
    });
  });

  describe('bootstrap coordinator key', () => {
    it('generates one key once: file mode 0600, printed once, then "existing" and silent', async () => {
      await db.deleteFrom('api_keys').execute();
      const dataDir = freshDataDir();
      const first = recordingLog();
      expect(await keys.ensureBootstrapCoordinatorKey({ dataDir, envKey: undefined, nowMs: NOW_MS, log: first.log })).toEqual({ source: 'generated' });
      const path = join(dataDir, ADMIN_KEY_FILE_NAME);
      const apiKey = readFileSync(path, 'utf8').trim();
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect(apiKey).toMatch(/^tl_coordinator_[A-Za-z0-9_-]{43}$/);
      expect(first.lines).toHaveLength(1);
      expect(first.lines[0]).toContain(apiKey);
      expect(first.lines[0]).toContain(path);
      expect(await keys.authenticate(apiKey)).toEqual({ keyId: BOOTSTRAP_KEY_ID, role: 'coordinator', scopes: ROLE_SCOPES.coordinator });

      const second = recordingLog();
      expect(await keys.ensureBootstrapCoordinatorKey({ dataDir, envKey: undefined, nowMs: NOW_MS + 1, log: second.log })).toEqual({ source: 'existing' });
      expect(second.lines).toEqual([]);
      expect(readFileSync(path, 'utf8').trim()).toBe(apiKey);
    });

    it('narrows a pre-existing admin-key file to 0600 and regenerates once every coordinator key is revoked', async () => {
      await db.deleteFrom('api_keys').execute();
      const dataDir = freshDataDir();
      const path = join(dataDir, ADMIN_KEY_FILE_NAME);
      writeFileSync(path, 'stale\n', { mode: 0o644 });
      await keys.ensureBootstrapCoordinatorKey({ dataDir, envKey: undefined, nowMs: NOW_MS, log: () => {} });
      const firstKey = readFileSync(path, 'utf8').trim();
      expect(statSync(path).mode & 0o777).toBe(0o600);
      await keys.revoke(BOOTSTRAP_KEY_ID, NOW_MS + 1);
      const again = recordingLog();
      expect(await keys.ensureBootstrapCoordinatorKey({ dataDir, envKey: undefined, nowMs: NOW_MS + 2, log: again.log })).toEqual({ source: 'generated' });
      const secondKey = readFileSync(path, 'utf8').trim();
      expect(secondKey).not.toBe(firstKey);
      expect(await keys.authenticate(firstKey)).toBeNull();
      expect(await keys.authenticate(secondKey)).toMatchObject({ keyId: BOOTSTRAP_KEY_ID });
    });

    it('installs TRAINLEDGER_ADMIN_KEY as the bootstrap key, replacing an earlier one, without printing it', async () => {
      await db.deleteFrom('api_keys').execute();
      const dataDir = freshDataDir();
      const envKey = newApiKey('coordinator');
      const { lines, log } = recordingLog();
      expect(await keys.ensureBootstrapCoordinatorKey({ dataDir, envKey, nowMs: NOW_MS, log })).toEqual({ source: 'env' });
      expect(await keys.authenticate(envKey)).toEqual({ keyId: BOOTSTRAP_KEY_ID, role: 'coordinator', scopes: ROLE_SCOPES.coordinator });
      expect(lines.join('\n')).not.toContain(envKey);
      expect(() => statSync(join(dataDir, ADMIN_KEY_FILE_NAME))).toThrow();
      // Same key again: still fine. A new key rotates the old one out.
      expect(await keys.ensureBootstrapCoordinatorKey({ dataDir, envKey, nowMs: NOW_MS + 1, log })).toEqual({ source: 'env' });
      const rotated = newApiKey('coordinator');
      expect(await keys.ensureBootstrapCoordinatorKey({ dataDir, envKey: rotated, nowMs: NOW_MS + 2, log })).toEqual({ source: 'env' });
      expect(await keys.authenticate(envKey)).toBeNull();
      expect(await keys.authenticate(rotated)).toMatchObject({ keyId: BOOTSTRAP_KEY_ID, role: 'coordinator' });
      // With the env key unset later, a live coordinator exists: nothing is generated.
      expect(await keys.ensureBootstrapCoordinatorKey({ dataDir, envKey: undefined, nowMs: NOW_MS + 3, log })).toEqual({ source: 'existing' });
    });

    it('refuses an env key of the wrong role or shape', async () => {
      const dataDir = freshDataDir();
      for (const envKey of [newApiKey('analyst'), newApiKey('validator'), 'tl_coordinator_short', '', 'not-a-key']) {
        const error = await keys.ensureBootstrapCoordinatorKey({ dataDir, envKey, nowMs: NOW_MS, log: () => {} }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ApiKeyError);
        expect(error).toMatchObject({ code: 'INVALID_API_KEY_FORMAT' });
      }
    });
  });
});

async function countNonces(db: Kysely<any>, keyId: string): Promise<number> {
  const row = await db.selectFrom('http_signature_nonces').select((eb) => eb.fn.countAll<string>().as('n')).where('key_id', '=', keyId).executeTakeFirstOrThrow();
  return Number(row.n);
}
