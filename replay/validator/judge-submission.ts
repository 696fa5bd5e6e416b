// The validator's checks in order — integrity, quality, sampled replay — turning one submission into a verdict with evidence.

import { mnistBatch, MNIST_HELDOUT_SHARD_ID, MNIST_SHARD_SIZE, mnistShard } from '../data/mnist.js';
import { requireDeclaredShardData } from '../data/shard-data.js';
import { decodeGradient, gradientL2Norm } from '../encoding/decode-gradient.js';
import { GradientDecodeError } from '../encoding/gradient-decode-error.js';
import type { StepDefinition } from '../graphs/reference-steps.js';
import { sha256Hex } from '../model/checkpoint.js';
import type { ParameterSet } from '../model/model-spec.js';
import type { BlobStore } from '../ports/blob-store.js';
import { loadCheckpoint } from '../step/checkpoint-cache.js';
import type { StepRunner, TrainBatch } from '../step/step-runner.js';
import type { CalibrationFile } from '../compare/calibration.js';
import { replaySubmission, type ReplayComparison, type SubmissionUnderReplay } from './replay-submission.js';
import type { ValidationReasonCode } from './reason-codes.js';

export type VerificationPolicy = Readonly<{ replayProbability: number; maxGradientNorm: number; minRelativeImprovement: number }>;

export type SubmissionCase = SubmissionUnderReplay &
  Readonly<{
    policy: VerificationPolicy;
    /** Size the contributor declared; the stored bytes must have it. */
    sizeBytes: number;
    /** Another assignment of the run that submitted these exact bytes first, if any. */
    copiedFromAssignmentId: string | null;
  }>;

export type Judgement =
  | Readonly<{ verdict: 'accepted'; qualityScore: number; evidence: Record<string, unknown> }>
  | Readonly<{ verdict: 'rejected'; reasonCode: ValidationReasonCode; evidence: Record<string, unknown> }>;

export type JudgeDeps = Readonly<{
  blobs: BlobStore;
  runner: StepRunner;
  calibration: CalibrationFile | null;
  /** The validator's own randomness, never the assignment's seed: a contributor must not know which steps get replayed. */
  random: () => number;
}>;

/** Held-out loss uses the whole held-out shard, in shard order: one fixed batch for every run. */
const HELDOUT_SEED = '0';

/**
 * Throws, instead of judging, when the data held here is not the data the run declared for the
 * assignment's shard (a ReplayError with one of SHARD_DATA_ERROR_CODES): that is the server's
 * problem, and no verdict, for or against the contributor, may rest on other data.
 */
export async function judgeSubmission(input: SubmissionCase, deps: JudgeDeps): Promise<Judgement> {
  requireDeclaredShardData(input.terms.shardId, input.declaredShardDigest);
  const integrity = await checkIntegrity(input, deps);
  if ('reasonCode' in integrity) return reject(integrity.reasonCode, { integrity: integrity.evidence });
  const { gradients, norm, bytes } = integrity;
  const integrityEvidence = { gradientDigest: input.gradientDigest, encoding: input.encoding, l2Norm: norm };

  const quality = await heldOutImprovement(input.step, await loadCheckpoint({ checkpointDigest: input.terms.baseCheckpointDigest }, input.step, deps.blobs), gradients, deps.runner);
  const qualityEvidence = { heldOutShardDigest: mnistShard(MNIST_HELDOUT_SHARD_ID).digest, ...quality, minRelativeImprovement: input.policy.minRelativeImprovement };
  if (!(quality.relativeImprovement >= input.policy.minRelativeImprovement)) {
    return reject('QUALITY_NO_IMPROVEMENT', { integrity: integrityEvidence, quality: qualityEvidence });
  }
  const draw = deps.random();
  const sampled = draw < input.policy.replayProbability;
  const evidence: Record<string, unknown> = { integrity: integrityEvidence, quality: qualityEvidence, replay: { sampled, draw, replayProbability: input.policy.replayProbability } };
  if (sampled) {
    const replay = await replaySubmission({ ...input, gradients, bytes }, deps);
    evidence.replay = { sampled, draw, replayProbability: input.policy.replayProbability, ...replayEvidence(replay) };
    if (replay.outcome !== 'match') return reject(replay.reasonCode, evidence);
  }
  return { verdict: 'accepted', qualityScore: Math.min(1, Math.max(0, quality.relativeImprovement)), evidence };
}

