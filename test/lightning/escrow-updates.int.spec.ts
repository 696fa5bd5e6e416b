// Issue 14: the escrow engine follows the node's updates instead of asking about every held escrow; the bounded sweep alone reaches the same end, and updates are hints that can settle nothing by themselves.

import { afterEach, describe, expect, it } from 'vitest';
import { API_CONTRIBUTOR_CHANNEL } from '../../adapters/lightning/api-contributor-channel.js';
import type { CoordinatorNode } from '../../domain/ports/lightning.js';
import { MONEY_ENGINES, moneyWorld, type MoneyWorld } from './money-world.js';

let w: MoneyWorld | undefined;
afterEach(async () => {
  await w?.close();
  w = undefined;
});

/** The real dev coordinator node, counting what it is asked about each hash. */
function countingNode(real: CoordinatorNode) {
  const asked = new Map<string, number>();
  const node: CoordinatorNode = Object.assign(Object.create(real) as CoordinatorNode, {
    paymentState: (hash: string) => {
      asked.set(hash, (asked.get(hash) ?? 0) + 1);
      return real.paymentState(hash);
    },
    subscribeToPayments: (listener: Parameters<CoordinatorNode['subscribeToPayments']>[0]) => real.subscribeToPayments(listener),
  });
  return { node, asked };
}

const IDS = { accepted: 'a-acc', rejected: 'a-rej', held: 'a-held', expired: 'a-exp' } as const;
const WHO = { 'a-acc': 'c1', 'a-rej': 'c2', 'a-held': 'c3', 'a-exp': 'c4' } as const;

type Mode = 'subscription only' | 'sweep only';

/**
 * One scenario, driven the same way in both modes: four escrows locked; one accepted, one rejected,
 * one left held, one whose contributor chose a short CLTV and expiry. Then only the nodes move:
 * the contributors settle and cancel on their own (production's channel pushes nothing to them),
 * time and blocks pass and the short HTLC times out. Nothing in the log says so; only the node does.
 */
async function scenario(engineKind: (typeof MONEY_ENGINES)[number], mode: Mode) {
  w = await moneyWorld(engineKind, { devAnswers: ['c1', 'c2', 'c3'] });
  const world = w;
  for (const who of Object.values(WHO)) await world.register(who);
  for (const [id, who] of Object.entries(WHO)) await world.assign(id, who);
  await world.postHoldInvoice(IDS.expired, WHO[IDS.expired], 600);
  const { node, asked } = countingNode(world.network.coordinator());
  const engine = await world.escrowEngine({
    node,
    contributors: API_CONTRIBUTOR_CHANNEL,
    ...(mode === 'subscription only' ? { sweep: { intervalMs: null } } : { subscribe: false, sweep: { intervalMs: 0, pageSize: 1 } }),
  });
  await engine.runUntilQuiet();
  for (const id of Object.values(IDS)) expect(await world.streamTypes(`invoice-${world.escrowHash(id)}`)).toEqual(['InvoiceOpened', 'InvoiceHeld']);
  await world.submit(IDS.accepted, WHO[IDS.accepted]);
  await world.accept(IDS.accepted, 0n);
  await world.submit(IDS.rejected, WHO[IDS.rejected]);
  await world.reject(IDS.rejected);
  await engine.runUntilQuiet();

  // Only the nodes move from here.
  await world.network.wallet(WHO[IDS.accepted]).settleHoldInvoice(world.preimages.escrow(IDS.accepted).preimageHex);
  await world.network.wallet(WHO[IDS.rejected]).cancelHoldInvoice(world.escrowHash(IDS.rejected));
  world.clock.nowMs += 601_000;
  await world.network.advanceBlocks(40);
  asked.clear();

  const done = async () =>
    (await world.streamTypes(`invoice-${world.escrowHash(IDS.accepted)}`)).includes('InvoiceSettled') &&
    (await world.streamTypes(`invoice-${world.escrowHash(IDS.rejected)}`)).includes('InvoiceCanceled') &&
    (await world.streamTypes(`invoice-${world.escrowHash(IDS.expired)}`)).includes('InvoiceExpired');
  let passes = 0;
  // Bounded by the sweep's lap: every unfinished row is visited within ceil(rows / page) ticks.
  while (!(await done()) && passes < 12) {
    await engine.runUntilQuiet();
    passes += 1;
  }
  // One more pass changes nothing: the end state is stable in either mode.
  const last = await engine.runUntilQuiet();
  return { world, engine, asked, passes, last, outcome: await outcome(world) };
}

