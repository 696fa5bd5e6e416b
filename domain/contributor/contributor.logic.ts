// Contributor aggregate commands: register keys once, suspend; retries with the same content are no-ops.

import type { Command } from '../decider.js';
import { DomainError, invariant, require_ } from '../errors.js';
import { requireEd25519PublicKeyHex, requireId, requireNodePubkeyHex } from '../ids.js';
import { MAX_REASON_CHARS } from '../limits.js';
import { requireNowMs, requireText } from '../validate.js';
import type { ContributorEvent, ContributorKeys, ContributorState } from './contributor.state.js';

export type RegisterContributor = Command<'RegisterContributor', ContributorKeys>;
export type SuspendContributor = Command<'SuspendContributor', { contributorId: string; reason: string }>;

export type ContributorCommand = RegisterContributor | SuspendContributor;

export function decide(command: ContributorCommand, state: ContributorState): ContributorEvent[] {
  const nowMs = requireNowMs(command.metadata);
  switch (command.type) {
    case 'RegisterContributor':
      return registerContributor(command, state, nowMs);
    case 'SuspendContributor':
      return suspendContributor(command, state, nowMs);
    default: {
      const unknown: never = command;
      throw new DomainError('UNKNOWN_COMMAND', `the contributor aggregate has no command ${JSON.stringify((unknown as ContributorCommand).type)}`);
    }
  }
}

function registerContributor(command: RegisterContributor, state: ContributorState, nowMs: number): ContributorEvent[] {
  const contributorId = requireId(command.data.contributorId, 'contributorId');
  const signingPublicKeyHex = requireEd25519PublicKeyHex(command.data.signingPublicKeyHex, 'signingPublicKeyHex');
  const lightningNodePubkeyHex = requireNodePubkeyHex(command.data.lightningNodePubkeyHex, 'lightningNodePubkeyHex');
  if (state.status === 'none') {
    return [{ type: 'ContributorRegistered', data: { contributorId, signingPublicKeyHex, lightningNodePubkeyHex, atMs: nowMs } }];
  }
  invariant(state.contributorId === contributorId, `command for contributor ${contributorId} decided against ${state.contributorId}`);
  // Keys are identity: changing them silently would let whoever holds the new key collect old rewards.
  require_(
    state.signingPublicKeyHex === signingPublicKeyHex && state.lightningNodePubkeyHex === lightningNodePubkeyHex,
    'CONTRIBUTOR_ALREADY_REGISTERED',
    `contributor ${contributorId} is already registered with other keys; register under a new contributorId`,
    { contributorId },
  );
  return [];
}

function suspendContributor(command: SuspendContributor, state: ContributorState, nowMs: number): ContributorEvent[] {
  const contributorId = requireId(command.data.contributorId, 'contributorId');
  const reason = requireText(command.data.reason, 'reason', MAX_REASON_CHARS);
  require_(state.status !== 'none', 'CONTRIBUTOR_NOT_FOUND', `contributor ${contributorId} is not registered; nothing to suspend`, { contributorId });
  invariant(state.contributorId === contributorId, `command for contributor ${contributorId} decided against ${state.contributorId}`);
  if (state.status === 'suspended') return [];
  return [{ type: 'ContributorSuspended', data: { contributorId, reason, atMs: nowMs } }];
}
