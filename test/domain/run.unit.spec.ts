// Unit tests for the run decider: every command's happy path, every refusal code, and evolve's budget guard.

import { describe, expect, it } from 'vitest';
import { PersistentMap } from '../../domain/persistent-map.js';
import { MAX_MONEY_MSAT, MAX_OPEN_RESERVATIONS_PER_RUN, MAX_SHARDS_PER_RUN } from '../../domain/index.js';
import {
  availableMsat,
  type RunCommand,
  type RunEvent,
  runDecider,
  type RunState,
  streamId,
} from '../../domain/run/index.js';
import { command, expectCode, expectInvariant, given, hex64, openRunData, RUN_ID, T0 } from './fixtures.js';

const open = (overrides = {}, nowMs = T0): RunCommand => command('OpenRun', openRunData(overrides), nowMs);
const fund = (fundingId: string, amountMsat: bigint, source: 'customer' | 'subsidy' = 'customer'): RunCommand =>
  command('FundRun', { runId: RUN_ID, fundingId, source, amountMsat });
const reserve = (reservationId: string, amountMsat: bigint, assignmentId = `asg-${reservationId}`): RunCommand =>
  command('ReserveBudget', { runId: RUN_ID, reservationId, assignmentId, amountMsat });
const release = (reservationId: string, spentMsat: bigint): RunCommand => command('ReleaseBudget', { runId: RUN_ID, reservationId, spentMsat });
const checkpoint = (checkpointId: string, step: number, digest = hex64(checkpointId)): RunCommand =>
  command('PublishCheckpoint', { runId: RUN_ID, checkpointId, step, digest });
const close = (reason = 'training finished'): RunCommand => command('CloseRun', { runId: RUN_ID, reason });

function active(state: RunState) {
  if (state.status === 'none') throw new Error('run not opened');
  return state;
}

const decideOn = (commands: RunCommand[], next: RunCommand): RunEvent[] => runDecider.decide(next, given(runDecider, commands).state);

describe('run: OpenRun', () => {
  it('opens a run with its definition and an empty budget', () => {
    const { state, events } = given(runDecider, [open()]);
    expect(events).toEqual([{ type: 'RunOpened', data: { ...openRunData(), atMs: T0 } }]);
    const run = active(state);
    expect(run.status).toBe('open');
    expect(availableMsat(run)).toBe(0n);
    expect(run.shards).toHaveLength(2);
  });

  it('treats a repeated identical OpenRun as a no-op and refuses a different one', () => {
    expect(decideOn([open()], open({}, T0 + 5))).toEqual([]);
    expectCode(() => decideOn([open()], open({ coordinatorId: 'someone-else' })), 'RUN_ALREADY_OPENED');
  });

  it('validates ids, digests, shards and policies', () => {
    const state = runDecider.initialState();
    expectCode(() => runDecider.decide(open({ runId: 'bad id!' }), state), 'INVALID_ID');
    expectCode(() => runDecider.decide(open({ runId: 'x'.repeat(129) }), state), 'INVALID_ID');
    expectCode(() => runDecider.decide(open({ stepGraphDigest: 'ABC' }), state), 'INVALID_DIGEST');
    expectCode(() => runDecider.decide(open({ shards: [] }), state), 'INVALID_SHARDS');
    const tooMany = Array.from({ length: MAX_SHARDS_PER_RUN + 1 }, (_, i) => ({ shardId: `s${i}`, digest: hex64(`s${i}`) }));
    expectCode(() => runDecider.decide(open({ shards: tooMany }), state), 'INVALID_SHARDS');
    const dup = [
      { shardId: 's', digest: hex64('a') },
      { shardId: 's', digest: hex64('b') },
    ];
    expectCode(() => runDecider.decide(open({ shards: dup }), state), 'DUPLICATE_SHARD_ID');
    expectCode(() => runDecider.decide(open({ rewardPolicy: { baseRewardMsat: 0n, maxBonusMsat: 0n } }), state), 'INVALID_AMOUNT');
    const verification = openRunData().verificationPolicy;
    expectCode(() => runDecider.decide(open({ verificationPolicy: { ...verification, replayProbability: 1.5 } }), state), 'INVALID_NUMBER');
    expectCode(() => runDecider.decide(open({ verificationPolicy: { ...verification, maxGradientNorm: 0 } }), state), 'INVALID_NUMBER');
    expectCode(() => runDecider.decide(open({ verificationPolicy: { ...verification, minRelativeImprovement: Number.NaN } }), state), 'INVALID_NUMBER');
    const escrow = openRunData().escrowPolicy;
    expectCode(() => runDecider.decide(open({ escrowPolicy: { ...escrow, cltvDeltaBlocks: 17 } }), state), 'INVALID_NUMBER');
    expectCode(() => runDecider.decide(open({ escrowPolicy: { ...escrow, invoiceExpirySec: 86_401 } }), state), 'INVALID_NUMBER');
    expectCode(() => runDecider.decide(open({ escrowPolicy: { ...escrow, disputeWindowMs: 0 } }), state), 'INVALID_NUMBER');
    expectCode(() => runDecider.decide(open({ escrowPolicy: { ...escrow, assignmentTimeoutMs: 1.5 } }), state), 'INVALID_NUMBER');
  });

  it('refuses a command without a sane clock', () => {
    expectCode(() => runDecider.decide(open({}, -1), runDecider.initialState()), 'INVALID_TIMESTAMP');
    expectCode(() => runDecider.decide(open({}, Number.NaN), runDecider.initialState()), 'INVALID_TIMESTAMP');
  });

  it('refuses an unknown command type', () => {
    const bogus = { type: 'DeleteRun', data: {}, metadata: { nowMs: T0 } } as unknown as RunCommand;
    expectCode(() => runDecider.decide(bogus, runDecider.initialState()), 'UNKNOWN_COMMAND');
  });
});

