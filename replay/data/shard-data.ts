// Is the data this server holds the data a run declared? Checked when a run is opened, and again before any step is judged or replayed.

import { ReplayError, type ReplayErrorCode } from '../replay-error.js';
import { heldMnistShardDigest, MNIST_HELDOUT_SHARD_ID, mnistShardIdWithDigest, MNIST_TRAINING_SHARD_COUNT } from './mnist.js';

/**
 * Every reference step graph trains on the bundled MNIST shards, so a run on a reference graph
 * may only declare shards this server holds, each with the digest of the data it holds. A run on
 * any other graph is refused before this (UNKNOWN_STEP_GRAPH): nothing here could verify its steps.
 */
export const DECLARED_SHARD_CODES = [
  /** The run names a shard id this server holds no data for. */
  'UNKNOWN_SHARD_ID',
  /** The run names a held shard, but with another digest than the data held under that id. */
  'SHARD_DIGEST_MISMATCH',
  /** The run names the validator's held-out shard as training data: training on it would void the quality check. */
  'HELDOUT_SHARD_DECLARED',
] as const;
export type DeclaredShardCode = (typeof DECLARED_SHARD_CODES)[number];

export type DeclaredShardProblem = Readonly<{
  code: DeclaredShardCode;
  shardId: string;
  declaredDigest: string;
  /** The digest of the data held under shardId; null when none is held. */
  knownDigest: string | null;
  detail: string;
}>;

const TRAINING_SHARD_RANGE = `mnist-00..mnist-${String(MNIST_TRAINING_SHARD_COUNT - 1).padStart(2, '0')}`;

/** The first declared shard that is not held data under its id and digest; null when every one is. */
export function declaredShardProblem(shards: readonly Readonly<{ shardId: string; digest: string }>[]): DeclaredShardProblem | null {
  for (const { shardId, digest } of shards) {
    const problem = shardProblem(shardId, digest);
    if (problem) return problem;
  }
  return null;
}

function shardProblem(shardId: string, declaredDigest: string): DeclaredShardProblem | null {
  if (shardId === MNIST_HELDOUT_SHARD_ID) {
    return { code: 'HELDOUT_SHARD_DECLARED', shardId, declaredDigest, knownDigest: heldMnistShardDigest(shardId), detail: `${shardId} is the validator's held-out shard; declare training shards (${TRAINING_SHARD_RANGE}) only` };
  }
  const knownDigest = heldMnistShardDigest(shardId);
  if (knownDigest === null) {
    const other = mnistShardIdWithDigest(declaredDigest);
    const hint = other ? `; ${declaredDigest} is the digest of ${other}` : '';
    return { code: 'UNKNOWN_SHARD_ID', shardId, declaredDigest, knownDigest, detail: `this server holds no shard ${shardId}${hint}; declare training shards ${TRAINING_SHARD_RANGE} with their digests (GET /v1/shards lists them)` };
  }
  if (knownDigest !== declaredDigest) {
    return { code: 'SHARD_DIGEST_MISMATCH', shardId, declaredDigest, knownDigest, detail: `shard ${shardId} is declared with digest ${declaredDigest}, but the data this server holds under that id has digest ${knownDigest}` };
  }
  return null;
}

/** The codes with which the data held here cannot vouch for what a run declared: retrying cannot change them. */
export const SHARD_DATA_ERROR_CODES: readonly ReplayErrorCode[] = Object.freeze(['RUN_SHARD_UNDECLARED', 'RECIPE_UNKNOWN_SHARD', 'RECIPE_SHARD_DIGEST_MISMATCH']);

export function isShardDataError(error: unknown): error is ReplayError {
  return error instanceof ReplayError && SHARD_DATA_ERROR_CODES.includes(error.code);
}

/**
 * Before anything is computed for an assignment: the shard it names must be declared by its run,
 * and the data held here under that id must hash to the declared digest. Returns that digest, the
 * one a recipe records. Throws a ReplayError with one of SHARD_DATA_ERROR_CODES otherwise.
 */
export function requireDeclaredShardData(shardId: string, declaredDigest: string | null): string {
  if (declaredDigest === null) throw new ReplayError('RUN_SHARD_UNDECLARED', `the run declares no shard ${shardId}, so no digest says which data the step was promised on`);
  const heldDigest = heldMnistShardDigest(shardId);
  if (heldDigest === null) throw new ReplayError('RECIPE_UNKNOWN_SHARD', `this server holds no shard ${shardId}; the run declared it with digest ${declaredDigest}`);
  if (heldDigest !== declaredDigest) {
    throw new ReplayError('RECIPE_SHARD_DIGEST_MISMATCH', `shard ${shardId} here has digest ${heldDigest}, the run declared ${declaredDigest}: the data differs`);
  }
  return declaredDigest;
}
