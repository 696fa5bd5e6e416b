// Contributor aggregate state: a registered signing key and Lightning node, and whether the contributor is suspended.

import type { Event } from '../decider.js';
import { invariant, InvariantViolation } from '../errors.js';

export type ContributorKeys = Readonly<{ contributorId: string; signingPublicKeyHex: string; lightningNodePubkeyHex: string }>;

export type ContributorRegistered = Event<'ContributorRegistered', ContributorKeys & { atMs: number }>;
export type ContributorSuspended = Event<'ContributorSuspended', { contributorId: string; reason: string; atMs: number }>;

export type ContributorEvent = ContributorRegistered | ContributorSuspended;

export type ContributorState =
  | Readonly<{ status: 'none' }>
  | (ContributorKeys &
      Readonly<{
        status: 'active' | 'suspended';
        registeredAtMs: number;
        suspendedReason: string | null;
        suspendedAtMs: number | null;
      }>);

export const initialState = (): ContributorState => ({ status: 'none' });

export function evolve(state: ContributorState, event: ContributorEvent): ContributorState {
  switch (event.type) {
    case 'ContributorRegistered': {
      invariant(state.status === 'none', `ContributorRegistered cannot follow a ${state.status} contributor`);
      const { atMs, ...keys } = event.data;
      return { ...keys, status: 'active', registeredAtMs: atMs, suspendedReason: null, suspendedAtMs: null };
    }
    case 'ContributorSuspended': {
      invariant(state.status === 'active', `ContributorSuspended cannot follow a ${state.status} contributor`);
      invariant(state.contributorId === event.data.contributorId, `ContributorSuspended for ${event.data.contributorId} folded into ${state.contributorId}`);
      return { ...state, status: 'suspended', suspendedReason: event.data.reason, suspendedAtMs: event.data.atMs };
    }
    default: {
      const unknown: never = event;
      throw new InvariantViolation(`contributor evolve: unknown event type ${(unknown as ContributorEvent).type}`);
    }
  }
}
