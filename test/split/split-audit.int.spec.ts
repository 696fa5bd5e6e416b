// The audit on the split composition: clean on a clean log, the same codes as on the SQL log for a tampered log (edited, a middle event gone, a tail gone, a stream emptied) and a settlement discrepancy, and the catalog walk equal to the SQL log's own pages.

import { sql, type Kysely } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { CatalogAuditLog } from '../../adapters/audit/catalog-audit-log.js';
import { chainHash, GENESIS_HASH } from '../../adapters/event-store/hash-chain.js';
import { openEventStore, openSplitStore } from '../../adapters/event-store/open-event-store.js';
import { PostgresAuditLog } from '../../adapters/postgres/postgres-audit-log.js';
import { logCatalogProjector } from '../../projections/catalog/index.js';
import { checksumTables } from '../../projections/checksum.js';
import { ProjectionRunner } from '../../projections/runner.js';
import type { Discrepancy } from '../../replay/audit/catalog.js';
import { checkIntegrity } from '../../replay/audit/integrity.js';
import type { AuditLog, StreamCursor } from '../../replay/audit/ports.js';
import { auditWorld, foundCodes, settledAuditWorld, type AuditWorld } from '../audit/audit-world.js';
import { bulkLoad } from '../bench/bulk-load.js';
import { hex64, RUN_ID } from '../domain/fixtures.js';
import { BASE_MSAT } from '../lightning/money-world.js';
import { generateHistory } from '../projections/history.js';
import { portOnly, splitLogs, type SplitLog } from '../support/split-logs.js';

let w: AuditWorld | undefined;
afterEach(async () => {
  await w?.close();
  w = undefined;
});

const HOUR_MS = 3_600_000;

/** The log on a second PGlite behind the plain port, with its SQL kept at hand so a spec can tamper with the rows as an attacker with the disk would. */
function tamperableLog(): { splitLog: SplitLog; logDb: () => Kysely<any> } {
  let db: Kysely<any> | undefined;
  return {
    splitLog: {
      name: 'split: log on a second SQL store (port only), tamperable',
      open: async () => {
        const opened = await openEventStore({ engine: 'pglite' });
        db = opened.db;
        return portOnly(opened.store);
      },
    },
    logDb: () => db!,
  };
}

/** Runs tampering SQL on the log's own store with its append-only trigger off, and puts it back. */
async function tamper(logDb: Kysely<any>, statement: ReturnType<typeof sql>): Promise<void> {
  await sql`ALTER TABLE events DISABLE TRIGGER events_append_only`.execute(logDb);
  await statement.execute(logDb);
  await sql`ALTER TABLE events ENABLE TRIGGER events_append_only`.execute(logDb);
}

async function logLength(world: AuditWorld): Promise<number> {
  let n = 0;
  for (let after; ; ) {
    const page = await world.store.readAll({ maxCount: 1_000, ...(after ? { after } : {}) });
    n += page.length;
    if (page.length < 1_000) return n;
    after = page[page.length - 1]!.position;
  }
}

