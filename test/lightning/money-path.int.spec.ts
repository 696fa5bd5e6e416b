// Regression tests for the money path (issue 11), on PGlite and PostgreSQL: one bad input never stops escrow, no run is overdrawn, every payout reaches a final state.

import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import type { DevContributorWallet } from '../../adapters/lightning/dev/dev-wallet.js';
import { ABANDON_GRACE_MS } from '../../adapters/lightning/dispatcher.js';
import { DEFAULT_DISPATCHER_LIMITS } from '../../adapters/lightning/dispatcher-limits.js';
import { handleCommand } from '../../adapters/commands/command-handler.js';
import { INVOICE_RECHECK_MS, ORPHAN_RESERVATION_MS } from '../../adapters/lightning/assignment-settler.js';
import { runDecider, runStreamId, type RunCommand } from '../../domain/run/index.js';
import { RUN_ID } from '../domain/fixtures.js';
import { PostgresAdvisoryLease, InProcessLease } from '../../adapters/lightning/escrow-lease.js';
import { DomainError } from '../../domain/errors.js';
import { LightningError, type CoordinatorNode } from '../../domain/ports/lightning.js';
import { ledgerProjector } from '../../projections/ledger/ledger-projector.js';
import { ProjectionRunner } from '../../projections/runner.js';
import { BASE_MSAT, FEE_CEILING_MSAT, MONEY_ENGINES, moneyWorld, type MoneyEngine, type MoneyWorld } from './money-world.js';

/** The money path on the SQL engines and on the split composition (the log behind the plain port on a second SQL store). */
const WITH_SPLIT: readonly MoneyEngine[] = [...MONEY_ENGINES, 'split'];

let w: MoneyWorld | undefined;
afterEach(async () => {
  await w?.close();
  w = undefined;
});

/** Polls a condition a bounded number of times, yielding to the event loop between looks; never a fixed sleep. */
async function eventually(condition: () => boolean, what: string, maxLooks = 2_000): Promise<void> {
  for (let look = 0; look < maxLooks; look += 1) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`gave up waiting for ${what}`);
}

