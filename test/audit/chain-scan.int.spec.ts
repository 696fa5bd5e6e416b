// The integrity part's two ways (the stream-order walk, and the chain scan: SQL structure plus hashes on a read in checkpoint order) give the same findings on randomly tampered logs, on PGlite and PostgreSQL.

import fc from 'fast-check';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chainHash, GENESIS_HASH } from '../../adapters/event-store/hash-chain.js';
import { PostgresAuditLog } from '../../adapters/postgres/postgres-audit-log.js';
import { LOG_START, type LogPosition } from '../../domain/ports/event-store.js';
import type { Discrepancy } from '../../replay/audit/catalog.js';
import { HashPass, scanIntegrity } from '../../replay/audit/chain-scan.js';
import { checkIntegrity } from '../../replay/audit/integrity.js';
import { bulkLoad } from '../bench/bulk-load.js';
import { generateHistory } from '../projections/history.js';
import { SQL_PROJECTION_ENGINES } from '../projections/sql-engines.js';

const NUM_RUNS = Number(process.env.PROPERTY_RUNS ?? 25);
/** Small pages, so streams span pages and the fault scan pages too. */
const PAGE_SIZE = 7;

/** One way to damage the stored log, at the k-th event (in checkpoint order, modulo the log's length). */
type Tamper = Readonly<{ kind: 'edit-data' | 'delete' | 'repoint-prev' | 'rewrite-hash' | 'early-transaction' | 'late-transaction' | 'early-and-edited' | 'late-and-edited' | 'drop-head' | 'bump-head' | 'forge-head-hash' | 'orphan-head'; k: number }>;

const tamperArb: fc.Arbitrary<Tamper> = fc.record({
  kind: fc.constantFrom('edit-data', 'delete', 'repoint-prev', 'rewrite-hash', 'early-transaction', 'late-transaction', 'early-and-edited', 'late-and-edited', 'drop-head', 'bump-head', 'forge-head-hash', 'orphan-head'),
  k: fc.nat({ max: 10_000 }),
});

async function apply(db: Kysely<any>, t: Tamper, n: number): Promise<void> {
  const at = sql`(SELECT global_position FROM events ORDER BY transaction_id, global_position OFFSET ${t.k % n} LIMIT 1)`;
  const streamAt = sql`(SELECT stream_id FROM events WHERE global_position = ${at})`;
  switch (t.kind) {
    case 'edit-data':
      return void (await sql`UPDATE events SET data = jsonb_set(data, '{tampered}', '1') WHERE global_position = ${at}`.execute(db));
    case 'delete':
      return void (await sql`DELETE FROM events WHERE global_position = ${at}`.execute(db));
    case 'repoint-prev':
      return void (await sql`UPDATE events SET prev_hash = ${'ab'.repeat(32)} WHERE global_position = ${at}`.execute(db));
    case 'rewrite-hash':
      return void (await sql`UPDATE events SET hash = ${'cd'.repeat(32)} WHERE global_position = ${at}`.execute(db));
    case 'early-transaction':
      // transaction_id is outside the hash: only the order check sees it move.
      return void (await sql`UPDATE events SET transaction_id = '3'::xid8 WHERE global_position = ${at}`.execute(db));
    case 'late-transaction':
      // Past every writer: a read of settled events only would never reach it.
      return void (await sql`UPDATE events SET transaction_id = (pg_current_xact_id()::text::bigint + 1000000)::text::xid8 WHERE global_position = ${at}`.execute(db));
    case 'early-and-edited':
      // One event both out of order and edited: the edit is the finding (the walk checks the hash first).
      return void (await sql`UPDATE events SET transaction_id = '3'::xid8, data = jsonb_set(data, '{tampered}', '1') WHERE global_position = ${at}`.execute(db));
    case 'late-and-edited':
      // Edited and pushed past every writer: only a read that holds nothing committed back hashes it.
      return void (await sql`UPDATE events SET transaction_id = (pg_current_xact_id()::text::bigint + 1000000)::text::xid8, data = jsonb_set(data, '{tampered}', '1') WHERE global_position = ${at}`.execute(db));
    case 'drop-head':
      return void (await sql`DELETE FROM streams WHERE stream_id = ${streamAt}`.execute(db));
    case 'bump-head':
      return void (await sql`UPDATE streams SET revision = revision + 1 WHERE stream_id = ${streamAt}`.execute(db));
    case 'forge-head-hash':
      return void (await sql`UPDATE streams SET head_hash = ${'ef'.repeat(32)} WHERE stream_id = ${streamAt}`.execute(db));
    case 'orphan-head':
      return void (await sql`INSERT INTO streams (stream_id, revision, head_hash, updated_at) VALUES (${`orphan-${t.k}`}, 0, ${'00'.repeat(32)}, now()) ON CONFLICT DO NOTHING`.execute(db));
  }
}

/** Order-free comparison: the walk reports in stream order, the scan in its own. */
const sorted = (findings: readonly Discrepancy[]) => [...findings].map((f) => JSON.stringify(f)).sort();

