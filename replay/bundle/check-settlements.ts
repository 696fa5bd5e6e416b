// Re-derives, with the domain's own deciders and payout rules, what each assignment should have settled, cancelled and paid, and compares with the invoice and budget events.

import { assignmentDecider, type AssignmentState } from '../../domain/assignment/index.js';
import { decodeEvent } from '../../domain/codec.js';
import { invoiceDecider, type InvoiceState, type PayoutKind } from '../../domain/invoice/index.js';
import type { RecordedEvent } from '../../domain/ports/event-store.js';
import { impliedPayout } from '../../domain/reactions/escrow.js';
import { budgetRelease, payoutLines, type PayoutInputs } from '../../domain/reactions/payouts.js';
import type { RunEvent } from '../../domain/run/index.js';

export type SettlementFinding = Readonly<{
  code: 'SETTLEMENT_MISMATCH' | 'BUDGET_RELEASE_MISMATCH' | 'EVENT_INVALID' | 'INVOICE_WITHOUT_ASSIGNMENT';
  message: string;
  assignmentId?: string;
  streamId?: string;
  revision?: number;
}>;

export type AssignmentSettlement = Readonly<{
  assignmentId: string;
  status: string;
  settlement: 'pay' | 'forfeit' | 'pending';
  baseRewardMsat: bigint;
  bonusMsat: bigint;
  /** What left for this assignment according to the invoice events: amounts plus fees. */
  paidMsat: bigint;
  /** Payout lines the rules still see as unfinished (due, in flight, invoice needed): not wrong, just not done at export. */
  unfinished: readonly string[];
}>;

export type SettlementAudit = Readonly<{ assignments: AssignmentSettlement[]; findings: SettlementFinding[] }>;

/** A stream folded with its decider; an event the decider refuses is a finding at that stream and revision. */
function fold<S, E extends { type: string }>(decider: { evolve: (s: S, e: E) => S; initialState: () => S }, stream: readonly RecordedEvent[], findings: SettlementFinding[]): S | null {
  let state = decider.initialState();
  for (const recorded of stream) {
    try {
      state = decider.evolve(state, decodeEvent<E & { data: object }>(recorded));
    } catch (error) {
      findings.push({ code: 'EVENT_INVALID', streamId: recorded.streamId, revision: recorded.revision, message: `${recorded.type} does not fold: ${error instanceof Error ? error.message : String(error)}` });
      return null;
    }
  }
  return state;
}

export function checkSettlements(streams: ReadonlyMap<string, readonly RecordedEvent[]>): SettlementAudit {
  const findings: SettlementFinding[] = [];
  const assignments = new Map<string, AssignmentState>();
  const invoices = new Map<string, { state: InvoiceState; firstIndex: number }[]>();
  const releases = new Map<string, RecordedEvent[]>();
  let order = 0;
  for (const [streamId, stream] of streams) {
    if (streamId.startsWith('assignment-')) {
      const state = fold(assignmentDecider as never, stream, findings) as AssignmentState | null;
      if (state?.terms) assignments.set(state.terms.assignmentId, state);
    } else if (streamId.startsWith('invoice-')) {
      const state = fold(invoiceDecider as never, stream, findings) as InvoiceState | null;
      if (state?.terms) {
        const list = invoices.get(state.terms.assignmentId) ?? [];
        list.push({ state, firstIndex: order++ });
        invoices.set(state.terms.assignmentId, list);
      }
    } else if (streamId.startsWith('run-')) {
      for (const recorded of stream) {
        const event = decodeEvent<RunEvent>(recorded);
        if (event.type === 'BudgetReleased') releases.set(event.data.assignmentId, [...(releases.get(event.data.assignmentId) ?? []), recorded]);
      }
    }
  }
  for (const assignmentId of invoices.keys()) {
    if (!assignments.has(assignmentId)) findings.push({ code: 'INVOICE_WITHOUT_ASSIGNMENT', assignmentId, message: `invoices name assignment ${assignmentId}, which the bundle does not hold` });
  }
  const results: AssignmentSettlement[] = [];
  for (const [assignmentId, assignment] of assignments) {
    const mine = (invoices.get(assignmentId) ?? []).map((i) => i.state);
    results.push(checkOne(assignmentId, assignment, mine, releases.get(assignmentId) ?? [], findings));
  }
  return { assignments: results, findings };
}

