// Gradient comparison: the metrics on hand-computed cases, exact versus tolerance modes, and thresholds derived from measured noise.

import { describe, expect, it } from 'vitest';
import { compareGradients, differenceMetrics, withinTolerance } from '../../replay/compare/compare.js';
import { THRESHOLD_FLOORS, thresholdsFor, thresholdsFromObserved, DEFAULT_THRESHOLDS } from '../../replay/compare/calibration.js';

const g = (...values: number[]) => [Float32Array.from(values)];

describe('difference metrics', () => {
  it('match hand-computed values', () => {
    expect(differenceMetrics(g(3, 4), g(3, 4))).toEqual({ relativeL2: 0, cosine: 1, maxAbs: 0, normRatio: 1 });
    expect(differenceMetrics(g(6, 8), g(3, 4))).toEqual({ relativeL2: 1, cosine: 1, maxAbs: 4, normRatio: 2 });
    const orthogonal = differenceMetrics(g(0, 5), g(5, 0));
    expect(orthogonal.cosine).toBe(0);
    expect(orthogonal.relativeL2).toBeCloseTo(Math.SQRT2, 12);
    expect(differenceMetrics(g(-3, -4), g(3, 4)).cosine).toBe(-1);
  });

  it('treat two zero gradients as equal and a zero against a non-zero one as far apart', () => {
    expect(differenceMetrics(g(0, 0), g(0, 0))).toMatchObject({ relativeL2: 0, cosine: 1 });
    expect(differenceMetrics(g(1, 0), g(0, 0))).toMatchObject({ relativeL2: Number.POSITIVE_INFINITY, cosine: 0 });
    expect(differenceMetrics(g(0, 0), g(1, 0))).toMatchObject({ relativeL2: 1, cosine: 0 });
  });

  it('refuse gradients of different shapes', () => {
    expect(() => differenceMetrics(g(1, 2), g(1, 2, 3))).toThrow(/values/);
    expect(() => differenceMetrics([...g(1), ...g(2)], g(1))).toThrow(/tensors/);
  });
});

describe('comparison modes', () => {
  const common = { submittedDigest: 'a', replayedDigest: 'a', submitted: g(1, 2), replayed: g(1, 2.0001), thresholds: DEFAULT_THRESHOLDS };

  it('within one recipe class, only equal digests match, however close the values', () => {
    expect(compareGradients({ ...common, sameRecipeClass: true })).toMatchObject({ mode: 'exact', match: true });
    expect(compareGradients({ ...common, replayedDigest: 'b', sameRecipeClass: true })).toMatchObject({ mode: 'exact', match: false });
  });

  it('across classes, tolerance decides on every metric at once', () => {
    expect(compareGradients({ ...common, sameRecipeClass: false })).toMatchObject({ mode: 'tolerance', match: true });
    expect(compareGradients({ ...common, replayed: g(1, 3), sameRecipeClass: false })).toMatchObject({ mode: 'tolerance', match: false });
    const metrics = differenceMetrics(g(1, 2), g(1, 2));
    expect(withinTolerance({ ...metrics, cosine: 0.5 }, DEFAULT_THRESHOLDS)).toBe(false);
    expect(withinTolerance({ ...metrics, maxAbs: 1 }, DEFAULT_THRESHOLDS)).toBe(false);
  });
});

describe('thresholds from calibration', () => {
  it('sit the safety factor above the worst noise seen, never below the floors', () => {
    const derived = thresholdsFromObserved({ relativeL2: 1e-4, cosine: 1 - 1e-6, maxAbs: 1e-3 }, 10);
    expect(derived.relativeL2Max).toBeCloseTo(1e-3, 15);
    expect(derived.cosineMin).toBeCloseTo(1 - 1e-5, 12);
    expect(derived.maxAbsMax).toBeCloseTo(1e-2, 15);
    expect(thresholdsFromObserved({ relativeL2: 0, cosine: 1, maxAbs: 0 }, 10)).toEqual({
      relativeL2Max: THRESHOLD_FLOORS.relativeL2,
      cosineMin: 1 - THRESHOLD_FLOORS.oneMinusCosine,
      maxAbsMax: THRESHOLD_FLOORS.maxAbs,
    });
  });

  it('fall back to the defaults for a graph the file does not cover', () => {
    const thresholds = { relativeL2Max: 1, cosineMin: 0, maxAbsMax: 1 };
    const file = { version: 1 as const, onnxruntimeVersion: 'x', measuredAt: 'now', safetyFactor: 10, graphs: { known: { model: 'mlp', referenceClass: 'cpu/disabled', comparedClasses: [], samples: 1, observed: { relativeL2: 0, cosine: 1, maxAbs: 0 }, thresholds } } };
    expect(thresholdsFor('known', file)).toBe(thresholds);
    expect(thresholdsFor('unknown', file)).toBe(DEFAULT_THRESHOLDS);
    expect(thresholdsFor('known', null)).toBe(DEFAULT_THRESHOLDS);
  });
});

describe('the committed calibration file', () => {
  it('covers every reference step graph of this build (rerun `npm run calibrate` after changing a graph)', async () => {
    const { loadCalibration } = await import('../../replay/compare/calibration.js');
    const { referenceSteps } = await import('../../replay/graphs/reference-steps.js');
    const file = loadCalibration();
    expect(file).not.toBeNull();
    for (const step of referenceSteps()) {
      const entry = file!.graphs[step.graphDigest];
      expect(entry?.model).toBe(step.model.name);
      expect(entry!.thresholds.cosineMin).toBeLessThan(1);
      expect(entry!.thresholds.relativeL2Max).toBeGreaterThan(entry!.observed.relativeL2);
    }
  });
});