describe.each(SQL_PROJECTION_ENGINES)('the chain scan against the walk on $name', ({ open }) => {
  let opened: Awaited<ReturnType<typeof open>>;
  let events = 0;
  beforeAll(async () => {
    opened = await open();
    events = await bulkLoad(opened.store.db, generateHistory(77, { runs: 2, assignments: 30 }, { idPrefix: 's-' }), Date.UTC(2026, 10, 22));
    const db = opened.store.db;
    // The pristine log, put back after every run; every trigger off while tampering (append-only, and the key from events to streams).
    await sql`CREATE TABLE pristine_events AS SELECT * FROM events`.execute(db);
    await sql`CREATE TABLE pristine_streams AS SELECT * FROM streams`.execute(db);
  }, 120_000);
  afterAll(async () => opened?.store.close());

  async function restore(db: Kysely<any>): Promise<void> {
    await sql`DELETE FROM events`.execute(db);
    await sql`DELETE FROM streams`.execute(db);
    await sql`INSERT INTO streams SELECT * FROM pristine_streams`.execute(db);
    await sql`INSERT INTO events OVERRIDING SYSTEM VALUE SELECT * FROM pristine_events`.execute(db);
  }

  async function bothWays(options: { fedFirst: number; maxMismatchStreams?: number }): Promise<{ walk: Discrepancy[]; scan: Discrepancy[]; walkStats: unknown; scanStats: unknown }> {
    const log = new PostgresAuditLog(opened.store.db);
    const hash = (p: string, e: Parameters<typeof chainHash>[1]) => chainHash(p, e);
    const walk: Discrepancy[] = [];
    const walkStats = await checkIntegrity({ log, chainHash: hash, genesisHash: GENESIS_HASH, pageSize: PAGE_SIZE, onFinding: (f) => walk.push(f), onEvents: () => {} });
    // A rebuild that read (and so fed) only the first `fedFirst` events before it stopped: the scan reads the rest.
    const pass = new HashPass(hash, options.maxMismatchStreams);
    let after: LogPosition = LOG_START;
    for (let fed = 0; fed < options.fedFirst; ) {
      const page = await log.chainScan.eventsInLogOrder(after, Math.min(PAGE_SIZE, options.fedFirst - fed), true);
      if (page.length === 0) break;
      pass.feed(page);
      fed += page.length;
      after = page[page.length - 1]!.position;
    }
    const scan: Discrepancy[] = [];
    const scanStats = await scanIntegrity({ log, scan: log.chainScan, pass, chainHash: hash, genesisHash: GENESIS_HASH, pageSize: PAGE_SIZE, fedUntilDone: Promise.resolve(), onFinding: (f) => scan.push(f), onEvents: () => {} });
    return { walk, scan, walkStats, scanStats };
  }

  it('finds a clean log clean, counting the same streams and events', async () => {
    const { walk, scan, walkStats, scanStats } = await bothWays({ fedFirst: 40 });
    expect(walk).toEqual([]);
    expect(scan).toEqual([]);
    expect(scanStats).toEqual(walkStats);
    expect(scanStats).toMatchObject({ events });
  });

  it('reports exactly what the walk reports, whatever was tampered with and however much the rebuild read first', async () => {
    const db = opened.store.db;
    let tampered = 0;
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(tamperArb, { minLength: 1, maxLength: 4 }), fc.nat({ max: events }), async (tampers, fedFirst) => {
          await sql`ALTER TABLE events DISABLE TRIGGER ALL`.execute(db);
          await sql`ALTER TABLE streams DISABLE TRIGGER ALL`.execute(db);
          try {
            for (const t of tampers) await apply(db, t, events);
          } finally {
            await sql`ALTER TABLE events ENABLE TRIGGER ALL`.execute(db);
            await sql`ALTER TABLE streams ENABLE TRIGGER ALL`.execute(db);
          }
          try {
            const { walk, scan } = await bothWays({ fedFirst });
            if (walk.length > 0) tampered += 1;
            expect(sorted(scan)).toEqual(sorted(walk));
          } finally {
            await sql`ALTER TABLE events DISABLE TRIGGER ALL`.execute(db);
            await sql`ALTER TABLE streams DISABLE TRIGGER ALL`.execute(db);
            await restore(db);
            await sql`ALTER TABLE events ENABLE TRIGGER ALL`.execute(db);
            await sql`ALTER TABLE streams ENABLE TRIGGER ALL`.execute(db);
          }
        }),
        { numRuns: NUM_RUNS },
      );
    } finally {
      await sql`ALTER TABLE events ENABLE TRIGGER ALL`.execute(db);
      await sql`ALTER TABLE streams ENABLE TRIGGER ALL`.execute(db);
    }
    // The runs must have found something, or the comparison proved nothing.
    expect(tampered).toBeGreaterThan(NUM_RUNS / 2);
  }, 300_000);

  it('past its bound on edited streams, falls back to the walk and still reports exactly the same', async () => {
    const db = opened.store.db;
    await sql`ALTER TABLE events DISABLE TRIGGER ALL`.execute(db);
    try {
      // Every event edited: every stream holds a hash mismatch, far more than a bound of 3.
      await sql`UPDATE events SET data = jsonb_set(data, '{tampered}', '1')`.execute(db);
      const { walk, scan } = await bothWays({ fedFirst: 10, maxMismatchStreams: 3 });
      expect(walk.length).toBeGreaterThan(3);
      expect(walk.every((f) => f.code === 'EVENT_HASH_MISMATCH')).toBe(true);
      expect(sorted(scan)).toEqual(sorted(walk));
    } finally {
      await sql`ALTER TABLE streams DISABLE TRIGGER ALL`.execute(db);
      await restore(db);
      await sql`ALTER TABLE events ENABLE TRIGGER ALL`.execute(db);
      await sql`ALTER TABLE streams ENABLE TRIGGER ALL`.execute(db);
    }
  }, 120_000);
});