describe('run: FundRun', () => {
  it('adds customer and subsidy money separately', () => {
    const { state } = given(runDecider, [open(), fund('f1', 700n, 'customer'), fund('f2', 300n, 'subsidy')]);
    const run = active(state);
    expect(run.funded).toEqual({ customerMsat: 700n, subsidyMsat: 300n });
    expect(availableMsat(run)).toBe(1000n);
  });

  it('is idempotent for a repeated funding id with the same terms', () => {
    expect(decideOn([open(), fund('f1', 700n)], fund('f1', 700n))).toEqual([]);
  });

  it('refuses a funding id reused with other terms', () => {
    expectCode(() => decideOn([open(), fund('f1', 700n)], fund('f1', 701n)), 'FUNDING_ID_REUSED');
    expectCode(() => decideOn([open(), fund('f1', 700n)], fund('f1', 700n, 'subsidy')), 'FUNDING_ID_REUSED');
  });

  it('refuses funding before open, after close, beyond the money cap, or with a bad amount or source', () => {
    expectCode(() => decideOn([], fund('f1', 1n)), 'RUN_NOT_FOUND');
    expectCode(() => decideOn([open(), close()], fund('f1', 1n)), 'RUN_CLOSED');
    expectCode(() => decideOn([open(), fund('f1', MAX_MONEY_MSAT)], fund('f2', 1n)), 'FUNDING_CAP_EXCEEDED');
    expectCode(() => decideOn([open()], fund('f1', 0n)), 'INVALID_AMOUNT');
    expectCode(() => decideOn([open()], fund('f1', -5n)), 'INVALID_AMOUNT');
    const badSource = command<RunCommand>('FundRun', { runId: RUN_ID, fundingId: 'f', source: 'gift' as 'customer', amountMsat: 1n });
    expectCode(() => decideOn([open()], badSource), 'INVALID_OPTION');
  });
});

