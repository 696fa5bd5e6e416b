// The contributor decider and its stream naming: one stream per contributor.

import type { Decider } from '../decider.js';
import { requireId } from '../ids.js';
import { type ContributorCommand, decide } from './contributor.logic.js';
import { type ContributorEvent, type ContributorState, evolve, initialState } from './contributor.state.js';

export * from './contributor.logic.js';
export * from './contributor.state.js';

export const contributorDecider: Decider<ContributorCommand, ContributorEvent, ContributorState> = { decide, evolve, initialState };

export const CONTRIBUTOR_STREAM_PREFIX = 'contributor-';

export function streamId(contributorId: string): string {
  return `${CONTRIBUTOR_STREAM_PREFIX}${requireId(contributorId, 'contributorId')}`;
}

export { streamId as contributorStreamId };