describe.each(WITH_SPLIT)('the money path on %s', (engine) => {
  it('defect 1: refuses a stale hold invoice for its owner alone, keeps paying everyone else, and opens the escrow on a fresh invoice', async () => {
    w = await moneyWorld(engine, { devAnswers: ['bob'] });
    await w.register('alice');
    await w.register('bob');
    await w.assign('a-alice', 'alice');
    await w.postHoldInvoice('a-alice', 'alice', 120);
    // Valid when posted (two minutes left), stale by the pass: less than the minute of slack the HTLC needs.
    w.clock.nowMs += 70_000;
    await w.assign('a-bob', 'bob');
    await (await w.escrowEngine()).runUntilQuiet();
    expect((await w.assignmentState('a-alice')).invoiceRefusals.escrow).toMatchObject({ count: 1, code: 'INVOICE_EXPIRES_TOO_SOON' });
    expect(await w.streamTypes(`invoice-${w.escrowHash('a-alice')}`)).toEqual([]);
    expect(await w.streamTypes(`invoice-${w.escrowHash('a-bob')}`)).toEqual(['InvoiceOpened', 'InvoiceHeld']);
    // A restart does not die on it either, and records nothing twice.
    await (await w.escrowEngine()).runUntilQuiet();
    expect((await w.events('ContributorInvoiceRefused')).length).toBe(1);
    // The stale invoice was set aside, so the contributor can post a fresh one (their node cancels and deletes the old one first).
    const wallet = w.network.wallet('alice') as DevContributorWallet;
    await wallet.cancelHoldInvoice(w.escrowHash('a-alice'));
    await wallet.deleteCanceledInvoice(w.escrowHash('a-alice'));
    await w.postHoldInvoice('a-alice', 'alice');
    await (await w.escrowEngine()).runUntilQuiet();
    expect(await w.streamTypes(`invoice-${w.escrowHash('a-alice')}`)).toEqual(['InvoiceOpened', 'InvoiceHeld']);
  });

  it('defects 2 and 8: pays within the worst case it reserved, refuses a bonus above the bound, and logs every routing fee', async () => {
    // Funded for exactly one assignment's worst case: base, bonus bound and two fee ceilings.
    w = await moneyWorld(engine, { devAnswers: ['bob'], fundingMsat: BASE_MSAT + 500_000n + 2n * FEE_CEILING_MSAT });
    await w.register('bob');
    await w.assign('a-1', 'bob');
    const run = await w.runState();
    expect(run.reservedMsat).toBe(run.funded.customerMsat);
    await expect(w.assign('a-2', 'bob')).rejects.toMatchObject({ code: 'INSUFFICIENT_BUDGET' });
    const engineA = await w.escrowEngine();
    await engineA.runUntilQuiet();
    await w.submit('a-1', 'bob');
    await expect(w.accept('a-1', 500_001n)).rejects.toBeInstanceOf(DomainError);
    await w.accept('a-1', 500_000n);
    await engineA.runUntilQuiet();
    const settled = (await w.events('InvoiceSettled'))[0]!;
    const sent = (await w.events('PaymentSent'))[0]!;
    expect(BigInt(settled.data.feeMsat as string)).toBeGreaterThan(0n);
    const released = (await w.events('BudgetReleased'))[0]!;
    const spentMsat = BASE_MSAT + 500_000n + BigInt(settled.data.feeMsat as string) + BigInt(sent.data.feeMsat as string);
    expect(released.data).toMatchObject({ spentMsat: String(spentMsat) });
    const after = await w.runState();
    expect(after.reservedMsat).toBe(0n);
    expect(after.spentMsat).toBe(spentMsat);
    // The ledger books the escrow's fee beside the bonus's, and balances without overdrawing the run.
    const ledger = new ProjectionRunner({ store: w.store, projectors: [ledgerProjector] });
    await ledger.prepare();
    await ledger.catchUp();
    const fees = await sql<{ transfer_id: string }>`SELECT transfer_id FROM ledger.transfers WHERE kind = 'fee'`.execute(w.db);
    expect(fees.rows.map((r) => r.transfer_id).sort()).toEqual([`fee:${settled.data.paymentHash}`, `fee:${sent.data.paymentHash}`].sort());
  });

  it('defect 3: expires overdue work and releases every reservation when its assignment is final, across restarts', async () => {
    w = await moneyWorld(engine, { devAnswers: ['bob'] });
    await w.register('alice');
    await w.register('bob');
    await w.assign('a-absent', 'alice');
    await w.assign('a-paid', 'bob');
    await w.assign('a-rejected', 'bob');
    await (await w.escrowEngine()).runUntilQuiet();
    await w.submit('a-paid', 'bob');
    await w.accept('a-paid', 0n);
    await w.submit('a-rejected', 'bob');
    await w.reject('a-rejected');
    await (await w.escrowEngine()).runUntilQuiet();
    expect((await w.events('BudgetReleased')).map((e) => e.data.assignmentId)).toEqual(['a-paid']);
    // Past the deadline and the dispute window: a restarted engine finds both due in its durable schedule.
    w.clock.nowMs += 2 * 86_400_000;
    await (await w.escrowEngine()).runUntilQuiet();
    expect((await w.assignmentState('a-absent')).status).toBe('expired');
    const released = new Map((await w.events('BudgetReleased')).map((e) => [e.data.assignmentId, e.data.spentMsat]));
    expect(released.get('a-absent')).toBe('0');
    expect(released.get('a-rejected')).toBe('0');
    const run = await w.runState();
    expect(run.reservedMsat).toBe(0n);
    expect(run.openReservations.size).toBe(0);
  });

  it('defect 4: pays accepted work whose escrow never locked by compensation, once the contributor posts an invoice', async () => {
    w = await moneyWorld(engine);
    await w.register('alice');
    await w.assign('a-1', 'alice');
    await w.submit('a-1', 'alice');
    await w.accept('a-1', 0n);
    const engineA = await w.escrowEngine();
    await engineA.runUntilQuiet();
    expect(await w.events('InvoiceOpened')).toEqual([]);
    await w.postPayoutInvoice('a-1', 'alice', 'compensation', BASE_MSAT, 0);
    await engineA.runUntilQuiet();
    expect((await w.events('PaymentSent')).map((e) => e.data.kind)).toEqual(['compensation']);
    expect((await w.runState()).reservedMsat).toBe(0n);
  });

  it('defect 5: gives up an invoice that expired or ran out of attempts, and pays the payout through a fresh one', async () => {
    w = await moneyWorld(engine, { devAnswers: ['bob'] });
    await w.register('bob');
    await w.register('alice');
    await w.assign('a-bob', 'bob');
    await w.assign('a-alice', 'alice');
    await w.postHoldInvoice('a-alice', 'alice');
    const engineA = await w.escrowEngine();
    await engineA.runUntilQuiet();
    // Bob's bonus: every attempt fails until the dispatcher's limit, then the invoice is abandoned and a new one asked for.
    w.network.faults.failNextPayments(DEFAULT_DISPATCHER_LIMITS.maxPayoutAttempts, 'NO_ROUTE');
    await w.submit('a-bob', 'bob');
    await w.accept('a-bob', 100_000n);
    await engineA.runUntilQuiet();
    const abandoned = await w.events('PaymentAbandoned');
    expect(abandoned.map((e) => e.data.code)).toEqual(['PAYMENT_ATTEMPTS_EXHAUSTED']);
    const bonusSent = (await w.events('PaymentSent')).filter((e) => e.data.assignmentId === 'a-bob');
    expect(bonusSent).toHaveLength(1);
    expect(bonusSent[0]!.data.paymentHash).not.toBe(abandoned[0]!.data.paymentHash);
    // Alice's bonus invoice cannot be paid before it expires: abandoned, then her fresh one for attempt 1 is paid.
    await w.submit('a-alice', 'alice');
    await w.accept('a-alice', 100_000n);
    await engineA.runUntilQuiet();
    await w.postPayoutInvoice('a-alice', 'alice', 'bonus', 100_000n, 0, 120);
    // The invoice is logged, then the pass that would pay it comes only after it expired (a long outage, say).
    await engineA.reactor.settler.settle('a-alice');
    // Past expiry the node's silence counts only after a grace period: a send that timed out may still be under way.
    w.clock.nowMs += 120_000;
    await engineA.runUntilQuiet();
    expect((await w.events('PaymentAbandoned')).filter((e) => e.data.assignmentId === 'a-alice')).toEqual([]);
    w.clock.nowMs += ABANDON_GRACE_MS;
    await engineA.runUntilQuiet();
    expect((await w.events('PaymentAbandoned')).filter((e) => e.data.assignmentId === 'a-alice').map((e) => e.data.code)).toEqual(['INVOICE_EXPIRED']);
    await w.postPayoutInvoice('a-alice', 'alice', 'bonus', 100_000n, 1);
    await engineA.runUntilQuiet();
    expect((await w.events('PaymentSent')).filter((e) => e.data.assignmentId === 'a-alice')).toHaveLength(1);
    expect((await w.runState()).reservedMsat).toBe(0n);
  });

  it('defect 6: cancels an escrow the coordinator never paid, even though the node knows nothing of it', async () => {
    w = await moneyWorld(engine, { devAnswers: ['bob'] });
    await w.register('bob');
    await w.assign('a-1', 'bob');
    const engineA = await w.escrowEngine();
    // The escrow is logged, then the node goes away before the coordinator pays it.
    await engineA.reactor.settler.settle('a-1');
    w.network.faults.setUnavailable(true);
    await w.submit('a-1', 'bob');
    await w.reject('a-1');
    await expect(engineA.runUntilQuiet()).rejects.toMatchObject({ code: 'NODE_UNAVAILABLE' });
    w.network.faults.setUnavailable(false);
    await engineA.runUntilQuiet();
    const escrow = await w.store.readStream(`invoice-${w.escrowHash('a-1')}`);
    expect(escrow.map((e) => e.type)).toEqual(['InvoiceOpened', 'EscrowCancelRequested', 'InvoiceCanceled']);
    expect(escrow[2]!.data).toMatchObject({ wasHeld: false });
    expect((await w.network.coordinatorFunds()).pendingMsat).toBe(0n);
  });

  it('defect 7: rotates set-aside assignments so the last absent contributor is reached within ceil(n / batch) sweeps', async () => {
    w = await moneyWorld(engine);
    const ids = ['c1', 'c2', 'c3', 'c4', 'c5'];
    for (const id of ids) {
      await w.register(id);
      await w.assign(`a-${id}`, id);
    }
    const engineA = await w.escrowEngine({ sweepBatchSize: 2 });
    await engineA.runUntilQuiet();
    // The last contributor's invoice arrives without a wake-up (another process took it), so only the sweep can find it.
    const bolt11 = (await w.network.wallet('c5').createHoldInvoice({ paymentHash: w.escrowHash('a-c5'), amountMsat: BASE_MSAT, expirySec: 3_600, cltvDelta: 40, description: 'escrow' }));
    await sql`INSERT INTO api_hold_invoices (assignment_id, contributor_id, bolt11, posted_at_ms) VALUES ('a-c5', 'c5', ${bolt11}, 0)`.execute(w.db);
    let sweeps = 0;
    while ((await w.streamTypes(`invoice-${w.escrowHash('a-c5')}`)).length === 0 && sweeps < ids.length) {
      w.clock.nowMs += INVOICE_RECHECK_MS;
      await engineA.reactor.sweep();
      sweeps += 1;
    }
    expect(sweeps).toBeLessThanOrEqual(Math.ceil(ids.length / 2));
    expect(await w.streamTypes(`invoice-${w.escrowHash('a-c5')}`)).toEqual(['InvoiceOpened']);
  });

  it('defect 7: the dispatcher visits every unfinished intent, however many ahead of it cannot move', async () => {
    w = await moneyWorld(engine, { devAnswers: ['d1', 'd2', 'd3', 'd4', 'd5', 'd6'] });
    const ids = ['d1', 'd2', 'd3', 'd4', 'd5', 'd6'];
    // The stuck ones are those whose escrow hashes sort first: a dispatcher without rotation would see only them.
    const sorted = [...ids].sort((a, b) => w!.escrowHash(`a-${a}`).localeCompare(w!.escrowHash(`a-${b}`)));
    const stuck = sorted.slice(0, 3);
    const late = sorted[sorted.length - 1]!;
    for (const id of stuck) {
      await w.register(id);
      w.declining.add(id);
      await w.assign(`a-${id}`, id);
    }
    const engineA = await w.escrowEngine({ limits: { ...DEFAULT_DISPATCHER_LIMITS, batchSize: 2 } });
    await engineA.runUntilQuiet();
    for (const id of stuck) {
      await w.submit(`a-${id}`, id);
      await w.reject(`a-${id}`);
    }
    await engineA.runUntilQuiet();
    await w.register(late);
    await w.assign(`a-${late}`, late);
    // Log the late escrow without paying it, then let only the dispatcher move.
    await engineA.reactor.handle(await w.store.readAll({ after: await w.store.loadCheckpoint('escrow-reactor'), maxCount: 100 }));
    await engineA.runUntilQuiet();
    expect(await w.streamTypes(`invoice-${w.escrowHash(`a-${late}`)}`)).toEqual(['InvoiceOpened', 'InvoiceHeld']);
    for (const id of stuck) expect((await w.streamTypes(`invoice-${w.escrowHash(`a-${id}`)}`)).at(-1)).toBe('EscrowCancelRequested');
  });

  it('defect 11: a second escrow process waits on the lease and takes over when the first one dies', async () => {
    w = await moneyWorld(engine, { devAnswers: ['bob'] });
    await w.register('bob');
    const first = await w.escrowEngine();
    await first.runUntilQuiet();
    const second = await w.escrowEngine({ keepPrevious: true });
    let secondDone = false;
    const secondPass = second.runUntilQuiet().then((report) => {
      secondDone = true;
      return report;
    });
    // The second is really waiting: it has tried the lock (PostgreSQL) or queued behind the holder (PGlite).
    const waiting = () => (second.lease instanceof PostgresAdvisoryLease ? second.lease.tries > 0 : (first.lease as InProcessLease).waiters.length > 0);
    await eventually(waiting, 'the second engine to wait on the lease');
    await w.assign('a-1', 'bob');
    await first.runUntilQuiet();
    expect(secondDone).toBe(false);
    expect(await w.streamTypes(`invoice-${w.escrowHash('a-1')}`)).toEqual(['InvoiceOpened', 'InvoiceHeld']);
    await first.close();
    const report = await secondPass;
    expect(report.rounds).toBeGreaterThan(0);
    await w.submit('a-1', 'bob');
    await w.accept('a-1', 0n);
    await second.runUntilQuiet();
    expect((await w.streamTypes(`invoice-${w.escrowHash('a-1')}`)).at(-1)).toBe('InvoiceSettled');
    expect((await w.events('InvoiceSettled')).length).toBe(1);
  });
});

