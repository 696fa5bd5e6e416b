// Loads what a validator or replay worker needs about one assignment from the log: its state, its run, the checkpoint before its base.

import { assignmentDecider, assignmentStreamId, type AssignmentState } from '../../domain/assignment/index.js';
import { decodeEvent } from '../../domain/codec.js';
import type { EventStore } from '../../domain/ports/event-store.js';
import { runDecider, runStreamId, type RunEvent } from '../../domain/run/index.js';
import type { ActiveRunState } from '../../domain/run/run.state.js';
import { stepByGraphDigest, type StepDefinition } from '../graphs/reference-steps.js';
import type { CommandBus } from '../ports/commands.js';

export type AssignmentContext = Readonly<{
  assignment: AssignmentState;
  run: ActiveRunState;
  /** Null when the run names a graph this build has no reference step for: such a run cannot be validated here. */
  step: StepDefinition | null;
  /** The checkpoint the run had before the assignment's base one, or null when the base is the first. */
  previousCheckpointDigest: string | null;
  /** The digest the run declared for the assignment's shard; null when the run declares no such shard. */
  declaredShardDigest: string | null;
}>;

/** Run streams are read in pages of this many events when collecting checkpoints. */
const RUN_PAGE_SIZE = 1_000;

/** States come through the command port (its cache); the run's checkpoints are read from the log in pages. */
export type AssignmentContextDeps = Readonly<{ store: Pick<EventStore, 'readStream'>; commands: Pick<CommandBus, 'load'> }>;

export async function loadAssignmentContext(deps: AssignmentContextDeps, assignmentId: string): Promise<AssignmentContext | null> {
  const { store, commands } = deps;
  const { state: assignment } = await commands.load(assignmentDecider, assignmentStreamId(assignmentId));
  const terms = assignment.terms;
  if (!terms) return null;
  const { state: run } = await commands.load(runDecider, runStreamId(terms.runId));
  if (run.status === 'none') return null;
  const checkpoints = await runCheckpointDigests(store, run.runId);
  const index = checkpoints.lastIndexOf(terms.baseCheckpointDigest);
  return {
    assignment,
    run,
    step: stepByGraphDigest(run.stepGraphDigest),
    previousCheckpointDigest: index > 0 ? checkpoints[index - 1]! : null,
    declaredShardDigest: run.shards.find((shard) => shard.shardId === terms.shardId)?.digest ?? null,
  };
}

/** The initial checkpoint, then every published one, in log order. */
async function runCheckpointDigests(store: Pick<EventStore, 'readStream'>, runId: string): Promise<string[]> {
  const digests: string[] = [];
  for (let from = 0; ; from += RUN_PAGE_SIZE) {
    const page = await store.readStream(runStreamId(runId), { fromRevision: from, maxCount: RUN_PAGE_SIZE });
    for (const recorded of page) {
      const event = decodeEvent<RunEvent>(recorded);
      if (event.type === 'RunOpened') digests.push(event.data.initialCheckpointDigest);
      if (event.type === 'CheckpointPublished') digests.push(event.data.digest);
    }
    if (page.length < RUN_PAGE_SIZE) return digests;
  }
}