describe.each(splitLogs())('the audit on the $name', (splitLog) => {
  it('finds a settled log clean with every part run, the node included, and counts every stream and event of the log', async () => {
    w = await settledAuditWorld('split', { splitLog });
    const report = await w.audit({ atMs: w.clock.nowMs + 10 * HOUR_MS });
    expect(report.discrepancies).toEqual([]);
    expect(report.partsRun).toEqual(['integrity', 'rebuild', 'settlement', 'node', 'ledger']);
    const events = await logLength(w);
    expect(report.eventsInLog).toBe(events);
    expect(report.parts.integrity.events).toBe(events);
    expect(Object.values(report.parts.rebuild).every((r) => r.identical)).toBe(true);
    expect(report.parts.settlement.assignments).toBe(2);
    expect(report.parts.node.payments).toBeGreaterThan(0);
    expect(report.parts.ledger.runs).toBe(1);
  });

  it('ACCEPTED_NEVER_SETTLED: an accepted assignment with no payout, once its deadline and the grace have passed', async () => {
    w = await auditWorld('split', { splitLog });
    await w.register('dave');
    await w.assign('a-acc', 'dave');
    await w.submit('a-acc', 'dave');
    await w.accept('a-acc', 0n);
    expect((await w.audit({ node: false })).clean).toBe(true);
    const late = await w.audit({ node: false, atMs: w.clock.nowMs + 2 * HOUR_MS });
    expect(foundCodes(late)).toEqual({ ACCEPTED_NEVER_SETTLED: 1 });
    expect(late.discrepancies[0]).toMatchObject({ subject: 'a-acc', events: [expect.objectContaining({ streamId: 'assignment-a-acc', eventType: 'SubmissionAccepted' })] });
  });

  it('SETTLED_WITHOUT_ACCEPTED_VERDICT: a compensation sent for a rejected assignment, its invoice stream found through the catalog', async () => {
    w = await auditWorld('split', { splitLog });
    await w.register('carol');
    await w.assign('a-rej', 'carol');
    await w.submit('a-rej', 'carol');
    await w.reject('a-rej');
    const hash = hex64('forged-compensation-split');
    await w.invoice(hash, { type: 'OpenInvoice', data: { paymentHash: hash, kind: 'compensation', assignmentId: 'a-rej', runId: RUN_ID, contributorId: 'carol', amountMsat: BASE_MSAT, bolt11: 'lnbcrt1forged', expiresAtMs: w.clock.nowMs + HOUR_MS, cltvExpiryHeight: null }, metadata: { nowMs: 0 } });
    await w.invoice(hash, { type: 'RecordPaymentSent', data: { paymentHash: hash, feeMsat: 10n, preimageHex: hex64('p') }, metadata: { nowMs: 0 } });
    const report = await w.audit({ node: false });
    expect(foundCodes(report)).toMatchObject({ SETTLED_WITHOUT_ACCEPTED_VERDICT: 1 });
    const finding = report.discrepancies.find((d) => d.code === 'SETTLED_WITHOUT_ACCEPTED_VERDICT')!;
    expect(finding.subject).toBe('a-rej');
    expect(finding.events).toContainEqual(expect.objectContaining({ streamId: `invoice-${hash}`, revision: 1, eventType: 'PaymentSent' }));
  });
});

describe('the audit on a tampered split log (the second SQL store, whose rows a spec can edit)', () => {
  it('EVENT_HASH_MISMATCH: an amount edited on the log after the catalog saw it, named by stream, revision and type', async () => {
    const log = tamperableLog();
    w = await settledAuditWorld('split', { splitLog: log.splitLog });
    expect((await w.audit()).clean).toBe(true);
    await tamper(log.logDb(), sql`UPDATE events SET data = jsonb_set(data, '{bonusMsat}', '"90000"') WHERE event_type = 'SubmissionAccepted'`);
    const report = await w.audit();
    expect(foundCodes(report)).toMatchObject({ EVENT_HASH_MISMATCH: 1 });
    const row = (await sql<{ r: string }>`SELECT stream_revision::text AS r FROM events WHERE event_type = 'SubmissionAccepted'`.execute(log.logDb())).rows[0]!;
    expect(report.discrepancies.find((d) => d.code === 'EVENT_HASH_MISMATCH')).toMatchObject({ subject: 'assignment-a-1', events: [expect.objectContaining({ streamId: 'assignment-a-1', revision: Number(row.r), eventType: 'SubmissionAccepted' })] });
  });

  it('EVENT_REVISION_GAP and STREAM_HEAD_MISMATCH: an event deleted from the middle, another from the end (the catalog still holds that head)', async () => {
    const log = tamperableLog();
    w = await settledAuditWorld('split', { splitLog: log.splitLog });
    expect((await w.audit()).clean).toBe(true);
    await tamper(log.logDb(), sql`DELETE FROM events WHERE stream_id = 'assignment-a-1' AND event_type = 'GradientSubmitted'`);
    await tamper(log.logDb(), sql`DELETE FROM events WHERE stream_id = 'assignment-a-2' AND stream_revision = (SELECT max(stream_revision) FROM events WHERE stream_id = 'assignment-a-2')`);
    const report = await w.audit();
    expect(foundCodes(report)).toMatchObject({ EVENT_REVISION_GAP: 1, STREAM_HEAD_MISMATCH: 1 });
    expect(report.discrepancies.find((d) => d.code === 'EVENT_REVISION_GAP')).toMatchObject({ subject: 'assignment-a-1', events: [expect.objectContaining({ eventType: 'SubmissionAccepted' })] });
    expect(report.discrepancies.find((d) => d.code === 'STREAM_HEAD_MISMATCH')).toMatchObject({ subject: 'assignment-a-2', details: { headRevision: expect.any(Number) } });
  });

  it('gets past an event no projector can decode: the catalog catches up on raw events, and the audit names the edit', async () => {
    const log = tamperableLog();
    w = await settledAuditWorld('split', { splitLog: log.splitLog });
    await w.assign('a-3', 'bob');
    // Edited before the catalog ever read it: the catch-up must not stop on it.
    await tamper(log.logDb(), sql`UPDATE events SET event_type = 'NoSuchEventType' WHERE stream_id = 'assignment-a-3'`);
    const report = await w.audit({ node: false });
    expect(foundCodes(report)).toMatchObject({ EVENT_HASH_MISMATCH: 1 });
    expect(report.discrepancies.find((d) => d.code === 'EVENT_HASH_MISMATCH')).toMatchObject({ subject: 'assignment-a-3', events: [expect.objectContaining({ eventType: 'NoSuchEventType' })] });
    expect(report.eventsInLog).toBe(await logLength(w));
  });

  it('STREAM_HEAD_MISMATCH: a stream whose every event was deleted from the log, named from the catalog', async () => {
    const log = tamperableLog();
    w = await settledAuditWorld('split', { splitLog: log.splitLog });
    expect((await w.audit()).clean).toBe(true);
    await tamper(log.logDb(), sql`DELETE FROM events WHERE stream_id = 'contributor-bob'`);
    const report = await w.audit({ node: false });
    expect(report.discrepancies.filter((d) => d.code === 'STREAM_HEAD_MISMATCH')).toEqual([expect.objectContaining({ subject: 'contributor-bob', explanation: expect.stringContaining('but no events') })]);
    // Asked without a walk first, the catalog log probes each stream for its newest event and says the same.
    const fresh = new CatalogAuditLog(w.store, w.store, { nowMs: Date.now });
    expect((await fresh.headsWithoutEvents(10)).map((h) => h.streamId)).toEqual(['contributor-bob']);
  });
});

