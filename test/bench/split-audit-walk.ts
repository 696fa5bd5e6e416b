// Measures the audit's log walks (integrity, settlement) on the split composition against the SQL log, over the same bulk-loaded history on PGlite.
// Usage: npx tsx test/bench/split-audit-walk.ts [assignments=5000] [latencyMs=0] (latencyMs: a round trip added to each read of the split's log, as a cluster's network would). The log of the split is a second PGlite behind the plain port, so the
// difference is the catalog (its catch-up, then one stream read per stream) against the SQL log's keyset pages; a cluster adds a round trip per read.

import { auditOptions } from '../../adapters/audit/audit-deps.js';
import { CatalogAuditLog } from '../../adapters/audit/catalog-audit-log.js';
import { openEventStore, openSplitStore } from '../../adapters/event-store/open-event-store.js';
import { runAudit } from '../../replay/audit/run-audit.js';
import { generateHistory } from '../projections/history.js';
import { portOnly } from '../support/split-logs.js';
import { bulkLoad } from './bulk-load.js';

const MAX_ASSIGNMENTS = 200_000;
const assignments = Number(process.argv[2] ?? 5_000);
const latencyMs = Number(process.argv[3] ?? 0);
if (!Number.isFinite(latencyMs) || latencyMs < 0 || latencyMs > 1_000) throw new RangeError('latencyMs must be 0..1000');
if (!Number.isSafeInteger(assignments) || assignments < 1 || assignments > MAX_ASSIGNMENTS) throw new RangeError(`assignments must be 1..${MAX_ASSIGNMENTS}`);

const parts = ['integrity', 'settlement'] as const;
const log = await openEventStore({ engine: 'pglite' });
const history = generateHistory(7, { runs: 4, assignments });
await bulkLoad(log.db, history, Date.UTC(2026, 10, 22));
const timed = async <T>(work: () => Promise<T>): Promise<[T, number]> => {
  const start = performance.now();
  const out = await work();
  return [out, Math.round(performance.now() - start)];
};

const [sqlReport, sqlMs] = await timed(() => runAudit(auditOptions(log.store, null, undefined, Date.now, { parts })));
const plain = portOnly(log.store);
const delay = () => new Promise((resolve) => setTimeout(resolve, latencyMs));
const remote = latencyMs === 0 ? plain : { ...plain, readStream: async (...args: Parameters<typeof plain.readStream>) => (await delay(), plain.readStream(...args)), readAll: async (...args: Parameters<typeof plain.readAll>) => (await delay(), plain.readAll(...args)) };
const { store } = await openSplitStore(remote, { engine: 'pglite' });
const catalog = new CatalogAuditLog(store, store, { nowMs: Date.now });
const [, catchUpMs] = await timed(() => catalog.ready());
// The audit's own log: its catalog is at the head now, so this is the walk alone.
const [splitReport, splitMs] = await timed(() => runAudit({ ...auditOptions(store, null, undefined, Date.now, { parts }), log: catalog }));
await store.close();

const same = JSON.stringify(sqlReport.counts) === JSON.stringify(splitReport.counts) && sqlReport.parts.integrity.events === splitReport.parts.integrity.events;
console.log(JSON.stringify({
  assignments, latencyMs, events: history.length, streams: sqlReport.parts.integrity.streams,
  sqlLogMs: sqlMs, splitCatalogCatchUpMs: catchUpMs, splitWalkMs: splitMs, splitToSqlRatio: Number(((catchUpMs + splitMs) / sqlMs).toFixed(2)),
  sqlTimingsMs: sqlReport.timingsMs, splitTimingsMs: splitReport.timingsMs, sameFindings: same, clean: [sqlReport.clean, splitReport.clean],
}));
