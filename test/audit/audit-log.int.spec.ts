// The audit-log port on PGlite and PostgreSQL over a generated log with long streams: every keyset walk sees each event once, in order, and the chain checks pass.

import { describe, expect, it } from 'vitest';
import { chainHash, GENESIS_HASH } from '../../adapters/event-store/hash-chain.js';
import { PostgresAuditLog } from '../../adapters/postgres/postgres-audit-log.js';
import { checkIntegrity } from '../../replay/audit/integrity.js';
import type { Discrepancy } from '../../replay/audit/catalog.js';
import { bulkLoad } from '../bench/bulk-load.js';
import { SQL_PROJECTION_ENGINES } from '../projections/sql-engines.js';
import { generateHistory } from '../projections/history.js';

// The SQL log's reader. On the split composition the audit reads through the log catalog (adapters/audit/catalog-audit-log.ts), checked against this one in test/split/split-audit.int.spec.ts.
describe.each(SQL_PROJECTION_ENGINES)('the audit log on $name', ({ open }) => {
  it('walks streams of hundreds of revisions in small pages, each event once and in revision order (numeric, not text)', async () => {
    const { store } = await open();
    try {
      const history = generateHistory(42, { runs: 2, assignments: 300 }, { idPrefix: 'w-' });
      await bulkLoad(store.db, history, Date.UTC(2026, 10, 22));
      const log = new PostgresAuditLog(store.db);
      const longest = Math.max(...[...history.reduce((m, e) => m.set(e.streamId, (m.get(e.streamId) ?? 0) + 1), new Map<string, number>()).values()]);
      expect(longest).toBeGreaterThan(100);
      const seen = new Map<string, number>();
      let total = 0;
      for (let after: { streamId: string; revision: number } | null = null; ; ) {
        const page = await log.eventsInStreamOrder(after, 37);
        for (const event of page) {
          expect(event.revision, `${event.streamId}`).toBe((seen.get(event.streamId) ?? -1) + 1);
          seen.set(event.streamId, event.revision);
        }
        total += page.length;
        if (page.length < 37) break;
        after = { streamId: page[page.length - 1]!.streamId, revision: page[page.length - 1]!.revision };
      }
      expect(total).toBe(history.length);
      const findings: Discrepancy[] = [];
      const stats = await checkIntegrity({ log, chainHash: (p, e) => chainHash(p, e), genesisHash: GENESIS_HASH, pageSize: 37, onFinding: (f) => findings.push(f), onEvents: () => {} });
      expect(findings).toEqual([]);
      expect(stats).toEqual({ streams: seen.size, events: history.length });
      // An assignment's batch carries its own stream and the invoice streams opened for it.
      const [first] = await log.assignmentIds('', 1);
      const events = await log.assignmentEvents([first!]);
      const expected = history.filter((e) => e.streamId === `assignment-${first}` || (e.streamId.startsWith('invoice-') && (e.event.data as { assignmentId?: string }).assignmentId === first));
      expect(events.length).toBe(expected.length);
    } finally {
      await store.close();
    }
  });
});
