// Settlement and node discrepancies, each made to happen with real events on the real dev node, then found by the audit, on PGlite and PostgreSQL.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openStepReplayer } from '../../adapters/audit/audit-deps.js';
import { hex64, RUN_ID } from '../domain/fixtures.js';
import { BASE_MSAT, MONEY_ENGINES } from '../lightning/money-world.js';
import { auditWorld, foundCodes, type AuditWorld } from './audit-world.js';

let w: AuditWorld | undefined;
afterEach(async () => {
  await w?.close();
  w = undefined;
});

const HOUR_MS = 3_600_000;

describe.each(MONEY_ENGINES)('settlement audit on %s', (engine) => {
  it('finds nothing in an accepted assignment paid through its escrow and bonus, and nothing in one still under way', async () => {
    w = await auditWorld(engine, { devAnswers: ['bob'] });
    await w.register('bob');
    await w.assign('a-paid', 'bob');
    await w.assign('a-waiting', 'bob');
    const escrow = await w.escrowEngine();
    await escrow.runUntilQuiet();
    await w.submit('a-paid', 'bob');
    await w.accept('a-paid', 100_000n);
    await escrow.runUntilQuiet();
    const report = await w.audit({ atMs: w.clock.nowMs + 10 * HOUR_MS });
    expect(report.discrepancies).toEqual([]);
    expect(report.clean).toBe(true);
    expect(report.parts.settlement.assignments).toBe(2);
    expect(report.parts.node).toEqual({ checked: true, payments: 3 });
  });

  it('SETTLED_WITHOUT_ACCEPTED_VERDICT: a compensation sent for a rejected assignment, naming the payment event', async () => {
    w = await auditWorld(engine);
    await w.register('carol');
    await w.assign('a-rej', 'carol');
    await w.submit('a-rej', 'carol');
    await w.reject('a-rej');
    const hash = hex64('forged-compensation');
    await w.invoice(hash, { type: 'OpenInvoice', data: { paymentHash: hash, kind: 'compensation', assignmentId: 'a-rej', runId: RUN_ID, contributorId: 'carol', amountMsat: BASE_MSAT, bolt11: 'lnbcrt1forged', expiresAtMs: w.clock.nowMs + HOUR_MS, cltvExpiryHeight: null }, metadata: { nowMs: 0 } });
    await w.invoice(hash, { type: 'RecordPaymentSent', data: { paymentHash: hash, feeMsat: 10n, preimageHex: hex64('p') }, metadata: { nowMs: 0 } });
    const report = await w.audit({ node: false });
    // The rewards projector refuses the payment too (its own invariant): the rebuild says so, and the audit goes on.
    expect(foundCodes(report)).toMatchObject({ SETTLED_WITHOUT_ACCEPTED_VERDICT: 1, PROJECTION_REBUILD_FAILED: expect.any(Number) });
    expect(report.discrepancies.filter((d) => d.code === 'PROJECTION_REBUILD_FAILED').map((d) => d.subject)).toContain('rewards');
    const finding = report.discrepancies.find((d) => d.code === 'SETTLED_WITHOUT_ACCEPTED_VERDICT')!;
    expect(finding.subject).toBe('a-rej');
    expect(finding.events).toContainEqual(expect.objectContaining({ streamId: `invoice-${hash}`, revision: 1, eventType: 'PaymentSent' }));
    expect(Number(finding.events[0]!.globalPosition)).toBeGreaterThan(0);
  });

  it('ACCEPTED_NEVER_SETTLED: an accepted assignment with no payout, only once its deadline and the grace have passed', async () => {
    w = await auditWorld(engine);
    await w.register('dave');
    await w.assign('a-acc', 'dave');
    await w.submit('a-acc', 'dave');
    await w.accept('a-acc', 0n);
    // Within the deadline: still under way, not a finding.
    expect((await w.audit({ node: false })).clean).toBe(true);
    const late = await w.audit({ node: false, atMs: w.clock.nowMs + 2 * HOUR_MS });
    expect(foundCodes(late)).toEqual({ ACCEPTED_NEVER_SETTLED: 1 });
    expect(late.discrepancies[0]).toMatchObject({ subject: 'a-acc', events: [expect.objectContaining({ streamId: 'assignment-a-acc', eventType: 'SubmissionAccepted' })] });
  });

  it('OVERTURNED_NEVER_COMPENSATED: a rejection overturned by a matching replay and never paid', async () => {
    w = await auditWorld(engine);
    await w.register('erin');
    await w.assign('a-over', 'erin');
    await w.submit('a-over', 'erin');
    await w.reject('a-over');
    const ref = { assignmentId: 'a-over' };
    await w.assignment('a-over', { type: 'DisputeRejection', data: { ...ref, contributorId: 'erin', disputeId: 'd-1', reason: 'my step was right' }, metadata: { nowMs: 0 } });
    await w.assignment('a-over', { type: 'RequestReplay', data: { ...ref, replayJobId: 'job-1' }, metadata: { nowMs: 0 } });
    await w.assignment('a-over', { type: 'RecordReplayVerdict', data: { ...ref, replayJobId: 'job-1', outcome: 'match', recipe: {}, metric: { exactMatch: 1 }, tolerance: { mode: 'exact' }, executionProvider: 'cpu', device: 'cpu', durationMs: 5 }, metadata: { nowMs: 0 } });
    await w.assignment('a-over', { type: 'ResolveDispute', data: { ...ref, resolution: 'overturned' }, metadata: { nowMs: 0 } });
    const report = await w.audit({ node: false, atMs: w.clock.nowMs + 2 * HOUR_MS });
    expect(foundCodes(report), JSON.stringify(report.discrepancies)).toEqual({ OVERTURNED_NEVER_COMPENSATED: 1 });
    expect(report.discrepancies[0]!.events[0]).toMatchObject({ streamId: 'assignment-a-over', eventType: 'DisputeResolved' });
  });

  it('ESCROW_HELD_NODE_VOIDED: the contributor cancels the held escrow on its node and the log never hears of it', async () => {
    w = await auditWorld(engine, { devAnswers: ['fay'] });
    await w.register('fay');
    await w.assign('a-held', 'fay');
    await (await w.escrowEngine()).runUntilQuiet();
    expect(await w.streamTypes(`invoice-${w.escrowHash('a-held')}`)).toEqual(['InvoiceOpened', 'InvoiceHeld']);
    // The escrow process stops (a new one replaces it and is closed), so nothing in the system sees what the node does next.
    await (await w.escrowEngine()).close();
    expect((await w.audit()).clean).toBe(true);
    await w.network.wallet('fay').cancelHoldInvoice(w.escrowHash('a-held'));
    const report = await w.audit();
    expect(foundCodes(report)).toEqual({ ESCROW_HELD_NODE_VOIDED: 1 });
    expect(report.discrepancies[0]).toMatchObject({ subject: w.escrowHash('a-held'), events: [expect.objectContaining({ eventType: 'InvoiceHeld', revision: 1 })] });
  });

  it('NODE_DISAGREES_PAID: the log records a bonus sent that the node never paid', async () => {
    w = await auditWorld(engine);
    await w.register('hal');
    await w.assign('a-bonus', 'hal');
    await w.submit('a-bonus', 'hal');
    await w.accept('a-bonus', 100_000n);
    const hash = hex64('bonus-never-paid');
    await w.invoice(hash, { type: 'OpenInvoice', data: { paymentHash: hash, kind: 'bonus', assignmentId: 'a-bonus', runId: RUN_ID, contributorId: 'hal', amountMsat: 100_000n, bolt11: 'lnbcrt1bonus', expiresAtMs: w.clock.nowMs + HOUR_MS, cltvExpiryHeight: null }, metadata: { nowMs: 0 } });
    await w.invoice(hash, { type: 'RecordPaymentSent', data: { paymentHash: hash, feeMsat: 0n, preimageHex: hex64('q') }, metadata: { nowMs: 0 } });
    const report = await w.audit();
    expect(foundCodes(report)).toEqual({ NODE_DISAGREES_PAID: 1 });
    expect(report.discrepancies[0]).toMatchObject({ subject: hash, details: { nodeStatus: 'unknown' }, events: [expect.objectContaining({ eventType: 'PaymentSent' })] });
  });

  it('REPLAY_UNAVAILABLE: a verdict whose recipe the replay engine cannot re-run is reported, not passed', async () => {
    w = await auditWorld(engine);
    await w.register('ivy');
    await w.assign('a-rep', 'ivy');
    await w.submit('a-rep', 'ivy');
    await w.reject('a-rep');
    const ref = { assignmentId: 'a-rep' };
    await w.assignment('a-rep', { type: 'DisputeRejection', data: { ...ref, contributorId: 'ivy', disputeId: 'd-2', reason: 'check it' }, metadata: { nowMs: 0 } });
    await w.assignment('a-rep', { type: 'RequestReplay', data: { ...ref, replayJobId: 'job-2' }, metadata: { nowMs: 0 } });
    await w.assignment('a-rep', { type: 'RecordReplayVerdict', data: { ...ref, replayJobId: 'job-2', outcome: 'mismatch', recipe: {}, metric: { exactMatch: 0 }, tolerance: { mode: 'exact' }, executionProvider: 'cpu', device: 'cpu', durationMs: 5 }, metadata: { nowMs: 0 } });
    const replayer = await openStepReplayer(w.store, mkdtempSync(join(tmpdir(), 'trainledger-audit-blobs-')));
    try {
      const report = await w.audit({ node: false, replay: { mode: 'all' }, replayer });
      expect(foundCodes(report)).toEqual({ REPLAY_UNAVAILABLE: 1 });
      expect(report.parts.replay).toEqual({ mode: 'all', verdicts: 1, replayed: 1 });
      expect(report.discrepancies[0]).toMatchObject({ subject: 'a-rep', events: [expect.objectContaining({ eventType: 'ReplayVerdictRecorded' })] });
      const sampled = await w.audit({ node: false, replay: { mode: 'sample', count: 5 }, replayer });
      expect(sampled.parts.replay).toEqual({ mode: 'sample', verdicts: 1, replayed: 1 });
    } finally {
      await replayer.close();
    }
  });

  it('NODE_PAYMENT_WITHOUT_EVENT: the coordinator node pays an invoice the log never recorded', async () => {
    w = await auditWorld(engine);
    const { bolt11, paymentHash } = await w.network.wallet('gus').createInvoice({ amountMsat: 5_000n, expirySec: 600, description: 'off the books' });
    const node = w.network.coordinator();
    const state = await node.pay({ bolt11, paymentHash, amountMsat: 5_000n, maxFeeMsat: 1_000n, maxTimeoutHeight: (await node.blockHeight()) + 1_000 });
    expect(state.status).toBe('succeeded');
    const report = await w.audit();
    expect(foundCodes(report)).toEqual({ NODE_PAYMENT_WITHOUT_EVENT: 1 });
    expect(report.discrepancies[0]).toMatchObject({ subject: paymentHash, details: { status: 'succeeded', amountMsat: '5000' } });
  });
});