describe.each(WITH_SPLIT)('what the money-path review found, on %s', (engine) => {
  it('sets aside an invoice the node refuses to pay for good, and keeps paying everyone else', async () => {
    w = await moneyWorld(engine);
    for (const who of ['alice', 'bob']) {
      await w.register(who);
      await w.assign(`a-${who}`, who);
      await w.submit(`a-${who}`, who);
      await w.accept(`a-${who}`, 0n);
    }
    const real = w.network.coordinator();
    const poisoned = await w.postPayoutInvoice('a-bob', 'bob', 'compensation', BASE_MSAT, 0);
    const poisonedHash = (await real.decodeInvoice(poisoned)).paymentHash;
    // The real node, except that it refuses Bob's invoice as LND refuses one it cannot pay (an unknown feature bit, say).
    const node: CoordinatorNode = Object.assign(Object.create(real) as CoordinatorNode, {
      pay: (request: Parameters<CoordinatorNode['pay']>[0]) =>
        request.paymentHash === poisonedHash ? Promise.reject(new LightningError('INVOICE_INVALID', 'invoice has unknown required features', false)) : real.pay(request),
    });
    await w.postPayoutInvoice('a-alice', 'alice', 'compensation', BASE_MSAT, 0);
    await (await w.escrowEngine({ node })).runUntilQuiet();
    expect((await w.events('PaymentSent')).map((e) => e.data.assignmentId)).toEqual(['a-alice']);
    expect((await w.events('PaymentAbandoned')).map((e) => [e.data.paymentHash, e.data.code])).toEqual([[poisonedHash, 'INVOICE_INVALID']]);
    // Bob's payout asks for a fresh invoice; paid through it.
    await w.postPayoutInvoice('a-bob', 'bob', 'compensation', BASE_MSAT, 1);
    await (await w.escrowEngine()).runUntilQuiet();
    expect((await w.events('PaymentSent')).map((e) => e.data.assignmentId).sort()).toEqual(['a-alice', 'a-bob']);
    expect((await w.runState()).reservedMsat).toBe(0n);
  });

  it('never takes the escrow\'s hash, or another payout\'s, as a payout invoice', async () => {
    w = await moneyWorld(engine);
    await w.register('alice');
    await w.assign('a-1', 'alice', { maxBonusMsat: BASE_MSAT });
    await w.submit('a-1', 'alice');
    await w.accept('a-1', BASE_MSAT);
    // Her hold invoice for the escrow hash, posted as the compensation; and one invoice posted for both payouts of equal amount.
    const hold = await w.network.wallet('alice').createHoldInvoice({ paymentHash: w.escrowHash('a-1'), amountMsat: BASE_MSAT, expirySec: 3_600, cltvDelta: 40, description: 'escrow' });
    await w.box.postPayout('a-1', 'compensation', 0, hold, w.clock.nowMs);
    const engineA = await w.escrowEngine();
    await engineA.runUntilQuiet();
    expect((await w.assignmentState('a-1')).invoiceRefusals.compensation).toMatchObject({ code: 'INVOICE_HASH_IN_USE' });
    expect(await w.streamTypes(`invoice-${w.escrowHash('a-1')}`)).toEqual([]);
    const { bolt11 } = await w.network.wallet('alice').createInvoice({ amountMsat: BASE_MSAT, expirySec: 3_600, description: 'both' });
    await w.box.postPayout('a-1', 'compensation', 0, bolt11, w.clock.nowMs);
    await w.box.postPayout('a-1', 'bonus', 0, bolt11, w.clock.nowMs);
    await engineA.runUntilQuiet();
    expect((await w.assignmentState('a-1')).invoiceRefusals.bonus).toMatchObject({ code: 'INVOICE_HASH_IN_USE' });
    await w.postPayoutInvoice('a-1', 'alice', 'bonus', BASE_MSAT, 0);
    await engineA.runUntilQuiet();
    const sent = await w.events('PaymentSent');
    expect(sent.map((e) => e.data.kind).sort()).toEqual(['bonus', 'compensation']);
    const released = (await w.events('BudgetReleased'))[0]!;
    const paid = sent.reduce((sum, e) => sum + BigInt(e.data.amountMsat as string) + BigInt(e.data.feeMsat as string), 0n);
    expect(BigInt(released.data.spentMsat as string)).toBe(paid);
  });

  // PGlite's lease lives in the process: it has no session to lose, so this case is PostgreSQL's alone.
  it.skipIf(engine !== 'postgres')('lets go of a lease whose session died, and takes it again for the next pass', async () => {
    w = await moneyWorld(engine, { devAnswers: ['bob'] });
    await w.register('bob');
    const engineA = await w.escrowEngine();
    await engineA.runUntilQuiet();
    // The holder's session ends under it (a network cut, a server restart).
    await sql`SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()`.execute(w.db);
    await w.assign('a-1', 'bob');
    await expect(engineA.runUntilQuiet()).rejects.toThrow(/lease was lost/);
    await engineA.runUntilQuiet();
    expect(await w.streamTypes(`invoice-${w.escrowHash('a-1')}`)).toEqual(['InvoiceOpened', 'InvoiceHeld']);
  });
});

