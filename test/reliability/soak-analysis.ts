// The soak's settings (how long, how often it samples) and its verdicts: does resident memory plateau, does projection lag stay bounded and drain.

/**
 * Bounds on RELIABILITY_SOAK_S and `--soak`: long enough for the 15 s warm-up and enough steady samples after it, short
 * enough that a typo cannot hold a machine for a day.
 */
export const SOAK_SECONDS_RANGE = Object.freeze({ min: 30, max: 3_600 });
/** `npm test` runs this long, so CI exercises the soak on every change; the full run (`npm run test:reliability`) the ten minutes. */
export const SHORT_SOAK_S = 40;
export const FULL_SOAK_S = 600;

export type SoakSettings = Readonly<{ durationS: number; sampleMs: number }>;

/** Parses a soak length in whole seconds; the error names where the value came from and the range it must be in. */
export function parseSoakSeconds(text: string, source: string): number {
  const value = /^\d{1,7}$/.test(text.trim()) ? Number(text.trim()) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < SOAK_SECONDS_RANGE.min || value > SOAK_SECONDS_RANGE.max) {
    throw new Error(`SOAK_SECONDS_INVALID: ${source} must be a whole number of seconds in ${SOAK_SECONDS_RANGE.min}..${SOAK_SECONDS_RANGE.max}, got ${JSON.stringify(text)}`);
  }
  return value;
}

/** RELIABILITY_SOAK_S wins; otherwise the full or the short length. About 60 samples a run, one every 1–5 s. */
export function soakSettings(env: NodeJS.ProcessEnv, full: boolean): SoakSettings {
  const given = env.RELIABILITY_SOAK_S;
  const durationS = given === undefined || given === '' ? (full ? FULL_SOAK_S : SHORT_SOAK_S) : parseSoakSeconds(given, 'RELIABILITY_SOAK_S');
  const sampleMs = Math.min(5_000, Math.max(1_000, Math.round((durationS * 1_000) / 60 / 500) * 500));
  return { durationS, sampleMs };
}

export type SoakSample = Readonly<{
  /** Since the load started; drain samples come after `loadEndMs`. */
  tMs: number;
  rssBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  externalBytes: number;
  /** The largest backlog of any projector, from /health. */
  lagEvents: number;
  lagSeconds: number;
}>;

/**
 * What "plateaus" means here, for one series sampled under steady load:
 * - the first `warmupShare` of the load, and at least `warmupMinMs`, is warm-up (JIT, pools, onnxruntime's first
 *   sessions) and is left out;
 * - the rest is cut in thirds; the mean of the last third may exceed the higher of the first and middle thirds' means
 *   by at most max(`growthShare` of that mean, `growthMiB`). The higher of two, because a major GC can land a deep
 *   trough in either one, and a leak raises the last third above both;
 * - the Theil–Sen slope (the median of the slopes between every two samples) over the rest, carried over the whole
 *   load, may not exceed that same allowance: at that rate the soak would have grown less than what the thirds may
 *   differ by. The median, not least squares, because the V8 heap's sawtooth (a slow climb, then a compaction that
 *   drops 150 MiB at once) tilts a least-squares line by where in the window the drops fall.
 */
export type PlateauBounds = Readonly<{ warmupShare: number; warmupMinMs: number; growthShare: number; growthMiB: number }>;
export const RSS_PLATEAU: PlateauBounds = Object.freeze({ warmupShare: 0.2, warmupMinMs: 15_000, growthShare: 0.1, growthMiB: 32 });

/** Where the warm-up ends, in ms since the load began. */
export function warmupEndMs(loadMs: number, bounds: PlateauBounds): number {
  return Math.min(loadMs, Math.max(loadMs * bounds.warmupShare, bounds.warmupMinMs));
}

export type PlateauVerdict = Readonly<{
  samplesUsed: number;
  warmupSamples: number;
  firstMeanMiB: number;
  middleMeanMiB: number;
  lastMeanMiB: number;
  growthMiB: number;
  allowedGrowthMiB: number;
  slopeMiBPerMin: number;
  /** The slope that, over the whole load, would add exactly the allowed growth. */
  allowedSlopeMiBPerMin: number;
  ok: boolean;
  reasons: readonly string[];
}>;

const MIB = 2 ** 20;
/** Fewer steady samples than this and thirds and a slope say nothing. */
const MIN_STEADY_SAMPLES = 9;

