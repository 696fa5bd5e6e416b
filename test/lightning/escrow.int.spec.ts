// The escrow flow end to end on the dev Lightning network: lifecycle, verdicts, expiry, faults and a crash at every step.

import { afterEach, describe, expect, it } from 'vitest';
import type { DispatchStep } from '../../adapters/lightning/dispatcher.js';
import { ASSIGNMENT_ID, BASE_REWARD_MSAT, c, escrowWorld, type EscrowWorld } from './escrow-harness.js';

let world: EscrowWorld;
afterEach(async () => {
  await world?.close();
});

/** Everything paid for the assignment's base reward, from the log: escrow settlements plus compensations sent. */
async function basePayments(w: EscrowWorld): Promise<number> {
  const events = await w.store.readAll({ maxCount: 10_000 });
  return events.filter((e) => e.type === 'InvoiceSettled' || (e.type === 'PaymentSent' && e.data.kind === 'compensation')).length;
}

async function spentMsat(w: EscrowWorld): Promise<bigint> {
  const funds = await w.network.coordinatorFunds();
  return 10n * 100_000_000n * 1_000n - funds.balanceMsat;
}

describe('escrow on the dev Lightning network', () => {
  it('locks escrow when work is assigned, then settles it and pays the bonus on acceptance', async () => {
    world = await escrowWorld();
    const engine = await world.engine();
    await world.assignment(c.assign());
    await engine.runUntilQuiet();
    expect(await world.invoiceEvents(world.escrowHash)).toEqual(['InvoiceOpened', 'InvoiceHeld']);
    const locked = await world.network.coordinatorFunds();
    expect(locked.pendingMsat).toBeGreaterThanOrEqual(BASE_REWARD_MSAT);

    await world.assignment(c.submit());
    await world.assignment(c.accept(undefined, 250_000n));
    await engine.runUntilQuiet();
    expect(await world.invoiceEvents(world.escrowHash)).toEqual(['InvoiceOpened', 'InvoiceHeld', 'EscrowReleaseRequested', 'InvoiceSettled']);
    const all = await world.store.readAll({ maxCount: 1_000 });
    expect(all.filter((e) => e.type === 'PaymentSent').map((e) => e.data.kind)).toEqual(['bonus']);
    expect(await basePayments(world)).toBe(1);
    const fees = all.filter((e) => e.type === 'PaymentSent').reduce((s, e) => s + BigInt(e.data.feeMsat as string), 0n);
    expect(await spentMsat(world)).toBeGreaterThanOrEqual(BASE_REWARD_MSAT + 250_000n + fees);
    expect(await world.network.coordinatorFunds()).toMatchObject({ pendingMsat: 0n });
  });

  it('cancels the escrow on rejection, and pays an overturn by compensation once the escrow is gone', async () => {
    world = await escrowWorld();
    const engine = await world.engine();
    await world.assignment(c.assign());
    await engine.runUntilQuiet();
    await world.assignment(c.submit());
    await world.assignment(c.reject());
    await engine.runUntilQuiet();
    expect(await world.invoiceEvents(world.escrowHash)).toEqual(['InvoiceOpened', 'InvoiceHeld', 'EscrowCancelRequested', 'InvoiceCanceled']);
    expect(await spentMsat(world)).toBe(0n);

    for (const step of [c.dispute(), c.requestReplay(), c.verdict('match'), c.resolve('overturned')]) await world.assignment(step);
    await engine.runUntilQuiet();
    expect(await basePayments(world)).toBe(1);
    const compensation = (await world.store.readAll({ maxCount: 1_000 })).filter((e) => e.type === 'PaymentSent');
    expect(compensation.map((e) => e.data.kind)).toEqual(['compensation']);
  });

  it('settles a still-held escrow when a contributor who kept the HTLC wins the dispute', async () => {
    world = await escrowWorld();
    world.declining.add('alice');
    const engine = await world.engine();
    await world.assignment(c.assign());
    await engine.runUntilQuiet();
    await world.assignment(c.submit());
    await world.assignment(c.reject());
    await engine.runUntilQuiet();
    expect(await world.invoiceEvents(world.escrowHash)).toEqual(['InvoiceOpened', 'InvoiceHeld', 'EscrowCancelRequested']);
    for (const step of [c.dispute(), c.requestReplay(), c.verdict('match'), c.resolve('overturned')]) await world.assignment(step);
    await engine.runUntilQuiet();
    expect(await world.invoiceEvents(world.escrowHash)).toEqual(['InvoiceOpened', 'InvoiceHeld', 'EscrowCancelRequested', 'EscrowReleaseRequested', 'InvoiceSettled']);
    expect(await basePayments(world)).toBe(1);
  });

  it('never pays an upheld rejection, even when the contributor keeps the HTLC until its CLTV limit', async () => {
    world = await escrowWorld();
    world.declining.add('alice');
    const engine = await world.engine();
    await world.assignment(c.assign());
    await engine.runUntilQuiet();
    for (const step of [c.submit(), c.reject(), c.dispute(), c.requestReplay(), c.verdict('mismatch'), c.resolve('upheld')]) await world.assignment(step);
    await engine.runUntilQuiet();
    expect(await world.invoiceEvents(world.escrowHash)).toEqual(['InvoiceOpened', 'InvoiceHeld', 'EscrowCancelRequested']);
    // The HTLC times out: the dev node cancels it a safety margin before its expiry height, as LND does.
    await world.network.advanceBlocks(1_000);
    await engine.runUntilQuiet();
    expect((await world.invoiceEvents(world.escrowHash)).at(-1)).toBe('InvoiceCanceled');
    expect(await basePayments(world)).toBe(0);
    expect(await spentMsat(world)).toBe(0n);
  });

  it('pays by compensation when the escrow expired before the verdict', async () => {
    world = await escrowWorld();
    const engine = await world.engine();
    await world.assignment(c.assign());
    await engine.runUntilQuiet();
    await world.network.advanceBlocks(1_000);
    await engine.runUntilQuiet();
    expect((await world.invoiceEvents(world.escrowHash)).at(-1)).toBe('InvoiceCanceled');
    await world.assignment(c.submit());
    await world.assignment(c.accept(undefined, 0n));
    await engine.runUntilQuiet();
    expect(await basePayments(world)).toBe(1);
    expect((await world.store.readAll({ maxCount: 1_000 })).filter((e) => e.type === 'PaymentSent').map((e) => e.data.kind)).toEqual(['compensation']);
  });

  it('treats a double release as a no-op', async () => {
    world = await escrowWorld();
    const engine = await world.engine();
    await world.assignment(c.assign());
    await engine.runUntilQuiet();
    await world.assignment(c.submit());
    await world.assignment(c.accept(undefined, 0n));
    await engine.runUntilQuiet();
    await engine.runUntilQuiet();
    // A second engine replaying the whole log from scratch issues nothing new.
    await world.store.saveCheckpoint('escrow-reactor', { transactionId: 0n, globalPosition: 0n });
    const report = await (await world.engine()).runUntilQuiet();
    expect(report.outcomesRecorded).toBe(0);
    expect((await world.invoiceEvents(world.escrowHash)).filter((t) => t === 'EscrowReleaseRequested' || t === 'InvoiceSettled')).toEqual(['EscrowReleaseRequested', 'InvoiceSettled']);
    expect(await basePayments(world)).toBe(1);
  });

  it('recovers from injected node faults without paying twice or leaving anything stuck', async () => {
    world = await escrowWorld();
    const engine = await world.engine();
    world.network.faults.setUnavailable(true);
    await world.assignment(c.assign());
    await expect(engine.runUntilQuiet()).rejects.toMatchObject({ code: 'NODE_UNAVAILABLE', retryable: true });
    world.network.faults.setUnavailable(false);
    await engine.runUntilQuiet();
    expect(await world.invoiceEvents(world.escrowHash)).toEqual(['InvoiceOpened', 'InvoiceHeld']);

    // The bonus payout fails once (no route), is logged as such, and the retry succeeds.
    world.network.faults.failNextPayments(1, 'NO_ROUTE');
    await world.assignment(c.submit());
    await world.assignment(c.accept(undefined, 250_000n));
    await engine.runUntilQuiet();
    const events = await world.store.readAll({ maxCount: 1_000 });
    expect(events.filter((e) => e.type === 'PaymentFailed').map((e) => e.data.failureCode)).toEqual(['NO_ROUTE']);
    expect(events.filter((e) => e.type === 'PaymentSent').map((e) => e.data.kind)).toEqual(['bonus']);
    expect(await basePayments(world)).toBe(1);
    expect((await world.network.coordinatorFunds()).pendingMsat).toBe(0n);
  });

  it('fails an escrow whose payment cannot be routed as canceled, then compensates the accepted work', async () => {
    world = await escrowWorld();
    const engine = await world.engine();
    world.network.faults.failNextPayments(1, 'NO_ROUTE');
    await world.assignment(c.assign());
    await engine.runUntilQuiet();
    const escrowEvents = await world.store.readStream(`invoice-${world.escrowHash}`);
    expect(escrowEvents.map((e) => e.type)).toEqual(['InvoiceOpened', 'InvoiceCanceled']);
    expect(escrowEvents[1]!.data).toMatchObject({ wasHeld: false, reason: expect.stringContaining('NO_ROUTE') });
    await world.assignment(c.submit());
    await world.assignment(c.accept(undefined, 0n));
    await engine.runUntilQuiet();
    expect(await basePayments(world)).toBe(1);
  });
});

