// The settlement an assignment's log implies, as a pure function of its events (its stream plus its invoice streams), and the findings it shows.
//
// deriveSettlement is the one way to re-derive a settlement from events: `trainledger audit`
// uses it for every assignment, and `trainledger replay <assignmentId>` and offline bundles
// may call it on the events they load. It folds each stream through the domain's own evolve
// and asks domain/reactions (impliedPayout, payoutLines) what is owed, so no rule is
// re-implemented here. It never throws for a log that breaks an invariant: it returns the
// failure as `unfoldable`, with the event it stopped on.

import { assignmentDecider, ASSIGNMENT_STREAM_PREFIX, type AssignmentEvent, type AssignmentState } from '../../domain/assignment/index.js';
import { fromWire } from '../../domain/codec.js';
import { INVOICE_STREAM_PREFIX, invoiceDecider, type InvoiceEvent, type InvoiceState, type PayoutKind } from '../../domain/invoice/index.js';
import { impliedPayout, type ImpliedPayout } from '../../domain/reactions/escrow.js';
import { payoutLines, type PayoutLine } from '../../domain/reactions/payouts.js';
import { evidenceOf, type Discrepancy, type EvidenceEvent } from './catalog.js';
import type { SettlementEvent } from './ports.js';

export type DerivedInvoice = Readonly<{ state: InvoiceState; events: readonly EvidenceEvent[] }>;

export type SettlementDerivation = Readonly<{
  assignmentId: string;
  assignment: AssignmentState;
  assignmentEvents: readonly EvidenceEvent[];
  /** The escrow hold invoice opened for this assignment, or null. */
  escrow: DerivedInvoice | null;
  /** Bonus and compensation invoices, in the order they were opened (global position). */
  attempts: Readonly<Record<PayoutKind, readonly DerivedInvoice[]>>;
  /** What the verdicts owe at `nowMs` (impliedPayout), and the payout lines (payoutLines). */
  implied: ImpliedPayout;
  lines: readonly PayoutLine[];
  /** Set when a stream did not fold: the event it stopped on and why; the rest is then partial. */
  unfoldable: Readonly<{ event: EvidenceEvent; reason: string }> | null;
}>;

type Fold<S> = { state: S; events: EvidenceEvent[]; firstPosition: bigint };

/**
 * Folds one assignment's events. `events` may arrive in any order and hold several streams:
 * each stream is folded in revision order. Events of invoice streams for other assignments
 * are ignored, so a caller may pass a superset.
 */
export function deriveSettlement(assignmentId: string, events: readonly SettlementEvent[], nowMs: number): SettlementDerivation {
  const byStream = new Map<string, SettlementEvent[]>();
  for (const event of events) {
    const list = byStream.get(event.streamId) ?? [];
    list.push(event);
    byStream.set(event.streamId, list);
  }
  let unfoldable: SettlementDerivation['unfoldable'] = null;
  const fail = (event: SettlementEvent, error: unknown) => {
    unfoldable ??= { event: evidenceOf(event), reason: error instanceof Error ? error.message : String(error) };
  };
  const assignmentFold = foldStream(byStream.get(`${ASSIGNMENT_STREAM_PREFIX}${assignmentId}`) ?? [], assignmentDecider.initialState(), (s, e) => assignmentDecider.evolve(s, e as AssignmentEvent), fail);
  const invoices: Fold<InvoiceState>[] = [];
  for (const [streamId, list] of byStream) {
    if (!streamId.startsWith(INVOICE_STREAM_PREFIX)) continue;
    const fold = foldStream(list, invoiceDecider.initialState(), (s, e) => invoiceDecider.evolve(s, e as InvoiceEvent), fail);
    if (fold.state.terms?.assignmentId === assignmentId) invoices.push(fold);
  }
  invoices.sort((a, b) => (a.firstPosition < b.firstPosition ? -1 : a.firstPosition > b.firstPosition ? 1 : 0));
  const derived = (f: Fold<InvoiceState>): DerivedInvoice => ({ state: f.state, events: f.events });
  const escrowFold = invoices.find((f) => f.state.terms?.kind === 'escrow') ?? null;
  const attempts = {
    bonus: invoices.filter((f) => f.state.terms?.kind === 'bonus').map(derived),
    compensation: invoices.filter((f) => f.state.terms?.kind === 'compensation').map(derived),
  };
  const assignment = assignmentFold.state;
  const inputs = { assignment, escrow: escrowFold?.state ?? null, attempts: { bonus: attempts.bonus.map((a) => a.state), compensation: attempts.compensation.map((a) => a.state) } };
  let lines: PayoutLine[] = [];
  try {
    lines = payoutLines(inputs, nowMs);
  } catch (error) {
    const last = [...byStream.values()].flat()[0];
    if (last) fail(last, error);
  }
  return {
    assignmentId,
    assignment,
    assignmentEvents: assignmentFold.events,
    escrow: escrowFold ? derived(escrowFold) : null,
    attempts,
    implied: impliedPayout(assignment, nowMs),
    lines,
    unfoldable,
  };
}