type IntegrityResult = Readonly<{ gradients: ParameterSet; norm: number; bytes: Uint8Array }> | Readonly<{ reasonCode: ValidationReasonCode; evidence: Record<string, unknown> }>;

async function checkIntegrity(input: SubmissionCase, deps: JudgeDeps): Promise<IntegrityResult> {
  const bytes = await deps.blobs.get(input.gradientDigest);
  if (!bytes) return { reasonCode: 'GRADIENT_MISSING', evidence: { gradientDigest: input.gradientDigest } };
  if (sha256Hex(bytes) !== input.gradientDigest || bytes.byteLength !== input.sizeBytes) {
    return { reasonCode: 'GRADIENT_DIGEST_MISMATCH', evidence: { declaredSizeBytes: input.sizeBytes, storedSizeBytes: bytes.byteLength } };
  }
  let gradients: ParameterSet;
  try {
    gradients = decodeGradient(input.step.model, input.encoding, bytes);
  } catch (error) {
    if (error instanceof GradientDecodeError) return { reasonCode: error.code, evidence: { detail: error.detail } };
    throw error;
  }
  const norm = gradientL2Norm(gradients);
  if (!(norm <= input.policy.maxGradientNorm)) return { reasonCode: 'GRADIENT_NORM_OUT_OF_BOUNDS', evidence: { l2Norm: norm, maxGradientNorm: input.policy.maxGradientNorm } };
  if (input.copiedFromAssignmentId !== null) return { reasonCode: 'GRADIENT_COPIED', evidence: { firstSubmittedBy: input.copiedFromAssignmentId } };
  return { gradients, norm, bytes };
}

/**
 * Relative improvement of the held-out loss when the step θ − lr·g is applied: (before − after) / before.
 * Both losses come from the model's forward-only loss graph, which gives bitwise the train step's
 * loss output on CPU with optimization disabled (test/replay/forward-loss-graph.int.spec.ts), in
 * about a third of its time: no backward pass, no update, no gradients copied out.
 */
export async function heldOutImprovement(step: StepDefinition, base: ParameterSet, gradients: ParameterSet, runner: StepRunner) {
  const batch = heldOutBatch();
  const lr = Math.fround(step.learningRate);
  const applied = base.map((tensor, t) => tensor.map((value, i) => value - lr * gradients[t]![i]!));
  const before = (await runner.evaluateLoss(step, base, batch)).loss;
  const after = (await runner.evaluateLoss(step, applied, batch)).loss;
  const relativeImprovement = before > 0 ? (before - after) / before : 0;
  return { lossBefore: before, lossAfter: after, relativeImprovement: Number.isFinite(relativeImprovement) ? relativeImprovement : -1 };
}

let cachedHeldOut: TrainBatch | undefined;

/** The whole held-out shard in its seed-0 order: the same 500 samples for every run, built once. */
function heldOutBatch(): TrainBatch {
  if (!cachedHeldOut) {
    const heldOut = mnistBatch({ shardId: MNIST_HELDOUT_SHARD_ID, batchIndex: 0, batchSize: MNIST_SHARD_SIZE, seed: HELDOUT_SEED });
    cachedHeldOut = { x: heldOut.x, y: heldOut.y, batchSize: MNIST_SHARD_SIZE };
  }
  return cachedHeldOut;
}

export function replayEvidence(replay: ReplayComparison): Record<string, unknown> {
  return {
    outcome: replay.outcome,
    ...(replay.outcome === 'match' ? {} : { reasonCode: replay.reasonCode }),
    recipe: replay.recipe,
    comparison: finiteJson(replay.comparison),
    ...(replay.staleComparison ? { staleComparison: finiteJson(replay.staleComparison) } : {}),
    executionProvider: replay.provider,
    device: replay.device,
    providerAttempts: replay.attempts,
    durationMs: Math.round(replay.durationMs),
  };
}

/** Evidence is stored as JSON: an infinite ratio (a zero replayed gradient) is written as null. */
function finiteJson(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (_key, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v)));
}

function reject(reasonCode: ValidationReasonCode, evidence: Record<string, unknown>): Judgement {
  return { verdict: 'rejected', reasonCode, evidence };
}

