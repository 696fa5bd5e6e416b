// The assignment decider and its stream naming: one stream per assignment.

import type { Decider } from '../decider.js';
import { requireId } from '../ids.js';
import { type AssignmentCommand, decide } from './assignment.logic.js';
import { type AssignmentEvent, type AssignmentState, evolve, initialState } from './assignment.state.js';

export * from './assignment.logic.js';
export * from './assignment.state.js';

export const assignmentDecider: Decider<AssignmentCommand, AssignmentEvent, AssignmentState> = { decide, evolve, initialState };

export const ASSIGNMENT_STREAM_PREFIX = 'assignment-';

export function streamId(assignmentId: string): string {
  return `${ASSIGNMENT_STREAM_PREFIX}${requireId(assignmentId, 'assignmentId')}`;
}

export { streamId as assignmentStreamId };
