// Compares two gradients: exactly by digest within one recipe class, otherwise by relative L2, cosine and max-abs against thresholds.

import type { ParameterSet } from '../model/model-spec.js';

export type ToleranceThresholds = Readonly<{
  /** ‖a − b‖₂ / ‖b‖₂ must not exceed this. */
  relativeL2Max: number;
  /** a·b / (‖a‖‖b‖) must be at least this. */
  cosineMin: number;
  /** max |aᵢ − bᵢ| must not exceed this. */
  maxAbsMax: number;
}>;

export type DifferenceMetrics = Readonly<{ relativeL2: number; cosine: number; maxAbs: number; normRatio: number }>;

export type Comparison =
  | Readonly<{ mode: 'exact'; match: boolean; submittedDigest: string; replayedDigest: string }>
  | Readonly<{ mode: 'tolerance'; match: boolean; metrics: DifferenceMetrics; thresholds: ToleranceThresholds }>;

/** All sums in float64, in one fixed order, so the metrics themselves are reproducible. */
export function differenceMetrics(submitted: ParameterSet, replayed: ParameterSet): DifferenceMetrics {
  if (submitted.length !== replayed.length) throw new Error(`cannot compare ${submitted.length} tensors with ${replayed.length}`);
  let diffSquared = 0;
  let dot = 0;
  let submittedSquared = 0;
  let replayedSquared = 0;
  let maxAbs = 0;
  submitted.forEach((a, t) => {
    const b = replayed[t]!;
    if (a.length !== b.length) throw new Error(`tensor ${t}: ${a.length} values against ${b.length}`);
    for (let i = 0; i < a.length; i += 1) {
      const x = a[i]!;
      const y = b[i]!;
      const d = x - y;
      diffSquared += d * d;
      dot += x * y;
      submittedSquared += x * x;
      replayedSquared += y * y;
      const abs = Math.abs(d);
      if (abs > maxAbs) maxAbs = abs;
    }
  });
  const replayedNorm = Math.sqrt(replayedSquared);
  const submittedNorm = Math.sqrt(submittedSquared);
  // Two zero gradients are the same gradient; one zero against a non-zero one is as far apart as it gets.
  const bothZero = replayedNorm === 0 && submittedNorm === 0;
  return {
    relativeL2: bothZero ? 0 : replayedNorm === 0 ? Number.POSITIVE_INFINITY : Math.sqrt(diffSquared) / replayedNorm,
    cosine: bothZero ? 1 : replayedNorm === 0 || submittedNorm === 0 ? 0 : dot / (submittedNorm * replayedNorm),
    maxAbs,
    normRatio: bothZero ? 1 : replayedNorm === 0 ? Number.POSITIVE_INFINITY : submittedNorm / replayedNorm,
  };
}

export function withinTolerance(metrics: DifferenceMetrics, thresholds: ToleranceThresholds): boolean {
  return metrics.relativeL2 <= thresholds.relativeL2Max && metrics.cosine >= thresholds.cosineMin && metrics.maxAbs <= thresholds.maxAbsMax;
}

/**
 * Within one recipe class the outputs are bitwise reproducible, so equal digests are the only
 * match. Across classes (another provider, optimization level or onnxruntime version) the low
 * bits legitimately differ, so the gradients are compared against calibrated thresholds.
 */
export function compareGradients(input: {
  sameRecipeClass: boolean;
  submittedDigest: string;
  replayedDigest: string;
  submitted: ParameterSet;
  replayed: ParameterSet;
  thresholds: ToleranceThresholds;
}): Comparison {
  if (input.sameRecipeClass) {
    return { mode: 'exact', match: input.submittedDigest === input.replayedDigest, submittedDigest: input.submittedDigest, replayedDigest: input.replayedDigest };
  }
  const metrics = differenceMetrics(input.submitted, input.replayed);
  return { mode: 'tolerance', match: withinTolerance(metrics, input.thresholds), metrics, thresholds: input.thresholds };
}