function checkOne(assignmentId: string, assignment: AssignmentState, invoices: readonly InvoiceState[], releases: readonly RecordedEvent[], findings: SettlementFinding[]): AssignmentSettlement {
  const mismatch = (message: string) => findings.push({ code: 'SETTLEMENT_MISMATCH', assignmentId, message: `assignment ${assignmentId}: ${message}` });
  const escrows = invoices.filter((i) => i.terms!.kind === 'escrow');
  const attempts = (kind: PayoutKind) => invoices.filter((i) => i.terms!.kind === kind);
  const inputs: PayoutInputs = { assignment, escrow: escrows[escrows.length - 1] ?? null, attempts: { bonus: attempts('bonus'), compensation: attempts('compensation') } };
  const implied = impliedPayout(assignment);
  const settledEscrows = escrows.filter((e) => e.status === 'settled');
  const sent = (kind: PayoutKind) => attempts(kind).filter((i) => i.status === 'sent');
  const basePayments = settledEscrows.length + sent('compensation').length;
  if (implied.settlement === 'pay') {
    if (basePayments > 1) mismatch(`the base reward was paid ${basePayments} times (escrow settled ${settledEscrows.length}, compensation sent ${sent('compensation').length})`);
  } else if (basePayments > 0) {
    mismatch(`the verdicts imply ${implied.settlement} (status ${assignment.status}), yet the base reward was paid (escrow settled ${settledEscrows.length}, compensation sent ${sent('compensation').length})`);
  }
  for (const paid of [...settledEscrows, ...sent('compensation')]) {
    if (paid.terms!.amountMsat !== implied.baseRewardMsat) mismatch(`${paid.terms!.kind} ${paid.terms!.paymentHash} paid ${paid.terms!.amountMsat} msat, the terms owe a base of ${implied.baseRewardMsat} msat`);
  }
  const bonuses = sent('bonus');
  if (bonuses.length > 1) mismatch(`the bonus was paid ${bonuses.length} times`);
  for (const bonus of bonuses) {
    if (bonus.terms!.amountMsat !== implied.bonusMsat) mismatch(`bonus ${bonus.terms!.paymentHash} paid ${bonus.terms!.amountMsat} msat, the acceptance grants ${implied.bonusMsat} msat`);
  }
  let lines: ReturnType<typeof payoutLines> = [];
  try {
    lines = payoutLines(inputs);
  } catch (error) {
    mismatch(error instanceof Error ? error.message : String(error));
  }
  checkRelease(assignmentId, inputs, releases, findings);
  let paidMsat = 0n;
  for (const invoice of [...settledEscrows, ...sent('bonus'), ...sent('compensation')]) paidMsat += invoice.terms!.amountMsat + (invoice.feeMsat ?? 0n);
  return {
    assignmentId,
    status: assignment.status,
    settlement: implied.settlement,
    baseRewardMsat: implied.baseRewardMsat,
    bonusMsat: implied.bonusMsat,
    paidMsat,
    unfinished: lines.filter((l) => l.state !== 'paid' && l.state !== 'abandoned').map((l) => `${l.kind} ${l.state}`),
  };
}

/** A reservation is released once, only when no money can still move, and what it says was spent is what the invoices paid. */
function checkRelease(assignmentId: string, inputs: PayoutInputs, releases: readonly RecordedEvent[], findings: SettlementFinding[]): void {
  if (releases.length === 0) return;
  const at = (r: RecordedEvent) => ({ assignmentId, streamId: r.streamId, revision: r.revision });
  if (releases.length > 1) findings.push({ code: 'BUDGET_RELEASE_MISMATCH', ...at(releases[1]!), message: `assignment ${assignmentId}'s reservation was released ${releases.length} times` });
  const release = decodeEvent<RunEvent>(releases[0]!);
  if (release.type !== 'BudgetReleased') return;
  let derived: ReturnType<typeof budgetRelease> = null;
  try {
    derived = budgetRelease(inputs, Number.MAX_SAFE_INTEGER);
  } catch {
    derived = null;
  }
  if (derived === null) {
    findings.push({ code: 'BUDGET_RELEASE_MISMATCH', ...at(releases[0]!), message: `assignment ${assignmentId}'s reservation was released while the rules say money could still move` });
  } else if (derived.spentMsat !== release.data.spentMsat) {
    findings.push({ code: 'BUDGET_RELEASE_MISMATCH', ...at(releases[0]!), message: `assignment ${assignmentId}: BudgetReleased says ${release.data.spentMsat} msat spent, the invoices paid ${derived.spentMsat} msat` });
  }
}
