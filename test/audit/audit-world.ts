// The money-path world with an audit: projections caught up, then the real audit over the real log and the real dev node.

import { handleCommand } from '../../adapters/commands/command-handler.js';
import { auditOptions } from '../../adapters/audit/audit-deps.js';
import { invoiceDecider, invoiceStreamId, type InvoiceCommand } from '../../domain/invoice/index.js';
import { ALL_PROJECTORS } from '../../projections/index.js';
import { ProjectionRunner } from '../../projections/runner.js';
import type { DiscrepancyCode } from '../../replay/audit/catalog.js';
import { runAudit, type AuditReport, type ReplayChoice } from '../../replay/audit/run-audit.js';
import type { RecipeReplayer } from '../../replay/audit/ports.js';
import { moneyWorld, type MoneyEngine } from '../lightning/money-world.js';

export type AuditWorld = Awaited<ReturnType<typeof auditWorld>>;

export async function auditWorld(engine: MoneyEngine, options: Parameters<typeof moneyWorld>[1] = {}) {
  const w = await moneyWorld(engine, options);
  const runner = new ProjectionRunner({ store: w.store, projectors: ALL_PROJECTORS });
  await runner.prepare();

  /** Catches the projections up (as the running system would), then audits at the world's clock (or `atMs`). */
  async function audit(opts: { atMs?: number; graceMs?: number; node?: boolean; replay?: ReplayChoice; replayer?: RecipeReplayer } = {}): Promise<AuditReport> {
    // A projector that refuses an event stops, as in the running system; the audit must still run.
    await runner.catchUp().catch(() => {});
    const nowMs = () => opts.atMs ?? w.clock.nowMs;
    const node = opts.node === false ? null : w.network.coordinator();
    return runAudit(auditOptions(w.store, node, opts.replayer, nowMs, { settlementGraceMs: opts.graceMs ?? 60_000, ...(opts.replay ? { replay: opts.replay } : {}) }));
  }

  /** Appends an invoice command's events through the real decider and store (what a buggy or forged writer could do). */
  const invoice = (paymentHash: string, cmd: InvoiceCommand) =>
    handleCommand(w.store, invoiceDecider, invoiceStreamId(paymentHash), { ...cmd, metadata: { nowMs: w.clock.nowMs } } as InvoiceCommand, { newEventId: () => crypto.randomUUID() });

  return { ...w, audit, invoice };
}

/** The codes a report found, each with its count, zeros left out: what a test compares. */
/** A small settled history: two assignments, one paid through escrow and bonus (the world's options add to bob's dev answers). */
export async function settledAuditWorld(engine: MoneyEngine, options: Parameters<typeof moneyWorld>[1] = {}): Promise<AuditWorld> {
  const world = await auditWorld(engine, { devAnswers: ['bob'], ...options });
  await world.register('bob');
  await world.assign('a-1', 'bob');
  await world.assign('a-2', 'bob');
  const escrow = await world.escrowEngine();
  await escrow.runUntilQuiet();
  await world.submit('a-1', 'bob');
  await world.accept('a-1', 50_000n);
  await escrow.runUntilQuiet();
  await escrow.close();
  return world;
}

export function foundCodes(report: AuditReport): Partial<Record<DiscrepancyCode, number>> {
  return Object.fromEntries(Object.entries(report.counts).filter(([, n]) => n > 0));
}
