// Load test (issue 12): under a sustained append rate the escrow engine keeps locking and settling, and every projector keeps up. Short by default; LOAD_MS makes it longer.

import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { handleCommand } from '../../adapters/commands/command-handler.js';
import { EscrowLoop } from '../../adapters/lightning/escrow-loop.js';
import { runDecider, runStreamId, type RunCommand } from '../../domain/run/index.js';
import { ALL_PROJECTORS } from '../../projections/index.js';
import { ProjectionRunner } from '../../projections/runner.js';
import { command, openRunData } from '../domain/fixtures.js';
import { MONEY_ENGINES, moneyWorld, type MoneyWorld } from './money-world.js';

/** How long the load runs; the figures printed say what was reached. */
const LOAD_MS = Number(process.env.LOAD_MS ?? 5_000);
/** Upper bound on waiting for the last settlements and for projections once the load stops. */
const DRAIN_LOOKS = 600;
const CONTRIBUTORS = ['l1', 'l2', 'l3', 'l4'];
const LOAD_RUN_ID = 'run-load';

let w: MoneyWorld | undefined;
afterEach(async () => {
  await w?.close();
  w = undefined;
});

function percentile(sorted: readonly number[], p: number): number {
  return sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(MONEY_ENGINES)('escrow and projections under sustained load on %s', (engine) => {
  it('pays every accepted assignment while fundings keep streaming in, and every projector catches up', async () => {
    w = await moneyWorld(engine, { devAnswers: CONTRIBUTORS });
    const world = w;
    for (const id of CONTRIBUTORS) await world.register(id);
    const lines: string[] = [];
    const escrow = new EscrowLoop(await world.escrowEngine(), world.store, (line) => lines.push(line), 50);
    const projections = new ProjectionRunner({ store: world.store, projectors: ALL_PROJECTORS, batchSize: 200, pollIntervalMs: 50 });
    await projections.prepare();
    const escrowDone = escrow.start();
    const projectionsDone = projections.start();

    const verdictAt = new Map<string, number>();
    const paidAfterMs: number[] = [];
    const maxLag = new Map<string, number>();
    let appended = 0;
    const stopAt = performance.now() + LOAD_MS;
    // The sustained writer: fundings of another run (a busy coordinator's other work), one event per command, as fast as the store takes them.
    const other = (cmd: RunCommand) => handleCommand(world.store, runDecider, runStreamId(LOAD_RUN_ID), cmd, { newEventId: randomUUID });
    await other(command<RunCommand>('OpenRun', openRunData({ runId: LOAD_RUN_ID }), world.clock.nowMs));
    const writer = (async () => {
      for (let i = 0; performance.now() < stopAt; i += 1) {
        await other({ type: 'FundRun', data: { runId: LOAD_RUN_ID, fundingId: `load-${i}`, source: i % 3 === 0 ? 'subsidy' : 'customer', amountMsat: 1_000n }, metadata: { nowMs: world.clock.nowMs } } as RunCommand);
        appended += 1;
      }
    })();
    // The work: assignments submitted and accepted at a steady pace, each timed from its verdict to its base payment.
    const work = (async () => {
      for (let n = 0; performance.now() < stopAt; n += 1) {
        const who = CONTRIBUTORS[n % CONTRIBUTORS.length]!;
        const id = `load-a${n}`;
        await world.assign(id, who);
        // Training takes a while: the escrow is usually locked by the time the gradient arrives.
        await pause(50);
        await world.submit(id, who);
        await world.accept(id, 10_000n);
        verdictAt.set(id, performance.now());
        await pause(100);
      }
    })();
    /** The base reward went out: the escrow settled, or a compensation was sent. */
    const basePaid = async (id: string): Promise<boolean> => {
      if ((await world.streamTypes(`invoice-${world.escrowHash(id)}`)).includes('InvoiceSettled')) return true;
      const rows = await sql<{ payment_hash: string }>`SELECT payment_hash FROM lightning_contributor_invoices WHERE assignment_id = ${id} AND kind = 'compensation' AND payment_hash IS NOT NULL`.execute(world.db);
      for (const row of rows.rows) if ((await world.streamTypes(`invoice-${row.payment_hash}`)).includes('PaymentSent')) return true;
      return false;
    };
    const watch = async () => {
      for (const [id, atMs] of verdictAt) {
        if (!(await basePaid(id))) continue;
        paidAfterMs.push(performance.now() - atMs);
        verdictAt.delete(id);
      }
    };
    const sampler = (async () => {
      while (performance.now() < stopAt) {
        for (const lag of await projections.lag()) maxLag.set(lag.projector, Math.max(maxLag.get(lag.projector) ?? 0, lag.lagEvents));
        await watch();
        await pause(100);
      }
    })();
    await Promise.all([writer, work, sampler]);
    const accepted = paidAfterMs.length + verdictAt.size;
    for (let look = 0; look < DRAIN_LOOKS && verdictAt.size > 0; look += 1) {
      await watch();
      if (verdictAt.size > 0) await pause(50);
    }
    let caughtUp = false;
    for (let look = 0; look < DRAIN_LOOKS && !caughtUp; look += 1) {
      caughtUp = (await projections.lag()).every((lag) => lag.lagEvents === 0);
      if (!caughtUp) await pause(50);
    }
    await escrow.stop();
    await projections.stop();
    await Promise.all([escrowDone, projectionsDone]);

    const sorted = [...paidAfterMs].sort((a, b) => a - b);
    const figures = {
      engine,
      loadMs: LOAD_MS,
      fundingsAppended: appended,
      appendsPerSecond: Math.round((appended / LOAD_MS) * 1000),
      assignmentsPaid: paidAfterMs.length,
      verdictToPaymentMsP50: Math.round(percentile(sorted, 0.5)),
      verdictToPaymentMsP99: Math.round(percentile(sorted, 0.99)),
      maxProjectionLagEvents: Object.fromEntries(maxLag),
      command: `LOAD_MS=${LOAD_MS} npx vitest run test/lightning/escrow-load.int.spec.ts`,
    };
    process.stdout.write(`${JSON.stringify(figures)}\n`);
    expect(verdictAt.size, `assignments never paid: ${[...verdictAt.keys()].join(', ')}`).toBe(0);
    expect(paidAfterMs.length).toBe(accepted);
    expect(accepted).toBeGreaterThan(0);
    expect(caughtUp).toBe(true);
    // Every projector advanced while the load ran: none was starved to the end.
    for (const projector of ALL_PROJECTORS) expect(maxLag.has(projector.name)).toBe(true);
    expect((await world.runState()).reservedMsat).toBe(0n);
    expect(lines.filter((l) => l.includes('retrying'))).toEqual([]);
  });
});
