// Regression (review of the split audit): an append that lands while the integrity walk runs beside a live server is the next audit's, not a STREAM_HEAD_MISMATCH, on the SQL log and on the split's catalog walk.

import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { CatalogAuditLog } from '../../adapters/audit/catalog-audit-log.js';
import { chainHash, GENESIS_HASH } from '../../adapters/event-store/hash-chain.js';
import { openEventStore, openSplitStore } from '../../adapters/event-store/open-event-store.js';
import { PostgresAuditLog } from '../../adapters/postgres/postgres-audit-log.js';
import type { EventStore } from '../../domain/ports/event-store.js';
import { catchUpCatalogIn } from '../../projections/catalog/index.js';
import type { Discrepancy } from '../../replay/audit/catalog.js';
import { checkIntegrity } from '../../replay/audit/integrity.js';
import type { AuditLog } from '../../replay/audit/ports.js';
import { event } from '../contract/event-store.contract.js';
import { portOnly } from '../support/split-logs.js';

async function seed(store: EventStore): Promise<void> {
  await store.append('s-a', [event(), event(), event()], { expectedRevision: 'no_stream' });
  await store.append('s-b', [event(), event()], { expectedRevision: 'no_stream' });
}

/**
 * The real log reader, with `append` run once, as a live server's append lands: 'after-first-page' between
 * the first page and its heads lookup, 'before-second-page' after that lookup and before the next page.
 */
function appendingDuringWalk(log: AuditLog, when: 'after-first-page' | 'before-second-page', append: () => Promise<void>): AuditLog {
  let pages = 0;
  return new Proxy(log, {
    get(target, name, receiver) {
      const value = Reflect.get(target, name, receiver) as unknown;
      if (name !== 'eventsInStreamOrder' || typeof value !== 'function') return typeof value === 'function' ? value.bind(target) : value;
      return async (...args: Parameters<AuditLog['eventsInStreamOrder']>) => {
        pages += 1;
        if (when === 'before-second-page' && pages === 2) await append();
        const page = await target.eventsInStreamOrder(...args);
        if (when === 'after-first-page' && pages === 1) await append();
        return page;
      };
    },
  });
}

async function integrityFindings(log: AuditLog, pageSize: number): Promise<Discrepancy[]> {
  const findings: Discrepancy[] = [];
  const stats = await checkIntegrity({ log, chainHash, genesisHash: GENESIS_HASH, pageSize, onFinding: (f) => findings.push(f), onEvents: () => {} });
  expect(stats.streams).toBe(2);
  return findings;
}

describe('an append while the integrity walk runs', () => {
  it('on the SQL log: the head that moved past the page is a later append, not a cut-off tail', async () => {
    const { store, db } = await openEventStore({ engine: 'pglite' });
    try {
      await seed(store);
      const log = appendingDuringWalk(new PostgresAuditLog(db), 'after-first-page', () => store.append('s-a', [event()], { expectedRevision: 2 }).then(() => {}));
      expect(await integrityFindings(log, 2_000)).toEqual([]);
      // A tail really cut off is still found: the head says 3, the events end at 2 and no event 3 exists.
      await store.append('s-b', [event()], { expectedRevision: 1 });
      await sql`ALTER TABLE events DISABLE TRIGGER events_append_only`.execute(db);
      await sql`DELETE FROM events WHERE stream_id = 's-b' AND stream_revision = 2`.execute(db);
      expect((await integrityFindings(new PostgresAuditLog(db), 2_000)).map((f) => `${f.code} ${f.subject}`)).toEqual(['STREAM_HEAD_MISMATCH s-b']);
    } finally {
      await store.close();
    }
  });

  it('on the split: a stream that spans pages is read and compared against the head its walk was planned with', async () => {
    const logStore = await openEventStore({ engine: 'pglite' });
    const { store } = await openSplitStore(portOnly(logStore.store), { engine: 'pglite' });
    try {
      await seed(store);
      // The catalog as the running projection moves it (raw events: these test events are no domain type).
      const catalogToHead = async () => {
        const until = await store.headPosition();
        while ((await store.db.transaction().execute((trx) => catchUpCatalogIn(store, trx, { batchSize: 1_000, until, nowMs: Date.now }))) > 0);
      };
      // Pages of 2 end the first page inside s-a, whose head (2) the walk has taken; the running catalog then
      // moves it to 3 before the next page, which must still read s-a only up to 2.
      const log = appendingDuringWalk(new CatalogAuditLog(store, store, { nowMs: Date.now }), 'before-second-page', async () => {
        await store.append('s-a', [event()], { expectedRevision: 2 });
        await catalogToHead();
      });
      expect(await integrityFindings(log, 2)).toEqual([]);
      // The next audit sees the appended event, and its head.
      const next = await integrityFindings(new CatalogAuditLog(store, store, { nowMs: Date.now }), 2);
      expect(next).toEqual([]);
    } finally {
      await store.close();
    }
  });
});
