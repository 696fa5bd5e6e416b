// A system model for property tests: one assignment, its escrow, payout invoices, a process manager using domain/reactions, and a random world.

import fc from 'fast-check';
import { type AssignmentCommand, assignmentDecider, type AssignmentEvent, type AssignmentState } from '../../domain/assignment/index.js';
import {
  budgetRelease,
  type BudgetRelease,
  DomainError,
  type EscrowReactionContext,
  impliedSettlement,
  payoutActions,
  type PayoutInputs,
  type PayoutLine,
  payoutLines,
  reactToAssignmentEvent,
  reactToEscrowEvent,
} from '../../domain/index.js';
import { type InvoiceCommand, invoiceDecider, type InvoiceEvent, type InvoiceState, type InvoiceTerms } from '../../domain/invoice/index.js';
import { assignmentCommands as c, assignWorkData, ESCROW_HASH, ESCROW_PREIMAGE, hex64, openInvoiceData, paymentHashOf, T0 } from './fixtures.js';

export type ModelAction =
  | { kind: 'submit' | 'reject' | 'dispute' | 'requestReplay' | 'expireAssignment' | 'finalize' }
  | { kind: 'accept'; bonusMsat: bigint }
  | { kind: 'verdict'; outcome: 'match' | 'mismatch' }
  | { kind: 'resolve'; agree: boolean }
  | { kind: 'openEscrow' | 'nodeHold' | 'nodeExpire' | 'contributorCancel' | 'ignoreCancel' | 'deliver' }
  | { kind: 'payoutFail' | 'payoutSend' | 'payoutAbandon'; index: number };

export type ModelConfig = Readonly<{
  deadlineOffsetMs: number;
  disputeWindowMs: number;
  escrowLifetimeMs: number;
  /**
   * 'held': the design's normal flow, the HTLC is locked before work starts; 'open': the coordinator's
   * payment is still on its way; 'late': the hold invoice arrives later (openEscrow), maybe after the verdict.
   */
  escrowAtStart: 'held' | 'open' | 'late';
  /** How the drain ends an escrow still open: the HTLC arrives (hold) or the invoice times out (expire). */
  drainHolds: boolean;
  /** A contributor who may dispute keeps the HTLC held: their node declines cancel requests until the reward is forfeit. */
  declinesCancels: boolean;
}>;

export type ModelStep = Readonly<{ dtMs: number; action: ModelAction }>;
export type ModelScenario = Readonly<{ config: ModelConfig; steps: readonly ModelStep[] }>;

const BASE_REWARD_MSAT = 1_000_000n;

type Stream<S, E> = { state: S; events: E[] };

/** The world: streams, the process manager's outbox (FIFO, delivered with delay) and a clock. */
export class EscrowModel {
  nowMs = T0;
  readonly assignment: Stream<AssignmentState, AssignmentEvent> = { state: assignmentDecider.initialState(), events: [] };
  readonly invoices = new Map<string, Stream<InvoiceState, InvoiceEvent>>();
  readonly outbox: InvoiceCommand[] = [];
  readonly preimages = new Map<string, string>([[ESCROW_HASH, ESCROW_PREIMAGE]]);
  readonly refusals = new Map<string, number>();
  /** Every event in global order, for the codec property. */
  readonly log: (AssignmentEvent | InvoiceEvent)[] = [];
  /** Log positions (indices) of the escrow's InvoiceOpened and of the verdict that made the assignment pay: order comes from the log. */
  private escrowOpenedAt: number | null = null;
  private payingVerdictAt: number | null = null;
  /** Payout invoices per kind in attempt order (their payment hashes). */
  private readonly attemptHashes: Record<'bonus' | 'compensation', string[]> = { bonus: [], compensation: [] };

  constructor(readonly config: ModelConfig) {
    this.assign(c.assign(T0, assignWorkData({ baseRewardMsat: BASE_REWARD_MSAT, deadlineMs: T0 + config.deadlineOffsetMs, disputeWindowMs: config.disputeWindowMs })));
    if (config.escrowAtStart !== 'late') this.openEscrow();
    if (config.escrowAtStart === 'held') this.node('MarkInvoiceHeld');
  }