async function outcome(world: MoneyWorld) {
  const invoices: Record<string, string[]> = {};
  const assignments: Record<string, string> = {};
  for (const id of Object.values(IDS)) {
    invoices[id] = await world.streamTypes(`invoice-${world.escrowHash(id)}`);
    assignments[id] = (await world.assignmentState(id)).status;
  }
  const settled = (await world.events('InvoiceSettled')).map((e) => [e.data.assignmentId, String(e.data.feeMsat)]);
  const sent = (await world.events('PaymentSent')).map((e) => [e.data.assignmentId, e.data.kind]);
  const released = (await world.events('BudgetReleased')).map((e) => [e.data.reservationId, String(e.data.spentMsat)]).sort();
  const funds = await world.network.coordinatorFunds();
  return { invoices, assignments, settled, sent, released, pendingMsat: funds.pendingMsat, balanceMsat: funds.balanceMsat, reservedMsat: (await world.runState()).reservedMsat };
}

describe.each(MONEY_ENGINES)('escrow updates and the sweep on %s', (engineKind) => {
  it('the subscription path and the sweep path each settle exactly what the other does', async () => {
    const viaUpdates = await scenario(engineKind, 'subscription only');
    const updates = { ...viaUpdates, counters: { ...viaUpdates.engine.dispatcher.counters } };
    // The node's updates alone did it, in one pass, asking the node only about the three escrows that changed.
    expect(updates.passes).toBe(1);
    expect(updates.counters.sweepTicks).toBe(0);
    expect(updates.asked.has(updates.world.escrowHash(IDS.held))).toBe(false);
    expect([...updates.asked.keys()].sort()).toEqual([IDS.accepted, IDS.rejected, IDS.expired].map((id) => updates.world.escrowHash(id)).sort());
    expect(updates.last).toMatchObject({ reactedEvents: 0, outcomesRecorded: 0, settled: 0, quiet: true });
    await w!.close();
    w = undefined;

    const viaSweep = await scenario(engineKind, 'sweep only');
    expect(viaSweep.engine.following).toBe(false);
    expect(viaSweep.engine.dispatcher.counters.hintsReceived).toBe(0);
    expect(viaSweep.engine.dispatcher.counters.sweepTicks).toBeGreaterThan(0);
    expect(viaSweep.last).toMatchObject({ reactedEvents: 0, outcomesRecorded: 0, settled: 0, quiet: true });

    expect(viaSweep.outcome).toEqual(updates.outcome);
    expect(updates.outcome.invoices).toEqual({
      [IDS.accepted]: ['InvoiceOpened', 'InvoiceHeld', 'EscrowReleaseRequested', 'InvoiceSettled'],
      [IDS.rejected]: ['InvoiceOpened', 'InvoiceHeld', 'EscrowCancelRequested', 'InvoiceCanceled'],
      [IDS.held]: ['InvoiceOpened', 'InvoiceHeld'],
      [IDS.expired]: ['InvoiceOpened', 'InvoiceHeld', 'InvoiceExpired'],
    });
    expect(updates.outcome.settled.map(([id]) => id)).toEqual([IDS.accepted]);
    expect(updates.outcome.pendingMsat).toBeGreaterThan(0n);
  });

  it('resubscribes after a dropped stream and lets a sweep tick find what changed meanwhile', async () => {
    w = await moneyWorld(engineKind, { devAnswers: ['c1', 'c2'] });
    for (const who of ['c1', 'c2']) await w.register(who);
    await w.assign('a-1', 'c1');
    await w.assign('a-2', 'c2');
    const lines: string[] = [];
    // A sweep interval far longer than the test: only the drop can make it tick.
    const engine = await w.escrowEngine({ contributors: API_CONTRIBUTOR_CHANNEL, sweep: { intervalMs: 3_600_000 }, log: (line) => lines.push(line) });
    await engine.runUntilQuiet();
    const ticksBefore = engine.dispatcher.counters.sweepTicks;
    expect(engine.following).toBe(true);

    // The node restarts; while nobody listens, a contributor cancels.
    expect(w.network.faults.dropSubscriptions()).toBe(1);
    expect(engine.following).toBe(false);
    await w.network.wallet('c1').cancelHoldInvoice(w.escrowHash('a-1'));
    await engine.runUntilQuiet();
    expect(engine.drops).toBe(1);
    expect(engine.following).toBe(true);
    expect(engine.dispatcher.counters.sweepTicks).toBe(ticksBefore + 1);
    expect((await w.streamTypes(`invoice-${w.escrowHash('a-1')}`)).at(-1)).toBe('InvoiceCanceled');
    expect(lines.some((line) => line.includes('stream dropped'))).toBe(true);

    // The new stream carries the next change; no sweep was needed for it.
    await w.network.wallet('c2').cancelHoldInvoice(w.escrowHash('a-2'));
    await engine.runUntilQuiet();
    expect(engine.dispatcher.counters.sweepTicks).toBe(ticksBefore + 1);
    expect((await w.streamTypes(`invoice-${w.escrowHash('a-2')}`)).at(-1)).toBe('InvoiceCanceled');
  });

  it('takes forged, repeated and out-of-order updates as hints: one lookup each, nothing settled or paid twice, garbage ignored', async () => {
    w = await moneyWorld(engineKind, { devAnswers: ['c1', 'c2'] });
    for (const who of ['c1', 'c2']) await w.register(who);
    await w.assign('a-1', 'c1');
    await w.assign('a-2', 'c2');
    const { node, asked } = countingNode(w.network.coordinator());
    const engine = await w.escrowEngine({ node, contributors: API_CONTRIBUTOR_CHANNEL, sweep: { intervalMs: null } });
    await engine.runUntilQuiet();
    asked.clear();
    // A forged "settled" for an escrow still held, many times, plus garbage and an unknown hash.
    for (let i = 0; i < 50; i += 1) engine.dispatcher.hint(w.escrowHash('a-1'));
    engine.dispatcher.hint('not a hash');
    engine.dispatcher.hint('ff'.repeat(32));
    const report = await engine.runUntilQuiet();
    expect(report.outcomesRecorded).toBe(0);
    expect(asked.get(w.escrowHash('a-1'))).toBe(1);
    expect(asked.has('ff'.repeat(32))).toBe(false);
    expect(await w.streamTypes(`invoice-${w.escrowHash('a-1')}`)).toEqual(['InvoiceOpened', 'InvoiceHeld']);

    // Accepted and settled by the contributor: the real update settles it once; replays of it later settle nothing more.
    await w.submit('a-1', 'c1');
    await w.accept('a-1', 0n);
    await engine.runUntilQuiet();
    await w.network.wallet('c1').settleHoldInvoice(w.preimages.escrow('a-1').preimageHex);
    await engine.runUntilQuiet();
    for (let i = 0; i < 10; i += 1) engine.dispatcher.hint(w.escrowHash('a-1'));
    await engine.runUntilQuiet();
    expect((await w.events('InvoiceSettled')).map((e) => e.data.assignmentId)).toEqual(['a-1']);
    expect((await w.events('BudgetReleased')).filter((e) => String(e.data.reservationId).includes('a-1'))).toHaveLength(1);
    // The other escrow, held throughout, was never asked about after it was locked.
    expect(asked.has(w.escrowHash('a-2'))).toBe(false);
  });
});
