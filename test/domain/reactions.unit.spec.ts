// Unit tests for the escrow reactions: which invoice commands follow each assignment and escrow event, and what verdicts imply.

import { describe, expect, it } from 'vitest';
import { type AssignmentCommand, assignmentDecider, type AssignmentState } from '../../domain/assignment/index.js';
import {
  type EscrowReactionContext,
  impliedPayout,
  impliedSettlement,
  reactToAssignmentEvent,
  reactToEscrowEvent,
} from '../../domain/index.js';
import { type InvoiceCommand, invoiceDecider, type InvoiceState } from '../../domain/invoice/index.js';
import {
  assignmentCommands as c,
  command,
  DISPUTE_WINDOW_MS,
  ESCROW_HASH,
  ESCROW_PREIMAGE,
  given,
  hex64,
  INVOICE_EXPIRES_AT_MS,
  openInvoiceData,
  T0,
} from './fixtures.js';

const NOW = T0 + 100_000;
const ctx: EscrowReactionContext = {
  nowMs: NOW,
  escrowPreimageHex: () => ESCROW_PREIMAGE,
  payoutInvoice: ({ assignmentId, kind }) => ({ paymentHash: hex64(`${assignmentId}:${kind}`), bolt11: `lnbcrt1${kind}`, expiresAtMs: NOW + 3_600_000 }),
};

function assignmentAfter(commands: AssignmentCommand[]) {
  const { state, events } = given(assignmentDecider, commands);
  const event = events.at(-1);
  if (event === undefined) throw new Error('no events');
  return { state, event };
}

const escrowCmds: Record<string, InvoiceCommand[]> = {
  open: [command('OpenInvoice', openInvoiceData(), T0)],
  held: [command('OpenInvoice', openInvoiceData(), T0), command('MarkInvoiceHeld', { paymentHash: ESCROW_HASH }, T0 + 1)],
  canceled: [command('OpenInvoice', openInvoiceData(), T0), command('CancelInvoice', { paymentHash: ESCROW_HASH, reason: 'contributor canceled' }, T0 + 1)],
  expired: [command('OpenInvoice', openInvoiceData(), T0), command('ExpireInvoice', { paymentHash: ESCROW_HASH }, INVOICE_EXPIRES_AT_MS)],
  settled: [command('OpenInvoice', openInvoiceData(), T0), command('MarkInvoiceHeld', { paymentHash: ESCROW_HASH }, T0 + 1), command('SettleInvoice', { paymentHash: ESCROW_HASH, preimageHex: ESCROW_PREIMAGE }, T0 + 2)],
};
const escrow = (status: keyof typeof escrowCmds): InvoiceState => given(invoiceDecider, escrowCmds[status] ?? []).state;

const settleCmd = { type: 'RequestEscrowRelease', data: { paymentHash: ESCROW_HASH, preimageHex: ESCROW_PREIMAGE }, metadata: { nowMs: NOW } };
const compensation = expect.objectContaining({ type: 'OpenInvoice', data: expect.objectContaining({ kind: 'compensation', amountMsat: 1_000_000n, paymentHash: hex64('asg-1:compensation'), cltvExpiryHeight: null }) });
const bonus = expect.objectContaining({ type: 'OpenInvoice', data: expect.objectContaining({ kind: 'bonus', amountMsat: 250_000n }) });
const cancelCmd = expect.objectContaining({ type: 'RequestEscrowCancel', data: expect.objectContaining({ paymentHash: ESCROW_HASH }) });

const accepted = (bonusMsat = 250_000n) => assignmentAfter([c.assign(), c.submit(), c.accept(T0 + 2000, bonusMsat)]);
const rejected = () => assignmentAfter([c.assign(), c.submit(), c.reject()]);
const resolved = (outcome: 'match' | 'mismatch') =>
  assignmentAfter([c.assign(), c.submit(), c.reject(), c.dispute(), c.requestReplay(), c.verdict(outcome), c.resolve(outcome === 'match' ? 'overturned' : 'upheld')]);

describe('impliedSettlement and impliedPayout', () => {
  const at = (commands: AssignmentCommand[]): AssignmentState => given(assignmentDecider, commands).state;
  it('pays accepted work and overturned rejections, forfeits upheld ones and expired work', () => {
    expect(impliedSettlement(accepted().state)).toBe('pay');
    expect(impliedSettlement(resolved('match').state)).toBe('pay');
    expect(impliedSettlement(resolved('mismatch').state)).toBe('forfeit');
    expect(impliedSettlement(at([c.assign(), c.expire()]))).toBe('forfeit');
  });

  it('keeps undecided work and disputable rejections pending; a rejection past its window is forfeit', () => {
    expect(impliedSettlement(at([]))).toBe('pending');
    expect(impliedSettlement(at([c.assign(), c.submit()]))).toBe('pending');
    expect(impliedSettlement(at([c.assign(), c.submit(), c.reject(), c.dispute()]))).toBe('pending');
    const rejectedState = rejected().state;
    expect(impliedSettlement(rejectedState)).toBe('pending');
    expect(impliedSettlement(rejectedState, T0 + 2000 + DISPUTE_WINDOW_MS)).toBe('pending');
    expect(impliedSettlement(rejectedState, T0 + 2000 + DISPUTE_WINDOW_MS + 1)).toBe('forfeit');
  });

  it('reports the owed amounts', () => {
    expect(impliedPayout(accepted().state)).toEqual({ settlement: 'pay', baseRewardMsat: 1_000_000n, bonusMsat: 250_000n });
    expect(impliedPayout(resolved('mismatch').state)).toEqual({ settlement: 'forfeit', baseRewardMsat: 0n, bonusMsat: 0n });
  });
});