  /** Deterministic per (assignment, kind), as reactions require; the preimage is kept for the payout worker. */
  private readonly ctx = (): EscrowReactionContext => ({
    nowMs: this.nowMs,
    escrowPreimageHex: () => ESCROW_PREIMAGE,
    payoutInvoice: ({ assignmentId, kind, attempt }) => {
      const preimageHex = hex64(`${assignmentId}:${kind}:${attempt}:preimage`);
      const paymentHash = paymentHashOf(preimageHex);
      this.preimages.set(paymentHash, preimageHex);
      return { paymentHash, bolt11: `lnbcrt1${kind}`, expiresAtMs: T0 + 10 * 86_400_000 };
    },
  });

  private inputs(): PayoutInputs {
    return { assignment: this.assignment.state, escrow: this.escrow, attempts: { bonus: this.attemptsOf('bonus'), compensation: this.attemptsOf('compensation') } };
  }

  lines(): PayoutLine[] {
    return payoutLines(this.inputs(), this.nowMs);
  }

  release(): BudgetRelease | null {
    return budgetRelease(this.inputs(), Number.MAX_SAFE_INTEGER);
  }

  private attemptsOf(kind: 'bonus' | 'compensation'): InvoiceState[] {
    return this.attemptHashes[kind].flatMap((hash) => {
      const state = this.invoices.get(hash)?.state;
      return state === undefined ? [] : [state];
    });
  }

  /** The process manager's level-triggered half: after every event, the payout lines ask for what they need. */
  private settlePayouts(): void {
    const { open, exhausted } = payoutActions(this.inputs(), this.ctx());
    this.outbox.push(...open);
    for (const kind of exhausted) this.assign({ type: 'AbandonPayout', data: { assignmentId: 'asg-1', kind, code: 'PAYOUT_ATTEMPTS_EXHAUSTED', message: 'every invoice failed' }, metadata: { nowMs: this.nowMs } });
  }

  get escrow(): InvoiceState | null {
    return this.invoices.get(ESCROW_HASH)?.state ?? null;
  }

  private count(error: unknown): void {
    if (!(error instanceof DomainError)) throw error;
    this.refusals.set(error.code, (this.refusals.get(error.code) ?? 0) + 1);
  }

  assign(command: AssignmentCommand): void {
    try {
      for (const event of assignmentDecider.decide(command, this.assignment.state)) {
        this.assignment.state = assignmentDecider.evolve(this.assignment.state, event);
        this.assignment.events.push(event);
        this.log.push(event);
        if (this.payingVerdictAt === null && impliedSettlement(this.assignment.state) === 'pay') this.payingVerdictAt = this.log.length - 1;
        this.outbox.push(...reactToAssignmentEvent(event, this.assignment.state, this.escrow, this.ctx()));
      }
    } catch (error) {
      this.count(error);
    }
    this.settlePayouts();
  }

  invoice(command: InvoiceCommand): void {
    const hash = command.data.paymentHash;
    const stream = this.invoices.get(hash) ?? { state: invoiceDecider.initialState(), events: [] };
    try {
      for (const event of invoiceDecider.decide(command, stream.state)) {
        stream.state = invoiceDecider.evolve(stream.state, event);
        stream.events.push(event);
        this.invoices.set(hash, stream);
        this.log.push(event);
        if (event.type === 'InvoiceOpened' && event.data.kind !== 'escrow') this.attemptHashes[event.data.kind].push(hash);
        if (event.type === 'InvoiceOpened' && hash === ESCROW_HASH) this.escrowOpenedAt = this.log.length - 1;
        const openedBefore = this.escrowOpenedAt !== null && this.payingVerdictAt !== null && this.escrowOpenedAt < this.payingVerdictAt;
        if (hash === ESCROW_HASH) this.outbox.push(...reactToEscrowEvent(event, stream.state, this.assignment.state, openedBefore, this.ctx()));
      }
    } catch (error) {
      this.count(error);
    }
    this.settlePayouts();
  }

