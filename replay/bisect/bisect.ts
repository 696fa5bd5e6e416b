// Trace bisection (as in Gensyn's Verde): finds where a contributor's committed checkpoint trace leaves a validator's, then recomputes that one step to decide who is wrong.

// Inputs: a trace of H steps commits to checkpoint digests c_0..c_H (c_0 the base) by a Merkle root
// (./merkle.ts, H + 1 leaves). To "probe" step i is to fetch the contributor's claimed digest at i,
// check its Merkle proof against the root, fetch the reference digest at i and compare the two.
// Every claimed digest is proof-checked before it is used; a bad proof ends the game with
// 'invalid-proof' against the contributor.
// Algorithm:
//   1. Probe 0. Disagreement → 'base-disagreement' (the parties did not start from the same checkpoint).
//   2. Probe H. Agreement → 'no-dispute'.
//   3. lo = 0, hi = H (invariant: agree at lo, disagree at hi). While hi − lo > 1, probe
//      mid = lo + ⌊(hi − lo)/2⌋ and move lo or hi to it. The gap shrinks to at most ⌈gap/2⌉, so
//      there are at most ⌈log2 H⌉ such rounds. hi is then a step where the traces agree at hi − 1
//      and disagree at hi — the first divergence whenever, as with chained checkpoints, traces
//      that part never meet again.
//   4. recomputeStep(hi) once, from the agreed checkpoint at hi − 1. Equal to the claim →
//      'claim-correct' (the reference was wrong); else equal to the reference → 'claim-wrong';
//      else 'both-wrong'.
// Cost fields, exact:
//   rounds         = midpoint probes compared in step 3 (≤ ⌈log2 H⌉);
//   comparisons    = every digest equality test: 1 per probe compared (endpoints included), plus
//                    1 (claim-correct) or 2 (claim-wrong, both-wrong) in step 4; so for a decided
//                    dispute 2 + rounds + (1 or 2), for 'no-dispute' 2, for 'base-disagreement' 1;
//   proofChecks    = Merkle proofs verified (one per probe, including one that failed);
//   recomputations = 1 if step 4 ran, else 0.

import { DomainError, invariant } from '../../domain/errors.js';
import { isDigestHex, MAX_TRACE_STEPS, requireDigestHex, verifyMerkleProof } from './merkle.js';

export type ClaimedCheckpoint = { digest: string; proof: readonly string[] };

export type BisectInput = {
  /** H, the number of inner steps the commitment covers (1..MAX_TRACE_STEPS). */
  steps: number;
  /** The contributor's Merkle root over c_0..c_H. */
  root: string;
  /** The contributor's claimed digest at step i with its Merkle proof. */
  claimed(step: number): Promise<ClaimedCheckpoint>;
  /** The validator's own digest at step i. */
  reference(step: number): Promise<string>;
  /** Recomputes step i from the agreed checkpoint at i − 1 and returns the result's digest. */
  recomputeStep(step: number): Promise<string>;
};

export type BisectVerdict = 'no-dispute' | 'base-disagreement' | 'invalid-proof' | 'claim-correct' | 'claim-wrong' | 'both-wrong';

export type BisectResult = {
  verdict: BisectVerdict;
  /** The disputed step: 0 for 'base-disagreement', hi for a decided dispute, else null. */
  firstDivergentStep: number | null;
  /** The step whose claimed digest failed its proof ('invalid-proof' only), else null. */
  invalidProofStep: number | null;
  rounds: number;
  comparisons: number;
  proofChecks: number;
  recomputations: 0 | 1;
  /** Digests at the disputed step (at H for 'no-dispute', at the failing step for 'invalid-proof' when well-formed); null where not fetched. */
  claimedDigest: string | null;
  referenceDigest: string | null;
  recomputedDigest: string | null;
};

type Tally = { rounds: number; comparisons: number; proofChecks: number };

type Probe =
  | { kind: 'invalid-proof'; step: number; claimedDigest: string | null }
  | { kind: 'compared'; step: number; claimedDigest: string; referenceDigest: string; agree: boolean };

/** The most midpoint rounds a trace of `steps` steps can need: ⌈log2 steps⌉. */
export function maxBisectRounds(steps: number): number {
  return 32 - Math.clz32(steps - 1);
}