describe('reactToAssignmentEvent', () => {
  it('settles a held escrow on acceptance and opens a bonus payout', () => {
    const { state, event } = accepted();
    expect(reactToAssignmentEvent(event, state, escrow('held'), ctx)).toEqual([settleCmd, bonus]);
    const noBonus = accepted(0n);
    expect(reactToAssignmentEvent(noBonus.event, noBonus.state, escrow('held'), ctx)).toEqual([settleCmd]);
  });

  it('waits for an open escrow and compensates when there is none to settle', () => {
    const { state, event } = accepted(0n);
    expect(reactToAssignmentEvent(event, state, escrow('open'), ctx)).toEqual([]);
    expect(reactToAssignmentEvent(event, state, escrow('settled'), ctx)).toEqual([]);
    expect(reactToAssignmentEvent(event, state, escrow('canceled'), ctx)).toEqual([compensation]);
    expect(reactToAssignmentEvent(event, state, escrow('expired'), ctx)).toEqual([compensation]);
    expect(reactToAssignmentEvent(event, state, null, ctx)).toEqual([compensation]);
  });

  it('cancels the escrow on rejection, upheld dispute and expiry, when there is one to cancel', () => {
    const r = rejected();
    expect(reactToAssignmentEvent(r.event, r.state, escrow('held'), ctx)).toEqual([cancelCmd]);
    expect(reactToAssignmentEvent(r.event, r.state, escrow('open'), ctx)).toEqual([cancelCmd]);
    expect(reactToAssignmentEvent(r.event, r.state, escrow('canceled'), ctx)).toEqual([]);
    expect(reactToAssignmentEvent(r.event, r.state, null, ctx)).toEqual([]);
    const upheld = resolved('mismatch');
    expect(reactToAssignmentEvent(upheld.event, upheld.state, escrow('held'), ctx)).toEqual([cancelCmd]);
    const expired = assignmentAfter([c.assign(), c.expire()]);
    expect(reactToAssignmentEvent(expired.event, expired.state, escrow('open'), ctx)).toEqual([cancelCmd]);
  });

  it('pays an overturned rejection by settling a still-held escrow, otherwise by compensation', () => {
    const overturned = resolved('match');
    expect(reactToAssignmentEvent(overturned.event, overturned.state, escrow('held'), ctx)).toEqual([settleCmd]);
    expect(reactToAssignmentEvent(overturned.event, overturned.state, escrow('canceled'), ctx)).toEqual([compensation]);
  });

  it('needs nothing for the other events', () => {
    const assigned = assignmentAfter([c.assign()]);
    expect(reactToAssignmentEvent(assigned.event, assigned.state, escrow('open'), ctx)).toEqual([]);
    const disputed = assignmentAfter([c.assign(), c.submit(), c.reject(), c.dispute()]);
    expect(reactToAssignmentEvent(disputed.event, disputed.state, escrow('held'), ctx)).toEqual([]);
  });
});

describe('reactToEscrowEvent', () => {
  const lastEvent = (status: keyof typeof escrowCmds) => {
    const { state, events } = given(invoiceDecider, escrowCmds[status] ?? []);
    const event = events.at(-1);
    if (event === undefined) throw new Error('no events');
    return { state, event };
  };

  it('settles when the HTLC arrives after an acceptance, if the escrow predates the verdict', () => {
    const held = lastEvent('held');
    expect(reactToEscrowEvent(held.event, held.state, accepted().state, ctx)).toEqual([settleCmd]);
  });

  it('cancels an escrow opened at or after the paying verdict, since a compensation may already be owed', () => {
    const lateAccept = given(assignmentDecider, [c.assign(), c.submit(), c.accept(T0)]).state;
    const held = lastEvent('held');
    expect(reactToEscrowEvent(held.event, held.state, lateAccept, ctx)).toEqual([cancelCmd]);
    const opened = lastEvent('open');
    expect(reactToEscrowEvent(opened.event, opened.state, accepted().state, ctx)).toEqual([cancelCmd]);
  });

  it('cancels a held escrow for rejected or forfeited work and leaves it alone while work is under way', () => {
    const held = lastEvent('held');
    expect(reactToEscrowEvent(held.event, held.state, rejected().state, ctx)).toEqual([cancelCmd]);
    expect(reactToEscrowEvent(held.event, held.state, resolved('mismatch').state, ctx)).toEqual([cancelCmd]);
    expect(reactToEscrowEvent(held.event, held.state, given(assignmentDecider, [c.assign(), c.submit()]).state, ctx)).toEqual([]);
  });

  it('compensates when a paying assignment loses its escrow, and not otherwise', () => {
    for (const status of ['canceled', 'expired'] as const) {
      const voided = lastEvent(status);
      expect(reactToEscrowEvent(voided.event, voided.state, accepted().state, ctx)).toEqual([compensation]);
      expect(reactToEscrowEvent(voided.event, voided.state, rejected().state, ctx)).toEqual([]);
    }
    const settled = lastEvent('settled');
    expect(reactToEscrowEvent(settled.event, settled.state, accepted().state, ctx)).toEqual([]);
  });

  it('ignores payout invoices', () => {
    const payout = given(invoiceDecider, [command('OpenInvoice', openInvoiceData({ kind: 'compensation', cltvExpiryHeight: null }))]);
    const event = payout.events[0];
    if (event === undefined) throw new Error('no event');
    expect(reactToEscrowEvent(event, payout.state, accepted().state, ctx)).toEqual([]);
  });
});
