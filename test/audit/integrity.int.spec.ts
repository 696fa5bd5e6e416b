// Integrity, rebuild and ledger discrepancies made by tampering with real stored rows (the append-only trigger switched off, as an attacker would), on PGlite and PostgreSQL.

import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { MONEY_ENGINES } from '../lightning/money-world.js';
import { auditWorld, foundCodes, settledAuditWorld, type AuditWorld } from './audit-world.js';

let w: AuditWorld | undefined;
afterEach(async () => {
  await w?.close();
  w = undefined;
});

/** Runs tampering SQL with the log's append-only trigger off, and puts it back. */
async function tamper(world: AuditWorld, statement: ReturnType<typeof sql>): Promise<void> {
  await sql`ALTER TABLE events DISABLE TRIGGER events_append_only`.execute(world.db);
  await statement.execute(world.db);
  await sql`ALTER TABLE events ENABLE TRIGGER events_append_only`.execute(world.db);
}

describe.each(MONEY_ENGINES)('integrity, rebuild and ledger audit on %s', (engine) => {
  it('finds a clean log clean, and counts every stream and event', async () => {
    w = await settledAuditWorld(engine);
    const report = await w.audit();
    expect(report.discrepancies).toEqual([]);
    const { n } = (await sql<{ n: string }>`SELECT count(*)::text AS n FROM events`.execute(w.db)).rows[0]!;
    expect(report.parts.integrity.events).toBe(Number(n));
    expect(Object.values(report.parts.rebuild).every((r) => r.identical)).toBe(true);
  });

  it('EVENT_HASH_MISMATCH: an edited amount, named by stream, revision, position and type', async () => {
    w = await settledAuditWorld(engine);
    await tamper(w, sql`UPDATE events SET data = jsonb_set(data, '{bonusMsat}', '"90000"') WHERE event_type = 'SubmissionAccepted'`);
    const report = await w.audit();
    expect(foundCodes(report)).toMatchObject({ EVENT_HASH_MISMATCH: 1 });
    const finding = report.discrepancies.find((d) => d.code === 'EVENT_HASH_MISMATCH')!;
    const row = (await sql<{ p: string; r: string }>`SELECT global_position::text AS p, stream_revision::text AS r FROM events WHERE event_type = 'SubmissionAccepted'`.execute(w.db)).rows[0]!;
    expect(finding.events).toEqual([{ streamId: 'assignment-a-1', revision: Number(row.r), globalPosition: row.p, eventType: 'SubmissionAccepted' }]);
  });

  it('EVENT_REVISION_GAP and STREAM_HEAD_MISMATCH: an event deleted from the middle, another from the end', async () => {
    w = await settledAuditWorld(engine);
    await tamper(w, sql`DELETE FROM events WHERE stream_id = 'assignment-a-1' AND event_type = 'GradientSubmitted'`);
    await tamper(w, sql`DELETE FROM events WHERE stream_id = 'assignment-a-2' AND stream_revision = (SELECT max(stream_revision) FROM events WHERE stream_id = 'assignment-a-2')`);
    const report = await w.audit();
    expect(foundCodes(report)).toMatchObject({ EVENT_REVISION_GAP: 1, STREAM_HEAD_MISMATCH: 1 });
    expect(report.discrepancies.find((d) => d.code === 'EVENT_REVISION_GAP')).toMatchObject({ subject: 'assignment-a-1', events: [expect.objectContaining({ eventType: 'SubmissionAccepted' })] });
    expect(report.discrepancies.find((d) => d.code === 'STREAM_HEAD_MISMATCH')).toMatchObject({ subject: 'assignment-a-2' });
  });

  it('CHAIN_BROKEN_LINK: a prev_hash re-pointed; GLOBAL_ORDER_VIOLATION: a later revision moved before its predecessor in checkpoint order', async () => {
    w = await settledAuditWorld(engine);
    await tamper(w, sql`UPDATE events SET prev_hash = ${'ab'.repeat(32)} WHERE stream_id = 'assignment-a-2' AND stream_revision = 0`);
    // transaction_id is outside the hash (it is assigned at commit): only the order check can see this.
    await tamper(w, sql`UPDATE events SET transaction_id = '3'::xid8 WHERE stream_id = 'assignment-a-1' AND stream_revision = 2`);
    const report = await w.audit();
    expect(foundCodes(report)).toMatchObject({ CHAIN_BROKEN_LINK: 1, GLOBAL_ORDER_VIOLATION: 1 });
    expect(report.discrepancies.find((d) => d.code === 'CHAIN_BROKEN_LINK')).toMatchObject({ subject: 'assignment-a-2', events: [expect.objectContaining({ revision: 0 })] });
    expect(report.discrepancies.find((d) => d.code === 'GLOBAL_ORDER_VIOLATION')).toMatchObject({ subject: 'assignment-a-1', events: [expect.objectContaining({ revision: 2 })] });
  });

  it('PROJECTION_LIVE_BROKEN: a live ledger that lost an invoice row cannot apply the next event of that invoice', async () => {
    w = await auditWorld(engine, { devAnswers: ['bob'] });
    await w.register('bob');
    await w.assign('a-1', 'bob');
    const escrow = await w.escrowEngine();
    await escrow.runUntilQuiet();
    await w.audit();
    await sql`DELETE FROM ledger.invoices`.execute(w.db);
    await w.submit('a-1', 'bob');
    await w.accept('a-1', 0n);
    await escrow.runUntilQuiet();
    await escrow.close();
    const report = await w.audit();
    expect(foundCodes(report)).toMatchObject({ PROJECTION_LIVE_BROKEN: 1 });
    expect(report.discrepancies.find((d) => d.code === 'PROJECTION_LIVE_BROKEN')).toMatchObject({ subject: 'ledger' });
  });

  it('PROJECTION_MISMATCH, LEDGER_IMBALANCE and RUN_FUNDS_UNRECONCILED: a live ledger row edited, with the differing row named', async () => {
    w = await settledAuditWorld(engine);
    await w.audit();
    await sql`UPDATE ledger.accounts SET credits_posted_msat = credits_posted_msat + 1 WHERE kind = 'run_budget'`.execute(w.db);
    const report = await w.audit();
    expect(foundCodes(report)).toEqual({ PROJECTION_MISMATCH: 1, LEDGER_IMBALANCE: 1, RUN_FUNDS_UNRECONCILED: 1 });
    const mismatch = report.discrepancies.find((d) => d.code === 'PROJECTION_MISMATCH')!;
    expect(mismatch.subject).toBe('ledger.accounts');
    expect(mismatch.details?.rows).toEqual([{ key: { account_id: 'run:run-1' }, live: 'differs' }]);
  });

  it('PROJECTION_MISMATCH names rows the live table lacks and rows it has extra', async () => {
    w = await settledAuditWorld(engine);
    await w.audit();
    const bonus = (await sql<{ payment_hash: string }>`SELECT payment_hash FROM ledger.invoices WHERE kind = 'bonus'`.execute(w.db)).rows[0]!.payment_hash;
    await sql`DELETE FROM ledger.invoices WHERE payment_hash = ${bonus}`.execute(w.db);
    const ghost = 'f'.repeat(64);
    await sql`INSERT INTO ledger.invoices (payment_hash, kind, run_id, contributor_id, assignment_id, amount_msat) VALUES (${ghost}, 'bonus', 'run-1', 'bob', 'a-1', 1)`.execute(w.db);
    const report = await w.audit();
    const invoices = report.discrepancies.find((d) => d.subject === 'ledger.invoices')!;
    const rows = invoices.details?.rows as { key: { payment_hash: string }; live: string }[];
    expect(new Set(rows.map((r) => `${r.key.payment_hash}:${r.live}`))).toEqual(new Set([`${bonus}:missing`, `${ghost}:extra`]));
  });
});