describe('run: ReserveBudget and ReleaseBudget', () => {
  const funded = [open(), fund('f1', 1000n)];

  it('reserves within the available budget', () => {
    const { state, events } = given(runDecider, [...funded, reserve('r1', 600n)]);
    expect(events.at(-1)).toEqual({ type: 'BudgetReserved', data: { runId: RUN_ID, reservationId: 'r1', assignmentId: 'asg-r1', amountMsat: 600n, atMs: T0 } });
    expect(active(state).reservedMsat).toBe(600n);
    expect(availableMsat(active(state))).toBe(400n);
  });

  it('refuses to reserve beyond the available budget, at write time', () => {
    const error = expectCode(() => decideOn([...funded, reserve('r1', 600n)], reserve('r2', 401n)), 'INSUFFICIENT_BUDGET');
    expect(error.details).toMatchObject({ availableMsat: '400', requestedMsat: '401' });
    expect(decideOn([...funded, reserve('r1', 600n)], reserve('r2', 400n))).toHaveLength(1);
  });

  it('treats an identical repeated reservation as a no-op and refuses a conflicting one', () => {
    expect(decideOn([...funded, reserve('r1', 600n)], reserve('r1', 600n))).toEqual([]);
    expectCode(() => decideOn([...funded, reserve('r1', 600n)], reserve('r1', 500n)), 'RESERVATION_EXISTS');
    expectCode(() => decideOn([...funded, reserve('r1', 600n)], reserve('r1', 600n, 'other')), 'RESERVATION_EXISTS');
  });

  it('never reuses a released reservation id', () => {
    expectCode(() => decideOn([...funded, reserve('r1', 600n), release('r1', 0n)], reserve('r1', 600n)), 'RESERVATION_EXISTS');
  });

  it('bounds the number of open reservations', () => {
    const run = active(given(runDecider, funded).state);
    const many = PersistentMap.from(Array.from({ length: MAX_OPEN_RESERVATIONS_PER_RUN }, (_, i) => [`r${i}`, { reservationId: `r${i}`, assignmentId: 'a', amountMsat: 0n, reservedAtMs: T0 }] as const));
    expectCode(() => runDecider.decide(reserve('one-more', 1n), { ...run, openReservations: many }), 'TOO_MANY_OPEN_RESERVATIONS');
  });

  it('releases a reservation: the spent part is consumed, the rest returns', () => {
    const { state, events } = given(runDecider, [...funded, reserve('r1', 600n), release('r1', 250n)]);
    expect(events.at(-1)).toEqual({
      type: 'BudgetReleased',
      data: { runId: RUN_ID, reservationId: 'r1', assignmentId: 'asg-r1', reservedMsat: 600n, spentMsat: 250n, returnedMsat: 350n, atMs: T0 },
    });
    const run = active(state);
    expect(run.reservedMsat).toBe(0n);
    expect(run.spentMsat).toBe(250n);
    expect(availableMsat(run)).toBe(750n);
  });

  it('refuses releasing an unknown or released reservation, or spending more than was reserved', () => {
    expectCode(() => decideOn(funded, release('nope', 0n)), 'RESERVATION_NOT_FOUND');
    expectCode(() => decideOn([...funded, reserve('r1', 600n), release('r1', 0n)], release('r1', 0n)), 'RESERVATION_NOT_FOUND');
    expectCode(() => decideOn([...funded, reserve('r1', 600n)], release('r1', 601n)), 'SPENT_EXCEEDS_RESERVATION');
    expectCode(() => decideOn([], release('r1', 0n)), 'RUN_NOT_FOUND');
  });

  it('refuses reservations on a closed run but still lets reservations be released', () => {
    const closed = [...funded, reserve('r1', 600n), close()];
    expectCode(() => decideOn(closed, reserve('r2', 1n)), 'RUN_CLOSED');
    expect(decideOn(closed, release('r1', 600n))).toHaveLength(1);
    expectCode(() => decideOn([], reserve('r1', 1n)), 'RUN_NOT_FOUND');
  });
});

