// Unit tests for the contributor decider: registration, suspension, idempotent repeats and evolve's guards.

import { describe, expect, it } from 'vitest';
import { type ContributorCommand, contributorDecider, type ContributorEvent, streamId } from '../../domain/contributor/index.js';
import { command, expectCode, expectInvariant, given, hex64, nodePubkey, T0 } from './fixtures.js';

const register = (overrides: Partial<{ contributorId: string; signingPublicKeyHex: string; lightningNodePubkeyHex: string }> = {}): ContributorCommand =>
  command('RegisterContributor', { contributorId: 'alice', signingPublicKeyHex: hex64('alice-key'), lightningNodePubkeyHex: nodePubkey('alice-node'), ...overrides });
const suspend = (reason = 'submitted forged gradients'): ContributorCommand => command('SuspendContributor', { contributorId: 'alice', reason });

describe('contributor: RegisterContributor', () => {
  it('registers signing and node keys', () => {
    const { state, events } = given(contributorDecider, [register()]);
    expect(events).toEqual([
      { type: 'ContributorRegistered', data: { contributorId: 'alice', signingPublicKeyHex: hex64('alice-key'), lightningNodePubkeyHex: nodePubkey('alice-node'), atMs: T0 } },
    ]);
    expect(state).toMatchObject({ status: 'active', contributorId: 'alice', registeredAtMs: T0 });
  });

  it('treats re-registration with identical keys as a no-op, even when suspended', () => {
    expect(contributorDecider.decide(register(), given(contributorDecider, [register()]).state)).toEqual([]);
    expect(contributorDecider.decide(register(), given(contributorDecider, [register(), suspend()]).state)).toEqual([]);
  });

  it('refuses re-registration with other keys', () => {
    const { state } = given(contributorDecider, [register()]);
    expectCode(() => contributorDecider.decide(register({ signingPublicKeyHex: hex64('mallory') }), state), 'CONTRIBUTOR_ALREADY_REGISTERED');
    expectCode(() => contributorDecider.decide(register({ lightningNodePubkeyHex: nodePubkey('mallory') }), state), 'CONTRIBUTOR_ALREADY_REGISTERED');
  });

  it('validates the id and both keys', () => {
    const none = contributorDecider.initialState();
    expectCode(() => contributorDecider.decide(register({ contributorId: 'a b' }), none), 'INVALID_ID');
    expectCode(() => contributorDecider.decide(register({ signingPublicKeyHex: hex64('k').toUpperCase() }), none), 'INVALID_SIGNING_KEY');
    expectCode(() => contributorDecider.decide(register({ signingPublicKeyHex: hex64('k').slice(2) }), none), 'INVALID_SIGNING_KEY');
    expectCode(() => contributorDecider.decide(register({ lightningNodePubkeyHex: `04${hex64('n')}` }), none), 'INVALID_NODE_PUBKEY');
    expectCode(() => contributorDecider.decide(register({ lightningNodePubkeyHex: hex64('n') }), none), 'INVALID_NODE_PUBKEY');
    expect(contributorDecider.decide(register({ lightningNodePubkeyHex: `03${hex64('n')}` }), none)).toHaveLength(1);
  });
});

describe('contributor: SuspendContributor', () => {
  it('suspends with a reason; suspending again is a no-op', () => {
    const { state, events } = given(contributorDecider, [register(), suspend()]);
    expect(events.at(-1)).toEqual({ type: 'ContributorSuspended', data: { contributorId: 'alice', reason: 'submitted forged gradients', atMs: T0 } });
    expect(state).toMatchObject({ status: 'suspended', suspendedReason: 'submitted forged gradients' });
    expect(contributorDecider.decide(suspend(), state)).toEqual([]);
  });

  it('refuses an unknown contributor and a blank reason', () => {
    expectCode(() => contributorDecider.decide(suspend(), contributorDecider.initialState()), 'CONTRIBUTOR_NOT_FOUND');
    expectCode(() => contributorDecider.decide(suspend(''), given(contributorDecider, [register()]).state), 'INVALID_TEXT');
  });
});

describe('contributor: evolve and streamId', () => {
  it('refuses a second registration, a suspension before registration or twice, and unknown types', () => {
    const registered = given(contributorDecider, [register()]);
    const [event] = registered.events;
    const suspension: ContributorEvent = { type: 'ContributorSuspended', data: { contributorId: 'alice', reason: 'x', atMs: T0 } };
    expectInvariant(() => contributorDecider.evolve(registered.state, event as ContributorEvent));
    expectInvariant(() => contributorDecider.evolve(contributorDecider.initialState(), suspension));
    expectInvariant(() => contributorDecider.evolve(contributorDecider.evolve(registered.state, suspension), suspension));
    expectInvariant(() => contributorDecider.evolve(registered.state, { ...suspension, data: { ...suspension.data, contributorId: 'bob' } }));
    expectInvariant(() => contributorDecider.evolve(registered.state, { type: 'ContributorDeleted', data: {} } as unknown as ContributorEvent));
  });

  it('names the stream contributor-<id>', () => {
    expect(streamId('alice')).toBe('contributor-alice');
    expectCode(() => streamId('a/b'), 'INVALID_ID');
  });
});