describe('a crash between intent and effect, at every step', () => {
  const steps: DispatchStep[] = ['pay-escrow', 'release', 'pay-payout'];
  it.each(steps)('ends with exactly one settlement after a crash right after %s', async (crashAt) => {
    world = await escrowWorld();
    let crashed = false;
    const crashing = await world.engine((step) => {
      if (step === crashAt && !crashed) {
        crashed = true;
        throw new Error(`crash after ${step}`);
      }
    });
    // The escrow is locked before the verdict, as in production: assignment, then engine, then work.
    await world.assignment(c.assign());
    if (crashAt === 'pay-escrow') {
      await expect(crashing.runUntilQuiet()).rejects.toThrow(`crash after ${crashAt}`);
      await (await world.engine()).runUntilQuiet();
    } else {
      await crashing.runUntilQuiet();
    }
    await world.assignment(c.submit());
    await world.assignment(c.accept(undefined, 250_000n));
    if (crashAt !== 'pay-escrow') await expect(crashing.runUntilQuiet()).rejects.toThrow(`crash after ${crashAt}`);
    expect(crashed).toBe(true);

    // Restart: a fresh engine reconciles every unfinished intent against the node.
    await (await world.engine()).runUntilQuiet();
    expect(await basePayments(world)).toBe(1);
    const sent = (await world.store.readAll({ maxCount: 1_000 })).filter((e) => e.type === 'PaymentSent');
    expect(sent.map((e) => e.data.kind)).toEqual(['bonus']);
    expect((await world.network.coordinatorFunds()).pendingMsat).toBe(0n);
    expect(await world.invoiceEvents(world.escrowHash)).toEqual(['InvoiceOpened', 'InvoiceHeld', 'EscrowReleaseRequested', 'InvoiceSettled']);
    void ASSIGNMENT_ID;
  });

  it('ends canceled, paying nothing, after a crash right after asking for the cancel', async () => {
    world = await escrowWorld();
    let crashed = false;
    const crashing = await world.engine((step) => {
      if (step === 'cancel' && !crashed) {
        crashed = true;
        throw new Error('crash after cancel');
      }
    });
    await world.assignment(c.assign());
    await crashing.runUntilQuiet();
    await world.assignment(c.submit());
    await world.assignment(c.reject());
    await expect(crashing.runUntilQuiet()).rejects.toThrow('crash after cancel');
    await (await world.engine()).runUntilQuiet();
    expect(await world.invoiceEvents(world.escrowHash)).toEqual(['InvoiceOpened', 'InvoiceHeld', 'EscrowCancelRequested', 'InvoiceCanceled']);
    expect(await spentMsat(world)).toBe(0n);
  });
});