describe('run: PublishCheckpoint and CloseRun', () => {
  it('publishes checkpoints with strictly increasing steps', () => {
    const { state } = given(runDecider, [open(), checkpoint('c0', 0), checkpoint('c1', 5)]);
    expect(active(state).lastCheckpoint).toEqual({ checkpointId: 'c1', step: 5, digest: hex64('c1') });
    expectCode(() => decideOn([open(), checkpoint('c1', 5)], checkpoint('c2', 5)), 'CHECKPOINT_STEP_NOT_INCREASING');
    expectCode(() => decideOn([open()], checkpoint('c0', -1)), 'INVALID_NUMBER');
    expectCode(() => decideOn([open()], checkpoint('c0', 1, 'zz')), 'INVALID_DIGEST');
  });

  it('treats a repeat of the last checkpoint as a no-op and refuses its id with other content', () => {
    expect(decideOn([open(), checkpoint('c1', 5)], checkpoint('c1', 5))).toEqual([]);
    expectCode(() => decideOn([open(), checkpoint('c1', 5)], checkpoint('c1', 6)), 'CHECKPOINT_ID_REUSED');
  });

  it('closes once; closing again is a no-op; closed runs take no checkpoints', () => {
    const { state, events } = given(runDecider, [open(), close()]);
    expect(events.at(-1)).toEqual({ type: 'RunClosed', data: { runId: RUN_ID, reason: 'training finished', atMs: T0 } });
    expect(active(state).closedReason).toBe('training finished');
    expect(runDecider.decide(close(), state)).toEqual([]);
    expectCode(() => runDecider.decide(checkpoint('c9', 9), state), 'RUN_CLOSED');
    expectCode(() => decideOn([open()], close('   ')), 'INVALID_TEXT');
    expectCode(() => decideOn([], close()), 'RUN_NOT_FOUND');
  });
});

describe('run: evolve refuses events that cannot follow', () => {
  const base = given(runDecider, [open(), command('FundRun', { runId: RUN_ID, fundingId: 'f', source: 'customer', amountMsat: 100n })]).state;
  const at = { atMs: T0 };

  it('refuses anything before RunOpened and a second RunOpened', () => {
    expectInvariant(() => runDecider.evolve(runDecider.initialState(), { type: 'RunFunded', data: { runId: RUN_ID, fundingId: 'f', source: 'customer', amountMsat: 1n, ...at } }));
    expectInvariant(() => runDecider.evolve(base, { type: 'RunOpened', data: { ...openRunData(), ...at } }));
  });

  it('refuses an overdrawing reservation and a mismatched release', () => {
    expectInvariant(() => runDecider.evolve(base, { type: 'BudgetReserved', data: { runId: RUN_ID, reservationId: 'r', assignmentId: 'a', amountMsat: 101n, ...at } }));
    const reserved = runDecider.evolve(base, { type: 'BudgetReserved', data: { runId: RUN_ID, reservationId: 'r', assignmentId: 'a', amountMsat: 60n, ...at } });
    const release = { runId: RUN_ID, reservationId: 'r', assignmentId: 'a', reservedMsat: 60n, spentMsat: 10n, returnedMsat: 40n, ...at };
    expectInvariant(() => runDecider.evolve(reserved, { type: 'BudgetReleased', data: release }));
    expectInvariant(() => runDecider.evolve(reserved, { type: 'BudgetReleased', data: { ...release, reservationId: 'x' } }));
  });

  it('refuses events for another run, reused funding ids, backwards checkpoints and unknown types', () => {
    expectInvariant(() => runDecider.evolve(base, { type: 'RunClosed', data: { runId: 'other', reason: 'x', ...at } }));
    expectInvariant(() => runDecider.evolve(base, { type: 'RunFunded', data: { runId: RUN_ID, fundingId: 'f', source: 'customer', amountMsat: 1n, ...at } }));
    const ckpt = runDecider.evolve(base, { type: 'CheckpointPublished', data: { runId: RUN_ID, checkpointId: 'c', step: 3, digest: hex64('c'), ...at } });
    expectInvariant(() => runDecider.evolve(ckpt, { type: 'CheckpointPublished', data: { runId: RUN_ID, checkpointId: 'd', step: 3, digest: hex64('d'), ...at } }));
    expectInvariant(() => runDecider.evolve(base, { type: 'RunDeleted', data: { runId: RUN_ID } } as unknown as RunEvent));
  });
});

describe('run: streamId', () => {
  it('names the stream run-<id> and refuses bad ids', () => {
    expect(streamId('r-42')).toBe('run-r-42');
    expectCode(() => streamId(''), 'INVALID_ID');
  });
});
