// A replay recipe: everything needed to re-run one training step bit for bit, and its strict parser.

import type { WorkTerms } from '../domain/assignment/assignment.state.js';
import type { ModelName } from './model/model-spec.js';
import type { StepDefinition } from './graphs/reference-steps.js';
import { EXECUTION_PROVIDERS, GRAPH_OPTIMIZATION_LEVELS, ONNXRUNTIME_VERSION, type GraphOptimizationLevel, type ProviderRequest } from './step/execution-providers.js';

/** Inner steps one recipe may cover: bounds replay time and the trace a contributor commits to. */
export const MAX_INNER_STEPS = 4096;
/** Threads per operator a recipe may pin. */
export const MAX_INTRA_OP_THREADS = 256;

export type StepRecipe = Readonly<{
  recipeVersion: 1;
  model: ModelName;
  graphDigest: string;
  checkpointDigest: string;
  shardId: string;
  /**
   * The digest the run declared for the shard, never the digest of whatever data the replaying
   * machine holds: executing the recipe first checks that the held data hashes to it.
   */
  shardDigest: string;
  /** Inner step j uses batch batchIndex + j of the shard's seeded permutation. */
  batchIndex: number;
  batchSize: number;
  /** Unsigned 64-bit decimal: permutes the shard's samples. */
  seed: string;
  learningRate: number;
  innerSteps: number;
  onnxruntimeVersion: string;
  executionProvider: ProviderRequest;
  graphOptimizationLevel: GraphOptimizationLevel;
  /**
   * CPU threads per operator. Pinned because it changes the low bits: with onnxruntime 1.30 the
   * MLP's gradients differ between 1 and 2 threads even with optimization disabled.
   */
  intraOpNumThreads: number;
}>;

/** Outputs are only bitwise comparable between runs of the same class. */
export function recipeClass(recipe: Pick<StepRecipe, 'graphDigest' | 'onnxruntimeVersion' | 'graphOptimizationLevel' | 'intraOpNumThreads'>, provider: string): string {
  return `${recipe.graphDigest.slice(0, 16)}/ort-${recipe.onnxruntimeVersion}/${provider}/${recipe.graphOptimizationLevel}/t${recipe.intraOpNumThreads}`;
}

export type RecipeSettings = Readonly<{ executionProvider: ProviderRequest; graphOptimizationLevel: GraphOptimizationLevel; intraOpNumThreads: number }>;

/** The reference recipe class: CPU, optimization disabled, one thread — bitwise reproducible on any x86-64 machine. */
export const REFERENCE_SETTINGS: RecipeSettings = Object.freeze({ executionProvider: 'cpu', graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 });

export function recipeForAssignment(
  terms: Pick<WorkTerms, 'shardId' | 'batchIndex' | 'baseCheckpointDigest' | 'seed'>,
  step: StepDefinition,
  /** The run's declared digest of terms.shardId. */
  declaredShardDigest: string,
  settings: RecipeSettings = REFERENCE_SETTINGS,
): StepRecipe {
  return {
    recipeVersion: 1,
    model: step.model.name,
    graphDigest: step.graphDigest,
    checkpointDigest: terms.baseCheckpointDigest,
    shardId: terms.shardId,
    shardDigest: declaredShardDigest,
    batchIndex: terms.batchIndex,
    batchSize: step.batchSize,
    seed: terms.seed,
    learningRate: step.learningRate,
    innerSteps: 1,
    onnxruntimeVersion: ONNXRUNTIME_VERSION,
    executionProvider: settings.executionProvider,
    graphOptimizationLevel: settings.graphOptimizationLevel,
    intraOpNumThreads: settings.intraOpNumThreads,
  };
}

export class RecipeError extends Error {
  override readonly name = 'RecipeError';
  readonly code = 'INVALID_RECIPE';
  constructor(message: string) {
    super(message);
  }
}

/** Parses a recipe from untrusted JSON (a CLI argument, an event read back): every field checked, nothing extra kept. */
export function parseRecipe(value: unknown): StepRecipe {
  if (typeof value !== 'object' || value === null) throw new RecipeError('a recipe must be a JSON object');
  const r = value as Record<string, unknown>;
  const text = (field: string, pattern: RegExp): string => {
    const v = r[field];
    if (typeof v !== 'string' || !pattern.test(v)) throw new RecipeError(`recipe.${field} must match ${pattern}`);
    return v;
  };
  const int = (field: string, min: number, max: number): number => {
    const v = r[field];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new RecipeError(`recipe.${field} must be an integer in [${min}, ${max}]`);
    return v;
  };
  if (r.recipeVersion !== 1) throw new RecipeError('recipe.recipeVersion must be 1');
  const model = text('model', /^(softmax-regression|mlp)$/) as ModelName;
  const provider = text('executionProvider', new RegExp(`^(auto|${EXECUTION_PROVIDERS.join('|')})$`)) as ProviderRequest;
  const level = text('graphOptimizationLevel', new RegExp(`^(${GRAPH_OPTIMIZATION_LEVELS.join('|')})$`)) as GraphOptimizationLevel;
  const learningRate = r.learningRate;
  if (typeof learningRate !== 'number' || !Number.isFinite(learningRate) || learningRate <= 0) throw new RecipeError('recipe.learningRate must be a finite number > 0');
  const hex64 = /^[0-9a-f]{64}$/;
  return {
    recipeVersion: 1,
    model,
    graphDigest: text('graphDigest', hex64),
    checkpointDigest: text('checkpointDigest', hex64),
    shardId: text('shardId', /^[A-Za-z0-9._:-]{1,200}$/),
    shardDigest: text('shardDigest', hex64),
    batchIndex: int('batchIndex', 0, 1_000_000),
    batchSize: int('batchSize', 1, 10_000),
    seed: text('seed', /^\d{1,20}$/),
    learningRate,
    innerSteps: int('innerSteps', 1, MAX_INNER_STEPS),
    onnxruntimeVersion: text('onnxruntimeVersion', /^[0-9A-Za-z.+-]{1,40}$/),
    executionProvider: provider,
    graphOptimizationLevel: level,
    intraOpNumThreads: int('intraOpNumThreads', 1, MAX_INTRA_OP_THREADS),
  };
}
