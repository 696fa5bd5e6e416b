// Tolerance calibration: measures gradient noise between providers and optimization levels, and derives per-graph thresholds.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { mnistBatch, mnistShardIds } from '../data/mnist.js';
import type { StepDefinition } from '../graphs/reference-steps.js';
import { initialParameters } from '../model/checkpoint.js';
import type { ParameterSet } from '../model/model-spec.js';
import type { ExecutionProviderName, GraphOptimizationLevel } from '../step/execution-providers.js';
import { StepRunner, type TrainBatch } from '../step/step-runner.js';
import { differenceMetrics, type DifferenceMetrics, type ToleranceThresholds } from './compare.js';

export type GraphCalibration = Readonly<{
  model: string;
  referenceClass: string;
  comparedClasses: readonly string[];
  samples: number;
  /** The worst disagreement seen between any compared class and the reference. */
  observed: Readonly<{ relativeL2: number; cosine: number; maxAbs: number }>;
  thresholds: ToleranceThresholds;
}>;

export type CalibrationFile = Readonly<{
  version: 1;
  onnxruntimeVersion: string;
  measuredAt: string;
  safetyFactor: number;
  graphs: Readonly<Record<string, GraphCalibration>>;
}>;

/** Thresholds sit this many times above the worst honest noise measured. */
export const SAFETY_FACTOR = 10;
/** Floors, so a calibration that saw no noise at all still tolerates rounding it did not happen to provoke. */
export const THRESHOLD_FLOORS = Object.freeze({ relativeL2: 1e-5, oneMinusCosine: 1e-8, maxAbs: 1e-6 });
/** Used for a graph the calibration file does not cover: loose enough for float32 reorderings, far below any cheat. */
export const DEFAULT_THRESHOLDS: ToleranceThresholds = Object.freeze({ relativeL2Max: 1e-3, cosineMin: 0.9999, maxAbsMax: 1e-3 });

export const CALIBRATION_FILE = fileURLToPath(new URL('../calibration/thresholds.json', import.meta.url));

export function thresholdsFromObserved(observed: GraphCalibration['observed'], safetyFactor = SAFETY_FACTOR): ToleranceThresholds {
  return {
    relativeL2Max: Math.max(observed.relativeL2 * safetyFactor, THRESHOLD_FLOORS.relativeL2),
    cosineMin: 1 - Math.max((1 - observed.cosine) * safetyFactor, THRESHOLD_FLOORS.oneMinusCosine),
    maxAbsMax: Math.max(observed.maxAbs * safetyFactor, THRESHOLD_FLOORS.maxAbs),
  };
}

export function loadCalibration(path = CALIBRATION_FILE): CalibrationFile | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as CalibrationFile;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

export function thresholdsFor(graphDigest: string, calibration: CalibrationFile | null): ToleranceThresholds {
  return calibration?.graphs[graphDigest]?.thresholds ?? DEFAULT_THRESHOLDS;
}

export type CalibrationClass = Readonly<{ provider: ExecutionProviderName; level: GraphOptimizationLevel; threads: number }>;

/**
 * Runs the same steps (two checkpoints × batches of two shards) in every class and compares
 * each class's gradients with the reference class (cpu, optimization disabled, one thread).
 */
export async function calibrateStep(step: StepDefinition, classes: readonly CalibrationClass[], onProgress: (line: string) => void = () => {}): Promise<GraphCalibration> {
  const inputs = calibrationInputs(step);
  const reference = await gradientsIn(step, { provider: 'cpu', level: 'disabled', threads: 1 }, inputs);
  const worst = { relativeL2: 0, cosine: 1, maxAbs: 0 };
  const compared: string[] = [];
  for (const cls of classes) {
    const gradients = await gradientsIn(step, cls, inputs);
    gradients.forEach((g, i) => accumulate(worst, differenceMetrics(g, reference[i]!)));
    compared.push(`${cls.provider}/${cls.level}/t${cls.threads}`);
    onProgress(`calibrate ${step.model.name}: ${cls.provider}/${cls.level}/t${cls.threads} done (${compared.length}/${classes.length})`);
  }
  return { model: step.model.name, referenceClass: 'cpu/disabled/t1', comparedClasses: compared, samples: inputs.length, observed: worst, thresholds: thresholdsFromObserved(worst) };
}

type CalibrationInput = Readonly<{ parameters: ParameterSet; batch: TrainBatch }>;

function calibrationInputs(step: StepDefinition): CalibrationInput[] {
  const start = initialParameters(step.model, '1');
  const later = initialParameters(step.model, '2');
  const [first, second] = mnistShardIds();
  return [start, later].flatMap((parameters) =>
    [first!, second!].map((shardId, b) => {
      const batch = mnistBatch({ shardId, batchIndex: b, batchSize: step.batchSize, seed: '7' });
      return { parameters, batch: { x: batch.x, y: batch.y, batchSize: step.batchSize } };
    }),
  );
}

async function gradientsIn(step: StepDefinition, cls: CalibrationClass, inputs: readonly CalibrationInput[]): Promise<ParameterSet[]> {
  const runner = new StepRunner({ provider: cls.provider, graphOptimizationLevel: cls.level, intraOpNumThreads: cls.threads });
  try {
    const out: ParameterSet[] = [];
    for (const input of inputs) out.push((await runner.run(step, input.parameters, input.batch, step.learningRate)).outputs.gradients);
    return out;
  } finally {
    await runner.close();
  }
}

function accumulate(worst: { relativeL2: number; cosine: number; maxAbs: number }, metrics: DifferenceMetrics): void {
  worst.relativeL2 = Math.max(worst.relativeL2, metrics.relativeL2);
  worst.cosine = Math.min(worst.cosine, metrics.cosine);
  worst.maxAbs = Math.max(worst.maxAbs, metrics.maxAbs);
}
