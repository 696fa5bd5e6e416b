// The metrics projector: folds a batch into hourly deltas, then adds them to the stored rows in one upsert per chunk.

import type { Insertable, Kysely } from 'kysely';
import type { ProjectedEvent, Projector } from '../projector.js';
import { FACT_NAMES, type FactName, MetricsBook, type RunFunding } from './metrics-book.js';
import { METRICS_MIGRATIONS } from './migrations/index.js';
import type { MetricsHourlyTable, MetricsTables } from './schema.js';
import { insertRows, keyIn } from '../batch-sql.js';

/** Rows per statement (one JSON parameter each, see batch-sql.ts): bounds the statement's size. */
const WRITE_CHUNK_ROWS = 2_000;
const READ_CHUNK_KEYS = 5_000;

/** camelCase fact name -> its column, e.g. rewardsPaidMsat -> rewards_paid_msat. */
export const FACT_COLUMNS: Readonly<Record<FactName, keyof MetricsHourlyTable>> = Object.fromEntries(
  FACT_NAMES.map((name) => [name, name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)]),
) as Record<FactName, keyof MetricsHourlyTable>;

export const metricsProjector: Projector = {
  name: 'metrics',
  migrations: METRICS_MIGRATIONS,
  tables: [
    { name: 'hourly', orderBy: ['run_id', 'hour_start_ms'] },
    { name: 'settlements', orderBy: ['assignment_id'] },
    { name: 'run_funding', orderBy: ['run_id'] },
  ],
  async apply(db: Kysely<any>, events: readonly ProjectedEvent[]): Promise<void> {
    const metrics = db as Kysely<MetricsTables>;
    const book = new MetricsBook(await loadFunding(metrics, events));
    for (const { event } of events) book.apply(event);
    await writeHourly(metrics, book);
    await writeSettlements(metrics, book);
    await writeFunding(metrics, book);
  },
};

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** The attribution needs each paying run's funding so far; only funding and payment events name such runs. */
async function loadFunding(db: Kysely<MetricsTables>, events: readonly ProjectedEvent[]): Promise<Map<string, RunFunding>> {
  const runIds = new Set<string>();
  for (const { event } of events) {
    if (event.type === 'RunFunded' || event.type === 'InvoiceSettled' || event.type === 'PaymentSent') runIds.add(event.data.runId);
  }
  const funding = new Map<string, RunFunding>();
  for (const ids of chunks([...runIds], READ_CHUNK_KEYS)) {
    for (const row of await db.selectFrom('run_funding').selectAll().where(keyIn('run_id', ids)).execute()) {
      funding.set(row.run_id, { runId: row.run_id, customerMsat: BigInt(row.customer_msat), subsidyMsat: BigInt(row.subsidy_msat) });
    }
  }
  return funding;
}

/** Facts only ever add up, so a stored row takes the batch's delta by addition: no read needed. */
async function writeHourly(db: Kysely<MetricsTables>, book: MetricsBook): Promise<void> {
  const rows = [...book.hourly.values()]
    .sort((a, b) => (a.runId < b.runId ? -1 : a.runId > b.runId ? 1 : a.hourStartMs - b.hourStartMs))
    .map((row): Insertable<MetricsHourlyTable> => {
      const out: Record<string, string> = { run_id: row.runId, hour_start_ms: String(row.hourStartMs) };
      for (const name of FACT_NAMES) out[FACT_COLUMNS[name]] = row.facts[name].toString();
      return out as unknown as Insertable<MetricsHourlyTable>;
    });
  for (const chunk of chunks(rows, WRITE_CHUNK_ROWS)) {
    await insertRows(db, 'hourly', chunk as Record<string, unknown>[])
      .onConflict((oc) =>
        oc.columns(['run_id', 'hour_start_ms']).doUpdateSet((eb) => {
          const set: Record<string, unknown> = {};
          for (const name of FACT_NAMES) {
            const column = FACT_COLUMNS[name];
            set[column] = eb(eb.ref(`hourly.${column}`), '+', eb.ref(`excluded.${column}`));
          }
          return set as never;
        }),
      )
      .execute();
  }
}

/** The first assignment and first settlement time win, whichever batch saw them. */
async function writeSettlements(db: Kysely<MetricsTables>, book: MetricsBook): Promise<void> {
  const rows = [...book.settlements.values()]
    .sort((a, b) => (a.assignmentId < b.assignmentId ? -1 : 1))
    .map((s) => ({
      assignment_id: s.assignmentId,
      run_id: s.runId,
      assigned_at_ms: s.assignedAtMs === null ? null : String(s.assignedAtMs),
      settled_at_ms: s.settledAtMs === null ? null : String(s.settledAtMs),
    }));
  for (const chunk of chunks(rows, WRITE_CHUNK_ROWS)) {
    await insertRows(db, 'settlements', chunk)
      .onConflict((oc) =>
        oc.column('assignment_id').doUpdateSet((eb) => ({
          assigned_at_ms: eb.fn.coalesce('settlements.assigned_at_ms', 'excluded.assigned_at_ms'),
          settled_at_ms: eb.fn.coalesce('settlements.settled_at_ms', 'excluded.settled_at_ms'),
        })),
      )
      .execute();
  }
}

async function writeFunding(db: Kysely<MetricsTables>, book: MetricsBook): Promise<void> {
  const rows = [...book.touchedFunding]
    .sort()
    .map((runId) => book.funding.get(runId)!)
    .map((f) => ({ run_id: f.runId, customer_msat: f.customerMsat.toString(), subsidy_msat: f.subsidyMsat.toString() }));
  for (const chunk of chunks(rows, WRITE_CHUNK_ROWS)) {
    await insertRows(db, 'run_funding', chunk)
      .onConflict((oc) => oc.column('run_id').doUpdateSet((eb) => ({ customer_msat: eb.ref('excluded.customer_msat'), subsidy_msat: eb.ref('excluded.subsidy_msat') })))
      .execute();
  }
}
