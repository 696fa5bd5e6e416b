// Escrow on the split composition, on every split log (the cluster too when ESDB_URL is set): a paid assignment, and the recovery of a half-done reserve-and-assign.

import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { handleCommand } from '../../adapters/commands/command-handler.js';
import { ORPHAN_RESERVATION_MS } from '../../adapters/lightning/assignment-settler.js';
import { runDecider, runStreamId, type RunCommand } from '../../domain/run/index.js';
import { RUN_ID } from '../domain/fixtures.js';
import { BASE_MSAT, moneyWorld, type MoneyWorld } from '../lightning/money-world.js';
import { splitLogs } from '../support/split-logs.js';

let w: MoneyWorld | undefined;
afterEach(async () => {
  await w?.close();
  w = undefined;
});

describe.each(splitLogs())('escrow on the $name', (splitLog) => {
  it('locks the escrow, settles it on acceptance, pays the bonus and releases the reservation, each once', async () => {
    w = await moneyWorld('split', { devAnswers: ['bob'], splitLog });
    await w.register('bob');
    await w.assign('a-1', 'bob');
    const engine = await w.escrowEngine();
    await engine.runUntilQuiet();
    expect(await w.streamTypes(`invoice-${w.preimages.escrow('a-1').paymentHash}`)).toEqual(['InvoiceOpened', 'InvoiceHeld']);
    await w.submit('a-1', 'bob');
    await w.accept('a-1', 100_000n);
    await engine.runUntilQuiet();
    // A second pass, and a restarted engine reading from its SQL checkpoint, find nothing more to do.
    await engine.runUntilQuiet();
    await (await w.escrowEngine()).runUntilQuiet();
    expect(await w.events('InvoiceSettled')).toHaveLength(1);
    expect((await w.events('PaymentSent')).map((e) => e.data.kind)).toEqual(['bonus']);
    const released = await w.events('BudgetReleased');
    expect(released).toHaveLength(1);
    expect(BigInt(released[0]!.data.spentMsat as string)).toBeGreaterThanOrEqual(BASE_MSAT + 100_000n);
    expect((await w.runState()).reservedMsat).toBe(0n);
  });

  it('releases a reservation left without its assignment (the crash between the two appends) once it has stood alone long enough', async () => {
    w = await moneyWorld('split', { splitLog });
    const reserve = (assignmentId: string) =>
      handleCommand(w!.store, runDecider, runStreamId(RUN_ID), { type: 'ReserveBudget', data: { runId: RUN_ID, reservationId: `rsv-${assignmentId}`, assignmentId, amountMsat: 1_000n }, metadata: { nowMs: w!.clock.nowMs } } as RunCommand, { newEventId: randomUUID });
    await reserve('a-half');
    await (await w.escrowEngine()).runUntilQuiet();
    expect((await w.runState()).openReservations.has('rsv-a-half')).toBe(true);
    w.clock.nowMs += ORPHAN_RESERVATION_MS;
    await (await w.escrowEngine()).runUntilQuiet();
    expect((await w.runState()).openReservations.has('rsv-a-half')).toBe(false);
    expect((await w.events('BudgetReleased')).map((e) => [e.data.assignmentId, e.data.spentMsat])).toEqual([['a-half', '0']]);
    // The assignment can never come under it now: the decider refuses a released reservation id.
    await expect(reserve('a-half')).rejects.toMatchObject({ code: 'RESERVATION_EXISTS' });
  });
});