describe.each(WITH_SPLIT)('liveness under load on %s (issue 12)', (engine) => {
  it('defect 5: releases a reservation that stood without its assignment, by this process\'s clock, and leaves a fresh one alone', async () => {
    w = await moneyWorld(engine);
    const reserve = (assignmentId: string) =>
      handleCommand(w!.store, runDecider, runStreamId(RUN_ID), { type: 'ReserveBudget', data: { runId: RUN_ID, reservationId: `rsv-${assignmentId}`, assignmentId, amountMsat: 1_000n }, metadata: { nowMs: w!.clock.nowMs } } as RunCommand, { newEventId: randomUUID });
    await reserve('a-orphan');
    const engineA = await w.escrowEngine();
    await engineA.runUntilQuiet();
    expect((await w.runState()).openReservations.has('rsv-a-orphan')).toBe(true);
    w.clock.nowMs += ORPHAN_RESERVATION_MS;
    await reserve('a-young');
    await (await w.escrowEngine()).runUntilQuiet();
    const run = await w.runState();
    expect(run.openReservations.has('rsv-a-orphan')).toBe(false);
    expect(run.openReservations.has('rsv-a-young')).toBe(true);
    expect((await w.events('BudgetReleased')).map((e) => [e.data.assignmentId, e.data.spentMsat])).toEqual([['a-orphan', '0']]);
  });

  it('defect 1: locks and settles escrow while the log never falls quiet: reading, deciding and paying interleave in bounded batches', async () => {
    w = await moneyWorld(engine, { devAnswers: ['bob'] });
    await w.register('bob');
    await w.assign('a-1', 'bob');
    await w.submit('a-1', 'bob');
    // Every read of the log finds more new events than one batch holds: there is always something new.
    const readAll = w.store.readAll.bind(w.store);
    let filler = 0;
    w.store.readAll = async (options) => {
      // Fundings of another run: events the escrow engine reads past, as under any real load.
      const events = Array.from({ length: 250 }, () => ({ eventId: randomUUID(), type: 'RunFunded', data: { runId: 'filler', fundingId: `f${(filler += 1)}`, source: 'customer', amountMsat: '1', atMs: w!.clock.nowMs } }));
      await w!.store.append('run-filler', events, { expectedRevision: 'any' });
      return readAll(options);
    };
    const engineA = await w.escrowEngine();
    const escrowStatus = async () => (await w!.streamTypes(`invoice-${w!.escrowHash('a-1')}`)).at(-1);
    await engineA.runUntilQuiet();
    expect(await escrowStatus()).toBe('InvoiceHeld');
    await w.accept('a-1', 0n);
    let passes = 0;
    while ((await escrowStatus()) !== 'InvoiceSettled' && passes < 3) {
      await engineA.runUntilQuiet();
      passes += 1;
    }
    expect(await escrowStatus()).toBe('InvoiceSettled');
    expect(filler).toBeGreaterThan(250);
  });
});