  openEscrow(): void {
    const data = openInvoiceData({ amountMsat: BASE_REWARD_MSAT, expiresAtMs: this.nowMs + this.config.escrowLifetimeMs });
    this.invoice({ type: 'OpenInvoice', data, metadata: { nowMs: this.nowMs } });
  }

  /**
   * Delivers the oldest queued command, as it was issued (its own metadata). Intents are logged
   * first; then the dispatcher's side effect happens and its outcome is logged: the contributor
   * settles a released preimage at once, and cancels on request unless they decline.
   */
  deliver(): void {
    const next = this.outbox.shift();
    if (next === undefined) return;
    this.invoice(next);
    const metadata = { nowMs: this.nowMs };
    const escrow = this.escrow;
    if (next.type === 'RequestEscrowRelease' && escrow?.status === 'releasing') {
      this.invoice({ type: 'SettleInvoice', data: { paymentHash: ESCROW_HASH, preimageHex: next.data.preimageHex }, metadata });
    }
    if (next.type === 'RequestEscrowCancel' && escrow?.status === 'canceling' && !this.declinesNow()) {
      this.invoice({ type: 'CancelInvoice', data: { paymentHash: ESCROW_HASH, reason: next.data.reason }, metadata });
    }
  }

  /** Until the verdicts forfeit the reward, such a contributor's node has every reason to keep the HTLC. */
  private declinesNow(): boolean {
    return this.config.declinesCancels && impliedSettlement(this.assignment.state) !== 'forfeit';
  }

  /**
   * Only the contributor's node can cancel its hold invoice; a contributor who means to dispute
   * may never see (or ignore) the coordinator's request, leaving the HTLC held until it times out.
   */
  ignoreCancel(): void {
    if (this.outbox[0]?.type === 'RequestEscrowCancel') this.outbox.shift();
  }

  payouts(): Stream<InvoiceState, InvoiceEvent>[] {
    return [...this.invoices.values()].filter((stream) => stream.state.terms?.kind !== 'escrow');
  }

  node(type: 'MarkInvoiceHeld' | 'ExpireInvoice'): void {
    this.invoice({ type, data: { paymentHash: ESCROW_HASH }, metadata: { nowMs: this.nowMs } });
  }

  private pendingPayouts(): InvoiceTerms[] {
    return this.payouts()
      .filter((stream) => stream.state.status === 'open' || stream.state.status === 'failed')
      .flatMap((stream) => (stream.state.terms === null ? [] : [stream.state.terms]));
  }

  /** The payout worker reports on one pending payout, picked by index (abandoning it: expired unpaid). */
  payout(kind: 'payoutFail' | 'payoutSend' | 'payoutAbandon', index: number): void {
    const pending = this.pendingPayouts();
    const target = pending[index % Math.max(pending.length, 1)];
    if (target !== undefined) this.reportPayout(kind, target.paymentHash);
  }

  private reportPayout(kind: 'payoutFail' | 'payoutSend' | 'payoutAbandon', paymentHash: string): void {
    const metadata = { nowMs: this.nowMs };
    if (kind === 'payoutAbandon') this.invoice({ type: 'AbandonPayment', data: { paymentHash, code: 'INVOICE_EXPIRED', message: 'expired unpaid' }, metadata });
    else if (kind === 'payoutFail') this.invoice({ type: 'RecordPaymentFailed', data: { paymentHash, failureCode: 'NO_ROUTE' }, metadata });
    else this.invoice({ type: 'RecordPaymentSent', data: { paymentHash, feeMsat: 3n, preimageHex: this.preimages.get(paymentHash) ?? '' }, metadata });
  }

