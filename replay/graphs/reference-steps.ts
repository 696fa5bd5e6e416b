// The reference step definitions: each model's train-step graph with the hyper-parameters a run pins by the graph's digest.

import { createHash } from 'node:crypto';
import { MODELS, type ModelName, type ModelSpec } from '../model/model-spec.js';
import { buildForwardLossGraph, buildTrainStepGraph } from './train-step-graph.js';

/**
 * What a run's `stepGraphDigest` names: the float32 train-step graph of one reference model,
 * together with the learning rate and batch size every step of that run uses. Pinning them to
 * the graph keeps the recipe short and makes "the same graph" mean "the same step".
 */
export type StepDefinition = Readonly<{
  model: ModelSpec;
  graphBytes: Uint8Array;
  /** Lowercase hex SHA-256 of graphBytes. */
  graphDigest: string;
  learningRate: number;
  batchSize: number;
  /**
   * The same model's forward-only loss graph (inputs: parameters, x, y; output: loss), for the
   * validator's held-out evaluation. Not part of any recipe: a replay always runs graphBytes.
   */
  forwardLoss: Readonly<{ graphBytes: Uint8Array; graphDigest: string }>;
}>;

const HYPER_PARAMETERS: Readonly<Record<ModelName, { learningRate: number; batchSize: number }>> = {
  'softmax-regression': { learningRate: 0.1, batchSize: 32 },
  mlp: { learningRate: 0.1, batchSize: 32 },
};

/** Graph building is pure but not free; each process builds each definition once. */
const built = new Map<ModelName, StepDefinition>();

export function referenceStep(name: ModelName): StepDefinition {
  const cached = built.get(name);
  if (cached) return cached;
  const model = MODELS[name];
  const graphBytes = buildTrainStepGraph(model);
  const forwardBytes = buildForwardLossGraph(model);
  const definition: StepDefinition = Object.freeze({
    model,
    graphBytes,
    graphDigest: sha256Hex(graphBytes),
    ...HYPER_PARAMETERS[name],
    forwardLoss: Object.freeze({ graphBytes: forwardBytes, graphDigest: sha256Hex(forwardBytes) }),
  });
  built.set(name, definition);
  return definition;
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function referenceSteps(): StepDefinition[] {
  return (Object.keys(MODELS) as ModelName[]).map(referenceStep);
}

/** The reference step a run's graph digest names, or null for a graph this build does not know. */
export function stepByGraphDigest(graphDigest: string): StepDefinition | null {
  return referenceSteps().find((step) => step.graphDigest === graphDigest) ?? null;
}