export async function bisectTrace(input: BisectInput): Promise<BisectResult> {
  const steps = requireSteps(input.steps);
  const root = requireDigestHex(input.root, 'root');
  const tally: Tally = { rounds: 0, comparisons: 0, proofChecks: 0 };
  const probe = (step: number): Promise<Probe> => probeStep(input, root, steps, step, tally);

  const base = await probe(0);
  if (base.kind === 'invalid-proof') return invalidProof(base, tally);
  if (!base.agree) return outcome('base-disagreement', base, null, tally);
  const tip = await probe(steps);
  if (tip.kind === 'invalid-proof') return invalidProof(tip, tally);
  if (tip.agree) return { ...outcome('no-dispute', tip, null, tally), firstDivergentStep: null };

  let lo = 0;
  let divergent = tip;
  while (divergent.step - lo > 1) {
    const mid = await probe(lo + Math.floor((divergent.step - lo) / 2));
    if (mid.kind === 'invalid-proof') return invalidProof(mid, tally);
    tally.rounds++;
    if (mid.agree) lo = mid.step;
    else divergent = mid;
  }
  invariant(tally.rounds <= maxBisectRounds(steps), `bisection took ${tally.rounds} rounds for ${steps} steps`);
  return adjudicate(input, divergent, tally);
}

function requireSteps(steps: unknown): number {
  if (Number.isSafeInteger(steps) && (steps as number) >= 1 && (steps as number) <= MAX_TRACE_STEPS) return steps as number;
  throw new DomainError('INVALID_TRACE_STEPS', `a trace must cover a whole number of steps from 1 to ${MAX_TRACE_STEPS}; got ${String(steps)}`, {
    field: 'steps',
    max: MAX_TRACE_STEPS,
  });
}

async function probeStep(input: BisectInput, root: string, steps: number, step: number, tally: Tally): Promise<Probe> {
  // The claim comes from the party under test, so its shape is checked rather than trusted.
  const claim: unknown = await input.claimed(step);
  const digest = (claim as { digest?: unknown } | null)?.digest;
  const proof = (claim as { proof?: unknown } | null)?.proof;
  const claimedDigest = isDigestHex(digest) ? digest : null;
  tally.proofChecks++;
  const proven =
    claimedDigest !== null && Array.isArray(proof) && verifyMerkleProof({ root, leafHex: claimedDigest, index: step, leafCount: steps + 1, proof });
  if (!proven) return { kind: 'invalid-proof', step, claimedDigest };
  const referenceDigest = requireDigestHex(await input.reference(step), `reference(${step})`);
  tally.comparisons++;
  return { kind: 'compared', step, claimedDigest, referenceDigest, agree: claimedDigest === referenceDigest };
}

async function adjudicate(input: BisectInput, divergent: Extract<Probe, { kind: 'compared' }>, tally: Tally): Promise<BisectResult> {
  const recomputed = requireDigestHex(await input.recomputeStep(divergent.step), `recomputeStep(${divergent.step})`);
  tally.comparisons++;
  if (recomputed === divergent.claimedDigest) return outcome('claim-correct', divergent, recomputed, tally);
  tally.comparisons++;
  return outcome(recomputed === divergent.referenceDigest ? 'claim-wrong' : 'both-wrong', divergent, recomputed, tally);
}

function outcome(verdict: BisectVerdict, at: Extract<Probe, { kind: 'compared' }>, recomputed: string | null, tally: Tally): BisectResult {
  return {
    verdict,
    firstDivergentStep: at.step,
    invalidProofStep: null,
    ...tally,
    recomputations: recomputed === null ? 0 : 1,
    claimedDigest: at.claimedDigest,
    referenceDigest: at.referenceDigest,
    recomputedDigest: recomputed,
  };
}

function invalidProof(at: Extract<Probe, { kind: 'invalid-proof' }>, tally: Tally): BisectResult {
  return {
    verdict: 'invalid-proof',
    firstDivergentStep: null,
    invalidProofStep: at.step,
    ...tally,
    recomputations: 0,
    claimedDigest: at.claimedDigest,
    referenceDigest: null,
    recomputedDigest: null,
  };
}