  apply(action: ModelAction): void {
    const now = this.nowMs;
    switch (action.kind) {
      case 'submit': return this.assign(c.submit(now));
      case 'accept': return this.assign(c.accept(now, action.bonusMsat));
      case 'reject': return this.assign(c.reject(now));
      case 'dispute': return this.assign(c.dispute(now));
      case 'requestReplay': return this.assign(c.requestReplay(now));
      case 'verdict': return this.assign(c.verdict(action.outcome, now));
      case 'resolve': {
        const outcome = this.assignment.state.verdict?.outcome;
        const agreeing = outcome === 'mismatch' ? 'upheld' : 'overturned';
        return this.assign(c.resolve(action.agree ? agreeing : agreeing === 'upheld' ? 'overturned' : 'upheld', now));
      }
      case 'expireAssignment': return this.assign(c.expire(now));
      case 'finalize': return this.assign(c.finalize(now));
      case 'openEscrow': return this.config.escrowAtStart === 'late' ? this.openEscrow() : undefined;
      case 'nodeHold': return this.node('MarkInvoiceHeld');
      case 'nodeExpire': return this.node('ExpireInvoice');
      case 'contributorCancel':
        // A contributor who keeps the HTLC for a dispute does not cancel it of their own accord either.
        if (this.config.declinesCancels) return undefined;
        return this.invoice({ type: 'CancelInvoice', data: { paymentHash: ESCROW_HASH, reason: 'contributor canceled the hold invoice' }, metadata: { nowMs: now } });
      case 'ignoreCancel': return this.ignoreCancel();
      case 'deliver': return this.deliver();
      case 'payoutFail':
      case 'payoutSend':
      case 'payoutAbandon': return this.payout(action.kind, action.index);
    }
  }

  /**
   * Lets the world settle down: deliver everything, end an open escrow (the HTLC arrives or the
   * invoice times out), time out a held escrow nobody will settle (its CLTV limit), and complete
   * every payout.
   */
  drain(): void {
    // As the settler does once a rejection's window has closed undisputed.
    const rejection = this.assignment.state.status === 'rejected' ? this.assignment.state.rejection : null;
    if (rejection) {
      this.nowMs = Math.max(this.nowMs, rejection.disputeDeadlineMs + 1);
      this.assign(c.finalize(this.nowMs));
    }
    for (let round = 0; round < 20; round += 1) {
      while (this.outbox.length > 0) this.deliver();
      const escrow = this.escrow;
      const holdNow = escrow?.status === 'open' && this.config.drainHolds;
      if (holdNow) this.node('MarkInvoiceHeld');
      const unfinished = escrow !== null && ['open', 'held', 'releasing', 'canceling'].includes(escrow.status);
      if (!holdNow && unfinished) {
        this.nowMs = Math.max(this.nowMs, escrow.terms?.expiresAtMs ?? this.nowMs);
        this.node('ExpireInvoice');
      }
      const payouts = this.pendingPayouts();
      for (const terms of payouts) this.reportPayout('payoutSend', terms.paymentHash);
      const progressed = holdNow || unfinished || payouts.length > 0;
      if (!progressed && this.outbox.length === 0) return;
    }
    throw new Error('the model did not quiesce within 20 drain rounds');
  }

  /** Base-reward payments so far: escrow settlements plus compensation payouts sent. */
  basePayments(): number {
    const settled = this.invoices.get(ESCROW_HASH)?.events.filter((event) => event.type === 'InvoiceSettled').length ?? 0;
    const compensations = this.payouts()
      .flatMap((stream) => stream.events)
      .filter((event) => event.type === 'PaymentSent' && event.data.kind === 'compensation').length;
    return settled + compensations;
  }

  bonusPayments(): number {
    return this.payouts()
      .flatMap((stream) => stream.events)
      .filter((event) => event.type === 'PaymentSent' && event.data.kind === 'bonus').length;
  }

  compensationInvoices(): number {
    return this.payouts().filter((stream) => stream.state.terms?.kind === 'compensation').length;
  }
}