function foldStream<S>(events: SettlementEvent[], initial: S, evolve: (state: S, event: unknown) => S, fail: (event: SettlementEvent, error: unknown) => void): Fold<S> {
  events.sort((a, b) => a.revision - b.revision);
  let state = initial;
  const evidence: EvidenceEvent[] = [];
  for (const event of events) {
    evidence.push(evidenceOf(event));
    try {
      state = evolve(state, { type: event.type, data: fromWire(event.data) });
    } catch (error) {
      fail(event, error);
      break;
    }
  }
  return { state, events: evidence, firstPosition: events[0]?.position.globalPosition ?? 0n };
}

export type SettlementRules = Readonly<{
  nowMs: number;
  /** How long after the deadline (or the verdict, if later) a payout may still be under way before it counts as never settled. */
  settlementGraceMs: number;
}>;

/** The settlement findings of one derivation: money without a verdict, verdicts without money. */
export function settlementDiscrepancies(d: SettlementDerivation, rules: SettlementRules): Discrepancy[] {
  if (d.unfoldable !== null) {
    return [{ code: 'ASSIGNMENT_UNFOLDABLE', subject: d.assignmentId, explanation: `the events of assignment ${d.assignmentId} do not fold: ${d.unfoldable.reason}`, events: [d.unfoldable.event] }];
  }
  const terms = d.assignment.terms;
  if (terms === null) return [];
  const found: Discrepancy[] = [];
  const paidOut = [
    ...(d.escrow?.state.status === 'settled' ? [d.escrow] : []),
    ...d.attempts.compensation.filter((a) => a.state.status === 'sent'),
  ];
  if (d.implied.settlement !== 'pay' && paidOut.length > 0) {
    found.push({
      code: 'SETTLED_WITHOUT_ACCEPTED_VERDICT',
      subject: d.assignmentId,
      explanation: `assignment ${d.assignmentId} (${d.assignment.status}) was paid its base reward, but its verdicts imply '${d.implied.settlement}'`,
      events: [...d.assignmentEvents.slice(-1), ...paidOut.flatMap((a) => a.events.slice(-1))],
      details: { implied: d.implied.settlement, status: d.assignment.status },
    });
  }
  const bonusSent = d.attempts.bonus.filter((a) => a.state.status === 'sent');
  if (d.implied.bonusMsat === 0n && bonusSent.length > 0) {
    found.push({ code: 'SETTLED_WITHOUT_ACCEPTED_VERDICT', subject: d.assignmentId, explanation: `assignment ${d.assignmentId} was paid a bonus no acceptance granted`, events: bonusSent.flatMap((a) => a.events.slice(-1)) });
  }
  const verdictAtMs = d.assignment.resolution?.resolvedAtMs ?? d.assignment.acceptance?.acceptedAtMs ?? terms.deadlineMs;
  const dueByMs = Math.max(terms.deadlineMs, verdictAtMs) + rules.settlementGraceMs;
  if (rules.nowMs > dueByMs) {
    const unpaid = d.lines.filter((line) => line.state !== 'paid' && line.state !== 'abandoned');
    const overturned = d.assignment.resolution?.resolution === 'overturned';
    for (const line of unpaid) {
      const code = overturned && line.kind !== 'bonus' ? 'OVERTURNED_NEVER_COMPENSATED' : 'ACCEPTED_NEVER_SETTLED';
      found.push({
        code,
        subject: d.assignmentId,
        explanation: `assignment ${d.assignmentId}: its ${line.kind} payout of ${line.amountMsat} msat is '${line.state}' ${rules.nowMs - dueByMs} ms past its due time (${line.reason ?? 'no reason logged'})`,
        events: [...d.assignmentEvents.slice(-1), ...(d.escrow?.events.slice(-1) ?? [])],
        details: { kind: line.kind, amountMsat: line.amountMsat.toString(), state: line.state, dueByMs },
      });
    }
  }
  return found;
}
