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
  it('releases a held escrow on acceptance; bonus and compensation are the payout lines\' to ask for', () => {
    const { event, state } = accepted();
    expect(reactToAssignmentEvent(event, state, escrow('held'), ctx)).toEqual([settleCmd]);
    for (const status of ['open', 'settled', 'canceled', 'expired'] as const) expect(reactToAssignmentEvent(event, state, escrow(status), ctx)).toEqual([]);
    expect(reactToAssignmentEvent(event, state, null, ctx)).toEqual([]);
  });

  it('cancels an open or held escrow on rejection, and leaves a voided one alone', () => {
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

  it('pays an overturned rejection by settling a still-held escrow', () => {
    const overturned = resolved('match');
    expect(reactToAssignmentEvent(overturned.event, overturned.state, escrow('held'), ctx)).toEqual([settleCmd]);
    expect(reactToAssignmentEvent(overturned.event, overturned.state, escrow('canceled'), ctx)).toEqual([]);
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

  it('settles when the HTLC arrives after an acceptance, if the escrow precedes the verdict in the log', () => {
    const held = lastEvent('held');
    expect(reactToEscrowEvent(held.event, held.state, accepted().state, true, ctx)).toEqual([settleCmd]);
  });

  it('decides "before the verdict" by log order alone: equal or even later timestamps do not matter', () => {
    // The acceptance's clock reads earlier than the escrow's (another process, another clock), yet the log put the escrow first.
    const clockSkewedAccept = given(assignmentDecider, [c.assign(), c.submit(), c.accept(T0 - 5_000)]).state;
    const held = lastEvent('held');
    expect(reactToEscrowEvent(held.event, held.state, clockSkewedAccept, true, ctx)).toEqual([settleCmd]);
  });

  it('cancels an escrow opened after the paying verdict in the log, since a compensation may already be owed', () => {
    const held = lastEvent('held');
    expect(reactToEscrowEvent(held.event, held.state, accepted().state, false, ctx)).toEqual([cancelCmd]);
    const opened = lastEvent('open');
    expect(reactToEscrowEvent(opened.event, opened.state, accepted().state, false, ctx)).toEqual([cancelCmd]);
  });

  it('cancels a held escrow for rejected or forfeited work and leaves it alone while work is under way', () => {
    const held = lastEvent('held');
    expect(reactToEscrowEvent(held.event, held.state, rejected().state, false, ctx)).toEqual([cancelCmd]);
    expect(reactToEscrowEvent(held.event, held.state, resolved('mismatch').state, false, ctx)).toEqual([cancelCmd]);
    expect(reactToEscrowEvent(held.event, held.state, given(assignmentDecider, [c.assign(), c.submit()]).state, false, ctx)).toEqual([]);
  });

  it('asks for nothing when an escrow is voided or settled: the payout lines compensate', () => {
    for (const status of ['canceled', 'expired', 'settled'] as const) {
      const done = lastEvent(status);
      expect(reactToEscrowEvent(done.event, done.state, accepted().state, true, ctx)).toEqual([]);
    }
  });

  it('ignores payout invoices', () => {
    const payout = given(invoiceDecider, [command('OpenInvoice', openInvoiceData({ kind: 'compensation', cltvExpiryHeight: null }))]);
    const event = payout.events[0];
    if (event === undefined) throw new Error('no event');
    expect(reactToEscrowEvent(event, payout.state, accepted().state, true, ctx)).toEqual([]);
  });
});