/** Every (stream, revision) of a walk in pages of `pageSize`. */
async function walk(log: AuditLog, pageSize: number): Promise<string[]> {
  const seen: string[] = [];
  for (let after: StreamCursor | null = null; ; ) {
    const page = await log.eventsInStreamOrder(after, pageSize);
    seen.push(...page.map((e) => `${e.streamId}@${e.revision}:${e.hash}`));
    if (page.length < pageSize) return seen;
    after = { streamId: page[page.length - 1]!.streamId, revision: page[page.length - 1]!.revision };
  }
}

describe('the catalog audit log against the SQL log it lists (the second store is a SQL log: its own audit pages are the reference)', () => {
  it('walks the same events in the same order at every page size, and answers heads, assignments, invoices and counts alike', async () => {
    const log = tamperableLog();
    w = await settledAuditWorld('split', { splitLog: log.splitLog });
    const catalog = new CatalogAuditLog(w.store, w.store, { nowMs: () => w!.clock.nowMs });
    const reference = new PostgresAuditLog(log.logDb());
    const expected = await walk(reference, 2_000);
    expect(expected.length).toBeGreaterThan(10);
    for (const pageSize of [1, 3, 7, 2_000]) expect(await walk(catalog, pageSize), `page size ${pageSize}`).toEqual(expected);
    const streams = [...new Set(expected.map((k) => k.split('@')[0]!))];
    const byId = <T extends { streamId: string }>(rows: T[]) => [...rows].sort((a, b) => (a.streamId < b.streamId ? -1 : 1));
    expect(byId(await catalog.streamHeads(streams))).toEqual(byId(await reference.streamHeads(streams)));
    expect(await catalog.headsWithoutEvents(100)).toEqual([]);
    expect(await catalog.countEvents()).toBe(await reference.countEvents());
    expect(await catalog.assignmentIds('', 1)).toEqual(await reference.assignmentIds('', 1));
    expect(await catalog.assignmentIds('a-1', 10)).toEqual(['a-2']);
    const key = (e: { streamId: string; revision: number }) => `${e.streamId}@${e.revision}`;
    expect((await catalog.assignmentEvents(['a-1', 'a-2'])).map(key).sort()).toEqual((await reference.assignmentEvents(['a-1', 'a-2'])).map(key).sort());
    const hashes = streams.filter((s) => s.startsWith('invoice-')).map((s) => s.slice('invoice-'.length));
    expect(hashes.length).toBeGreaterThan(0);
    expect(await catalog.knownPaymentHashes([...hashes, 'f'.repeat(64)])).toEqual(new Set(hashes));
    expect(await catalog.trialBalance()).toEqual(await new PostgresAuditLog(w.db).trialBalance());
  });

  it('walks a bulk-loaded log with streams of hundreds of revisions in small pages, each event once, as the SQL log pages it, and its chains check clean', async () => {
    const logOpened = await openEventStore({ engine: 'pglite' });
    const history = generateHistory(42, { runs: 2, assignments: 300 }, { idPrefix: 'w-' });
    await bulkLoad(logOpened.db, history, Date.UTC(2026, 10, 22));
    const { store } = await openSplitStore(portOnly(logOpened.store), { engine: 'pglite' });
    try {
      const catalog = new CatalogAuditLog(store, store, { nowMs: Date.now });
      const expected = await walk(new PostgresAuditLog(logOpened.db), 2_000);
      expect(expected).toHaveLength(history.length);
      for (const pageSize of [37, 2_000]) expect(await walk(catalog, pageSize), `page size ${pageSize}`).toEqual(expected);
      const findings: Discrepancy[] = [];
      const stats = await checkIntegrity({ log: catalog, chainHash: (p, e) => chainHash(p, e), genesisHash: GENESIS_HASH, pageSize: 37, onFinding: (f) => findings.push(f), onEvents: () => {} });
      expect(findings).toEqual([]);
      expect(stats.events).toBe(history.length);
      const [first] = await catalog.assignmentIds('', 1);
      const expectedBatch = history.filter((e) => e.streamId === `assignment-${first}` || (e.streamId.startsWith('invoice-') && (e.event.data as { assignmentId?: string }).assignmentId === first));
      expect((await catalog.assignmentEvents([first!])).length).toBe(expectedBatch.length);
    } finally {
      await store.close();
    }
  });

  it('the runner\'s catalog projector (decoded events, small batches) and the audit\'s raw catch-up write the same rows, and take turns on one checkpoint', async () => {
    const log = tamperableLog();
    w = await settledAuditWorld('split', { splitLog: log.splitLog });
    const runner = new ProjectionRunner({ store: w.store, projectors: [logCatalogProjector], batchSize: 7 });
    await runner.prepare();
    await runner.catchUp();
    const byRunner = await checksumTables(w.db, logCatalogProjector);
    expect(byRunner[0]!.rows).toBeGreaterThan(5);
    // A second split database over the same log, caught up by the audit alone.
    const other = await openSplitStore(portOnly(w.store), { engine: 'pglite' });
    try {
      await new CatalogAuditLog(other.store, other.store, { nowMs: Date.now }).ready();
      expect(await checksumTables(other.db, logCatalogProjector)).toEqual(byRunner);
    } finally {
      await other.db.destroy();
    }
    // More events: the audit catches up from the runner's checkpoint, then the runner finds nothing left.
    await w.assign('a-3', 'bob');
    await new CatalogAuditLog(w.store, w.store, { nowMs: Date.now }).ready();
    expect(await runner.catchUp()).toEqual({ log_catalog: 0 });
    expect((await checksumTables(w.db, logCatalogProjector))[0]!.rows).toBe(byRunner[0]!.rows + 1);
  });

  it('reads the log as of its catch-up: events appended after it are left to the next audit, never reported as a head mismatch', async () => {
    const log = tamperableLog();
    w = await settledAuditWorld('split', { splitLog: log.splitLog });
    const catalog = new CatalogAuditLog(w.store, w.store, { nowMs: () => w!.clock.nowMs });
    const before = await catalog.countEvents();
    await w.assign('a-3', 'bob');
    const walked = await walk(catalog, 2_000);
    expect(walked).toHaveLength(before);
    expect(walked.some((k) => k.startsWith('assignment-a-3@'))).toBe(false);
    // The next audit sees it, and finds the log clean.
    const report = await w.audit({ node: false });
    expect(report.discrepancies).toEqual([]);
    expect(report.parts.settlement.assignments).toBe(3);
  });
});
