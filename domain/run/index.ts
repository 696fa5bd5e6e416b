// The run decider and its stream naming: one stream per training run.

import type { Decider } from '../decider.js';
import { requireId } from '../ids.js';
import { decide, type RunCommand } from './run.logic.js';
import { evolve, initialState, type RunEvent, type RunState } from './run.state.js';

export * from './run.logic.js';
export * from './run.state.js';

export const runDecider: Decider<RunCommand, RunEvent, RunState> = { decide, evolve, initialState };

export const RUN_STREAM_PREFIX = 'run-';

export function streamId(runId: string): string {
  return `${RUN_STREAM_PREFIX}${requireId(runId, 'runId')}`;
}

export { streamId as runStreamId };
