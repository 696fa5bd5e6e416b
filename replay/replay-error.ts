// The replay engine's typed error: a stable code and a message that says what to fix.

export const REPLAY_ERROR_CODES = [
  'RECIPE_UNKNOWN_GRAPH',
  'RECIPE_MODEL_MISMATCH',
  'RECIPE_SHARD_DIGEST_MISMATCH',
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
