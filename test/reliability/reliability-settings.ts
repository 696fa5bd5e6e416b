// How hard the reliability suite pushes: short in `npm test`, full under `npm run test:reliability`; the seed is printed to replay a run.

/** Set by `npm run test:reliability`; absent in the README's default test command. */
export const FULL_RUN = process.env.RELIABILITY_FULL === '1';

export type ReliabilityRuns = Readonly<{ seed: number; fuzz: number }>;

/** Fuzz runs per property, and the seed every property starts from (RELIABILITY_SEED replays a reported run). */
export function reliabilityRuns(): ReliabilityRuns {
  const given = process.env.RELIABILITY_SEED;
  const seed = given === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(given);
  if (!Number.isSafeInteger(seed)) throw new Error(`RELIABILITY_SEED must be an integer, got ${given}`);
  const fuzz = Number(process.env.RELIABILITY_FUZZ_RUNS ?? (FULL_RUN ? 5_000 : 200));
  if (!Number.isSafeInteger(fuzz) || fuzz < 1) throw new Error(`RELIABILITY_FUZZ_RUNS must be a positive integer, got ${process.env.RELIABILITY_FUZZ_RUNS}`);
  console.info(`reliability: seed ${seed}, ${fuzz} fuzz runs per property (replay with RELIABILITY_SEED=${seed})`);
  return { seed, fuzz };
}

/** Prints one part's figures as a JSON line (for machines) and an aligned table (for people). */
export function printReport(part: string, figures: Readonly<Record<string, string | number>>): void {
  console.info(`reliability report ${JSON.stringify({ part, ...figures })}`);
  const width = Math.max(...Object.keys(figures).map((k) => k.length));
  console.info([`${part}`, ...Object.entries(figures).map(([k, v]) => `  ${k.padEnd(width)}  ${v}`)].join('\n'));
}