export function plateau(points: readonly Readonly<{ tMs: number; value: number }>[], loadMs: number, bounds: PlateauBounds): PlateauVerdict {
  const warmupMs = warmupEndMs(loadMs, bounds);
  const steady = points.filter((p) => p.tMs >= warmupMs && p.tMs <= loadMs);
  const warmupSamples = points.filter((p) => p.tMs < warmupMs).length;
  const reasons: string[] = [];
  if (steady.length < MIN_STEADY_SAMPLES) reasons.push(`only ${steady.length} samples after warm-up; at least ${MIN_STEADY_SAMPLES} are needed`);
  const third = Math.floor(steady.length / 3);
  const firstMeanMiB = mean(steady.slice(0, third).map((p) => p.value)) / MIB;
  const middleMeanMiB = mean(steady.slice(third, 2 * third).map((p) => p.value)) / MIB;
  const lastMeanMiB = mean(steady.slice(steady.length - third).map((p) => p.value)) / MIB;
  const referenceMiB = Math.max(firstMeanMiB, middleMeanMiB);
  const growthMiB = lastMeanMiB - referenceMiB;
  const allowedGrowthMiB = Math.max(bounds.growthShare * referenceMiB, bounds.growthMiB);
  const slopeMiBPerMin = (theilSenSlope(steady) / MIB) * 60_000;
  const allowedSlopeMiBPerMin = allowedGrowthMiB / (loadMs / 60_000);
  if (!(growthMiB <= allowedGrowthMiB)) reasons.push(`the last third's mean is ${growthMiB.toFixed(1)} MiB above the higher of the first and middle thirds'; at most ${allowedGrowthMiB.toFixed(1)} MiB is allowed`);
  if (!(slopeMiBPerMin <= allowedSlopeMiBPerMin)) reasons.push(`the steady part rises ${slopeMiBPerMin.toFixed(2)} MiB/min; at most ${allowedSlopeMiBPerMin.toFixed(2)} MiB/min is allowed`);
  return { samplesUsed: steady.length, warmupSamples, firstMeanMiB, middleMeanMiB, lastMeanMiB, growthMiB, allowedGrowthMiB, slopeMiBPerMin, allowedSlopeMiBPerMin, ok: reasons.length === 0, reasons };
}

/**
 * The plateau is asserted only for loads at least this long. The server's resident memory climbs to its working set
 * for the first 60–90 s of load (V8 grows its heap, onnxruntime and the pools fill): a shorter soak sees that climb,
 * not the plateau after it. Shorter soaks report the verdict and assert the ceiling below.
 */
export const PLATEAU_MIN_LOAD_S = 300;
/** Resident memory never goes above this, whatever the length: more than twice the 600 s run's peak (460 MiB). */
export const RSS_CEILING_MIB = 1_024;

/** Bounds on projection lag under load, and on how soon it must reach 0 once the load stops. */
export type LagBounds = Readonly<{ maxLagEvents: number; maxLagSeconds: number; drainTimeoutMs: number }>;
/** Four of the runner's 500-event batches, and a few seconds: a projector that keeps up is never further behind. */
export const LAG_BOUNDS: LagBounds = Object.freeze({ maxLagEvents: 2_000, maxLagSeconds: 15, drainTimeoutMs: 30_000 });

export type LagVerdict = Readonly<{ maxLagEvents: number; maxLagSeconds: number; meanLagEvents: number; ok: boolean; reasons: readonly string[] }>;

export function lagBounded(samples: readonly SoakSample[], loadMs: number, bounds: LagBounds): LagVerdict {
  const load = samples.filter((s) => s.tMs <= loadMs);
  const maxLagEvents = Math.max(0, ...load.map((s) => s.lagEvents));
  const maxLagSeconds = Math.max(0, ...load.map((s) => s.lagSeconds));
  const reasons: string[] = [];
  if (maxLagEvents > bounds.maxLagEvents) reasons.push(`a projector fell ${maxLagEvents} events behind; at most ${bounds.maxLagEvents} is allowed`);
  if (maxLagSeconds > bounds.maxLagSeconds) reasons.push(`a projector's oldest unapplied event was ${maxLagSeconds.toFixed(1)} s old; at most ${bounds.maxLagSeconds} s is allowed`);
  return { maxLagEvents, maxLagSeconds, meanLagEvents: mean(load.map((s) => s.lagEvents)), ok: reasons.length === 0, reasons };
}

function mean(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : values.reduce((a, b) => a + b, 0) / values.length;
}

/** Value units per millisecond; NaN for fewer than two distinct times. */
export function leastSquaresSlope(points: readonly Readonly<{ tMs: number; value: number }>[]): number {
  const n = points.length;
  const meanT = mean(points.map((p) => p.tMs));
  const meanV = mean(points.map((p) => p.value));
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.tMs - meanT) * (p.value - meanV);
    den += (p.tMs - meanT) ** 2;
  }
  return n < 2 || den === 0 ? Number.NaN : num / den;
}

/** The median of the slopes between every two samples at distinct times (value units per ms); NaN for fewer than two. Quadratic: fine for the few hundred samples a soak takes. */
export function theilSenSlope(points: readonly Readonly<{ tMs: number; value: number }>[]): number {
  const slopes: number[] = [];
  for (let i = 0; i < points.length; i += 1) {
    for (let j = i + 1; j < points.length; j += 1) {
      const dt = points[j]!.tMs - points[i]!.tMs;
      if (dt !== 0) slopes.push((points[j]!.value - points[i]!.value) / dt);
    }
  }
  if (slopes.length === 0) return Number.NaN;
  slopes.sort((a, b) => a - b);
  const mid = slopes.length >> 1;
  return slopes.length % 2 === 1 ? slopes[mid]! : (slopes[mid - 1]! + slopes[mid]!) / 2;
}
