// Unit tests for trace commitments and bisection: RFC 6962 Merkle roots and proofs, and Verde-style bisection over a toy hash-chain trainer.

import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type BisectInput, bisectTrace, maxBisectRounds } from '../../replay/bisect/bisect.js';
import { MAX_MERKLE_LEAVES, MAX_MERKLE_PROOF_HASHES, merkleProof, merkleRoot, verifyMerkleProof } from '../../replay/bisect/merkle.js';
import { expectCode } from '../domain/fixtures.js';

function sha256Hex(...parts: (Buffer | string)[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest('hex');
}

function leavesOf(count: number, label = 'leaf'): string[] {
  return Array.from({ length: count }, (_, i) => sha256Hex(`${label}-${i}`));
}

/** Flips the last hex character, keeping the value well-formed. */
function tamper(hex: string): string {
  return hex.slice(0, -1) + (hex.endsWith('0') ? '1' : '0');
}

// Hand-built RFC 6962 hashes, written out independently of the implementation under test.
const leaf = (hex: string) => Buffer.from(sha256Hex(Buffer.from([0]), Buffer.from(hex, 'hex')), 'hex');
const node = (left: Buffer, right: Buffer) => Buffer.from(sha256Hex(Buffer.from([1]), left, right), 'hex');

describe('merkle commitments', () => {
  it('match hand-built RFC 6962 trees, an odd node carried up unpaired', () => {
    const [a, b, c, d, e] = leavesOf(5).map(leaf) as [Buffer, Buffer, Buffer, Buffer, Buffer];
    expect(merkleRoot(leavesOf(1))).toBe(a.toString('hex'));
    expect(merkleRoot(leavesOf(2))).toBe(node(a, b).toString('hex'));
    expect(merkleRoot(leavesOf(3))).toBe(node(node(a, b), c).toString('hex'));
    expect(merkleRoot(leavesOf(5))).toBe(node(node(node(a, b), node(c, d)), e).toString('hex'));
    expect(merkleProof(leavesOf(5), 4)).toEqual([node(node(a, b), node(c, d)).toString('hex')]);
    expect(merkleProof(leavesOf(5), 2)).toEqual([d, node(a, b), e].map((hash) => hash.toString('hex')));
  });

  it('proves every index for 1..33 leaves and some larger trees, and nothing tampered', () => {
    const counts = [...Array.from({ length: 33 }, (_, i) => i + 1), 64, 65, 127, 128, 129, 257];
    for (const leafCount of counts) {
      const leaves = leavesOf(leafCount, `tree-${leafCount}`);
      const root = merkleRoot(leaves);
      for (let index = 0; index < leafCount; index++) {
        const leafHex = leaves[index] as string;
        const proof = merkleProof(leaves, index);
        expect(proof.length).toBeLessThanOrEqual(Math.ceil(Math.log2(leafCount)));
        expect(verifyMerkleProof({ root, leafHex, index, leafCount, proof })).toBe(true);
        expect(verifyMerkleProof({ root, leafHex: tamper(leafHex), index, leafCount, proof })).toBe(false);
        expect(verifyMerkleProof({ root: tamper(root), leafHex, index, leafCount, proof })).toBe(false);
        proof.forEach((sibling, at) => {
          const forged = proof.map((hash, i) => (i === at ? tamper(sibling) : hash));
          expect(verifyMerkleProof({ root, leafHex, index, leafCount, proof: forged })).toBe(false);
        });
        const otherIndices = leafCount <= 33 ? Array.from({ length: leafCount }, (_, i) => i) : [index - 1, index + 1];
        for (const other of otherIndices.filter((i) => i !== index && i >= 0 && i < leafCount)) {
          expect(verifyMerkleProof({ root, leafHex, index: other, leafCount, proof })).toBe(false);
        }
        expect(verifyMerkleProof({ root, leafHex, index, leafCount, proof: [...proof, root] })).toBe(false);
        if (proof.length > 0) expect(verifyMerkleProof({ root, leafHex, index, leafCount, proof: proof.slice(0, -1) })).toBe(false);
      }
    }
  });

  it('handles the largest trace and refuses anything larger or empty', () => {
    const leaves = leavesOf(MAX_MERKLE_LEAVES);
    const root = merkleRoot(leaves);
    const index = MAX_MERKLE_LEAVES - 1;
    const proof = merkleProof(leaves, index);
    expect(proof.length).toBeLessThanOrEqual(MAX_MERKLE_PROOF_HASHES);
    expect(verifyMerkleProof({ root, leafHex: leaves[index] as string, index, leafCount: MAX_MERKLE_LEAVES, proof })).toBe(true);
    expectCode(() => merkleRoot([...leaves, sha256Hex('one too many')]), 'INVALID_LEAF_COUNT');
    expectCode(() => merkleRoot([]), 'INVALID_LEAF_COUNT');
  });

  it('refuses malformed leaves and indices, and verifies malformed input as false without throwing', () => {
    const leaves = leavesOf(4);
    expectCode(() => merkleRoot([...leaves.slice(0, 3), (leaves[3] as string).toUpperCase()]), 'INVALID_DIGEST');
    expectCode(() => merkleRoot(['abcd']), 'INVALID_DIGEST');
    for (const index of [-1, 4, 1.5]) expectCode(() => merkleProof(leaves, index), 'INVALID_LEAF_INDEX');
    const root = merkleRoot(leaves);
    const proof = merkleProof(leaves, 1);
    const good = { root, leafHex: leaves[1] as string, index: 1, leafCount: 4, proof };
    expect(verifyMerkleProof(good)).toBe(true);
    const broken = [
      { ...good, leafHex: 'zz' },
      { ...good, root: root.toUpperCase() },
      { ...good, index: 4 },
      { ...good, index: -1 },
      { ...good, leafCount: 0 },
      { ...good, leafCount: MAX_MERKLE_LEAVES + 1 },
      { ...good, proof: ['not hex', ...proof.slice(1)] },
      { ...good, proof: null as unknown as string[] },
    ];
    for (const check of broken) expect(verifyMerkleProof(check)).toBe(false);
  });
});

/** The toy trainer: checkpoint i is SHA-256 of checkpoint i − 1 and the step number; a fault label makes one step go wrong. */
function trainStep(previousHex: string, step: number, fault = ''): string {
  const stepBytes = Buffer.alloc(4);
  stepBytes.writeUInt32BE(step);
  return sha256Hex(Buffer.from(previousHex, 'hex'), stepBytes, fault);
}

function trace(steps: number, faultAt: number | null = null, fault = 'fault'): string[] {
  const digests = [sha256Hex('base checkpoint')];
  for (let step = 1; step <= steps; step++) digests.push(trainStep(digests[step - 1] as string, step, step === faultAt ? fault : ''));
  return digests;
}

type Game = BisectInput & { recomputedSteps: number[] };

/** A contributor committing to `claimedTrace`, a validator holding `referenceTrace`, and an honest recomputation. */
function game(claimedTrace: string[], referenceTrace: string[]): Game {
  const recomputedSteps: number[] = [];
  return {
    steps: claimedTrace.length - 1,
    root: merkleRoot(claimedTrace),
    claimed: async (step) => ({ digest: claimedTrace[step] as string, proof: merkleProof(claimedTrace, step) }),
    reference: async (step) => referenceTrace[step] as string,
    recomputeStep: async (step) => {
      recomputedSteps.push(step);
      return trainStep(referenceTrace[step - 1] as string, step);
    },
    recomputedSteps,
  };
}

const stepsAndFault = fc.integer({ min: 1, max: 512 }).chain((steps) => fc.tuple(fc.constant(steps), fc.integer({ min: 1, max: steps })));

describe('trace bisection', () => {
  it('finds a contributor fault at step k in ≤ ⌈log2 H⌉ rounds with one recomputation: claim-wrong', async () => {
    await fc.assert(
      fc.asyncProperty(stepsAndFault, async ([steps, faultAt]) => {
        const play = game(trace(steps, faultAt), trace(steps));
        const result = await bisectTrace(play);
        expect(result.verdict).toBe('claim-wrong');
        expect(result.firstDivergentStep).toBe(faultAt);
        expect(result.rounds).toBeLessThanOrEqual(Math.ceil(Math.log2(steps)));
        expect(result.rounds).toBeLessThanOrEqual(maxBisectRounds(steps));
        expect(play.recomputedSteps).toEqual([faultAt]);
        expect(result.recomputations).toBe(1);
        expect(result.comparisons).toBe(2 + result.rounds + 2);
        expect(result.proofChecks).toBe(2 + result.rounds);
        expect(result.recomputedDigest).toBe(result.referenceDigest);
        expect(result.claimedDigest).not.toBe(result.referenceDigest);
      }),
    );
  });

  it('sides with the contributor when the reference trace is the one at fault: claim-correct', async () => {
    await fc.assert(
      fc.asyncProperty(stepsAndFault, async ([steps, faultAt]) => {
        const play = game(trace(steps), trace(steps, faultAt));
        const result = await bisectTrace(play);
        expect(result.verdict).toBe('claim-correct');
        expect(result.firstDivergentStep).toBe(faultAt);
        expect(result.rounds).toBeLessThanOrEqual(Math.ceil(Math.log2(steps)));
        expect(play.recomputedSteps).toEqual([faultAt]);
        expect(result.comparisons).toBe(2 + result.rounds + 1);
        expect(result.recomputedDigest).toBe(result.claimedDigest);
      }),
      { numRuns: 50 },
    );
  });

  it('says both-wrong when neither trace matches the recomputation', async () => {
    const result = await bisectTrace(game(trace(100, 37, 'one fault'), trace(100, 37, 'another fault')));
    expect(result).toMatchObject({ verdict: 'both-wrong', firstDivergentStep: 37, recomputations: 1 });
    expect(result.comparisons).toBe(2 + result.rounds + 2);
    expect(new Set([result.claimedDigest, result.referenceDigest, result.recomputedDigest]).size).toBe(3);
  });

  it('needs no rounds and no recomputation when the traces agree', async () => {
    for (const steps of [1, 2, 64, 513]) {
      const play = game(trace(steps), trace(steps));
      const result = await bisectTrace(play);
      expect(result).toMatchObject({ verdict: 'no-dispute', firstDivergentStep: null, rounds: 0, comparisons: 2, proofChecks: 2, recomputations: 0 });
      expect(play.recomputedSteps).toEqual([]);
    }
  });

  it('stops at once when the base checkpoints differ', async () => {
    const reference = trace(16);
    reference[0] = sha256Hex('another base');
    const play = game(trace(16), reference);
    const result = await bisectTrace(play);
    expect(result).toMatchObject({ verdict: 'base-disagreement', firstDivergentStep: 0, rounds: 0, comparisons: 1, recomputations: 0 });
    expect(play.recomputedSteps).toEqual([]);
  });

  it('rules against a contributor whose claimed digest does not match its commitment', async () => {
    await fc.assert(
      fc.asyncProperty(stepsAndFault, async ([steps, faultAt]) => {
        // Commits to the honest trace but answers with a faulty one: first with the faulty tree's proofs,
        // then with the committed tree's proofs (which hold up to the fault and fail from it on).
        const committed = trace(steps);
        const faulty = trace(steps, faultAt);
        const withFaultyProofs = { ...game(faulty, committed), root: merkleRoot(committed) };
        const withCommittedProofs = {
          ...withFaultyProofs,
          claimed: async (step: number) => ({ digest: faulty[step] as string, proof: merkleProof(committed, step) }),
        };
        for (const play of [withFaultyProofs, withCommittedProofs]) {
          const result = await bisectTrace(play);
          expect(result.verdict).toBe('invalid-proof');
          expect(result.firstDivergentStep).toBeNull();
          expect(result.recomputations).toBe(0);
          expect(play.recomputedSteps).toEqual([]);
        }
        const result = await bisectTrace(withCommittedProofs);
        expect(result.invalidProofStep).toBeGreaterThanOrEqual(faultAt);
        expect(result.claimedDigest).toBe(faulty[result.invalidProofStep as number]);
      }),
      { numRuns: 50 },
    );
  });

  it('rules against a tampered, misplaced or malformed proof', async () => {
    const claimedTrace = trace(40, 21);
    const base = game(claimedTrace, trace(40));
    const tampered: BisectInput = {
      ...base,
      claimed: async (step) => ({ digest: claimedTrace[step] as string, proof: merkleProof(claimedTrace, step).map(tamper) }),
    };
    expect(await bisectTrace(tampered)).toMatchObject({ verdict: 'invalid-proof', invalidProofStep: 0, comparisons: 0, proofChecks: 1 });
    const misplaced: BisectInput = {
      ...base,
      claimed: async (step) => ({ digest: claimedTrace[step] as string, proof: merkleProof(claimedTrace, step === 20 ? 19 : step) }),
    };
    expect(await bisectTrace(misplaced)).toMatchObject({ verdict: 'invalid-proof', invalidProofStep: 20 });
    const malformed: BisectInput = { ...base, claimed: async () => null as unknown as { digest: string; proof: string[] } };
    expect(await bisectTrace(malformed)).toMatchObject({ verdict: 'invalid-proof', invalidProofStep: 0, claimedDigest: null });
  });

  it('refuses a bad step count, root or validator digest with a code', async () => {
    const play = game(trace(8, 3), trace(8));
    for (const steps of [0, -1, 1.5, 4097]) await expect(bisectTrace({ ...play, steps })).rejects.toMatchObject({ code: 'INVALID_TRACE_STEPS' });
    await expect(bisectTrace({ ...play, root: 'nope' })).rejects.toMatchObject({ code: 'INVALID_DIGEST' });
    await expect(bisectTrace({ ...play, reference: async () => 'nope' })).rejects.toMatchObject({ code: 'INVALID_DIGEST' });
    await expect(bisectTrace({ ...play, recomputeStep: async () => 'NOPE' })).rejects.toMatchObject({ code: 'INVALID_DIGEST' });
  });

  it('bounds rounds by ⌈log2 H⌉, a bound some fault reaches', async () => {
    expect([1, 2, 3, 4, 5, 512, 513, 4096].map(maxBisectRounds)).toEqual([0, 1, 2, 2, 3, 9, 10, 12]);
    for (const steps of [1, 2, 5, 33, 100]) {
      const reference = trace(steps);
      const rounds = await Promise.all(
        Array.from({ length: steps }, async (_, i) => (await bisectTrace(game(trace(steps, i + 1), reference))).rounds),
      );
      expect(Math.max(...rounds)).toBe(maxBisectRounds(steps));
    }
  });
});
