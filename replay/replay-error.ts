// The replay engine's typed error: a stable code and a message that says what to fix.

export const REPLAY_ERROR_CODES = [
  'RECIPE_UNKNOWN_GRAPH',
  'RECIPE_MODEL_MISMATCH',
  /** The shard this server holds under the recipe's id does not hash to the digest the run declared. */
  'RECIPE_SHARD_DIGEST_MISMATCH',
  /** This server holds no shard under the recipe's id. */
  'RECIPE_UNKNOWN_SHARD',
  /** The run does not declare the shard the assignment names, so nothing says which data the step promised. */
  'RUN_SHARD_UNDECLARED',
  'RECIPE_CHECKPOINT_MISSING',
  'RECIPE_CHECKPOINT_INVALID',
  'RECIPE_RUNNER_MISMATCH',
] as const;
export type ReplayErrorCode = (typeof REPLAY_ERROR_CODES)[number];

export class ReplayError extends Error {
  override readonly name = 'ReplayError';
  constructor(
    readonly code: ReplayErrorCode,
    message: string,
  ) {
    super(message);
  }
}