/** Noise: any action at all, including out-of-order assignment commands, plus markers where the plan's next step goes. */
const noiseArb: fc.Arbitrary<ModelAction | { kind: 'plan' }> = fc.oneof(
  { weight: 8, arbitrary: fc.constant({ kind: 'plan' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'submit' as const }) },
  { weight: 1, arbitrary: fc.constantFrom(0n, 250_000n).map((bonusMsat) => ({ kind: 'accept' as const, bonusMsat })) },
  { weight: 1, arbitrary: fc.constant({ kind: 'reject' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'dispute' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'requestReplay' as const }) },
  { weight: 1, arbitrary: fc.constantFrom('match' as const, 'mismatch' as const).map((outcome) => ({ kind: 'verdict' as const, outcome })) },
  { weight: 1, arbitrary: fc.boolean().map((agree) => ({ kind: 'resolve' as const, agree })) },
  { weight: 1, arbitrary: fc.constant({ kind: 'expireAssignment' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'finalize' as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'openEscrow' as const }) },
  { weight: 4, arbitrary: fc.constant({ kind: 'nodeHold' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'nodeExpire' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'contributorCancel' as const }) },
  { weight: 3, arbitrary: fc.constant({ kind: 'ignoreCancel' as const }) },
  { weight: 6, arbitrary: fc.constant({ kind: 'deliver' as const }) },
  { weight: 1, arbitrary: fc.nat(3).map((index) => ({ kind: 'payoutFail' as const, index })) },
  { weight: 1, arbitrary: fc.nat(3).map((index) => ({ kind: 'payoutSend' as const, index })) },
  { weight: 1, arbitrary: fc.nat(3).map((index) => ({ kind: 'payoutAbandon' as const, index })) },
);

export const PLANS = ['accept', 'overturn', 'uphold', 'expire', 'free'] as const;
export type Plan = (typeof PLANS)[number];

/** The assignment commands each plan drives towards; noise is interleaved, so a plan may still go astray. */
function planSteps(plan: Plan, bonusMsat: bigint): ModelStep[] {
  const dispute: ModelAction[] = [{ kind: 'submit' }, { kind: 'reject' }, { kind: 'dispute' }, { kind: 'requestReplay' }];
  const actions: Record<Plan, ModelAction[]> = {
    accept: [{ kind: 'submit' }, { kind: 'accept', bonusMsat }],
    overturn: [...dispute, { kind: 'verdict', outcome: 'match' }, { kind: 'resolve', agree: true }],
    uphold: [...dispute, { kind: 'verdict', outcome: 'mismatch' }, { kind: 'resolve', agree: true }],
    expire: [{ kind: 'expireAssignment' }],
    free: [],
  };
  // Expiry needs the clock past the deadline (at most 20 s after the start).
  return actions[plan].map((action) => ({ dtMs: action.kind === 'expireAssignment' ? 30_000 : 0, action }));
}

const modelDtArb = fc.oneof({ weight: 12, arbitrary: fc.integer({ min: 0, max: 400 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 30_000 }) });

export const scenarioArb: fc.Arbitrary<ModelScenario & { plan: Plan }> = fc
  .record({
    config: fc.record({
      deadlineOffsetMs: fc.integer({ min: 500, max: 20_000 }),
      disputeWindowMs: fc.integer({ min: 500, max: 20_000 }),
      escrowLifetimeMs: fc.oneof(fc.integer({ min: 1, max: 5_000 }), fc.integer({ min: 5_000, max: 100_000 })),
      escrowAtStart: fc.constantFrom('held' as const, 'held' as const, 'open' as const, 'late' as const),
      drainHolds: fc.boolean(),
      declinesCancels: fc.boolean(),
    }),
    plan: fc.constantFrom(...PLANS),
    bonusMsat: fc.constantFrom(0n, 250_000n),
    noise: fc.array(fc.record({ dtMs: modelDtArb, action: noiseArb }), { maxLength: 60, size: 'max' }),
  })
  .map(({ config, plan, bonusMsat, noise }) => {
    const planned = planSteps(plan, bonusMsat);
    const steps: ModelStep[] = [];
    for (const { dtMs, action } of noise) {
      const next = action.kind === 'plan' ? planned.shift() : { dtMs, action };
      if (next !== undefined) steps.push({ action: next.action, dtMs: Math.max(dtMs, next.dtMs) });
    }
    return { config, plan, steps: [...steps, ...planned] };
  });
